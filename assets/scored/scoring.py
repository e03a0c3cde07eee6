"""The combined quality score of every corpus document: measured signals, classifier and distilled
ratings standardised per language, weighted (configured or learned), gated on held-out skill."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from assets.measures import weighted
from assets.scored.artifacts import BottomK
from assets.scored.combine import COMBINED_WEIGHTS, learn_weights, skilled
from assets.scored.dataman import CRITERION_COLUMNS
from assets.scored.features import Scorers, load_scorers, unit_features
from assets.scored.ratings import DIMENSIONS
from assets.scored.schema import FEATURES_SCHEMA, SCORE_COLUMNS, conform
from assets.scored.shards import ShardReader
from assets.scored.signals import REDPAJAMA_SIGNALS
from assets.scored.statistics import (
    ScoreStatistics,
    aggregate,
    bucket_edges,
    bucket_of,
    sample_medians,
)
from assets.scored.training import mean_ratings
from assets.workers import ordered_map, worker_count
from resources.lake import Lake, TableSink

KNOWN_INPUTS = frozenset({*REDPAJAMA_SIGNALS, *SCORE_COLUMNS})
# heads fitted to LLM ratings: gated on Spearman, never inputs of learned weights
DISTILLED = (*DIMENSIONS, *CRITERION_COLUMNS)
FEATURES_FRAME = pl.from_arrow(FEATURES_SCHEMA.empty_table()).schema


@dataclass(frozen=True)
class ScoringPolicy:
    weights: dict[str, float] = field(default_factory=lambda: dict(COMBINED_WEIGHTS))
    weighting: Literal["configured", "learned"] = "configured"
    standardise_by: Literal["language", "corpus"] = "language"
    min_group: int = 3  # smaller language groups use corpus statistics
    # Gates on the lower bound of each model score's bootstrap interval (see combine.skilled):
    min_heldout_auc: float = 0.6  # the classifier weighs only if its AUC interval starts here
    # a distilled dimension weighs only if its Spearman interval starts above 0 and here or up
    min_heldout_spearman: float = 0.1
    # the seeded sample whose quantiles give the medians (fill) and the bucket edges
    sample_size: int = 50_000
    seed: int = 0
    workers: int = 0  # processes for the maps over shards; 0 = one per CPU


@dataclass(frozen=True)
class ScoredCorpus:
    sample: pl.DataFrame  # the bounded sample's features, z-scores' inputs and scores
    weights: dict[str, float]
    excluded: dict[str, str]
    learned_note: str
    scorers: Scorers
    statistics: ScoreStatistics
    edges: np.ndarray
    rows: int


def score_corpus(lake: Lake, policy: ScoringPolicy, sink: TableSink, scratch: Path) -> ScoredCorpus:
    """Features per shard into `scratch` (a map), one streaming aggregate for the statistics,
    then a second map that scores each shard and streams it into `sink`."""
    if unknown := set(policy.weights) - KNOWN_INPUTS:
        raise ValueError(
            f"Unknown signals in weights: {sorted(unknown)}; known: {sorted(KNOWN_INPUTS)}"
        )
    scorers = load_scorers(lake)
    reader = ShardReader(lake)
    ratings = mean_ratings(lake) if policy.weighting == "learned" else None
    files, drawn, rated = _features_map(lake, reader, policy, ratings, scratch)
    columns = sorted(KNOWN_INPUTS)
    by = "language" if policy.standardise_by == "language" else None
    scan = pl.scan_parquet([str(p) for _, p in files], glob=False) if files else None
    features = scan if scan is not None else pl.LazyFrame(schema=FEATURES_FRAME)
    stats = aggregate(features, columns, sample_medians(drawn, columns), by, policy.min_group)
    weights, learned_note = _weights(policy, stats, rated, ratings)
    weights, excluded = skilled(weights, scorers.heldout, *gates(policy))
    excluded |= scorers.excluded
    sample_scores = weighted(stats.z(drawn), weights)
    edges = bucket_edges(sample_scores)
    rows = 0
    for unit, path in files:
        scored = score_frame(pl.read_parquet(path), stats, weights, edges)
        clusters = _clusters(reader, scored["doc_id"], unit)
        sink.write(scored.join(clusters, on="doc_id", how="left", maintain_order="left"))
        rows += scored.height
    drawn = drawn.with_columns(pl.Series("quality_score", sample_scores))
    return ScoredCorpus(drawn, weights, excluded, learned_note, scorers, stats, edges, rows)


def _features_map(
    lake: Lake,
    reader: ShardReader,
    policy: ScoringPolicy,
    ratings: pl.DataFrame | None,
    scratch: Path,
) -> tuple[list[tuple[str, Path]], pl.DataFrame, list[pl.DataFrame]]:
    """Every unit's features into its own scratch file, units spread over worker processes;
    on the way, the bounded sample (a bottom-k of bottom-ks) and the rated documents' rows
    (learned weights)."""
    units = reader.units()
    files = [(unit, scratch / f"features-{i:06d}.parquet") for i, unit in enumerate(units)]
    rated_ids = None if ratings is None else ratings.select("doc_id")
    jobs = [(unit, path, policy.sample_size, policy.seed, rated_ids) for unit, path in files]
    workers = worker_count(policy.workers, len(jobs))
    sample = BottomK(policy.sample_size, policy.seed)
    rated: list[pl.DataFrame] = []
    handoff = lake.for_worker()
    for drawn, rated_rows in ordered_map(_unit_features_file, jobs, workers, _open, (handoff,)):
        sample.offer(drawn)
        rated.extend(rated_rows)
    drawn = sample.frame if sample.frame is not None else pl.DataFrame(schema=FEATURES_FRAME)
    return files, drawn, rated


_WORKER: dict[str, object] = {}  # the lake's reader and scorers, loaded once per process


def _open(handoff: tuple) -> None:
    lake = Lake.in_worker(handoff)
    _WORKER.update(reader=ShardReader(lake), scorers=load_scorers(lake))


def _unit_features_file(
    job: tuple[str, Path, int, int, pl.DataFrame | None],
) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """One unit's features into its file; returns its bottom-k and its rated rows."""
    unit, path, sample_size, seed, rated_ids = job
    reader, scorers = _WORKER["reader"], _WORKER["scorers"]
    sample = BottomK(sample_size, seed)
    rated = []
    with pq.ParquetWriter(path, FEATURES_SCHEMA, compression="zstd") as writer:
        for frame in unit_features(reader, unit, scorers):  # type: ignore[arg-type]
            writer.write_table(conform(frame, FEATURES_SCHEMA))
            sample.offer(frame)
            if rated_ids is not None:
                rated.append(frame.join(rated_ids, on="doc_id", how="semi"))
    drawn = sample.frame if sample.frame is not None else pl.DataFrame(schema=FEATURES_FRAME)
    return drawn, rated


def _clusters(reader: ShardReader, ids: pl.Series, unit: str) -> pl.DataFrame:
    found = reader.rows("clusters", "documents", ids, unit, ["doc_id", "cluster_id"])
    return found if "cluster_id" in found.columns else _NO_CLUSTERS


def score_frame(
    features: pl.DataFrame, stats: ScoreStatistics, weights: dict[str, float], edges: np.ndarray
) -> pl.DataFrame:
    """One shard's features with their combined score and bucket."""
    total = weighted(stats.z(features), weights)
    return features.with_columns(
        pl.Series("quality_score", total, pl.Float64),
        pl.Series("quality_bucket", bucket_of(total, edges), pl.Int32),
    )


def gates(policy: ScoringPolicy) -> tuple[dict[str, float], dict[str, float]]:
    """Thresholds (at or above) and floors (strictly above) for the lower bound of each model
    score's held-out interval: AUC for the classifier; Spearman for a distilled dimension, whose
    interval must exclude 0 whatever `min_heldout_spearman` says (a negative or zero setting
    does not admit a head with no demonstrable agreement)."""
    thresholds = {
        "classifier_score": policy.min_heldout_auc,
        "preselect_score": policy.min_heldout_auc,
    }
    thresholds |= {dim: policy.min_heldout_spearman for dim in DISTILLED}
    return thresholds, {dim: 0.0 for dim in DISTILLED}


def _weights(
    policy: ScoringPolicy,
    stats: ScoreStatistics,
    rated: list[pl.DataFrame],
    ratings: pl.DataFrame | None,
) -> tuple[dict[str, float], str]:
    """Configured weights, or learned on the rated documents (a bounded sample) from their
    z-scores under the corpus statistics."""
    if policy.weighting == "configured" or ratings is None:
        return dict(policy.weights), "configured"
    frame = (
        pl.concat(rated, how="diagonal_relaxed") if rated else pl.DataFrame(schema=FEATURES_FRAME)
    )
    target = frame.select("doc_id").join(ratings, on="doc_id", how="left", maintain_order="left")
    inputs = [c for c in policy.weights if c not in DISTILLED]
    learned = learn_weights(stats.z(frame), inputs, target["mean"].fill_null(np.nan).to_numpy())
    if learned.weights is None:
        return dict(policy.weights), f"fell back to configured weights: {learned.reason}"
    kept = {d: w for d, w in policy.weights.items() if d in DISTILLED}
    return {**learned.weights, **kept}, f"learned on {learned.n_rows} rated documents"


_NO_CLUSTERS = pl.DataFrame(schema={"doc_id": pl.String, "cluster_id": pl.Int32})


def cluster_labels(lake: Lake) -> pl.DataFrame:
    if not lake.has("clusters", "summary"):
        return pl.DataFrame(schema={"cluster_id": pl.Int32, "label": pl.String})
    return lake.scan("clusters", "summary").select("cluster_id", "label").collect()
