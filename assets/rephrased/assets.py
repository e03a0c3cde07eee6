"""Dagster definition of the rephrased stage: vLLM rewrites, on the GPU pool, resumable."""

import time
from collections import Counter
from collections.abc import Iterator

import dagster as dg
import polars as pl
from pydantic import Field

from assets.contracts import Contract, balance_check, check_specs, contract_check
from assets.corpus import organic_documents
from assets.documents import DROPPED_SCHEMA, Drop
from assets.rephrased.quality import QualityPolicy
from assets.rephrased.rewrite import RewriteKey, batched, rewrite_batch
from assets.rephrased.schema import REPHRASED_SCHEMA
from assets.rephrased.styles import get_style
from resources.lake import Lake
from resources.langid import LanguageIdentifier
from resources.rewriter import VLLMRewriter

CODE_VERSION = "rephrased-1"
CONTRACT = Contract(
    columns=tuple(REPHRASED_SCHEMA.names),
    not_null=("doc_id", "source_doc_id", "style_id", "model", "text"),
    ranges={"completion_tokens": (1, None)},
)
GPU_TAG = {"foundry/gpu": "1"}


class RephrasedConfig(dg.Config):
    style: str = Field("wrap_wikipedia", description="A style id from assets/rephrased/styles.toml")
    max_new_documents: int = Field(8, description="Budget of new rewrites per run.")
    languages: list[str] = Field(["en"], description="Source languages the model handles.")
    batch_size: int = Field(16, description="Documents per vLLM call (and per persisted batch).")


@dg.asset(
    group_name="rephrased",
    code_version=CODE_VERSION,
    deps=["cleaned_documents", "duplicate_clusters"],
    check_specs=check_specs("rephrased_documents"),
    kinds={"parquet", "duckdb"},
    pool="gpu",
    op_tags=GPU_TAG,
)
def rephrased_documents(
    context: dg.AssetExecutionContext,
    config: RephrasedConfig,
    lake: Lake,
    rewriter: VLLMRewriter,
    language_identifier: LanguageIdentifier,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Synthetic rewrites of selected documents, each naming source, style, model and sampling."""
    style = get_style(config.style)
    key = RewriteKey(style.style_id, style.version, style.prompt_hash, rewriter.model_id())
    organic = organic_documents(lake)
    carried, carried_drops = _previous_work(lake, organic)
    done = set(carried["doc_id"]) | set(carried_drops["doc_id"])
    todo = _select(organic, config, key, done)
    rules: Counter[str] = Counter()
    started = time.perf_counter()
    with lake.publish(
        "rephrased_documents", run_id=context.run_id, code_version=CODE_VERSION
    ) as out:
        kept = out.table("documents", REPHRASED_SCHEMA)
        dropped = out.table("dropped", DROPPED_SCHEMA)
        kept.write(carried)
        dropped.write(carried_drops)
        for batch in batched(todo.iter_rows(named=True), config.batch_size):
            context.log.info(f"rewriting {len(batch)} documents in style {style.style_id}")
            for item in rewrite_batch(
                batch, style, rewriter, language_identifier.identify, QualityPolicy()
            ):
                if isinstance(item, Drop):
                    dropped.append(item.row())
                    rules[item.rule] += 1
                else:
                    kept.append(item)
    yield dg.MaterializeResult(
        metadata={
            "new_rewrites": todo.height,
            "carried_over": carried.height + carried_drops.height,
            "accepted_total": kept.rows,
            "rejected_total": dropped.rows,
            "rejected_this_run": dg.MetadataValue.json(dict(rules)),
            "model": key.model,
            "compute_s": round(time.perf_counter() - started, 3),
            "style": f"{style.style_id} v{style.version}",
        }
    )
    files = lake.files("rephrased_documents")
    yield contract_check("rephrased_documents", [f.path for f in files], CONTRACT)
    rows_in = carried.height + carried_drops.height + todo.height
    yield balance_check("rephrased_documents", rows_in, kept.rows, dropped.rows)


def _previous_work(lake: Lake, organic: pl.LazyFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rewrites (and rejections) of earlier runs whose source document is still in the corpus."""
    if not lake.has("rephrased_documents"):
        empty = pl.from_arrow(REPHRASED_SCHEMA.empty_table())
        return empty, pl.from_arrow(DROPPED_SCHEMA.empty_table())
    sources = organic.select(pl.col("doc_id").alias("source_doc_id"))
    kept = lake.scan("rephrased_documents").join(sources, on="source_doc_id", how="semi").collect()
    drops = lake.scan("rephrased_documents", "dropped").collect()
    return kept, drops


def _select(
    organic: pl.LazyFrame, config: RephrasedConfig, key: RewriteKey, done: set[str]
) -> pl.DataFrame:
    """A deterministic sample: doc ids are hashes, so id order is a seeded shuffle."""
    candidates = (
        organic.filter(pl.col("language").is_in(config.languages))
        .select("doc_id", "text")
        .sort("doc_id")
        .with_columns(
            pl.col("doc_id")
            .map_elements(key.rewrite_id, return_dtype=pl.String)
            .alias("rewrite_id")
        )
        .filter(~pl.col("rewrite_id").is_in(list(done)))
        .head(config.max_new_documents)
    )
    return candidates.collect()
