"""The combined quality score of every corpus document: measured signals, classifier and distilled
ratings standardised per language, weighted (configured or learned), gated on held-out skill."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from assets.corpus import corpus_documents
from assets.measures import buckets, standardise, weighted
from assets.scored.combine import COMBINED_WEIGHTS, learn_weights, skilled
from assets.scored.features import Scorers, corpus_batches, document_features, load_scorers
from assets.scored.ratings import DIMENSIONS
from assets.scored.schema import SCORE_COLUMNS
from assets.scored.signals import REDPAJAMA_SIGNALS
from assets.scored.training import mean_rating
from resources.lake import Lake

KNOWN_INPUTS = frozenset({*REDPAJAMA_SIGNALS, *SCORE_COLUMNS})


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


@dataclass(frozen=True)
class ScoredCorpus:
    scores: pl.DataFrame
    weights: dict[str, float]
    excluded: dict[str, str]
    learned_note: str
    scorers: Scorers


def score_corpus(lake: Lake, policy: ScoringPolicy) -> ScoredCorpus:
    if unknown := set(policy.weights) - KNOWN_INPUTS:
        raise ValueError(
            f"Unknown signals in weights: {sorted(unknown)}; known: {sorted(KNOWN_INPUTS)}"
        )
    scorers = load_scorers(lake)
    features = pl.concat(
        [document_features(lake, b, scorers) for b in corpus_batches(corpus_documents(lake))],
        how="diagonal_relaxed",
    )
    by = "language" if policy.standardise_by == "language" else None
    z = standardise(features, sorted(KNOWN_INPUTS), by, policy.min_group)
    weights, learned_note = _weights(lake, policy, features, z)
    weights, excluded = skilled(weights, scorers.heldout, *gates(policy))
    total = weighted(z, weights)
    scores = features.with_columns(
        pl.Series("quality_score", total), pl.Series("quality_bucket", buckets(total))
    ).join(_clusters(lake), on="doc_id", how="left")
    return ScoredCorpus(scores, weights, excluded, learned_note, scorers)


def gates(policy: ScoringPolicy) -> tuple[dict[str, float], dict[str, float]]:
    """Thresholds (at or above) and floors (strictly above) for the lower bound of each model
    score's held-out interval: AUC for the classifier; Spearman for a distilled dimension, whose
    interval must exclude 0 whatever `min_heldout_spearman` says (a negative or zero setting
    does not admit a head with no demonstrable agreement)."""
    thresholds = {"classifier_score": policy.min_heldout_auc}
    thresholds |= {dim: policy.min_heldout_spearman for dim in DIMENSIONS}
    return thresholds, {dim: 0.0 for dim in DIMENSIONS}


def _weights(
    lake: Lake, policy: ScoringPolicy, features: pl.DataFrame, z: pl.DataFrame
) -> tuple[dict[str, float], str]:
    if policy.weighting == "configured":
        return dict(policy.weights), "configured"
    target = mean_rating(lake, features["doc_id"])
    inputs = [c for c in policy.weights if c not in DIMENSIONS]
    learned = learn_weights(z, inputs, target)
    if learned.weights is None:
        return dict(policy.weights), f"fell back to configured weights: {learned.reason}"
    kept = {d: w for d, w in policy.weights.items() if d in DIMENSIONS}
    return {**learned.weights, **kept}, f"learned on {learned.n_rows} rated documents"


def _clusters(lake: Lake) -> pl.DataFrame:
    if not lake.has("clusters"):
        return pl.DataFrame(schema={"doc_id": pl.String, "cluster_id": pl.Int32})
    return lake.scan("clusters").select("doc_id", "cluster_id").collect()


def cluster_labels(lake: Lake) -> pl.DataFrame:
    if not lake.has("clusters", "summary"):
        return pl.DataFrame(schema={"cluster_id": pl.Int32, "label": pl.String})
    return lake.scan("clusters", "summary").select("cluster_id", "label").collect()
