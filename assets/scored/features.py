"""Every per-document input of the combined score, gathered batch by batch from the lake.

Organic documents take their measurements and toxicity from the cleaned stage; rewrites, which
never passed through it, are measured here with its filters and toxicity model. The trained
scorers (classifier, distilled rating heads) are loaded once from their asset versions and
applied to every document, organic and synthetic; the documents a scorer was trained on keep
their out-of-fold score instead (cross-fitting), so no score comes from a model that saw it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from assets.scored.artifacts import current_artifact, load_model
from assets.scored.classifier import classifier_scores
from assets.scored.distill import predict
from assets.scored.ratings import DIMENSIONS
from assets.scored.signals import filter_measurements, redpajama_signals, text_signals
from resources.lake import Lake

CLASSIFIER_FILE = "model.joblib"
HEADS_FILE = "heads.joblib"


@dataclass
class Scorers:
    """The trained artifacts that are current in the lake (None / empty where absent)."""

    classifier: dict[str, Any] | None = None
    heads: dict[str, Any] = field(default_factory=dict)
    embedding_model: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    # held-out skill per score column, the lower bound of its bootstrap interval: classifier
    # AUC, Spearman per dimension (None = n/a, or a version written before intervals existed)
    heldout: dict[str, float | None] = field(default_factory=dict)
    # training documents with their out-of-fold scores: classifier (crawl side), rating heads
    classifier_oof: pl.DataFrame | None = None
    heads_oof: pl.DataFrame | None = None


def load_scorers(lake: Lake) -> Scorers:
    scorers = Scorers()
    if (stored := current_artifact(lake, "quality_classifier")) is not None:
        if stored.metrics["trained"][0]:
            scorers.classifier = load_model(lake, stored.folder, CLASSIFIER_FILE)
        scorers.versions["quality_classifier"] = stored.fingerprint
        scorers.heldout["classifier_score"] = _lower_bound(stored.metrics, "auc_ci_low")[0]
        examples = lake.scan("quality_classifier").filter(pl.col("source") == "crawl")
        scorers.classifier_oof = examples.select("doc_id", "heldout_score").collect()
    if (stored := current_artifact(lake, "rating_scorer")) is not None:
        bundle = load_model(lake, stored.folder, HEADS_FILE)
        scorers.heads.update(bundle["heads"])
        scorers.embedding_model = bundle["embedding_model"]
        scorers.versions["rating_scorer"] = stored.fingerprint
        low = _lower_bound(stored.metrics, "spearman_ci_low")
        scorers.heldout.update(zip(stored.metrics["dimension"], low, strict=True))
        scorers.heads_oof = lake.scan("rating_scorer").collect()
    return scorers


def _lower_bound(metrics: pl.DataFrame, column: str) -> list[float | None]:
    """The interval's lower bound per metrics row; None (no skill shown) for a version stored
    before intervals were recorded."""
    if column not in metrics.columns:
        return [None] * metrics.height
    return metrics[column].to_list()


def corpus_batches(corpus: pl.LazyFrame, rows: int = 1024) -> Iterator[pl.DataFrame]:
    yield from corpus.select("doc_id", "origin", "language", "text").collect_batches(
        chunk_size=rows
    )


def document_features(lake: Lake, batch: pl.DataFrame, scorers: Scorers) -> pl.DataFrame:
    """doc_id, origin, language, toxicity, the RedPajama-style signals and the model scores."""
    organic = batch.filter(pl.col("origin") == "organic")
    synthetic = batch.filter(pl.col("origin") != "organic")
    measured = pl.concat(
        [_cleaned_measurements(lake, organic["doc_id"]), _measure(synthetic)],
        how="diagonal_relaxed",
    )
    signals = redpajama_signals(measured).join(
        measured.select("doc_id", "toxicity", "toxicity_source"), on="doc_id"
    )
    texts = batch["text"].to_list()
    derived = pl.DataFrame([text_signals(t) for t in texts])
    scores = {"classifier_score": _classified(batch["doc_id"], texts, scorers)}
    scores |= _distilled(lake, batch["doc_id"], scorers)
    frame = batch.select("doc_id", "origin", "language").with_columns(
        *(pl.Series(name, values).fill_nan(None) for name, values in scores.items()),
        *derived.get_columns(),
    )
    return frame.join(signals, on="doc_id", how="left")


def _classified(ids: pl.Series, texts: list[str], scorers: Scorers) -> np.ndarray:
    """P(reference-like); a document the classifier was trained on gets its out-of-fold score
    (cross-fitting), so no document is scored by a model that saw it."""
    if scorers.classifier is None:
        return np.full(len(ids), np.nan)
    scores = classifier_scores(scorers.classifier["model"], texts, scorers.classifier["spec"])
    return _out_of_fold(ids, scores, scorers.classifier_oof, "heldout_score")


def _out_of_fold(
    ids: pl.Series, scores: np.ndarray, oof: pl.DataFrame | None, column: str
) -> np.ndarray:
    if oof is None or column not in oof.columns:
        return scores
    aligned = pl.DataFrame({"doc_id": ids}).join(oof, on="doc_id", how="left")
    heldout = aligned[column].cast(pl.Float64).fill_null(np.nan).to_numpy()
    return np.where(np.isnan(heldout), scores, heldout)


def _cleaned_measurements(lake: Lake, ids: pl.Series) -> pl.DataFrame:
    """Wide frame of what the cleaned stage measured, plus its toxicity score."""
    if ids.is_empty():
        return pl.DataFrame(schema={"doc_id": pl.String})
    wanted = pl.col("doc_id").is_in(ids.implode())
    long = lake.scan("cleaned_documents", "signals").filter(wanted).collect()
    wide = long.pivot(on="signal", index="doc_id", values="value", aggregate_function="first")
    toxicity = lake.scan("cleaned_documents").filter(wanted).select("doc_id", "toxicity").collect()
    return (
        pl.DataFrame({"doc_id": ids})
        .join(wide, on="doc_id", how="left")
        .join(toxicity, on="doc_id", how="left")
        .with_columns(pl.lit("cleaned").alias("toxicity_source"))
    )


def _measure(docs: pl.DataFrame) -> pl.DataFrame:
    """Rewrites: the cleaned stage's filters and toxicity model, run here."""
    from assets.cleaned.toxicity import score_toxicity

    rows = [
        {
            "doc_id": d["doc_id"],
            **filter_measurements(d["text"], d["language"]),
            "toxicity": score_toxicity(d["text"]).mean,
            "toxicity_source": "scored",
        }
        for d in docs.iter_rows(named=True)
    ]
    return pl.DataFrame(rows) if rows else pl.DataFrame(schema={"doc_id": pl.String})


def _distilled(lake: Lake, ids: pl.Series, scorers: Scorers) -> dict[str, np.ndarray]:
    out = {dim: np.full(len(ids), np.nan) for dim in DIMENSIONS}
    if not scorers.heads:
        return out
    vectors = (
        lake.scan("document_embeddings")
        .filter(pl.col("doc_id").is_in(ids.implode()))
        .filter(pl.col("model_id") == scorers.embedding_model)
        .select("doc_id", "embedding")
        .collect()
    )
    position = {doc_id: i for i, doc_id in enumerate(ids)}
    rows = np.array([position[d] for d in vectors["doc_id"]], dtype=int)
    if len(rows) == 0:
        return out
    matrix = np.asarray(vectors["embedding"].to_numpy(), dtype=np.float32)
    for dim, values in predict(scorers.heads, matrix).items():
        out[dim][rows] = values
        out[dim] = _out_of_fold(ids, out[dim], scorers.heads_oof, f"{dim}_heldout")
    return out
