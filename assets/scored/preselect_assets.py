"""Dagster definitions of PreSelect (Shum et al. 2025): a ladder of models of known ability scores a
seeded sample; the documents whose losses rank the models as their abilities do train a hashed
n-gram classifier, which quality_scores applies to every document (`preselect_score`)."""

import json
from collections.abc import Iterator

import dagster as dg
import polars as pl
from pydantic import Field

from assets.contracts import check_specs
from assets.defaults import default_of
from assets.publishing import Publication
from assets.scored.artifacts import current_artifact, fingerprint, ids_digest, reusable, save_model
from assets.scored.classifier import ClassifierSpec, make_model
from assets.scored.features import CLASSIFIER_FILE
from assets.scored.preselect import (
    LadderSpec,
    PreselectFit,
    fit_preselect,
    model_ladder_scores,
    ngram_ladder_scores,
)
from assets.scored.reference import BUILTIN_PYTHON_DOCS, load_reference
from assets.scored.schema import (
    PRESELECT_CONTRACT,
    PRESELECT_METRICS_SCHEMA,
    PRESELECT_SCHEMA,
    frame,
)
from assets.scored.training import crawl_sample
from resources.lake import Lake
from resources.rewriter import VLLMRewriter
from resources.tokenizer import TokenCounter

PRESELECT_CODE_VERSION = "preselect-1"


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
