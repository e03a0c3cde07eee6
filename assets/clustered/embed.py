"""Embeddings stored in the lake, keyed by document, text and model; only new text is embedded.

Organic documents are embedded per crawl shard (`document_embeddings`, one partition each);
synthetic ones, bounded by the rewrite budget, inside `clusters` (its `synthetic_embeddings`
table). Either way a vector whose (doc_id, text_hash, model_id) is unchanged is carried over from
the previous version instead of being computed again.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl
import pyarrow as pa

from assets.documents import content_hash
from resources.lake import Lake, MissingUpstreamError, TableSink

Encode = Callable[[list[str]], np.ndarray]


def embeddings_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            ("doc_id", pa.string()),
            ("text_hash", pa.string()),
            ("model_id", pa.string()),
            ("embedding", pa.list_(pa.float32(), dim)),
        ]
    )


def embed_into(
    documents: pl.LazyFrame,
    previous: pl.DataFrame,
    encode: Encode,
    model_id: str,
    sink: TableSink,
    batch_rows: int = 512,
    on_batch: Callable[[int], object] = lambda rows: None,
) -> tuple[int, int]:
    """Stream (doc_id, text_hash, text) in batches into `sink`: a vector of `previous` (same
    doc_id, text_hash, model) is copied, others are encoded. Returns (reused, embedded)."""
    reused = embedded = 0
    known = previous.select("doc_id", "text_hash", "embedding")
    for batch in documents.select("doc_id", "text_hash", "text").collect_batches(
        chunk_size=batch_rows
    ):
        old = batch.select("doc_id", "text_hash").join(known, on=["doc_id", "text_hash"])
        if old.height:
            sink.write(old.with_columns(pl.lit(model_id).alias("model_id")))
            reused += old.height
        todo = batch.join(old.select("doc_id", "text_hash"), on=["doc_id", "text_hash"], how="anti")
        if todo.height:
            vectors = encode(todo["text"].to_list())
            sink.write(
                to_table(list(todo.select("doc_id", "text_hash").iter_rows()), model_id, vectors)
            )
            embedded += todo.height
        on_batch(batch.height)
    return reused, embedded


def previous_shard_embeddings(lake: Lake, shard: str, model_id: str) -> pl.DataFrame:
    """This shard's vectors of this model in its current version (bounded by the shard)."""
    try:
        scan = lake.scan("document_embeddings", partitions=[shard])
    except MissingUpstreamError:
        return _no_vectors()
    return scan.filter(pl.col("model_id") == model_id).collect()


def previous_synthetic_embeddings(lake: Lake, model_id: str) -> pl.DataFrame:
    """The last clusters version's vectors of rewritten documents (bounded by the budget)."""
    if not lake.has("clusters", "synthetic_embeddings"):
        return _no_vectors()
    scan = lake.scan("clusters", "synthetic_embeddings")
    return scan.filter(pl.col("model_id") == model_id).collect()


def all_vectors(lake: Lake, model_id: str) -> pl.LazyFrame:
    """Every corpus vector of one model: organic (document_embeddings, per shard) and synthetic
    (clusters' synthetic_embeddings). A reader declares both assets in its deps."""
    frames = [lake.scan("document_embeddings")]
    if lake.has("clusters", "synthetic_embeddings"):
        frames.append(lake.scan("clusters", "synthetic_embeddings"))
    columns = ["doc_id", "text_hash", "model_id", "embedding"]
    scans = [f.select(columns).filter(pl.col("model_id") == model_id) for f in frames]
    return pl.concat(scans, how="vertical_relaxed")


def synthetic_documents(lake: Lake) -> pl.LazyFrame:
    """Accepted rewrites with the hash of their text (computed here: the table has none)."""
    schema = {"doc_id": pl.String, "text_hash": pl.String, "text": pl.String, "language": pl.String}
    if not lake.has("rephrased_documents"):
        return pl.LazyFrame(schema=schema)
    return (
        lake.scan("rephrased_documents")
        .select("doc_id", "text", "language")
        .with_columns(
            pl.col("text").map_elements(content_hash, return_dtype=pl.String).alias("text_hash")
        )
        .select(list(schema))
    )


def _no_vectors() -> pl.DataFrame:
    return pl.DataFrame(
        schema={"doc_id": pl.String, "text_hash": pl.String, "embedding": pl.List(pl.Float32)}
    )


def to_table(keys: list[tuple[str, str]], model_id: str, vectors: np.ndarray) -> pa.Table:
    dim = vectors.shape[1]
    flat = pa.array(vectors.astype(np.float32).ravel(), type=pa.float32())
    return pa.table(
        {
            "doc_id": [k[0] for k in keys],
            "text_hash": [k[1] for k in keys],
            "model_id": [model_id] * len(keys),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
        },
        schema=embeddings_schema(dim),
    )


def load_vectors(frame: pl.DataFrame) -> np.ndarray:
    if frame.height == 0:
        return np.zeros((0, 1), dtype=np.float32)
    return np.asarray(frame["embedding"].to_numpy(), dtype=np.float32).reshape(frame.height, -1)
