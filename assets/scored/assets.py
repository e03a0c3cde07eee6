"""Dagster definitions of the scored stage: a trained classifier, LLM ratings distilled into
regression heads, and one combined score per document.

quality_classifier --+
llm_ratings -> rating_scorer --+--> quality_scores   (+ cleaned measurements, toxicity, clusters)

The two trained assets store a model file beside their tables; a re-run whose inputs have the
same fingerprint keeps the stored version (metadata `reused: true`) instead of retraining, and
reports the fingerprint as its data version, so Dagster sees nothing downstream as stale.
"""

import json
import time
from collections.abc import Iterator

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from assets.contracts import balance_check, check_specs, contract_check
from assets.corpus import corpus_documents
from assets.documents import DROPPED_SCHEMA
from assets.scored import plots, reports
from assets.scored.artifacts import (
    current_artifact,
    fingerprint,
    ids_digest,
    png_markdown,
    reusable,
    save_model,
)
from assets.scored.classifier import ClassifierSpec, make_model, train_classifier
from assets.scored.combine import (
    COMBINED_WEIGHTS,
    buckets,
    learn_weights,
    skilled,
    standardise,
    weighted,
)
from assets.scored.distill import fit_heads
from assets.scored.features import (
    CLASSIFIER_FILE,
    HEADS_FILE,
    corpus_batches,
    document_features,
    load_scorers,
)
from assets.scored.ratings import DIMENSIONS, prompt_hash, rate
from assets.scored.reference import BUILTIN_PYTHON_DOCS, load_reference
from assets.scored.schema import (
    CLASSIFIER_CONTRACT,
    CLASSIFIER_METRICS_SCHEMA,
    CLASSIFIER_SCHEMA,
    RATED_CONTRACT,
    RATED_SCHEMA,
    RATINGS_SCHEMA,
    SCORE_COLUMNS,
    SCORER_CONTRACT,
    SCORER_METRICS_SCHEMA,
    SCORER_SCHEMA,
    SCORES_CONTRACT,
    frame,
)
from assets.scored.signals import REDPAJAMA_SIGNALS
from assets.scored.training import (
    classifier_examples,
    earlier_ratings,
    head_table,
    mean_rating,
    rating_sample,
    rating_targets,
    wide_ratings,
)
from resources.lake import Lake
from resources.rewriter import VLLMRewriter

CODE_VERSION = "scored-2"
CLASSIFIER_CODE_VERSION = "quality-classifier-1"
RATINGS_CODE_VERSION = "llm-ratings-1"
SCORER_CODE_VERSION = "rating-scorer-1"
GPU_TAG = {"foundry/gpu": "1"}


# --------------------------------------------------------------------------- quality classifier


class ClassifierConfig(dg.Config):
    reference_paths: list[str] = Field(
        [BUILTIN_PYTHON_DOCS],
        description="High-quality reference: .parquet / .jsonl(.gz) files with a text column, "
        f".txt files, or {BUILTIN_PYTHON_DOCS!r} (CPython's bundled documentation).",
    )
    text_column: str = "text"
    languages: list[str] | None = Field(
        ["en"], description="Crawl languages used as negatives (the reference's); None = all."
    )
    max_per_class: int = Field(2000, description="Examples per class (stable samples).")
    n_features: int = Field(2**18, description="Hashed word 1-2-gram buckets.")
    c: float = Field(1.0, description="Inverse L2 penalty of the logistic regression.")
    folds: int = Field(5, description="Stratified folds of the held-out evaluation.")
    seed: int = 0

    def spec(self) -> ClassifierSpec:
        return ClassifierSpec(
            n_features=self.n_features, c=self.c, folds=self.folds, seed=self.seed
        )


@dg.asset(
    group_name="scored",
    code_version=CLASSIFIER_CODE_VERSION,
    deps=["cleaned_documents", "duplicate_clusters"],
    check_specs=check_specs("quality_classifier"),
    kinds={"parquet", "scikitlearn"},
)
def quality_classifier(
    context: dg.AssetExecutionContext, config: ClassifierConfig, lake: Lake
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """DCLM-style classifier: reference text (label 1) against crawl documents (label 0).

    Default reference: CPython's documentation topics, shipped with Python (PSF License), i.e.
    edited explanatory technical English; negatives are the crawl's documents in the same
    language. See assets/scored/reference.py for the choice and how to bring your own."""
    started = time.perf_counter()
    spec = config.spec()
    reference = load_reference(config.reference_paths, config.text_column)
    examples = classifier_examples(
        lake, reference, config.languages, config.max_per_class, config.seed
    )
    wanted = fingerprint(
        CLASSIFIER_CODE_VERSION,
        repr(make_model(spec)),  # every hyper-parameter, also those the config does not expose
        spec.__dict__,
        config.languages,
        ids_digest(examples["doc_id"]),
    )
    stored = current_artifact(lake, "quality_classifier")
    reused = reusable(stored, wanted, lake, CLASSIFIER_FILE)
    if not reused:
        model, evaluation = train_classifier(examples["text"], examples["label"], spec)
        table = examples.select("doc_id", "source", "language", "label").with_columns(
            pl.Series("heldout_score", evaluation.heldout).fill_nan(None),
            examples["text"].str.len_chars().cast(pl.Int64).alias("n_chars"),
        )
        metrics = {
            "fingerprint": wanted,
            "trained": model is not None,
            "auc": evaluation.auc,
            "auc_reason": evaluation.reason,
            "n_reference": evaluation.n_positive,
            "n_crawl": evaluation.n_negative,
            "folds": evaluation.folds,
            "reference": json.dumps(config.reference_paths),
            "spec": json.dumps(spec.__dict__),
        }
        with lake.publish(
            "quality_classifier", run_id=context.run.run_id, code_version=CLASSIFIER_CODE_VERSION
        ) as out:
            out.write("documents", table, CLASSIFIER_SCHEMA)
            out.write(
                "metrics", frame([metrics], CLASSIFIER_METRICS_SCHEMA), CLASSIFIER_METRICS_SCHEMA
            )
            out.write("dropped", pl.DataFrame(), DROPPED_SCHEMA)
            save_model({"model": model, "spec": spec}, out.staging / CLASSIFIER_FILE)
    metrics = current_artifact(lake, "quality_classifier").metrics.row(0, named=True)
    table = lake.scan("quality_classifier").collect()
    figure = plots.classifier_evaluation(
        table["label"].to_numpy(),
        table["heldout_score"].fill_null(np.nan).to_numpy(),
        metrics["auc"],
    )
    context.log.info(f"quality classifier: AUC={metrics['auc']} reused={reused}")
    yield dg.MaterializeResult(
        metadata={
            "heldout_auc": metrics["auc"],
            "auc_note": metrics["auc_reason"] or f"{metrics['folds']}-fold out-of-fold",
            "n_reference": metrics["n_reference"],
            "n_crawl": metrics["n_crawl"],
            "reused": reused,
            "fingerprint": wanted,
            "evaluation": dg.MetadataValue.md(png_markdown(figure, "classifier evaluation")),
            "compute_s": round(time.perf_counter() - started, 3),
        },
        data_version=dg.DataVersion(wanted),
    )
    files = [f.path for f in lake.files("quality_classifier")]
    yield contract_check("quality_classifier", files, CLASSIFIER_CONTRACT)
    yield balance_check("quality_classifier", examples.height, table.height, 0)


# --------------------------------------------------------------------------------- LLM ratings


class RatingsConfig(dg.Config):
    sample_size: int = Field(24, description="Documents the LLM rates (a stable sample).")
    languages: list[str] | None = Field(["en"], description="Languages the rater reads.")
    dimensions: list[str] = Field(list(DIMENSIONS), description=f"Of {list(DIMENSIONS)}.")
    max_text_tokens: int = Field(160, description="Each document is cut to this many tokens.")
    max_answer_tokens: int = Field(8, description="'Score: N' needs a handful of tokens.")
    seed: int = 0


@dg.asset(
    group_name="scored",
    code_version=RATINGS_CODE_VERSION,
    deps=["cleaned_documents", "duplicate_clusters", "rephrased_documents"],
    check_specs=check_specs("llm_ratings"),
    kinds={"parquet", "vllm"},
    pool="gpu",
    op_tags=GPU_TAG,
)
def llm_ratings(
    context: dg.AssetExecutionContext, config: RatingsConfig, lake: Lake, rewriter: VLLMRewriter
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """The rewriter's LLM rates a stable sample on named dimensions (greedy, few-shot, 0-5);
    raw answers are kept, unparseable ones with their reason. Ratings made earlier with the same
    model, prompt and sampling are reused, so an unchanged sample loads no engine at all."""
    unknown = set(config.dimensions) - set(DIMENSIONS)
    if unknown:
        raise dg.Failure(f"Unknown rating dimensions {sorted(unknown)}; known: {list(DIMENSIONS)}")
    started = time.perf_counter()
    rater = rewriter.model_copy(
        update={"temperature": 0.0, "top_p": 1.0, "max_tokens": config.max_answer_tokens}
    )
    key = {
        "model": rater.model_id(),
        "prompt_hash": prompt_hash(),
        "max_text_tokens": config.max_text_tokens,
        "sampling": json.dumps(rater.sampling(), sort_keys=True),
    }
    sample = rating_sample(lake, config.languages, config.sample_size, config.seed)
    earlier = earlier_ratings(lake, key, sample["doc_id"], config.dimensions)
    if earlier is None:
        earlier = frame([], RATINGS_SCHEMA)
    done = earlier.group_by("doc_id").len().filter(pl.col("len") == len(config.dimensions))
    todo = sample.join(done, on="doc_id", how="anti")
    new = frame([], RATINGS_SCHEMA)
    if todo.height:
        context.log.info(f"rating {todo.height} documents on {len(config.dimensions)} dimensions")
        try:
            rows = rate(
                todo.to_dicts(),
                config.dimensions,
                rater.chat,
                lambda text: rater.truncate(text, config.max_text_tokens),
            )
        finally:
            rater.teardown_after_execution(context)
        new = frame([{**r, **key} for r in rows], RATINGS_SCHEMA)
    ratings = pl.concat(
        [earlier.join(todo.select("doc_id"), on="doc_id", how="anti"), new], how="vertical_relaxed"
    ).sort("doc_id", "dimension")
    rated = wide_ratings(sample, ratings, config.dimensions)
    with lake.publish(
        "llm_ratings", run_id=context.run.run_id, code_version=RATINGS_CODE_VERSION
    ) as out:
        out.write("documents", rated, RATED_SCHEMA)
        out.write("ratings", ratings, RATINGS_SCHEMA)
        out.write("dropped", pl.DataFrame(), DROPPED_SCHEMA)
    yield dg.MaterializeResult(
        metadata={
            "documents": rated.height,
            "rated_this_run": todo.height,
            "reused_documents": rated.height - todo.height,
            "parsed_share": dg.MetadataValue.json(reports.parsed_share(ratings)),
            "rating_distribution": dg.MetadataValue.md(reports.rating_distribution(ratings)),
            "unparseable_examples": dg.MetadataValue.json(reports.failures(ratings)),
            "model": key["model"],
            "prompt_hash": key["prompt_hash"],
            "compute_s": round(time.perf_counter() - started, 3),
        }
    )
    yield contract_check("llm_ratings", [f.path for f in lake.files("llm_ratings")], RATED_CONTRACT)
    yield balance_check("llm_ratings", sample.height, rated.height, 0)


# ------------------------------------------------------------------------------- rating scorer


class ScorerConfig(dg.Config):
    folds: int = Field(5, description="k of the k-fold held-out predictions.")
    seed: int = 0


@dg.asset(
    group_name="scored",
    code_version=SCORER_CODE_VERSION,
    deps=["llm_ratings", "document_embeddings"],
    check_specs=check_specs("rating_scorer"),
    kinds={"parquet", "scikitlearn"},
)
def rating_scorer(
    context: dg.AssetExecutionContext, config: ScorerConfig, lake: Lake
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """One ridge head per rated dimension on the document embeddings (FineWeb-Edu's distilled
    annotator); held-out Spearman per dimension is recorded, null with a reason when undefined."""
    started = time.perf_counter()
    rated_docs = lake.scan("llm_ratings").select("doc_id").collect()
    ratings = lake.scan("llm_ratings", "ratings").select("doc_id", "dimension", "score").collect()
    embedded = (
        lake.scan("document_embeddings")
        .filter(pl.col("doc_id").is_in(rated_docs["doc_id"].implode()))
        .select("doc_id", "text_hash", "model_id", "embedding")
        .collect()
    )
    model_ids = sorted(set(embedded["model_id"]))
    wanted = fingerprint(
        SCORER_CODE_VERSION,
        config.folds,
        config.seed,
        model_ids,
        ratings.sort("doc_id", "dimension").rows(),
        ids_digest(embedded["text_hash"]),
    )
    stored = current_artifact(lake, "rating_scorer")
    reused = reusable(stored, wanted, lake, HEADS_FILE)
    if not reused:
        _train_heads(context, lake, ratings, embedded, config, wanted, model_ids)
    metrics = current_artifact(lake, "rating_scorer").metrics
    table = lake.scan("rating_scorer").collect()
    panels = [
        (
            row["dimension"],
            table[f"{row['dimension']}_rating"].to_numpy(),
            table[f"{row['dimension']}_heldout"].to_numpy(),
            row["spearman"],
        )
        for row in metrics.iter_rows(named=True)
    ]
    spearman = {r["dimension"]: r["spearman"] for r in metrics.iter_rows(named=True)}
    reasons = {r["dimension"]: r["spearman_reason"] for r in metrics.iter_rows(named=True)}
    yield dg.MaterializeResult(
        metadata={
            "heldout_spearman": dg.MetadataValue.json(spearman),
            "spearman_null_reasons": dg.MetadataValue.json({k: v for k, v in reasons.items() if v}),
            "n_rated": dg.MetadataValue.json(
                {r["dimension"]: r["n_rated"] for r in metrics.iter_rows(named=True)}
            ),
            "reused": reused,
            "fingerprint": wanted,
            "agreement": dg.MetadataValue.md(
                png_markdown(plots.rating_agreement(panels), "held-out agreement")
            ),
            "compute_s": round(time.perf_counter() - started, 3),
        },
        data_version=dg.DataVersion(wanted),
    )
    yield contract_check(
        "rating_scorer", [f.path for f in lake.files("rating_scorer")], SCORER_CONTRACT
    )
    yield balance_check("rating_scorer", rated_docs.height, table.height, 0)


def _train_heads(
    context: dg.AssetExecutionContext,
    lake: Lake,
    ratings: pl.DataFrame,
    embedded: pl.DataFrame,
    config: ScorerConfig,
    wanted: str,
    model_ids: list[str],
) -> None:
    dimensions = sorted(set(ratings["dimension"])) or list(DIMENSIONS)
    vectors, targets, ids = rating_targets(ratings, embedded, dimensions)
    heads, evaluations = fit_heads(vectors, targets, config.folds, config.seed)
    metrics = frame(
        [
            {
                "fingerprint": wanted,
                "dimension": r.dimension,
                "n_rated": r.n_rated,
                "spearman": r.spearman,
                "spearman_reason": r.reason,
                "alpha": r.alpha,
                "embedding_model": ",".join(model_ids),
            }
            for r in evaluations
        ],
        SCORER_METRICS_SCHEMA,
    )
    embedding_model = model_ids[0] if model_ids else None
    with lake.publish(
        "rating_scorer", run_id=context.run.run_id, code_version=SCORER_CODE_VERSION
    ) as out:
        out.write("documents", head_table(ids, targets, evaluations), SCORER_SCHEMA)
        out.write("metrics", metrics, SCORER_METRICS_SCHEMA)
        out.write("dropped", pl.DataFrame(), DROPPED_SCHEMA)
        save_model({"heads": heads, "embedding_model": embedding_model}, out.staging / HEADS_FILE)


# ------------------------------------------------------------------------------ quality scores


class ScoredConfig(dg.Config):
    weights: dict[str, float] = Field(
        default_factory=lambda: dict(COMBINED_WEIGHTS),
        description="Weight per standardised signal or model score in the combined score.",
    )
    weighting: str = Field(
        "configured", description="'configured' (weights above) or 'learned' (from LLM ratings)."
    )
    standardise_by: str = Field("language", description="'language' or 'corpus'.")
    min_group: int = Field(3, description="Smaller language groups use corpus statistics.")
    min_heldout_auc: float = Field(0.6, description="Classifier weighs only at this AUC or up.")
    min_heldout_spearman: float = Field(
        0.1, description="A distilled dimension weighs only at this held-out Spearman or up."
    )


@dg.asset(
    group_name="scored",
    code_version=CODE_VERSION,
    deps=[
        "cleaned_documents",
        "document_embeddings",
        "clusters",
        "quality_classifier",
        "llm_ratings",
        "rating_scorer",
    ],
    check_specs=check_specs("quality_scores"),
    kinds={"parquet", "duckdb"},
)
def quality_scores(
    context: dg.AssetExecutionContext, config: ScoredConfig, lake: Lake
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Every corpus document: RedPajama-style signals, classifier and distilled rating scores,
    toxicity, one combined score (configured or learned weights) and its quintile bucket."""
    known = {*REDPAJAMA_SIGNALS, *SCORE_COLUMNS}
    if unknown := set(config.weights) - known:
        raise dg.Failure(f"Unknown signals in weights: {sorted(unknown)}; known: {sorted(known)}")
    if config.weighting not in ("configured", "learned"):
        raise dg.Failure(f"weighting must be 'configured' or 'learned', not {config.weighting!r}")
    if config.standardise_by not in ("language", "corpus"):
        raise dg.Failure(
            f"standardise_by must be 'language' or 'corpus': {config.standardise_by!r}"
        )
    started = time.perf_counter()
    scorers = load_scorers(lake)
    features = pl.concat(
        [document_features(lake, b, scorers) for b in corpus_batches(corpus_documents(lake))],
        how="diagonal_relaxed",
    )
    columns = sorted(known)
    by = config.standardise_by if config.standardise_by == "language" else None
    z = standardise(features, columns, by, config.min_group)
    weights, learned_note = _weights(lake, config, features, z)
    thresholds = {"classifier_score": config.min_heldout_auc}
    thresholds |= {dim: config.min_heldout_spearman for dim in DIMENSIONS}
    weights, excluded = skilled(weights, scorers.heldout, thresholds)
    total = weighted(z, weights)
    scores = features.with_columns(
        pl.Series("quality_score", total), pl.Series("quality_bucket", buckets(total))
    ).join(_clusters(lake), on="doc_id", how="left")
    histograms = reports.score_histograms(scores, ["quality_score", *SCORE_COLUMNS])
    with lake.publish(
        "quality_scores", run_id=context.run.run_id, code_version=CODE_VERSION
    ) as out:
        out.write("documents", scores, scores.to_arrow().schema)
        out.write("dropped", pl.DataFrame(), DROPPED_SCHEMA)
    yield dg.MaterializeResult(
        metadata={
            "documents": scores.height,
            "missing_scores": dg.MetadataValue.json(
                {c: scores[c].null_count() for c in SCORE_COLUMNS}
            ),
            "weighting": config.weighting,
            "weights": dg.MetadataValue.json(weights),
            "learned_weights_note": learned_note,
            "excluded_for_no_heldout_skill": dg.MetadataValue.json(excluded),
            "mean_score_by_origin": dg.MetadataValue.json(reports.mean_score_by(scores, "origin")),
            "mean_score_by_language": dg.MetadataValue.json(
                reports.mean_score_by(scores, "language")
            ),
            "cluster_quality": dg.MetadataValue.md(reports.cluster_quality(scores, _labels(lake))),
            "histograms": dg.MetadataValue.md(png_markdown(histograms, "score histograms")),
            "scorer_versions": dg.MetadataValue.json(scorers.versions),
            "compute_s": round(time.perf_counter() - started, 3),
        }
    )
    yield contract_check(
        "quality_scores", [f.path for f in lake.files("quality_scores")], SCORES_CONTRACT
    )
    yield balance_check("quality_scores", features.height, scores.height, 0)


def _weights(
    lake: Lake, config: ScoredConfig, features: pl.DataFrame, z: pl.DataFrame
) -> tuple[dict[str, float], str]:
    if config.weighting == "configured":
        return dict(config.weights), "configured"
    target = mean_rating(lake, features["doc_id"])
    inputs = [c for c in config.weights if c not in DIMENSIONS]
    learned = learn_weights(z, inputs, target)
    if learned.weights is None:
        return dict(config.weights), f"fell back to configured weights: {learned.reason}"
    kept = {d: w for d, w in config.weights.items() if d in DIMENSIONS}
    return {**learned.weights, **kept}, f"learned on {learned.n_rows} rated documents"


def _clusters(lake: Lake) -> pl.DataFrame:
    if not lake.has("clusters"):
        return pl.DataFrame(schema={"doc_id": pl.String, "cluster_id": pl.Int32})
    return lake.scan("clusters").select("doc_id", "cluster_id").collect()


def _labels(lake: Lake) -> pl.DataFrame:
    if not lake.has("clusters", "summary"):
        return pl.DataFrame(schema={"cluster_id": pl.Int32, "label": pl.String})
    return lake.scan("clusters", "summary").select("cluster_id", "label").collect()
