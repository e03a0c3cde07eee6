"""What the clustered stage reports: SemDeDup's removals and a readable row per cluster."""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from assets.documents import DROPPED_SCHEMA


def semdedup_drops(
    doc_ids: list[str], removed: list[tuple[int, int, float]], threshold: float
) -> pl.DataFrame:
    """One dropped row per document SemDeDup removed, naming the neighbour it was too close to."""
    rows = [
        {
            "doc_id": doc_ids[r],
            "stage": "clustered",
            "rule": "semdedup:cosine",
            "value": similarity,
            "threshold": threshold,
            "detail": f"near {doc_ids[k]} in embedding space",
        }
        for r, k, similarity in removed
    ]
    return pl.from_arrow(pa.Table.from_pylist(rows, schema=DROPPED_SCHEMA))


def missing_embedding_drops(unembedded: pl.DataFrame) -> pl.DataFrame:
    """Corpus documents with no vector (an older embeddings version): recorded, not lost."""
    rows = [
        {"doc_id": doc_id, "stage": "clustered", "rule": "clustered:missing_embedding"}
        for doc_id in unembedded["doc_id"]
    ]
    return pl.from_arrow(pa.Table.from_pylist(rows, schema=DROPPED_SCHEMA))


def cluster_summary(assignments: pl.DataFrame, terms: list[list[str]], n_rep: int) -> pl.DataFrame:
    """Size, synthetic share, the documents nearest the centroid and a c-TF-IDF label."""
    stats = (
        assignments.sort("distance")
        .group_by("cluster_id", maintain_order=False)
        .agg(
            pl.len().alias("size"),
            (pl.col("origin") == "synthetic").mean().alias("synthetic_share"),
            pl.col("doc_id").head(n_rep).alias("representative_doc_ids"),
        )
        .sort("cluster_id")
    )
    labels = [" / ".join(terms[c]) or f"cluster {c}" for c in stats["cluster_id"]]
    return stats.with_columns(pl.Series("label", labels))
