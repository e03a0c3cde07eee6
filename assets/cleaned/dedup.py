"""Cross-shard deduplication: group documents, keep one per group, record everything removed.

Exact duplicates share the hash of their normalised text. The earliest copy (by shard order,
then position in the shard) is kept, so the choice is the same however the shards were run.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from assets.documents import DROPPED_SCHEMA
from resources.lake import Lake

DEDUP_CODE_VERSION = "dedup-1"

CLUSTER_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("cluster_id", pa.string()),
        ("kept_doc_id", pa.string()),
        ("similarity", pa.float64()),
        ("method", pa.string()),
        ("is_kept", pa.bool_()),
    ]
)


@dataclass(frozen=True)
class DedupResult:
    rows_in: int
    kept: int
    duplicates: int
    clusters: int


def exact_duplicate_clusters(docs: pl.LazyFrame) -> pl.DataFrame:
    """Members of every group of two or more documents with the same content hash."""
    ordered = docs.select("doc_id", "shard", "source_offset", "content_hash").sort(
        "shard", "source_offset", "doc_id"
    )
    return (
        ordered.with_columns(
            pl.len().over("content_hash").alias("size"),
            pl.col("doc_id").first().over("content_hash").alias("kept_doc_id"),
        )
        .filter(pl.col("size") > 1)
        .select(
            "doc_id",
            pl.col("content_hash").alias("cluster_id"),
            "kept_doc_id",
            pl.lit(1.0).alias("similarity"),
            pl.lit("exact").alias("method"),
            (pl.col("doc_id") == pl.col("kept_doc_id")).alias("is_kept"),
        )
        .collect()
    )


def duplicate_drops(clusters: pl.DataFrame) -> pl.DataFrame:
    removed = clusters.filter(~pl.col("is_kept"))
    return removed.select(
        "doc_id",
        pl.lit("cleaned").alias("stage"),
        (pl.lit("dedup:") + pl.col("method")).alias("rule"),
        pl.col("similarity").alias("value"),
        pl.lit(1.0).alias("threshold"),
        (pl.lit("duplicate of ") + pl.col("kept_doc_id")).alias("detail"),
    )


def publish_exact_duplicates(lake: Lake, run_id: str | None) -> DedupResult:
    docs = lake.scan("cleaned_documents")
    rows_in = docs.select(pl.len()).collect().item()
    clusters = exact_duplicate_clusters(docs)
    drops = duplicate_drops(clusters)
    metadata = {"upstream": lake.versions_of(["cleaned_documents"])}
    with lake.publish(
        "duplicate_clusters", run_id=run_id, code_version=DEDUP_CODE_VERSION, metadata=metadata
    ) as out:
        out.write("documents", clusters, CLUSTER_SCHEMA)
        out.write("dropped", drops, DROPPED_SCHEMA)
    return DedupResult(
        rows_in=rows_in,
        kept=rows_in - drops.height,
        duplicates=drops.height,
        clusters=clusters.filter(pl.col("is_kept")).height,
    )
