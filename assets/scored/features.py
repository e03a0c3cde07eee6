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
from assets.scored.dataman import CRITERION_COLUMNS, DOMAIN_COLUMN
from assets.scored.distill import predict
from assets.scored.ratings import DIMENSIONS
from assets.scored.shards import ShardReader
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
    preselect: dict[str, Any] | None = None  # PreSelect's classifier (predictive strength)
    preselect_oof: pl.DataFrame | None = None
    dataman_heads: dict[str, Any] = field(default_factory=dict)  # dm_<criterion> -> ridge
    dataman_scale: tuple[int, int] = (1, 5)
    dataman_domain: Any = None  # the domain head, only where it showed skill
    dataman_oof: pl.DataFrame | None = None
    # model scores left out at loading, with the reason (the domain head without skill)
    excluded: dict[str, str] = field(default_factory=dict)

    @property
    def needs_vectors(self) -> bool:
        return bool(self.heads or self.dataman_heads or self.dataman_domain is not None)


def load_scorers(lake: Lake) -> Scorers:
    scorers = Scorers()
    if (stored := current_artifact(lake, "quality_classifier")) is not None:
        if stored.metrics["trained"][0]:
            scorers.classifier = load_model(lake, stored.folder, CLASSIFIER_FILE)
        scorers.versions["quality_classifier"] = stored.fingerprint
        scorers.heldout["classifier_score"] = _lower_bound(stored.metrics, "auc_ci_low")[0]
        examples = lake.scan("quality_classifier").filter(pl.col("source") == "crawl")
        scorers.classifier_oof = examples.select("doc_id", "heldout_score").collect()
    if (stored := current_artifact(lake, "preselect_classifier")) is not None:
        if stored.metrics["trained"][0]:
            scorers.preselect = load_model(lake, stored.folder, CLASSIFIER_FILE)
        scorers.versions["preselect_classifier"] = stored.fingerprint
        scorers.heldout["preselect_score"] = _lower_bound(stored.metrics, "auc_ci_low")[0]
        examples = lake.scan("preselect_classifier").filter(pl.col("label") >= 0)
        scorers.preselect_oof = examples.select("doc_id", "heldout_score").collect()
    if (stored := current_artifact(lake, "rating_scorer")) is not None:
        bundle = load_model(lake, stored.folder, HEADS_FILE)
        scorers.heads.update(bundle["heads"])
        scorers.embedding_model = bundle["embedding_model"]
        scorers.versions["rating_scorer"] = stored.fingerprint
        low = _lower_bound(stored.metrics, "spearman_ci_low")
        scorers.heldout.update(zip(stored.metrics["dimension"], low, strict=True))
        scorers.heads_oof = lake.scan("rating_scorer").collect()
    if (stored := current_artifact(lake, "dataman_heads")) is not None:
        _load_dataman(lake, stored, scorers)
    return scorers


def _load_dataman(lake: Lake, stored: Any, scorers: Scorers) -> None:
    """DataMan's rating heads (gated later, like the other heads) and its domain head, used
    only if the lower bound of its held-out accuracy interval beats always naming the most
    common domain."""
    bundle = load_model(lake, stored.folder, HEADS_FILE)
    scorers.dataman_heads = bundle["heads"]
    scorers.dataman_scale = bundle["scale"]
    scorers.embedding_model = scorers.embedding_model or bundle["embedding_model"]
    scorers.versions["dataman_heads"] = stored.fingerprint
    metrics = stored.metrics
    criteria = metrics.filter(pl.col("dimension") != DOMAIN_COLUMN)
    scorers.heldout.update(zip(criteria["dimension"], criteria["spearman_ci_low"], strict=True))
    domain = metrics.filter(pl.col("dimension") == DOMAIN_COLUMN).to_dicts()
    skill = domain[0] if domain else {}
    low, baseline = skill.get("accuracy_ci_low"), skill.get("majority_share")
    if bundle.get("domain") is None or low is None:
        reason = skill.get("spearman_reason") or "no domain head"
        scorers.excluded[DOMAIN_COLUMN] = f"no domain head: {reason}"
    elif baseline is not None and low <= baseline:
        scorers.excluded[DOMAIN_COLUMN] = (
            f"held-out accuracy CI low {low:.3f} <= {baseline:.3f}, the share of the most "
            "common domain: no skill distinguishable"
        )
    else:
        scorers.dataman_domain = bundle["domain"]
    scorers.dataman_oof = lake.scan("dataman_heads").collect()


def _lower_bound(metrics: pl.DataFrame, column: str) -> list[float | None]:
    """The interval's lower bound per metrics row; None (no skill shown) for a version stored
    before intervals were recorded."""
    if column not in metrics.columns:
        return [None] * metrics.height
    return metrics[column].to_list()


def unit_features(
    reader: ShardReader, unit: str, scorers: Scorers, batch_rows: int = 1024
) -> Iterator[pl.DataFrame]:
    """The features of one unit's documents, batch by batch: its measurements, toxicity and
    vectors are read once per unit (a shard's worth), never per batch from the whole corpus."""
    docs = reader.documents(unit)
    ids = docs.select("doc_id", "origin").collect()
    organic = ids.filter(pl.col("origin") == "organic")["doc_id"]
    measured = cleaned_measurements(reader, organic, unit)
    vectors = pl.DataFrame(schema={"doc_id": pl.String})
    if scorers.needs_vectors:
        vectors = reader.vectors(ids["doc_id"], scorers.embedding_model, unit)
    for batch in docs.collect_batches(chunk_size=batch_rows):
        yield document_features(batch, measured, vectors, scorers)


def document_features(
    batch: pl.DataFrame, measured: pl.DataFrame, vectors: pl.DataFrame, scorers: Scorers
) -> pl.DataFrame:
    """doc_id, origin, language, toxicity, the RedPajama-style signals and the model scores.

    `measured`: the cleaned stage's wide measurements of (at least) the batch's organic
    documents; `vectors`: doc_id, embedding of (at least) its documents."""
    organic = batch.filter(pl.col("origin") == "organic").select("doc_id")
    synthetic = batch.filter(pl.col("origin") != "organic")
    measured = pl.concat(
        [organic.join(measured, on="doc_id", how="left"), _measure(synthetic)],
        how="diagonal_relaxed",
    )
    signals = redpajama_signals(measured).join(
        measured.select("doc_id", "toxicity", "toxicity_source"), on="doc_id"
    )
    texts = batch["text"].to_list()
    derived = pl.DataFrame([text_signals(t) for t in texts])
    scores = {
        "classifier_score": _classified(batch["doc_id"], texts, scorers),
        "preselect_score": _preselected(batch["doc_id"], texts, scorers),
    }
    embedded = _embedded(batch["doc_id"], vectors)
    scores |= _distilled(batch["doc_id"], embedded, scorers)
    scores |= _dataman(batch["doc_id"], embedded, scorers)
    frame = batch.select("doc_id", "origin", "language").with_columns(
        *(pl.Series(name, values).fill_nan(None) for name, values in scores.items()),
        pl.Series(DOMAIN_COLUMN, _domains(batch["doc_id"], embedded, scorers), pl.String),
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


def _preselected(ids: pl.Series, texts: list[str], scorers: Scorers) -> np.ndarray:
    """P(predictive) from PreSelect's classifier, out of fold for its own training sample."""
    if scorers.preselect is None:
        return np.full(len(ids), np.nan)
    scores = classifier_scores(scorers.preselect["model"], texts, scorers.preselect["spec"])
    return _out_of_fold(ids, scores, scorers.preselect_oof, "heldout_score")


def _out_of_fold(
    ids: pl.Series, scores: np.ndarray, oof: pl.DataFrame | None, column: str
) -> np.ndarray:
    if oof is None or column not in oof.columns:
        return scores
    aligned = pl.DataFrame({"doc_id": ids}).join(oof, on="doc_id", how="left")
    heldout = aligned[column].cast(pl.Float64).fill_null(np.nan).to_numpy()
    return np.where(np.isnan(heldout), scores, heldout)


def cleaned_measurements(
    reader: ShardReader, ids: pl.Series, unit: str | None = None
) -> pl.DataFrame:
    """Wide frame of what the cleaned stage measured for `ids`, plus its toxicity score."""
    if ids.is_empty():
        return pl.DataFrame(schema={"doc_id": pl.String})
    long = reader.rows("cleaned_documents", "signals", ids, unit)
    wide = long.pivot(on="signal", index="doc_id", values="value", aggregate_function="first")
    toxicity = reader.rows("cleaned_documents", "documents", ids, unit, ["doc_id", "toxicity"])
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


def _distilled(ids: pl.Series, embedded: Embedded, scorers: Scorers) -> dict[str, np.ndarray]:
    out = {dim: np.full(len(ids), np.nan) for dim in DIMENSIONS}
    rows, matrix = embedded
    if not scorers.heads or not len(rows):
        return out
    for dim, values in predict(scorers.heads, matrix).items():
        out[dim][rows] = values
        out[dim] = _out_of_fold(ids, out[dim], scorers.heads_oof, f"{dim}_heldout")
    return out


def _dataman(ids: pl.Series, embedded: Embedded, scorers: Scorers) -> dict[str, np.ndarray]:
    """DataMan's 14 criteria from their heads, on the rating scale, out of fold where rated."""
    out = {name: np.full(len(ids), np.nan) for name in CRITERION_COLUMNS}
    rows, matrix = embedded
    if not scorers.dataman_heads or not len(rows):
        return out
    low, high = scorers.dataman_scale
    for name, head in scorers.dataman_heads.items():
        out[name][rows] = np.clip(head.predict(matrix), low, high)
        out[name] = _out_of_fold(ids, out[name], scorers.dataman_oof, f"{name}_heldout")
    return out


def _domains(ids: pl.Series, embedded: Embedded, scorers: Scorers) -> list[str | None]:
    """The domain head's label (null where it is gated out or a vector is missing); a labelled
    document keeps its out-of-fold label."""
    out: list[str | None] = [None] * len(ids)
    rows, matrix = embedded
    if scorers.dataman_domain is None or not len(rows):
        return out
    for row, label in zip(rows, scorers.dataman_domain.predict(matrix), strict=True):
        out[row] = str(label)
    oof = scorers.dataman_oof
    column = f"{DOMAIN_COLUMN}_heldout"
    if oof is not None and column in oof.columns:
        aligned = pl.DataFrame({"doc_id": ids}).join(oof, on="doc_id", how="left")
        out = [h if h is not None else o for h, o in zip(aligned[column], out, strict=True)]
    return out


Embedded = tuple[np.ndarray, np.ndarray]  # row positions in a batch, their vectors


def _embedded(ids: pl.Series, vectors: pl.DataFrame) -> Embedded:
    """Row positions in `ids` that have a vector, and those vectors as a matrix."""
    none = np.zeros(0, dtype=int), np.zeros((0, 1), dtype=np.float32)
    if vectors.is_empty():
        return none
    found = (
        pl.DataFrame({"doc_id": ids})
        .with_row_index("row")
        .join(vectors.select("doc_id", "embedding"), on="doc_id", how="inner")
    )
    if found.is_empty():
        return none
    rows = found["row"].to_numpy().astype(int)
    matrix = np.asarray(found["embedding"].to_numpy(), dtype=np.float32).reshape(len(rows), -1)
    return rows, matrix
