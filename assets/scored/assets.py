"""Dagster definitions of the scored stage's classifier and of quality_scores, the combined
score of every document; the other model scores have their own modules.

quality_classifier --------------------------------+
preselect_classifier (preselect_assets.py) --------+
llm_ratings -> rating_scorer (ratings_assets.py) --+--> quality_scores  (+ cleaned measurements,
dataman_ratings -> dataman_heads (dataman_assets.py) +                    toxicity, clusters)

The trained assets store a model file beside their tables; a re-run whose inputs have the
same fingerprint keeps the stored version (metadata `reused: true`) instead of retraining, and
reports the fingerprint as its data version, so Dagster sees nothing downstream as stale.
"""

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from assets.contracts import check_specs
from assets.corpus import corpus_size
from assets.defaults import default_of
from assets.plotting import png_markdown
from assets.publishing import Publication
from assets.scored import plots, reports
from assets.scored.artifacts import current_artifact, fingerprint, ids_digest, reusable, save_model
from assets.scored.classifier import ClassifierSpec, make_model, train_classifier
from assets.scored.dataman import DOMAIN_COLUMN
from assets.scored.features import CLASSIFIER_FILE
from assets.scored.reference import BUILTIN_PYTHON_DOCS, load_reference
from assets.scored.schema import (
    CLASSIFIER_CONTRACT,
    CLASSIFIER_METRICS_SCHEMA,
    CLASSIFIER_SCHEMA,
    SCORE_COLUMNS,
    SCORES_CONTRACT,
    SCORES_SCHEMA,
    frame,
)
from assets.scored.scoring import ScoringPolicy, cluster_labels, score_corpus
from assets.scored.training import (
    Contrast,
    classifier_examples,
)
from resources.lake import Lake

CODE_VERSION = "scored-4"  # 4: DataMan's criteria (dm_*) and domain
CLASSIFIER_CODE_VERSION = "quality-classifier-3"  # 3: tiers ranked in a bounded sample


# --------------------------------------------------------------------------- quality classifier


class ClassifierConfig(dg.Config):
    contrast: Contrast = Field(
        "crawl_quality",
        description="'crawl_quality': the crawl's best pages by the cleaned stage's heuristics "
        "against its worst, per language (topic-matched); 'reference': reference_paths against "
        "the crawl's worst pages (DCLM's recipe; use a reference of the crawl's own domain).",
    )
    tier_share: float = Field(
        1 / 3, gt=0, le=0.5, description="Share of each language taken as each class's tier."
    )
    reference_paths: list[str] = Field(
        [BUILTIN_PYTHON_DOCS],
        description="contrast 'reference': .parquet / .jsonl(.gz) files with a text column, "
        f".txt files, or {BUILTIN_PYTHON_DOCS!r} (CPython's bundled documentation).",
    )
    text_column: str = "text"
    languages: list[str] | None = Field(
        ["en"], description="Crawl languages the examples come from; None = all."
    )
    max_per_class: int = Field(2000, description="Examples per class (stable samples).")
    sample_per_language: int = Field(
        10_000,
        gt=0,
        description="Organic documents per language drawn (seeded hash of doc_id, bottom-k, "
        "shard by shard) and ranked into tiers; the whole crawl below this size.",
    )
    n_features: int = Field(
        default_of(ClassifierSpec, "n_features"), description="Hashed word 1-2-gram buckets."
    )
    c: float = Field(
        default_of(ClassifierSpec, "c"), description="Inverse L2 penalty of the regression."
    )
    folds: int = Field(
        default_of(ClassifierSpec, "folds"), description="Stratified folds, held-out evaluation."
    )
    seed: int = default_of(ClassifierSpec, "seed")

    def spec(self) -> ClassifierSpec:
        return ClassifierSpec(
            n_features=self.n_features, c=self.c, folds=self.folds, seed=self.seed
        )


@dg.asset(
    group_name="scored",
    code_version=CLASSIFIER_CODE_VERSION,
    deps=["cleaned_documents", "duplicate_clusters", "decontamination"],
    check_specs=check_specs("quality_classifier"),
    kinds={"parquet", "scikitlearn"},
)
def quality_classifier(
    context: dg.AssetExecutionContext, config: ClassifierConfig, lake: Lake
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """DCLM-style fastText-like classifier on hashed word n-grams, topic-matched: by default the
    crawl's best pages (label 1) against its worst (label 0) by the cleaned stage's heuristics,
    per language; with `contrast: reference`, a reference set against the crawl's worst pages.
    Why not the built-in reference against the crawl: see `classifier_examples`."""
    publication = Publication(context, lake, CLASSIFIER_CONTRACT, CLASSIFIER_CODE_VERSION)
    spec = config.spec()
    reference = load_reference(config.reference_paths, config.text_column)
    examples = classifier_examples(
        lake,
        reference,
        config.languages,
        config.max_per_class,
        config.seed,
        config.contrast,
        config.tier_share,
        config.sample_per_language,
    )
    wanted = fingerprint(
        CLASSIFIER_CODE_VERSION,
        repr(make_model(spec)),  # every hyper-parameter, also those the config does not expose
        spec.__dict__,
        config.languages,
        config.contrast,
        config.tier_share,
        ids_digest(examples["doc_id"]),
    )
    reused = reusable(current_artifact(lake, "quality_classifier"), wanted, lake, CLASSIFIER_FILE)
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
            "auc_ci_low": evaluation.auc_ci_low,
            "auc_ci_high": evaluation.auc_ci_high,
            "auc_reason": evaluation.reason,
            "n_reference": evaluation.n_positive,
            "n_crawl": evaluation.n_negative,
            "folds": evaluation.folds,
            "reference": json.dumps(config.reference_paths),
            "spec": json.dumps(spec.__dict__),
        }
        with publication.write() as out:
            out.write("documents", table, CLASSIFIER_SCHEMA)
            out.write(
                "metrics", frame([metrics], CLASSIFIER_METRICS_SCHEMA), CLASSIFIER_METRICS_SCHEMA
            )
            save_model({"model": model, "spec": spec}, out.staging / CLASSIFIER_FILE)
    metrics = publication.scan("metrics").collect().row(0, named=True)
    table = publication.scan().collect()
    figure = plots.classifier_evaluation(
        table["label"].to_numpy(),
        table["heldout_score"].fill_null(np.nan).to_numpy(),
        metrics["auc"],
    )
    yield from publication.results(
        examples.height,
        {
            "heldout_auc": metrics["auc"],
            "auc_ci_low": metrics.get("auc_ci_low"),
            "auc_ci_high": metrics.get("auc_ci_high"),
            "auc_note": metrics["auc_reason"] or f"{metrics['folds']}-fold out-of-fold",
            "n_reference": metrics["n_reference"],
            "n_crawl": metrics["n_crawl"],
            "reused": reused,
            "fingerprint": wanted,
            "evaluation": dg.MetadataValue.md(png_markdown(figure, "classifier evaluation")),
        },
        data_version=dg.DataVersion(wanted),
    )


# ------------------------------------------------------------------------------ quality scores


class ScoredConfig(dg.Config):
    weights: dict[str, float] = Field(
        default_factory=lambda: default_of(ScoringPolicy, "weights"),
        description="Weight per standardised signal or model score in the combined score.",
    )
    weighting: Literal["configured", "learned"] = Field(
        default_of(ScoringPolicy, "weighting"),
        description="'configured' (weights above) or 'learned' (from LLM ratings).",
    )
    standardise_by: Literal["language", "corpus"] = default_of(ScoringPolicy, "standardise_by")
    min_group: int = Field(
        default_of(ScoringPolicy, "min_group"),
        description="Smaller language groups use corpus statistics.",
    )
    min_heldout_auc: float = Field(
        default_of(ScoringPolicy, "min_heldout_auc"),
        description="Classifier weighs only at this AUC or up.",
    )
    min_heldout_spearman: float = Field(
        default_of(ScoringPolicy, "min_heldout_spearman"),
        description="A distilled dimension weighs only at this held-out Spearman or up.",
    )
    sample_size: int = Field(
        default_of(ScoringPolicy, "sample_size"),
        gt=0,
        description="Documents in the seeded sample (bottom-k of a hash of doc_id) whose "
        "quantiles give the fill medians and the bucket edges; exact below this corpus size.",
    )
    seed: int = default_of(ScoringPolicy, "seed")
    workers: int = Field(
        default_of(ScoringPolicy, "workers"),
        ge=0,
        description="Worker processes for the map over shards; 0 = one per CPU of the step.",
    )

    def policy(self) -> ScoringPolicy:
        return ScoringPolicy(**self.model_dump())


@dg.asset(
    group_name="scored",
    code_version=CODE_VERSION,
    deps=[
        "cleaned_documents",
        "duplicate_clusters",
        "decontamination",
        "rephrased_documents",
        "document_embeddings",
        "clusters",
        "quality_classifier",
        "preselect_classifier",
        "llm_ratings",
        "rating_scorer",
        "dataman_ratings",
        "dataman_heads",
    ],
    check_specs=check_specs("quality_scores"),
    kinds={"parquet", "duckdb"},
)
def quality_scores(
    context: dg.AssetExecutionContext, config: ScoredConfig, lake: Lake
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Every corpus document: RedPajama-style signals, classifier and distilled rating scores,
    toxicity, one combined score (configured or learned weights) and its quintile bucket.

    A map over crawl shards, twice: each shard's features go to a scratch file, one streaming
    aggregate gives mean and std per language, a bounded seeded sample the fill medians and the
    bucket edges, then each shard is scored and streamed into the version (assets/scored/
    statistics.py). Memory is bounded by a shard and the sample, not by the corpus."""
    publication = Publication(context, lake, SCORES_CONTRACT, CODE_VERSION)
    with (
        publication.write() as out,
        tempfile.TemporaryDirectory(prefix="foundry-scores-") as scratch,
    ):
        try:
            scored = score_corpus(
                lake, config.policy(), out.table("documents", SCORES_SCHEMA), Path(scratch)
            )
        except ValueError as error:
            raise dg.Failure(str(error)) from error
    scores = publication.scan()
    sample = scored.sample
    shown = [c for c in SCORE_COLUMNS if not c.startswith("dm_") or c == "dm_overall_score"]
    histograms = reports.score_histograms(sample, ["quality_score", *shown])
    yield from publication.results(
        corpus_size(lake),
        {
            "missing_scores": dg.MetadataValue.json(
                reports.null_counts(scores, list(SCORE_COLUMNS))
            ),
            "weighting": config.weighting,
            "weights": dg.MetadataValue.json(scored.weights),
            "learned_weights_note": scored.learned_note,
            "excluded_for_no_heldout_skill": dg.MetadataValue.json(scored.excluded),
            "mean_score_by_origin": dg.MetadataValue.json(reports.mean_score_by(scores, "origin")),
            "dataman_domains": dg.MetadataValue.json(reports.value_counts(scores, DOMAIN_COLUMN)),
            "mean_score_by_language": dg.MetadataValue.json(
                reports.mean_score_by(scores, "language")
            ),
            "cluster_quality": dg.MetadataValue.md(
                reports.cluster_quality(scores, cluster_labels(lake))
            ),
            "statistics_sample": sample.height,
            "bucket_edges": dg.MetadataValue.json([round(float(e), 4) for e in scored.edges]),
            "histograms": dg.MetadataValue.md(
                png_markdown(histograms, f"score histograms (seeded sample of {sample.height})")
            ),
            "scorer_versions": dg.MetadataValue.json(scored.scorers.versions),
        },
    )
