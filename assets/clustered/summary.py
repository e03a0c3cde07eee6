"""What the clustered stage reports: SemDeDup's removals and a readable row per cluster."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl
import pyarrow as pa

from assets.clustered.semdedup import Removal
from assets.documents import DROPPED_SCHEMA


def semdedup_drops(removed: Iterable[Removal], threshold: float) -> pl.DataFrame:
    """One dropped row per document SemDeDup removed, naming the neighbour it was too close to."""
    rows = [
        {
            "doc_id": doc_id,
            "stage": "clustered",
            "rule": "semdedup:cosine",
            "value": similarity,
            "threshold": threshold,
            "detail": f"near {kept} in embedding space",
        }
        for doc_id, kept, similarity in removed
    ]
    return pl.from_arrow(pa.Table.from_pylist(rows, schema=DROPPED_SCHEMA))


def cluster_summary(stats: pl.DataFrame, terms: list[list[str]]) -> pl.DataFrame:
    """Per cluster with members: size, synthetic share, the documents nearest the centroid
    (`stats`, from the assignment pass) and a c-TF-IDF label."""
    stats = stats.sort("cluster_id")
    labels = [
        " / ".join(terms[c] if c < len(terms) else []) or f"cluster {c}"
        for c in stats["cluster_id"]
    ]
    return stats.with_columns(pl.Series("label", labels, dtype=pl.String))
