"""Dagster definitions of the scored stage: a trained classifier, LLM ratings distilled into
regression heads, and one combined score per document.

quality_classifier ------------+
preselect_classifier ----------+
llm_ratings -> rating_scorer --+--> quality_scores   (+ cleaned measurements, toxicity, clusters)
dataman_ratings -> dataman_heads (dataman_assets.py) -+

The two trained assets store a model file beside their tables; a re-run whose inputs have the
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
from assets.partitions import GPU_POOL, GPU_TAG
from assets.plotting import png_markdown
from assets.publishing import Publication
from assets.scored import plots, reports
from assets.scored.artifacts import current_artifact, fingerprint, ids_digest, reusable, save_model
from assets.scored.classifier import ClassifierSpec, make_model, train_classifier
from assets.scored.dataman import DOMAIN_COLUMN
from assets.scored.distill import fit_heads
from assets.scored.features import CLASSIFIER_FILE, HEADS_FILE
from assets.scored.preselect import (
    LadderSpec,
    PreselectFit,
    fit_preselect,
    model_ladder_scores,
    ngram_ladder_scores,
)
from assets.scored.ratings import DIMENSIONS, prompt_hash, rate
from assets.scored.reference import BUILTIN_PYTHON_DOCS, load_reference
from assets.scored.schema import (
    CLASSIFIER_CONTRACT,
    CLASSIFIER_METRICS_SCHEMA,
    CLASSIFIER_SCHEMA,
    PRESELECT_CONTRACT,
    PRESELECT_METRICS_SCHEMA,
    PRESELECT_SCHEMA,
    RATED_CONTRACT,
    RATED_SCHEMA,
    RATINGS_SCHEMA,
    SCORE_COLUMNS,
    SCORER_CONTRACT,
    SCORER_METRICS_SCHEMA,
    SCORER_SCHEMA,
    SCORES_CONTRACT,
    SCORES_SCHEMA,
    frame,
)
from assets.scored.scoring import ScoringPolicy, cluster_labels, score_corpus
from assets.scored.shards import ShardReader
from assets.scored.training import (
    RATING_SAMPLE_SIZE,
    RATING_TEXT_TOKENS,
    Contrast,
    classifier_examples,
    crawl_sample,
    earlier_ratings,
    head_table,
    rating_sample,
    rating_targets,
    wide_ratings,
)
from resources.lake import Lake
from resources.rewriter import VLLMRewriter
from resources.tokenizer import TokenCounter

CODE_VERSION = "scored-4"  # 4: DataMan's criteria (dm_*) and domain
CLASSIFIER_CODE_VERSION = "quality-classifier-3"  # 3: tiers ranked in a bounded sample
RATINGS_CODE_VERSION = "llm-ratings-1"
PRESELECT_CODE_VERSION = "preselect-1"
SCORER_CODE_VERSION = "rating-scorer-2"  # 2: alpha inside each fold, Spearman CI


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


# --------------------------------------------------------------------------- PreSelect


class LadderModel(dg.Config):
    """One rung of a user's own ladder."""

    model: str = Field(description="A local model directory vLLM loads ('' = SmolLM2-135M).")
    ability: float = Field(description="Its known ability, e.g. a benchmark average.")


class PreselectConfig(dg.Config):
    ladder_models: list[LadderModel] = Field(
        default_factory=list,
        description="Your own ladder (two or more models), scored by vLLM prompt logprobs; "
        "empty = n-gram LMs trained on nested reference samples.",
    )
    reference_paths: list[str] = Field(
        [BUILTIN_PYTHON_DOCS],
        description="Text the ladder's rungs are trained and measured on (as the classifier's).",
    )
    text_column: str = "text"
    languages: list[str] | None = Field(["en"], description="Crawl languages sampled.")
    sample_per_language: int = Field(
        2000, gt=0, description="Documents whose strength is measured (seeded bottom-k)."
    )
    share: float = Field(0.3, gt=0, le=0.5, description="Top and bottom share: the labels.")
    rungs: int = Field(default_of(LadderSpec, "rungs"), ge=2, description="Models in the ladder.")
    order: int = Field(default_of(LadderSpec, "order"), ge=1, le=4, description="N-gram order.")
    max_doc_tokens: int = Field(1024, gt=0, description="Tokens of a document scored.")
    n_features: int = default_of(ClassifierSpec, "n_features")
    folds: int = default_of(ClassifierSpec, "folds")
    seed: int = 0

    def ladder(self) -> LadderSpec:
        return LadderSpec(rungs=self.rungs, order=self.order, seed=self.seed)

    def spec(self) -> ClassifierSpec:
        return ClassifierSpec(n_features=self.n_features, folds=self.folds, seed=self.seed)


@dg.asset(
    group_name="scored",
    code_version=PRESELECT_CODE_VERSION,
    deps=["cleaned_documents", "duplicate_clusters", "decontamination"],
    check_specs=check_specs("preselect_classifier"),
    kinds={"parquet", "scikitlearn"},
)
def preselect_classifier(
    context: dg.AssetExecutionContext, config: PreselectConfig, lake: Lake, tokens: TokenCounter
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """PreSelect: documents whose losses under a ladder of n-gram LMs rank the models as their
    abilities do, against those that do not, learned by a hashed n-gram classifier that
    quality_scores applies to every document (`preselect_score`)."""
    publication = Publication(context, lake, PRESELECT_CONTRACT, PRESELECT_CODE_VERSION)
    sample = crawl_sample(lake, config.languages, config.sample_per_language, config.seed)
    spec, ladder = config.spec(), config.ladder()
    wanted = fingerprint(
        PRESELECT_CODE_VERSION,
        repr(make_model(spec)),
        ladder.__dict__,
        config.model_dump(),
        tokens.tokenizer_id(),
        ids_digest(sample["doc_id"]),
    )
    reused = reusable(current_artifact(lake, "preselect_classifier"), wanted, lake, CLASSIFIER_FILE)
    if not reused:
        fit = fit_preselect(sample, _ladder_scores(config, sample, tokens), config.share, spec)
        _publish_preselect(publication, fit, wanted, spec)
    metrics = publication.scan("metrics").collect().row(0, named=True)
    yield from publication.results(
        sample.height,
        {
            "heldout_auc": metrics["auc"],
            "auc_ci_low": metrics["auc_ci_low"],
            "auc_ci_high": metrics["auc_ci_high"],
            "auc_note": metrics["auc_reason"] or f"{metrics['folds']}-fold out-of-fold",
            "ladder": dg.MetadataValue.json(json.loads(metrics["ladder"])),
            "n_positive": metrics["n_positive"],
            "n_negative": metrics["n_negative"],
            "reused": reused,
            "fingerprint": wanted,
        },
        data_version=dg.DataVersion(wanted),
    )


def _ladder_scores(config: PreselectConfig, sample: pl.DataFrame, tokens: TokenCounter):
    texts = sample["text"].to_list()
    if not config.ladder_models:
        reference = load_reference(config.reference_paths, config.text_column)
        return ngram_ladder_scores(texts, reference, tokens, config.ladder(), config.max_doc_tokens)
    if len(config.ladder_models) < 2:
        raise dg.Failure("preselect_classifier: a ladder needs two or more ladder_models")
    models = [
        (rung.model or "SmolLM2-135M-Instruct", rung.ability, _vllm_losses(rung.model))
        for rung in config.ladder_models
    ]
    return model_ladder_scores(texts, models, config.max_doc_tokens)


def _vllm_losses(model: str):
    """Losses under one local model; its engine is shut down before the next rung's starts."""

    def losses(texts: list[str], max_tokens: int) -> list[float]:
        scorer = VLLMRewriter(model=model, max_model_len=max_tokens + 8, per_request_seed=False)
        try:
            return scorer.prompt_losses(texts, max_tokens)
        finally:
            scorer.teardown_after_execution(None)

    return losses


def _publish_preselect(
    publication: Publication, fit: PreselectFit, wanted: str, spec: ClassifierSpec
) -> None:
    evaluation = fit.evaluation
    metrics = {
        "fingerprint": wanted,
        "trained": fit.model is not None,
        "auc": evaluation.auc,
        "auc_ci_low": evaluation.auc_ci_low,
        "auc_ci_high": evaluation.auc_ci_high,
        "auc_reason": evaluation.reason,
        "n_positive": evaluation.n_positive,
        "n_negative": evaluation.n_negative,
        "folds": evaluation.folds,
        "ladder": json.dumps(fit.scores.rungs),
        "spec": json.dumps(spec.__dict__),
    }
    with publication.write() as out:
        out.write("documents", fit.table, PRESELECT_SCHEMA)
        out.write("metrics", frame([metrics], PRESELECT_METRICS_SCHEMA), PRESELECT_METRICS_SCHEMA)
        save_model(fit.model, out.staging / CLASSIFIER_FILE)


# --------------------------------------------------------------------------------- LLM ratings


class RatingsConfig(dg.Config):
    sample_size: int = Field(
        RATING_SAMPLE_SIZE, description="Documents the LLM rates (a stable sample)."
    )
    languages: list[str] | None = Field(["en"], description="Languages the rater reads.")
    dimensions: list[str] = Field(list(DIMENSIONS), description=f"Of {list(DIMENSIONS)}.")
    max_text_tokens: int = Field(
        RATING_TEXT_TOKENS, description="Each document is cut to this many tokens."
    )
    max_answer_tokens: int = Field(8, description="'Score: N' needs a handful of tokens.")
    seed: int = 0


@dg.asset(
    group_name="scored",
    code_version=RATINGS_CODE_VERSION,
    deps=["cleaned_documents", "duplicate_clusters", "decontamination", "rephrased_documents"],
    check_specs=check_specs("llm_ratings"),
    kinds={"parquet", "vllm"},
    pool=GPU_POOL,
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
    publication = Publication(context, lake, RATED_CONTRACT, RATINGS_CODE_VERSION)
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
    with publication.write() as out:
        out.write("documents", rated, RATED_SCHEMA)
        out.write("ratings", ratings, RATINGS_SCHEMA)
    yield from publication.results(
        sample.height,
        {
            "rated_this_run": todo.height,
            "reused_documents": rated.height - todo.height,
            "parsed_share": dg.MetadataValue.json(reports.parsed_share(ratings)),
            "rating_distribution": dg.MetadataValue.md(reports.rating_distribution(ratings)),
            "unparseable_examples": dg.MetadataValue.json(reports.failures(ratings)),
            "model": key["model"],
            "prompt_hash": key["prompt_hash"],
        },
    )


# ------------------------------------------------------------------------------- rating scorer


class ScorerConfig(dg.Config):
    folds: int = Field(5, description="k of the k-fold held-out predictions.")
    seed: int = 0


@dg.asset(
    group_name="scored",
    code_version=SCORER_CODE_VERSION,
    deps=["llm_ratings", "document_embeddings", "clusters"],  # rewrites' vectors: clusters
    check_specs=check_specs("rating_scorer"),
    kinds={"parquet", "scikitlearn"},
)
def rating_scorer(
    context: dg.AssetExecutionContext, config: ScorerConfig, lake: Lake
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """One ridge head per rated dimension on the document embeddings (FineWeb-Edu's distilled
    annotator); held-out Spearman per dimension is recorded, null with a reason when undefined."""
    publication = Publication(context, lake, SCORER_CONTRACT, SCORER_CODE_VERSION)
    rated_docs = lake.scan("llm_ratings").select("doc_id").collect()
    ratings = lake.scan("llm_ratings", "ratings").select("doc_id", "dimension", "score").collect()
    embedded = ShardReader(lake).vectors(rated_docs["doc_id"], None)  # the rated sample only
    model_ids = sorted(set(embedded["model_id"]))
    wanted = fingerprint(
        SCORER_CODE_VERSION,
        config.folds,
        config.seed,
        model_ids,
        ratings.sort("doc_id", "dimension").rows(),
        ids_digest(embedded["text_hash"]),
    )
    reused = reusable(current_artifact(lake, "rating_scorer"), wanted, lake, HEADS_FILE)
    if not reused:
        _train_heads(publication, ratings, embedded, config, wanted, model_ids)
    metrics = publication.scan("metrics").collect()
    table = publication.scan().collect()
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
    yield from publication.results(
        rated_docs.height,
        {
            "heldout_spearman": dg.MetadataValue.json(spearman),
            "spearman_ci_low": dg.MetadataValue.json(
                {r["dimension"]: r.get("spearman_ci_low") for r in metrics.iter_rows(named=True)}
            ),
            "spearman_ci_high": dg.MetadataValue.json(
                {r["dimension"]: r.get("spearman_ci_high") for r in metrics.iter_rows(named=True)}
            ),
            "spearman_null_reasons": dg.MetadataValue.json({k: v for k, v in reasons.items() if v}),
            "n_rated": dg.MetadataValue.json(
                {r["dimension"]: r["n_rated"] for r in metrics.iter_rows(named=True)}
            ),
            "reused": reused,
            "fingerprint": wanted,
            "agreement": dg.MetadataValue.md(
                png_markdown(plots.rating_agreement(panels), "held-out agreement")
            ),
        },
        data_version=dg.DataVersion(wanted),
    )


def _train_heads(
    publication: Publication,
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
                "spearman_ci_low": r.spearman_ci_low,
                "spearman_ci_high": r.spearman_ci_high,
                "spearman_reason": r.reason,
                "alpha": r.alpha,
                "embedding_model": ",".join(model_ids),
            }
            for r in evaluations
        ],
        SCORER_METRICS_SCHEMA,
    )
    embedding_model = model_ids[0] if model_ids else None
    with publication.write() as out:
        out.write("documents", head_table(ids, targets, evaluations), SCORER_SCHEMA)
        out.write("metrics", metrics, SCORER_METRICS_SCHEMA)
        save_model({"heads": heads, "embedding_model": embedding_model}, out.staging / HEADS_FILE)


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
