"""Embeddings stored in the lake, keyed by document, text and model; only new text is embedded."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import polars as pl
import pyarrow as pa

from assets.documents import content_hash
from resources.lake import Lake


def embeddings_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            ("doc_id", pa.string()),
            ("text_hash", pa.string()),
            ("model_id", pa.string()),
            ("embedding", pa.list_(pa.float32(), dim)),
        ]
    )


def embed_new(
    corpus: pl.LazyFrame,
    known: set[tuple[str, str]],
    encode: Callable[[list[str]], np.ndarray],
    model_id: str,
    batch_rows: int = 512,
) -> Iterator[tuple[list[tuple[str, str]], pa.Table | None]]:
    """Stream the corpus; yield the keys seen in each batch and a table of freshly embedded rows."""
    for batch in corpus.select("doc_id", "text").collect_batches(chunk_size=batch_rows):
        keys = [(d, content_hash(t)) for d, t in zip(batch["doc_id"], batch["text"], strict=True)]
        todo = [i for i, key in enumerate(keys) if key not in known]
        if not todo:
            yield keys, None
            continue
        vectors = encode([batch["text"][i] for i in todo])
        yield keys, to_table([keys[i] for i in todo], model_id, vectors)


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
    return np.asarray(frame["embedding"].to_numpy(), dtype=np.float32).reshape(frame.height, -1)


def previous_embeddings(lake: Lake, model_id: str) -> pl.DataFrame:
    """The last version's vectors of this model: unchanged texts are not embedded again."""
    if not lake.has("document_embeddings"):
        return pl.DataFrame(schema={"doc_id": pl.String, "text_hash": pl.String})
    return lake.scan("document_embeddings").filter(pl.col("model_id") == model_id).collect()
