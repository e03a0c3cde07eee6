"""Dagster definitions of the distilled LLM ratings: the rewriter's LLM rates a stable sample
(llm_ratings), and ridge heads on the document embeddings learn each dimension (rating_scorer),
which quality_scores applies to every document."""

from collections.abc import Iterator

import dagster as dg
import polars as pl
from pydantic import Field

from assets.contracts import check_specs
from assets.plotting import png_markdown
from assets.publishing import Publication
from assets.scored import plots, reports
from assets.scored.artifacts import save_model
from assets.scored.asking import (
    RATER_ASSET,
    RaterConfig,
    answer_key,
    answers_for,
    greedy_rater,
)
from assets.scored.distill import fit_heads
from assets.scored.features import HEADS_FILE
from assets.scored.ratings import DIMENSIONS, prompt_hash, rate
from assets.scored.schema import (
    RATED_CONTRACT,
    RATED_SCHEMA,
    RATINGS_SCHEMA,
    SCORER_CONTRACT,
    SCORER_METRICS_SCHEMA,
    SCORER_SCHEMA,
    frame,
)
from assets.scored.training import (
    head_inputs,
    head_metrics,
    head_table,
    rating_sample,
    rating_targets,
    wide_ratings,
)
from resources.lake import Lake
from resources.rewriter import VLLMRewriter

RATINGS_CODE_VERSION = "llm-ratings-1"
SCORER_CODE_VERSION = "rating-scorer-2"  # 2: alpha inside each fold, Spearman CI

# --------------------------------------------------------------------------------- LLM ratings


class RatingsConfig(RaterConfig):
    dimensions: list[str] = Field(list(DIMENSIONS), description=f"Of {list(DIMENSIONS)}.")
    max_answer_tokens: int = Field(8, description="'Score: N' needs a handful of tokens.")


@dg.asset(code_version=RATINGS_CODE_VERSION, check_specs=check_specs("llm_ratings"), **RATER_ASSET)
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
    rater = greedy_rater(rewriter, config.max_answer_tokens)
    key = answer_key(rater, prompt_hash(), config.max_text_tokens)
    sample = rating_sample(lake, config.languages, config.sample_size, config.seed)

    def ask(docs: list[dict], chat, truncate) -> list[dict]:
        return rate(docs, config.dimensions, chat, truncate)

    ratings, asked = answers_for(
        context, lake, sample, rater, key, config.dimensions, ask, RATINGS_SCHEMA
    )
    rated = wide_ratings(sample, ratings, config.dimensions)
    with publication.write() as out:
        out.write("documents", rated, RATED_SCHEMA)
        out.write("ratings", ratings, RATINGS_SCHEMA)
    yield from publication.results(
        sample.height,
        {
            "rated_this_run": asked,
            "reused_documents": rated.height - asked,
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
    embedded, model_ids, wanted, reused = head_inputs(
        lake, "rating_scorer", rated_docs["doc_id"], ratings,
        SCORER_CODE_VERSION, config.folds, config.seed,
    )  # fmt: skip
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
    metrics = frame(head_metrics(evaluations, wanted, ",".join(model_ids)), SCORER_METRICS_SCHEMA)
    embedding_model = model_ids[0] if model_ids else None
    with publication.write() as out:
        out.write("documents", head_table(ids, targets, evaluations), SCORER_SCHEMA)
        out.write("metrics", metrics, SCORER_METRICS_SCHEMA)
        save_model({"heads": heads, "embedding_model": embedding_model}, out.staging / HEADS_FILE)
