"""Dagster definition of the mixed stage: weights over domains, a token-budgeted sample, shards."""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
from pydantic import Field

from assets.contracts import Contract, balance_check, check_specs, contract_check
from assets.corpus import corpus_documents
from assets.documents import DROPPED_SCHEMA
from assets.mixed.card import STAGE_DROPS, drop_reasons, write_card
from assets.mixed.sampling import MixturePolicy, sample_mixture, temperature_weights
from assets.mixed.shards import write_shards
from resources.lake import Lake
from resources.tokenizer import TokenCounter

CODE_VERSION = "mixed-1"
CONTRACT = Contract(
    columns=("sample_id", "doc_id", "repeat", "tokens", "domain", "weight", "shard"),
    unique=("sample_id",),
    not_null=("sample_id", "doc_id", "domain", "shard"),
    ranges={"repeat": (0, None), "tokens": (1, None), "weight": (0.0, 1.0)},
)
UPSTREAM = [
    "cleaned_documents",
    "duplicate_clusters",
    "rephrased_documents",
    "clusters",
    "quality_scores",
]


class MixedConfig(dg.Config):
    token_budget: int = Field(200_000, description="Tokens in the mixture (SmolLM2 tokenizer).")
    temperature: float = Field(2.0, description="Domain weights ~ tokens ** (1/T).")
    max_repeats: int = Field(4, description="Epochs a document may appear at most.")
    max_synthetic_share: float = 0.3
    high_quality_bucket: int = Field(3, description="Buckets at or above this are 'high'.")
    seed: int = 0


@dg.asset(
    group_name="mixed",
    code_version=CODE_VERSION,
    deps=["clusters", "quality_scores"],
    check_specs=check_specs("training_mixture"),
    kinds={"parquet", "json"},
)
def training_mixture(
    context: dg.AssetExecutionContext, config: MixedConfig, lake: Lake, tokens: TokenCounter
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """The training data: shards, a manifest, and for every sampled document where it came from."""
    started = time.perf_counter()
    policy = MixturePolicy(
        config.token_budget,
        config.temperature,
        config.max_repeats,
        config.max_synthetic_share,
        config.seed,
    )
    docs = _domains(lake, tokens, config.high_quality_bucket)
    weights = temperature_weights(docs, policy)
    samples = sample_mixture(docs, weights, policy)
    samples = samples.with_columns(
        (pl.col("doc_id") + "-" + pl.col("repeat").cast(pl.String)).alias("sample_id")
    )
    unsampled = docs.join(samples.select("doc_id").unique(), on="doc_id", how="anti")
    manifest = {
        "token_budget": policy.token_budget,
        "tokens": int(samples["tokens"].sum()),
        "tokenizer": tokens.tokenizer_id(),
        "method": "temperature",
        "policy": policy.__dict__,
        "weights": weights,
        "tokens_per_domain": dict(
            samples.group_by("domain").agg(pl.col("tokens").sum()).iter_rows()
        ),
        "upstream_versions": lake.versions_of(UPSTREAM),
    }
    with lake.publish(
        "training_mixture", run_id=context.run_id, code_version=CODE_VERSION, metadata=manifest
    ) as out:
        placed = write_shards(_shard_rows(samples, docs), out.staging / "shards", policy.seed)
        rows = samples.join(placed, left_on="sample_id", right_on="id")
        out.write("documents", rows, _schema(rows))
        names = sorted(placed["shard"].unique().to_list())
        out.write("dropped", _not_sampled(unsampled, weights), DROPPED_SCHEMA)
        (out.staging / "manifest.json").write_text(
            json.dumps({**manifest, "shards": names}, indent=2)
        )
        write_card(
            out.staging,
            manifest,
            drop_reasons(lake, [asset for _, asset in STAGE_DROPS]),
            lake.scan("clusters", "summary").select("cluster_id", "label", "size").collect(),
            lake.scan("cleaned_documents").group_by("language").len().sort("len").collect(),
        )
    published = Path(lake.files("training_mixture")[0].path).parent
    yield dg.MaterializeResult(
        metadata={
            "dataset_card": dg.MetadataValue.path(str(published / "DATASET_CARD.md")),
            "shards_dir": dg.MetadataValue.path(str(published / "shards")),
            "tokens": manifest["tokens"],
            "compute_s": round(time.perf_counter() - started, 3),
            "token_budget": policy.token_budget,
            "budget_error": abs(manifest["tokens"] - policy.token_budget) / policy.token_budget,
            "weights": dg.MetadataValue.json(weights),
            "tokens_per_domain": dg.MetadataValue.json(manifest["tokens_per_domain"]),
            "samples": samples.height,
            "unique_documents": samples["doc_id"].n_unique(),
        }
    )
    files = [f.path for f in lake.files("training_mixture")]
    yield contract_check("training_mixture", files, CONTRACT)
    kept = samples["doc_id"].n_unique()
    yield balance_check("training_mixture", docs.height, kept, unsampled.height)


def _domains(lake: Lake, tokens: TokenCounter, high_bucket: int) -> pl.DataFrame:
    """Corpus documents with their domain: cluster x quality tier x origin, and token counts."""
    corpus = corpus_documents(lake).select("doc_id", "text", "origin")
    assigned = lake.scan("clusters").select("doc_id", "cluster_id")
    scored = lake.scan("quality_scores").select("doc_id", "quality_bucket")
    semantic_dups = lake.scan("clusters", "dropped").select("doc_id")
    docs = (
        corpus.join(assigned, on="doc_id")
        .join(scored, on="doc_id")
        .join(semantic_dups, on="doc_id", how="anti")
        .collect()
    )
    tier = (
        pl.when(pl.col("quality_bucket") >= high_bucket).then(pl.lit("hq")).otherwise(pl.lit("lq"))
    )
    domain = pl.format("c{}-{}-{}", pl.col("cluster_id"), tier, pl.col("origin"))
    counts = tokens.count(docs["text"].to_list())
    return docs.with_columns(domain.alias("domain"), pl.Series("tokens", counts, dtype=pl.Int64))


def _shard_rows(samples: pl.DataFrame, docs: pl.DataFrame) -> pl.DataFrame:
    joined = samples.join(
        docs.select("doc_id", "text", "origin", "cluster_id", "quality_bucket"), on="doc_id"
    )
    metadata = pl.struct(
        "doc_id", "repeat", "domain", "origin", "cluster_id", "quality_bucket", "tokens"
    ).alias("metadata")
    return joined.select(pl.col("sample_id").alias("id"), "text", metadata)


def _not_sampled(unsampled: pl.DataFrame, weights: dict[str, float]) -> pl.DataFrame:
    return unsampled.select(
        "doc_id",
        pl.lit("mixed").alias("stage"),
        pl.lit("mixture:not_sampled").alias("rule"),
        pl.col("domain")
        .replace_strict(weights, default=None, return_dtype=pl.Float64)
        .alias("value"),
        pl.lit(None, dtype=pl.Float64).alias("threshold"),
        (pl.lit("domain ") + pl.col("domain") + pl.lit(" filled its token share without it")).alias(
            "detail"
        ),
    )


def _schema(frame: pl.DataFrame):
    return frame.to_arrow().schema
