"""Dagster definition of the mixed stage: weights over domains, a token-budgeted sample, shards."""

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import dagster as dg
import duckdb
import polars as pl
from pydantic import Field

from assets.contracts import Contract, check_specs
from assets.corpus import catalog_rows, corpus_size
from assets.defaults import default_of
from assets.mixed.audit_report import render_report, run_configs
from assets.mixed.card import drop_reasons, markdown_table, write_card
from assets.mixed.domains import read_target_file
from assets.mixed.draws import (
    build_draws,
    fetch_texts,
    held_out_ids,
    proxy_sample,
    quality_levels,
    score_range,
    set_held,
)
from assets.mixed.methods import QuadMixParams, quadmix_levels, quadmix_weights
from assets.mixed.parts import Totals, prepare, sample_part
from assets.mixed.plan import (
    MixturePlan,
    TargetSpec,
    plan_manual,
    plan_search,
    plan_temperature,
)
from assets.mixed.pool import (
    DomainBy,
    Sources,
    build_pool,
    connect,
    count_synthetic,
    domain_totals,
    lake_sources,
    score_summary,
)
from assets.mixed.proxy import ProxyEvaluator
from assets.mixed.quota import solve_quotas
from assets.mixed.report import manifest_for
from assets.mixed.sampling import MixturePolicy
from assets.mixed.search import SearchParams
from assets.mixed.token_counts import TOKEN_COUNTS_SCHEMA, count_documents
from assets.mixed.tokenized import FOLDER as TOKENIZED_FOLDER
from assets.mixed.tokenized import write_tokenized
from assets.partitions import crawl_shards
from assets.publishing import Publication
from assets.scored.dataman import DOMAIN_COLUMN
from assets.scored.schema import SCORE_COLUMNS
from assets.stages import assets_before, drop_tables
from resources.lake import Lake, VersionWriter
from resources.tokenizer import TokenCounter

CODE_VERSION = "mixed-4"  # 4: domains by cluster or DataMan domain; scores on the card
TOKEN_COUNTS_VERSION = "token-counts-1"
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
    sample_tokens: int = Field(
        100_000,
        ge=1,
        description="Tokens per domain of the seeded sample the proxy runs draw from: the "
        "search fits on this bounded sample, the mixture then draws from the whole corpus.",
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
    domain_by: DomainBy = Field(
        "cluster",
        description="What a domain is besides quality tier and origin: 'cluster' (the "
        "document's embedding cluster) or 'dataman' (its DataMan domain, from the domain head "
        "of dataman_heads; 'unlabelled' where that head showed no held-out skill).",
    )
    seed: int = default_of(MixturePolicy, "seed")
    manual_weights: dict[str, float] = Field(
        default_factory=dict, description="Domain glob pattern -> weight, for method 'manual'."
    )
    quadmix: dict[str, QuadMixDomain] = Field(
        default_factory=lambda: {"*": QuadMixDomain()},
        description="Domain glob pattern -> sampling function, for method 'quadmix'.",
    )
    search: SearchConfig = Field(default_factory=SearchConfig)
    memory_limit: str = Field(
        "512MB", description="DuckDB memory limit for the mixture's joins and aggregates (spills)."
    )
    threads: int = Field(2, ge=1, description="DuckDB threads.")
    tokenized: bool = Field(
        True,
        description="Also write the samples as token ids in datatrove's format (nanotron reads "
        "the folder as it is), shuffled across all shards with the seed.",
    )


TOKEN_COUNTS_CONTRACT = Contract(
    columns=tuple(TOKEN_COUNTS_SCHEMA.names),
    unique=("doc_id",),
    not_null=("doc_id", "tokens"),
    ranges={"tokens": (0, None)},
)


@dg.asset(
    partitions_def=crawl_shards,
    group_name="mixed",
    code_version=TOKEN_COUNTS_VERSION,
    deps=["cleaned_documents"],
    check_specs=check_specs("token_counts"),
    kinds={"parquet"},
)
def token_counts(
    context: dg.AssetExecutionContext, lake: Lake, tokens: TokenCounter
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """SmolLM2 tokens of every cleaned document of one shard (doc_id, tokens)."""
    shard = context.partition_key
    publication = Publication(
        context, lake, TOKEN_COUNTS_CONTRACT, TOKEN_COUNTS_VERSION, partition=shard
    )
    rows = lake.iter_rows("cleaned_documents", partitions=[shard], columns=["doc_id", "text"])
    with publication.write() as out:
        count_documents(rows, tokens, out.table("documents", TOKEN_COUNTS_SCHEMA))
    yield from publication.results(
        catalog_rows(lake, "cleaned_documents", partitions=[shard]),
        {"tokenizer": tokens.tokenizer_id()},
    )


@dg.asset(
    group_name="mixed",
    code_version=CODE_VERSION,
    deps=list(UPSTREAM),
    check_specs=check_specs("training_mixture"),
    kinds={"parquet", "json", "duckdb"},
)
def training_mixture(
    context: dg.AssetExecutionContext,
    config: MixedConfig,
    lake: Lake,
    tokens: TokenCounter,
    proxy: ProxyEvaluator,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """The training data: shards, a manifest, and for every sampled document where it came from.

    Domain totals come from a GROUP BY over the stored token counts, the weights from the
    totals, and each shard then draws its own documents and writes its own output shards."""
    publication = Publication(context, lake, CONTRACT, CODE_VERSION)
    policy = MixturePolicy(
        config.token_budget,
        config.temperature,
        config.max_repeats,
        config.max_synthetic_share,
        config.seed,
    )
    sources = lake_sources(lake)
    with tempfile.TemporaryDirectory(prefix="foundry-mixture-") as tmp:
        work = Path(tmp)
        con = connect(work, config.memory_limit, config.threads)
        if lake.remote:  # DuckDB reads the lake's files through the lake's own fsspec filesystem
            con.register_filesystem(lake.filesystem)
        count_synthetic(con, sources, tokens, work / "synthetic_tokens.parquet")
        build_pool(
            con,
            sources,
            work / "pool.parquet",
            config.seed,
            config.high_quality_bucket,
            domain_by=config.domain_by,
        )
        draws = work / "draws.parquet"
        plan = _plan(con, sources, draws, config, policy, proxy)
        quotas = solve_quotas(con, draws, plan.weights, policy)
        prepare(con, quotas, plan.weights)
        totals = Totals()
        manifest: dict = {"method": plan.method}
        rounds = plan.search.table() if plan.search else None
        with publication.write(manifest) as out:
            for part, files in sorted(sources.text_files().items()):
                sample_part(con, draws, part, files, policy.max_repeats, policy.seed, out, totals)
            if config.tokenized:
                manifest["tokenized"] = _tokenize(con, out, tokens, totals, policy.seed)
            manifest.update(
                manifest_for(plan, totals, quotas, policy, tokens.tokenizer_id(), _settings(config))
            )
            manifest["upstream_versions"] = lake.versions_of(UPSTREAM)
            manifest["domain_by"] = config.domain_by
            scores = score_summary(con, sources, SCORE_COLUMNS, DOMAIN_COLUMN)
            configs = {
                **run_configs(context.instance, lake),
                "training_mixture": config.model_dump(),
            }
            report = render_report(
                lake,
                manifest,
                configs,
                (totals.documents, totals.dropped),
                title="Audit report: training_mixture",
            )
            _write_version(out, lake, manifest, totals, rounds, report, scores)
        con.close()
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
            "samples": totals.samples,
            "unique_documents": totals.documents,
            "output_shards": len(totals.shards),
            **_search_metadata(manifest, rounds, folder),
        },
        kept=totals.documents,
    )


def _tokenize(
    con: duckdb.DuckDBPyConnection,
    out: VersionWriter,
    tokens: TokenCounter,
    totals: Totals,
    seed: int,
) -> dict:
    shards = [out.staging / "shards" / f"{name}.parquet" for name in sorted(totals.shards)]
    folder = out.staging / TOKENIZED_FOLDER
    written = write_tokenized(con, shards, folder, tokens, seed, totals.tokens, totals.samples)
    return written.manifest(tokens.tokenizer_id(), seed)


def _write_version(
    out: VersionWriter,
    lake: Lake,
    manifest: dict,
    totals: Totals,
    rounds: pl.DataFrame | None,
    audit_report: str,
    scores: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    """Search rounds, manifest, card and audit report, beside the parts' tables and shards."""
    if rounds is not None:
        out.write("search_rounds", rounds, rounds.to_arrow().schema)
    shipped = {**manifest, "shards": sorted(totals.shards)}  # the catalog keeps no shard list
    (out.staging / "manifest.json").write_text(json.dumps(shipped, indent=2))
    (out.staging / AUDIT_REPORT).write_text(audit_report)
    languages = lake.scan("cleaned_documents").group_by("language").len().sort("len")
    write_card(
        out.staging,
        shipped,
        drop_reasons(lake, [asset for _, asset in drop_tables(before="training_mixture")]),
        lake.scan("clusters", "summary").select("cluster_id", "label", "size").collect(),
        languages.collect(engine="streaming"),
        rounds,
        scores,
    )


def _plan(
    con: duckdb.DuckDBPyConnection,
    sources: Sources,
    draws: Path,
    config: MixedConfig,
    policy: MixturePolicy,
    proxy: ProxyEvaluator,
) -> MixturePlan:
    """Weights from bounded data (domain totals, score bins, a seeded sample), and the draws
    table with each document's intensity."""
    held = None
    if config.method == "search" and not config.search.target_path:
        held = held_out_ids(con, config.search.target_tokens, config.seed)
    set_held(con, held)
    if config.method == "quadmix":
        params = {
            k: QuadMixParams(v.threshold, v.steepness, v.scale) for k, v in config.quadmix.items()
        }
        bounds = score_range(con)
        levels = quadmix_levels(quality_levels(con, *bounds), params, policy)
        build_draws(con, draws, levels.rename({"value": "lam"}), bounds)
        return MixturePlan("quadmix", quadmix_weights(levels, policy), levels)
    build_draws(con, draws)
    totals = domain_totals(con)
    if config.method == "manual":
        return plan_manual(totals, policy, config.manual_weights)
    if config.method == "search":
        return _plan_search(con, sources, draws, totals, held, config, policy, proxy)
    return plan_temperature(totals, policy)


def _plan_search(
    con: duckdb.DuckDBPyConnection,
    sources: Sources,
    draws: Path,
    totals: pl.DataFrame,
    held: pl.Series | None,
    config: MixedConfig,
    policy: MixturePolicy,
    proxy: ProxyEvaluator,
) -> MixturePlan:
    """The search fits on a seeded sample of `sample_tokens` per domain (texts fetched once)."""
    s = config.search
    files = sorted({p for paths in sources.text_files().values() for p in paths})
    sample = proxy_sample(con, draws, totals, s.sample_tokens, config.seed)
    sample = sample.join(fetch_texts(con, files, sample["doc_id"]), on="doc_id")
    if s.target_path:
        target = TargetSpec(read_target_file(s.target_path), s.target_tokens, s.target_path)
        held = pl.Series("doc_id", [], dtype=pl.String)
    else:
        kept = fetch_texts(con, files, held)
        n_tokens = con.sql("SELECT sum(tokens) FROM pool SEMI JOIN held USING (doc_id)")
        description = (
            f"{kept.height} held-out organic documents of the top quality bucket "
            f"({int(n_tokens.fetchall()[0][0] or 0):,} tokens)"
        )
        target = TargetSpec(kept.sort("doc_id")["text"].to_list(), s.target_tokens, description)
    params = SearchParams(
        s.rounds, s.candidates, s.concentration, s.pool, s.top_k, s.regressor, config.seed
    )
    return plan_search(
        sample,
        policy,
        params,
        proxy,
        target,
        s.proxy_tokens,
        s.proxy_chunk_tokens,
        totals=totals,
        held_out=held,
    )


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
