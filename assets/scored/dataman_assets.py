"""Dagster definitions of DataMan in the scored stage: the rewriter's LLM annotates a stable
sample with 14 quality ratings and a domain, and heads on the embeddings carry both to every
document (quality_scores applies them shard by shard).

dataman_ratings -> dataman_heads -> quality_scores (dm_* columns, dm_domain) -> training_mixture
"""

from collections.abc import Iterator

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from assets.contracts import check_specs
from assets.publishing import Publication
from assets.scored import reports
from assets.scored.artifacts import save_model
from assets.scored.asking import (
    RATER_ASSET,
    RaterConfig,
    answer_key,
    answers_for,
    greedy_rater,
)
from assets.scored.dataman import (
    COLUMN_PREFIX,
    CRITERIA,
    CRITERION_COLUMNS,
    DOMAIN,
    DOMAIN_COLUMN,
    annotate,
    load_prompts,
)
from assets.scored.distill import fit_heads
from assets.scored.domain_head import DomainReport, fit_domain_head
from assets.scored.features import HEADS_FILE
from assets.scored.ratings_assets import ScorerConfig  # the same k-fold heads
from assets.scored.schema import (
    DATAMAN_ANSWERS_SCHEMA,
    DATAMAN_HEADS_CONTRACT,
    DATAMAN_HEADS_SCHEMA,
    DATAMAN_METRICS_SCHEMA,
    DATAMAN_RATED_CONTRACT,
    DATAMAN_RATED_SCHEMA,
    SCALE,
    frame,
)
from assets.scored.training import (
    head_inputs,
    head_metrics,
    head_table,
    rating_sample,
    rating_targets,
)
from resources.lake import Lake
from resources.rewriter import VLLMRewriter

RATINGS_CODE_VERSION = "dataman-ratings-1"
HEADS_CODE_VERSION = "dataman-heads-1"


class DatamanRatingsConfig(RaterConfig):
    criteria: list[str] = Field(list(CRITERIA), description=f"Of {list(CRITERIA)}.")
    max_answer_tokens: int = Field(10, description="'Domain: Retail E-commerce' fits in 10.")


@dg.asset(
    code_version=RATINGS_CODE_VERSION, check_specs=check_specs("dataman_ratings"), **RATER_ASSET
)
def dataman_ratings(
    context: dg.AssetExecutionContext,
    config: DatamanRatingsConfig,
    lake: Lake,
    rewriter: VLLMRewriter,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """DataMan's 14 criteria (1-5) and domain for a stable sample, from the rewriter's LLM with
    the prompts of dataman.toml (greedy, few-shot); raw answers kept, unparseable ones with
    their reason. Answers made earlier under the same prompts, model and sampling are reused."""
    if unknown := set(config.criteria) - set(CRITERIA):
        raise dg.Failure(f"Unknown DataMan criteria {sorted(unknown)}; known: {list(CRITERIA)}")
    publication = Publication(context, lake, DATAMAN_RATED_CONTRACT, RATINGS_CODE_VERSION)
    prompts = load_prompts()
    rater = greedy_rater(rewriter, config.max_answer_tokens)
    key = answer_key(rater, prompts.prompt_hash, config.max_text_tokens)
    sample = rating_sample(lake, config.languages, config.sample_size, config.seed)

    def ask(docs: list[dict], chat, truncate) -> list[dict]:
        return annotate(docs, config.criteria, chat, truncate, prompts)

    questions = [*config.criteria, DOMAIN]
    answers, asked = answers_for(
        context, lake, sample, rater, key, questions, ask, DATAMAN_ANSWERS_SCHEMA
    )
    with publication.write() as out:
        out.write("documents", wide_answers(sample, answers), DATAMAN_RATED_SCHEMA)
        out.write("ratings", answers, DATAMAN_ANSWERS_SCHEMA)
    labels = answers.filter(pl.col("dimension") == DOMAIN)["label"].drop_nulls()
    yield from publication.results(
        sample.height,
        {
            "annotated_this_run": asked,
            "reused_documents": sample.height - asked,
            "parsed_share": dg.MetadataValue.json(reports.parsed_share(answers)),
            "domains": dg.MetadataValue.json(labels.value_counts(sort=True).rows()),
            "rating_distribution": dg.MetadataValue.md(reports.rating_distribution(answers)),
            "unparseable_examples": dg.MetadataValue.json(reports.failures(answers)),
            "model": key["model"],
            "prompt_hash": key["prompt_hash"],
            "prompt_version": prompts.version,
        },
    )


def wide_answers(sample: pl.DataFrame, answers: pl.DataFrame) -> pl.DataFrame:
    """One row per sampled document: dm_<criterion> scores, dm_domain, answers accepted."""
    wide = sample.select("doc_id", "origin", "language")
    for question in answers["dimension"].unique().sort():
        value = "label" if question == DOMAIN else "score"
        picked = answers.filter(pl.col("dimension") == question).select("doc_id", value)
        wide = wide.join(
            picked.rename({value: f"{COLUMN_PREFIX}{question}"}), on="doc_id", how="left"
        )
    parsed = answers.filter(pl.col("parse_error").is_null()).group_by("doc_id").len("n_parsed")
    wide = wide.join(parsed, on="doc_id", how="left").with_columns(pl.col("n_parsed").fill_null(0))
    return wide


@dg.asset(
    group_name="scored",
    code_version=HEADS_CODE_VERSION,
    deps=["dataman_ratings", "document_embeddings", "clusters"],  # rewrites' vectors: clusters
    check_specs=check_specs("dataman_heads"),
    kinds={"parquet", "scikitlearn"},
)
def dataman_heads(
    context: dg.AssetExecutionContext, config: ScorerConfig, lake: Lake
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """A ridge head per DataMan criterion and a logistic-regression domain head on the document
    embeddings; held-out Spearman per criterion and held-out accuracy and macro-F1 of the
    domain, each with a bootstrap interval (quality_scores gates on their lower bounds)."""
    publication = Publication(context, lake, DATAMAN_HEADS_CONTRACT, HEADS_CODE_VERSION)
    answers = lake.scan("dataman_ratings", "ratings")
    answers = answers.select("doc_id", "dimension", "score", "label").collect()
    rated = answers["doc_id"].unique()
    embedded, model_ids, wanted, reused = head_inputs(
        lake, "dataman_heads", rated, answers, HEADS_CODE_VERSION, config.folds, config.seed
    )
    if not reused:
        _train(publication, answers, embedded, config, wanted, model_ids)
    metrics = publication.scan("metrics").collect()
    domain = metrics.filter(pl.col("dimension") == DOMAIN_COLUMN).to_dicts()[0]
    criteria = metrics.filter(pl.col("dimension") != DOMAIN_COLUMN)
    yield from publication.results(
        rated.len(),
        {
            "heldout_spearman": dg.MetadataValue.json(
                dict(zip(criteria["dimension"], criteria["spearman"], strict=True))
            ),
            "spearman_ci_low": dg.MetadataValue.json(
                dict(zip(criteria["dimension"], criteria["spearman_ci_low"], strict=True))
            ),
            "domain_accuracy": domain["accuracy"],
            "domain_accuracy_ci": dg.MetadataValue.json(
                [domain["accuracy_ci_low"], domain["accuracy_ci_high"]]
            ),
            "domain_macro_f1": domain["macro_f1"],
            "domain_majority_share": domain["majority_share"],
            "domain_reason": domain["spearman_reason"],
            "n_labelled": domain["n_rated"],
            "reused": reused,
            "fingerprint": wanted,
        },
        data_version=dg.DataVersion(wanted),
    )


def _train(
    publication: Publication,
    answers: pl.DataFrame,
    embedded: pl.DataFrame,
    config: ScorerConfig,
    wanted: str,
    model_ids: list[str],
) -> None:
    scores = answers.filter(pl.col("dimension") != DOMAIN).with_columns(
        (pl.lit(COLUMN_PREFIX) + pl.col("dimension")).alias("dimension")
    )
    criteria = [c for c in CRITERION_COLUMNS if c in set(scores["dimension"])]
    vectors, targets, ids = rating_targets(scores, embedded, criteria)
    heads, evaluations = fit_heads(vectors, targets, config.folds, config.seed, scale=SCALE)
    labelled = answers.filter((pl.col("dimension") == DOMAIN) & pl.col("label").is_not_null())
    labelled = labelled.filter(pl.col("doc_id").is_in(ids)).sort("doc_id")
    position = {doc_id: i for i, doc_id in enumerate(ids)}
    rows = np.array([position[d] for d in labelled["doc_id"]], dtype=int)
    domain_vectors = vectors[rows] if len(rows) else np.zeros((0, vectors.shape[1]))
    domain_head, report = fit_domain_head(
        domain_vectors, labelled["label"].to_list(), config.folds, config.seed
    )
    embedding_model = model_ids[0] if model_ids else None
    table = head_table(ids, targets, evaluations).join(
        _domain_table(labelled["doc_id"], labelled["label"], report), on="doc_id", how="left"
    )
    metrics = head_metrics(evaluations, wanted, embedding_model)
    metrics.append(_domain_metrics(report, wanted, embedding_model))
    bundle = {
        "heads": heads,
        "domain": domain_head,
        "scale": SCALE,
        "embedding_model": embedding_model,
    }
    with publication.write() as out:
        out.write("documents", table, DATAMAN_HEADS_SCHEMA)
        out.write("metrics", frame(metrics, DATAMAN_METRICS_SCHEMA), DATAMAN_METRICS_SCHEMA)
        save_model(bundle, out.staging / HEADS_FILE)


def _domain_table(ids: pl.Series, labels: pl.Series, report: DomainReport) -> pl.DataFrame:
    heldout = report.heldout if len(report.heldout) == len(ids) else [None] * len(ids)
    return pl.DataFrame(
        {
            "doc_id": ids,
            f"{DOMAIN_COLUMN}_label": labels,
            f"{DOMAIN_COLUMN}_heldout": pl.Series(heldout, dtype=pl.String),
        }
    )


def _domain_metrics(report: DomainReport, wanted: str, embedding_model: str | None) -> dict:
    return {
        "fingerprint": wanted,
        "dimension": DOMAIN_COLUMN,
        "n_rated": report.n_labelled,
        "spearman_reason": report.reason,  # why there is no accuracy
        "embedding_model": embedding_model,
        "accuracy": report.accuracy,
        "accuracy_ci_low": report.accuracy_ci_low,
        "accuracy_ci_high": report.accuracy_ci_high,
        "macro_f1": report.macro_f1,
        "majority_share": report.majority_share,
        "n_domains": report.n_domains,
    }
