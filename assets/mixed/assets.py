"""Dagster definition of the mixed stage: weights over domains, a token-budgeted sample, shards."""

import json
from collections.abc import Iterator
from typing import Literal

import dagster as dg
import polars as pl
from pydantic import Field

from assets.contracts import Contract, check_specs
from assets.corpus import catalog_rows, corpus_size
from assets.defaults import default_of
from assets.documents import DROPPED_SCHEMA
from assets.mixed.audit_report import render_report, run_configs
from assets.mixed.card import drop_reasons, markdown_table, write_card
from assets.mixed.domains import load_domains, read_target_file
from assets.mixed.methods import QuadMixParams
from assets.mixed.plan import (
    MixturePlan,
    TargetSpec,
    plan_manual,
    plan_quadmix,
    plan_search,
    plan_temperature,
)
from assets.mixed.proxy import ProxyEvaluator
from assets.mixed.report import manifest_for, not_sampled, shard_rows
from assets.mixed.sampling import MixturePolicy, sample_mixture
from assets.mixed.search import SearchParams
from assets.mixed.shards import write_shards
from assets.publishing import Publication
from assets.stages import assets_before, drop_tables
from resources.lake import Lake, VersionWriter
from resources.tokenizer import TokenCounter

CODE_VERSION = "mixed-2"
AUDIT_REPORT = "audit_report.html"
CONTRACT = Contract(
    columns=("sample_id", "doc_id", "repeat", "tokens", "domain", "weight", "shard"),
    unique=("sample_id",),
    not_null=("sample_id", "doc_id", "domain", "shard"),
    ranges={"repeat": (0, None), "tokens": (1, None), "weight": (0.0, 1.0)},
    max_drop_share=None,  # a budget smaller than the corpus leaves most documents out
)
# The mixture reads every earlier stage: documents and scores, and for its card and audit report
# every stage's versions and drop reasons.
UPSTREAM = assets_before("training_mixture")


class QuadMixDomain(dg.Config):
    threshold: float = Field(0.8, description="Quality rank (0 = best) past which docs are cut.")
    steepness: float = Field(10.0, description="How sharply sampling falls with quality rank.")
    scale: float = Field(1.0, description="Domain weight: the diversity half of QuaDMix.")


class SearchConfig(dg.Config):
    rounds: int = Field(4, ge=1, description="Rounds; from round 2 a regression picks candidates.")
    candidates: int = Field(24, ge=1, description="Proxy runs per round.")
    concentration: float = Field(1.0, gt=0, description="Dirichlet concentration, prior-centred.")
    pool: int = Field(4096, ge=2, description="Mixtures the regression ranks per round.")
    top_k: int = Field(8, ge=1, description="Best predicted mixtures averaged into the final pick.")
    regressor: Literal["ridge", "gbm", "lightgbm"] = "ridge"
    proxy_tokens: int = Field(50_000, ge=1, description="Tokens of each candidate's proxy sample.")
    proxy_chunk_tokens: int = Field(
        256, description="Proxy samples draw pieces this long (0 = whole documents)."
    )
    target_path: str = Field(
        "", description="Parquet/JSONL/text file of target texts; '' = held-out top-quality docs."
    )
    target_tokens: int = Field(
        20_000, description="Tokens of top-bucket documents held out as target (at most half)."
    )


class MixedConfig(dg.Config):
    method: Literal["manual", "temperature", "quadmix", "search"] = Field(
        "temperature", description="How domain weights are chosen."
    )
    token_budget: int = Field(200_000, ge=1, description="Tokens in the mixture (SmolLM2).")
    temperature: float = Field(
        default_of(MixturePolicy, "temperature"),
        gt=0,
        description="Domain weights ~ tokens ** (1/T).",
    )
    max_repeats: int = Field(
        default_of(MixturePolicy, "max_repeats"),
        ge=1,
        description="Epochs a document may appear at most.",
    )
    max_synthetic_share: float = Field(
        default_of(MixturePolicy, "max_synthetic_share"),
        ge=0,
        le=1,
        description="Cap on synthetic tokens.",
    )
    high_quality_bucket: int = Field(3, description="Buckets at or above this are 'hq'.")
    seed: int = default_of(MixturePolicy, "seed")
    manual_weights: dict[str, float] = Field(
        default_factory=dict, description="Domain glob pattern -> weight, for method 'manual'."
    )
    quadmix: dict[str, QuadMixDomain] = Field(
        default_factory=lambda: {"*": QuadMixDomain()},
        description="Domain glob pattern -> sampling function, for method 'quadmix'.",
    )
    search: SearchConfig = Field(default_factory=SearchConfig)


@dg.asset(
    group_name="mixed",
    code_version=CODE_VERSION,
    deps=list(UPSTREAM),
    check_specs=check_specs("training_mixture"),
    kinds={"parquet", "json"},
)
def training_mixture(
    context: dg.AssetExecutionContext,
    config: MixedConfig,
    lake: Lake,
    tokens: TokenCounter,
    proxy: ProxyEvaluator,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """The training data: shards, a manifest, and for every sampled document where it came from."""
    publication = Publication(context, lake, CONTRACT, CODE_VERSION)
    policy = MixturePolicy(
        config.token_budget,
        config.temperature,
        config.max_repeats,
        config.max_synthetic_share,
        config.seed,
    )
    domains = load_domains(lake, tokens, config.high_quality_bucket)
    docs = domains.docs
    plan = _plan(docs, config, policy, proxy)
    samples = sample_mixture(plan.pool, plan.weights, policy).with_columns(
        (pl.col("doc_id") + "-" + pl.col("repeat").cast(pl.String)).alias("sample_id")
    )
    manifest = manifest_for(plan, samples, policy, tokens.tokenizer_id(), _settings(config))
    manifest["upstream_versions"] = lake.versions_of(UPSTREAM)
    dropped = pl.concat([not_sampled(docs, samples, plan), domains.lost], how="diagonal_relaxed")
    rounds = plan.search.table() if plan.search else None
    configs = {**run_configs(context.instance, lake), "training_mixture": config.model_dump()}
    kept = samples["doc_id"].n_unique()
    report = render_report(
        lake, manifest, configs, (kept, dropped.height), title="Audit report: training_mixture"
    )
    with publication.write(manifest) as out:
        _write_version(out, lake, docs, samples, dropped, manifest, rounds, report)
    folder = publication.folder
    yield from publication.results(
        corpus_size(lake) - catalog_rows(lake, "clusters", "dropped"),
        {
            "dataset_card": dg.MetadataValue.path(f"{folder}/DATASET_CARD.md"),
            "audit_report": dg.MetadataValue.path(f"{folder}/{AUDIT_REPORT}"),
            "shards_dir": dg.MetadataValue.path(f"{folder}/shards"),
            "method": plan.method,
            "tokens": manifest["tokens"],
            "token_budget": policy.token_budget,
            "budget_error": manifest["budget_error"],
            "weights": dg.MetadataValue.json(manifest["weights"]),
            "tokens_per_domain": dg.MetadataValue.json(manifest["tokens_per_domain"]),
            "samples": samples.height,
            "unique_documents": kept,
            **_search_metadata(manifest, rounds, folder),
        },
        kept=kept,
    )


def _write_version(
    out: VersionWriter,
    lake: Lake,
    docs: pl.DataFrame,
    samples: pl.DataFrame,
    dropped: pl.DataFrame,
    manifest: dict,
    rounds: pl.DataFrame | None,
    audit_report: str,
) -> None:
    """Tables, shards, manifest, card and audit report, all in the one new version."""
    placed = write_shards(shard_rows(samples, docs), out.staging / "shards", manifest["seed"])
    rows = samples.join(placed, left_on="sample_id", right_on="id")
    out.write("documents", rows, rows.to_arrow().schema)
    out.write("dropped", dropped, DROPPED_SCHEMA)
    if rounds is not None:
        out.write("search_rounds", rounds, rounds.to_arrow().schema)
    shards = sorted(placed["shard"].unique().to_list())
    (out.staging / "manifest.json").write_text(json.dumps({**manifest, "shards": shards}, indent=2))
    (out.staging / AUDIT_REPORT).write_text(audit_report)
    write_card(
        out.staging,
        manifest,
        drop_reasons(lake, [asset for _, asset in drop_tables(before="training_mixture")]),
        lake.scan("clusters", "summary").select("cluster_id", "label", "size").collect(),
        lake.scan("cleaned_documents").group_by("language").len().sort("len").collect(),
        rounds,
    )


def _plan(
    docs: pl.DataFrame, config: MixedConfig, policy: MixturePolicy, proxy: ProxyEvaluator
) -> MixturePlan:
    if config.method == "manual":
        return plan_manual(docs, policy, config.manual_weights)
    if config.method == "quadmix":
        params = {
            k: QuadMixParams(v.threshold, v.steepness, v.scale) for k, v in config.quadmix.items()
        }
        return plan_quadmix(docs, policy, params)
    if config.method == "search":
        s = config.search
        params = SearchParams(
            s.rounds, s.candidates, s.concentration, s.pool, s.top_k, s.regressor, config.seed
        )
        texts = read_target_file(s.target_path) if s.target_path else None
        target = TargetSpec(texts, s.target_tokens, s.target_path)
        return plan_search(
            docs, policy, params, proxy, target, s.proxy_tokens, s.proxy_chunk_tokens
        )
    return plan_temperature(docs, policy)


def _settings(config: MixedConfig) -> dict:
    """The method's own settings, for the manifest and the card."""
    if config.method == "manual":
        return {"manual_weights": config.manual_weights}
    if config.method == "quadmix":
        return {"quadmix": {k: v.model_dump() for k, v in config.quadmix.items()}}
    if config.method == "search":
        return {"search": config.search.model_dump()}
    return {"temperature": config.temperature}


def _search_metadata(manifest: dict, rounds: pl.DataFrame | None, folder: str) -> dict:
    """UI metadata: the proxy scores that justify the weights, and the rounds behind them."""
    search = manifest.get("search")
    if not search or rounds is None:
        return {}
    shown = rounds.select(
        "round", "candidate", pl.col("predicted").round(3), pl.col("observed").round(3)
    )
    return {
        "proxy_uniform": search["uniform_score"],
        "proxy_temperature": search["temperature_score"],
        "proxy_chosen": search["chosen_score"],
        "proxy_gain_vs_uniform": search["gain_vs_uniform"],
        "search_picked": search["picked"],
        "search_cv_rank_correlation": search["cv_rank_correlation"],
        "search_rounds": dg.MetadataValue.md(markdown_table(shown)),
        "predicted_vs_observed": dg.MetadataValue.path(f"{folder}/search.png"),
    }
