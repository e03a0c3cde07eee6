"""Per-shard MinHash signing: datatrove's ``MinhashDedupSignature`` step as a map over shards.

Each shard's version holds one row per cleaned document (its exact content hash, where it sits,
and its 112 minima, null when the text is too short to shingle) and its band keys as rows
(band, band_hash, doc_id) sorted by band then hash, one Parquet row group per band. The bucket
step (``dedup.py``) then reads one band of every shard by row-group statistics and groups it out
of core; nothing here looks beyond the shard, so an unchanged shard is never signed again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.cleaned.minhash import MinHasher
from resources.lake import Lake, TableSink, VersionWriter

SIGNATURES_CODE_VERSION = "minhash-signatures-1"
BATCH_ROWS = 1024

BANDS_SCHEMA = pa.schema(
    [("band", pa.int16()), ("band_hash", pa.uint64()), ("doc_id", pa.string())]
)


def signed_schema(num_hashes: int) -> pa.Schema:
    """The `documents` table: every cleaned document of the shard, signed or not."""
    return pa.schema(
        [
            ("doc_id", pa.string()),
            ("shard", pa.string()),
            ("cleaned_version", pa.string()),
            ("content_hash", pa.string()),
            ("n_chars", pa.int64()),
            ("source_offset", pa.int64()),
            ("config", pa.string()),
            ("signature", pa.list_(pa.uint64(), num_hashes)),
        ]
    )


@dataclass
class SigningReport:
    documents: int = 0
    signed: int = 0


def sign_into(lake: Lake, shard: str, hasher: MinHasher, out: VersionWriter) -> SigningReport:
    """Sign the current cleaned version of one shard into a new signatures version."""
    (cleaned,) = lake.files("cleaned_documents", partitions=[shard])
    columns = ["doc_id", "shard", "content_hash", "n_chars", "source_offset", "text"]
    return sign_shard(
        lake.iter_rows("cleaned_documents", partitions=[shard], columns=columns),
        hasher,
        cleaned.version,
        out.table("documents", signed_schema(hasher.config.num_hashes)),
        out.table("bands", BANDS_SCHEMA),
    )


def sign_shard(
    rows: Iterable[dict[str, Any]],
    hasher: MinHasher,
    cleaned_version: str,
    documents: TableSink,
    bands: TableSink,
) -> SigningReport:
    """Sign one shard's documents (None for a text too short to shingle, as in datatrove)."""
    signed = ((row, hasher.signature(row["text"])) for row in rows)
    return store_signatures(signed, hasher, cleaned_version, documents, bands)


def store_signatures(
    signed: Iterable[tuple[dict[str, Any], np.ndarray | None]],
    hasher: MinHasher,
    cleaned_version: str,
    documents: TableSink,
    bands: TableSink,
) -> SigningReport:
    """Write signed documents batch by batch; their band rows (about 14 per document, bounded
    by the shard) are sorted once at the end and written one row group per band."""
    report = SigningReport()
    key, width = hasher.config.signing_key(), hasher.config.num_hashes
    band_parts: list[pa.Table] = []
    for batch in _batched(signed, BATCH_ROWS):
        rows = [row for row, _ in batch]
        signatures = [signature for _, signature in batch]
        documents.write(_documents_batch(rows, signatures, cleaned_version, key, width))
        present = [(r["doc_id"], s) for r, s in batch if s is not None]
        report.documents += len(batch)
        report.signed += len(present)
        if present:
            band_parts.append(_band_rows(hasher, present))
    _write_sorted_bands(band_parts, hasher.config.bands, bands)
    return report


def _documents_batch(
    batch: list[dict[str, Any]],
    signatures: list[np.ndarray | None],
    cleaned_version: str,
    key: str,
    width: int,
) -> pa.Table:
    flat = np.concatenate([s for s in signatures if s is not None] or [np.empty(0, np.uint64)])
    mask = pa.array([s is None for s in signatures])
    offsets = np.cumsum([0] + [width if s is not None else 0 for s in signatures])
    lists = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat), mask=mask)
    schema = signed_schema(width)
    columns = {
        "doc_id": [r["doc_id"] for r in batch],
        "shard": [r["shard"] for r in batch],
        "cleaned_version": [cleaned_version] * len(batch),
        "content_hash": [r["content_hash"] for r in batch],
        "n_chars": [r["n_chars"] for r in batch],
        "source_offset": [r["source_offset"] for r in batch],
        "config": [key] * len(batch),
    }
    arrays = [pa.array(columns[f.name], f.type) for f in schema if f.name != "signature"]
    return pa.Table.from_arrays(
        [*arrays, lists.cast(schema.field("signature").type)], schema=schema
    )


def _band_rows(hasher: MinHasher, signed: list[tuple[str, np.ndarray]]) -> pa.Table:
    keys = hasher.band_matrix(np.vstack([s for _, s in signed]))  # (documents x bands)
    n_docs, n_bands = keys.shape
    ids = pa.array([doc_id for doc_id, _ in signed], pa.string())
    return pa.table(
        {
            "band": pa.array(np.tile(np.arange(n_bands, dtype=np.int16), n_docs)),
            "band_hash": pa.array(keys.ravel()),
            "doc_id": ids.take(pa.array(np.repeat(np.arange(n_docs), n_bands))),
        },
        schema=BANDS_SCHEMA,
    )


def _write_sorted_bands(parts: list[pa.Table], n_bands: int, sink: TableSink) -> None:
    if not parts:
        return
    table = pa.concat_tables(parts).sort_by(
        [("band", "ascending"), ("band_hash", "ascending"), ("doc_id", "ascending")]
    )
    for band in range(n_bands):  # one row group per band: a band's scan skips the others
        sink.write(table.filter(pc.equal(table["band"], band)))


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
