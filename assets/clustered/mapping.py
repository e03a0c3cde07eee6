"""The two passes of `clusters` over the corpus, one source (crawl shard) at a time.

1. `draw_sample`: count documents per (shard, language), then take each stratum's quota of the
   seeded sample (assets/clustered/sample.py) and read only those vectors. k-means, auto-k, the
   silhouette, the held-out baseline and the plot all work on this bounded sample.
2. `assign_shards`: read one shard's vectors, predict their clusters, stream the assignments out,
   spill each vector to its cluster for SemDeDup, and keep per-cluster totals, the nearest
   documents and the texts of a few sampled documents for the labels.
Memory: one shard's vectors plus the sample, never the corpus.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from assets.clustered.embed import load_vectors
from assets.clustered.kmeans import assign
from assets.clustered.sample import Stratum, count_strata, quotas, take, with_sample_key
from assets.clustered.semdedup import ClusterSpill
from assets.clustered.sources import Source, SourceReader
from resources.lake import TableSink


@dataclass(frozen=True)
class Sample:
    frame: pl.DataFrame  # doc_id, language, source
    vectors: np.ndarray  # rows in frame order
    strata: int
    population: int  # corpus documents with a vector


def draw_sample(reader: SourceReader, sources: list[Source], size: int, seed: int) -> Sample:
    counts: dict[Stratum, int] = {}
    for source in sources:
        counts.update(count_strata(source.name, _embedded(reader, source)))
    quota = quotas(counts, size)
    frames, blocks = [], []
    for source in sources:
        chosen = take(_embedded(reader, source), source.name, quota, seed)
        if chosen.is_empty():
            continue
        vectors = reader.vectors(source, only=chosen["doc_id"])
        chosen = chosen.join(vectors, on="doc_id", how="inner", maintain_order="left")
        frames.append(chosen.select("doc_id", "language", pl.lit(source.name).alias("source")))
        blocks.append(load_vectors(chosen))
    frame = pl.concat(frames) if frames else pl.DataFrame(schema=_SAMPLE_SCHEMA)
    matrix = np.vstack(blocks) if blocks else np.zeros((0, 1), dtype=np.float32)
    return Sample(frame, matrix, len(counts), sum(counts.values()))


_SAMPLE_SCHEMA = {"doc_id": pl.String, "language": pl.String, "source": pl.String}


def _embedded(reader: SourceReader, source: Source) -> pl.DataFrame:
    docs = reader.documents(source)
    return docs.filter(pl.col("doc_id").is_in(reader.vector_ids(source).implode()))


def label_documents(
    sample: Sample, labels: np.ndarray, per_cluster: int, seed: int
) -> pl.DataFrame:
    """Up to `per_cluster` sampled documents per cluster (smallest seeded keys): the texts
    c-TF-IDF reads, bounded by k x per_cluster."""
    frame = with_sample_key(sample.frame, seed + 1).with_columns(
        pl.Series("cluster_id", labels, dtype=pl.Int32)
    )
    return (
        frame.sort("sample_key")
        .group_by("cluster_id", maintain_order=True)
        .head(per_cluster)
        .select("doc_id", "source", "cluster_id")
    )


@dataclass
class Tally:
    """What the assignment pass keeps besides the streamed rows: bounded by k."""

    representatives: int
    sizes: dict[int, int] = field(default_factory=dict)
    synthetic: dict[int, int] = field(default_factory=dict)
    nearest: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(
            schema={"cluster_id": pl.Int32, "distance": pl.Float32, "doc_id": pl.String}
        )
    )
    label_texts: list[pl.DataFrame] = field(default_factory=list)
    assigned: int = 0

    def add(self, rows: pl.DataFrame, origin: str) -> None:
        for cluster_id, n in rows.group_by("cluster_id").len().iter_rows():
            self.sizes[cluster_id] = self.sizes.get(cluster_id, 0) + n
            if origin == "synthetic":
                self.synthetic[cluster_id] = self.synthetic.get(cluster_id, 0) + n
        self.assigned += rows.height
        candidates = pl.concat([self.nearest, rows.select("cluster_id", "distance", "doc_id")])
        self.nearest = (
            candidates.sort("cluster_id", "distance", "doc_id")
            .group_by("cluster_id", maintain_order=True)
            .head(self.representatives)
        )

    def summary_rows(self) -> pl.DataFrame:
        """cluster_id, size, synthetic_share, representative_doc_ids (clusters with members)."""
        ids = sorted(self.sizes)
        reps = self.nearest.group_by("cluster_id", maintain_order=True).agg(
            pl.col("doc_id").alias("representative_doc_ids")
        )
        base = pl.DataFrame(
            {
                "cluster_id": ids,
                "size": [self.sizes[c] for c in ids],
                "synthetic_share": [self.synthetic.get(c, 0) / self.sizes[c] for c in ids],
            },
            schema={"cluster_id": pl.Int32, "size": pl.Int64, "synthetic_share": pl.Float64},
        )
        return base.join(reps, on="cluster_id", how="left")


def assign_shards(
    reader: SourceReader,
    sources: list[Source],
    centroids: np.ndarray,
    assignments: TableSink,
    missing: TableSink,
    spill: ClusterSpill,
    tally: Tally,
    label_ids: pl.DataFrame,
    label_chars: int,
) -> int:
    """Assign every source's documents to the nearest centroid; returns documents missing a
    vector (recorded in `missing` as dropped rows)."""
    unembedded = 0
    for source in sources:
        docs = reader.documents(source).select("doc_id")
        vectors = reader.vectors(source)
        embedded = docs.join(vectors, on="doc_id", how="inner", maintain_order="left")
        absent = docs.join(vectors.select("doc_id"), on="doc_id", how="anti")
        if absent.height:
            missing.write(
                absent.with_columns(
                    pl.lit("clustered").alias("stage"),
                    pl.lit("clustered:missing_embedding").alias("rule"),
                )
            )
            unembedded += absent.height
        if embedded.height:
            matrix = load_vectors(embedded)
            labels, distances = assign(matrix, centroids)
            rows = embedded.select("doc_id").with_columns(
                pl.Series("cluster_id", labels, dtype=pl.Int32),
                pl.Series("distance", distances, dtype=pl.Float32),
                pl.lit(source.origin).alias("origin"),
            )
            assignments.write(rows)
            spill.append(rows["doc_id"].to_list(), labels, distances, matrix)
            tally.add(rows, source.origin)
        wanted = label_ids.filter(pl.col("source") == source.name)
        texts = reader.texts(source, wanted["doc_id"], label_chars)
        tally.label_texts.append(texts.join(wanted.select("doc_id", "cluster_id"), on="doc_id"))
    return unembedded
