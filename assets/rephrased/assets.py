"""Dagster definition of the rephrased stage: vLLM rewrites, on the GPU pool, resumable."""

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import dagster as dg
import polars as pl
import pyarrow as pa
from pydantic import Field

from assets.contracts import Contract, balance_check, check_specs, contract_check
from assets.corpus import organic_documents
from assets.documents import DROPPED_SCHEMA, Drop
from assets.progress import Progress
from assets.rephrased.quality import QualityPolicy
from assets.rephrased.rewrite import ChunkLimits, RewriteKey, batched, rewrite_batch
from assets.rephrased.schema import REPHRASED_SCHEMA
from assets.rephrased.select import POLICIES, candidates, within_budget
from assets.rephrased.styles import Style, get_style
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
    styles: list[str] = Field(
        ["wrap_wikipedia"],
        description="Style ids from assets/rephrased/styles.toml; each gets its own budget.",
    )
    selection: str = Field("sample", description=f"Which documents: one of {POLICIES}.")
    near_miss_margin: float = Field(0.2, description="near_miss: relative distance to threshold.")
    score_band_low: float = Field(0.0, description="score_band: lowest percentile (0-1).")
    score_band_high: float = Field(0.5, description="score_band: highest percentile (0-1).")
    max_new_documents: int = Field(8, description="Budget of new rewrites per run.")
    max_source_tokens_total: int = Field(0, description="Token budget of sources; 0 = none.")
    languages: list[str] = Field(["en"], description="Source languages the model handles.")
    batch_size: int = Field(8, description="Documents per vLLM call (and per persisted batch).")
    max_source_tokens: int = Field(1024, description="Longer sources are cut (and marked).")
    chunk_tokens: int = Field(320, description="Source tokens per request; chunks are rejoined.")


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
    styles = [get_style(style_id) for style_id in config.styles]
    started = time.perf_counter()
    organic = organic_documents(lake)
    done = _finished_work(lake)
    finished = set(done.kept["doc_id"]) | set(done.dropped["doc_id"])
    rules: Counter[str] = Counter()
    todos = [
        (
            style,
            _select(lake, organic, config, _key(style, rewriter), finished, rewriter.count_tokens),
        )
        for style in styles
    ]
    new_per_style = {style.style_id: todo.height for style, todo in todos}
    progress = Progress(context.log, "rewrites", total=sum(new_per_style.values()))
    for style, todo in todos:
        for batch in batched(todo.iter_rows(named=True), config.batch_size):
            items = list(
                rewrite_batch(
                    batch,
                    style,
                    rewriter,
                    language_identifier.identify,
                    QualityPolicy(),
                    ChunkLimits(config.max_source_tokens, config.chunk_tokens),
                )
            )
            checkpoint_batch(lake, items)
            rules.update(i.rule for i in items if isinstance(i, Drop))
            progress.advance(len(batch))
    timings = progress.finish()
    final = _finished_work(lake)
    with lake.publish(
        "rephrased_documents", run_id=context.run.run_id, code_version=CODE_VERSION
    ) as out:
        kept = out.table("documents", REPHRASED_SCHEMA)
        dropped = out.table("dropped", DROPPED_SCHEMA)
        kept.write(final.kept)
        dropped.write(final.dropped)
    yield dg.MaterializeResult(
        metadata={
            "new_rewrites": sum(new_per_style.values()),
            "new_rewrites_per_style": dg.MetadataValue.json(new_per_style),
            "accepted_total": kept.rows,
            "rejected_total": dropped.rows,
            "rejected_this_run": dg.MetadataValue.json(dict(rules)),
            "model": rewriter.model_id(),
            "styles": [f"{style.style_id} v{style.version}" for style in styles],
            "compute_s": round(time.perf_counter() - started, 3),
            **timings,
        }
    )
    files = lake.files("rephrased_documents")
    yield contract_check("rephrased_documents", [f.path for f in files], CONTRACT)
    rows_in = done.kept.height + done.dropped.height + sum(new_per_style.values())
    yield balance_check("rephrased_documents", rows_in, kept.rows, dropped.rows)


def _key(style: Style, rewriter: VLLMRewriter) -> RewriteKey:
    return RewriteKey(style.style_id, style.version, style.prompt_hash, rewriter.model_id())


@dataclass(frozen=True)
class FinishedWork:
    kept: pl.DataFrame
    dropped: pl.DataFrame


def checkpoint_batch(lake: Lake, items: list[dict | Drop]) -> None:
    """Persist a finished batch at once: a crash later loses nothing that was generated here."""
    rows = [i for i in items if not isinstance(i, Drop)]
    drops = [i.row() for i in items if isinstance(i, Drop)]
    ids = sorted(r["doc_id"] for r in rows) + sorted(d["doc_id"] for d in drops)
    batch_key = hashlib.blake2b("".join(ids).encode(), digest_size=10).hexdigest()
    tables = {
        "documents": pa.Table.from_pylist(rows, schema=REPHRASED_SCHEMA),
        "dropped": pa.Table.from_pylist(drops, schema=DROPPED_SCHEMA),
    }
    lake.write_checkpoint("rephrased_documents", batch_key, tables)


def _finished_work(lake: Lake) -> FinishedWork:
    """Every rewrite and rejection so far (published or checkpointed) whose source is still in
    the crawl (organic survivors for most policies, dropped near misses for `near_miss`)."""
    kept = [pl.from_arrow(REPHRASED_SCHEMA.empty_table())]
    dropped = [pl.from_arrow(DROPPED_SCHEMA.empty_table())]
    if lake.has("rephrased_documents"):
        kept.append(lake.scan("rephrased_documents").collect())
        dropped.append(lake.scan("rephrased_documents", "dropped").collect())
    for frames, table in ((kept, "documents"), (dropped, "dropped")):
        checkpointed = lake.read_checkpoints("rephrased_documents", table)
        if checkpointed is not None:
            frames.append(checkpointed)
    sources = lake.scan("raw_documents").select(pl.col("doc_id").alias("source_doc_id")).collect()
    all_kept = pl.concat(kept, how="diagonal_relaxed").unique("doc_id", keep="first")
    all_kept = all_kept.join(sources, on="source_doc_id", how="semi").sort("doc_id")
    all_dropped = pl.concat(dropped, how="diagonal_relaxed").unique("doc_id", keep="first")
    return FinishedWork(all_kept, all_dropped.sort("doc_id"))


def _select(
    lake: Lake,
    organic: pl.LazyFrame,
    config: RephrasedConfig,
    key: RewriteKey,
    done: set[str],
    count: Callable[[str], int],
) -> pl.DataFrame:
    """The policy's candidates in a stable order, minus finished work, within the budgets."""
    band = (config.score_band_low, config.score_band_high)
    pool = candidates(lake, organic, config.selection, config.near_miss_margin, band)
    pool = pool.filter(pl.col("language").is_in(config.languages)).select("doc_id", "text")
    rows = (
        row
        for batch in pool.collect_batches(chunk_size=1024)
        for row in batch.iter_rows(named=True)
        if key.rewrite_id(row["doc_id"]) not in done
    )
    limit = config.max_new_documents if config.selection != "all" else 10**12
    chosen = within_budget(rows, limit, config.max_source_tokens_total, count)
    return pl.DataFrame(chosen, schema={"doc_id": pl.String, "text": pl.String})
