"""Dagster definition of the rephrased stage: vLLM rewrites, on the GPU pool, resumable."""

from collections import Counter
from collections.abc import Iterable, Iterator

import dagster as dg
import pyarrow as pa
from pydantic import Field

from assets.contracts import Contract, check_specs
from assets.corpus import organic_documents
from assets.defaults import default_of
from assets.documents import DROPPED_SCHEMA, Drop
from assets.partitions import GPU_POOL, GPU_TAG
from assets.progress import Progress
from assets.publishing import Publication
from assets.rephrased.checkpoints import (
    FinishedWork,
    checkpoint_batch,
    finished_work,
    prune_folded,
)
from assets.rephrased.quality import QualityPolicy
from assets.rephrased.rewrite import (
    REQUEST_FAILED,
    ChunkLimits,
    RewriteKey,
    batched,
    rewrite_documents,
)
from assets.rephrased.schema import REPHRASED_SCHEMA
from assets.rephrased.select import Selection, SelectionName, select_todo
from assets.rephrased.styles import Style, get_style
from resources.lake import Lake
from resources.langid import LanguageIdentifier
from resources.rewriter import VLLMRewriter

CODE_VERSION = "rephrased-3"  # 3: continuous HTTP, bounded selection, checkpoint index
CONTRACT = Contract(
    columns=tuple(REPHRASED_SCHEMA.names),
    not_null=("doc_id", "source_doc_id", "style_id", "model", "text"),
    ranges={"completion_tokens": (1, None)},
    max_drop_share=None,  # a small model's rejects are recorded and reported, not a broken run
)


class RephrasedConfig(dg.Config):
    styles: list[str] = Field(
        ["wrap_wikipedia"],
        description="Style ids from assets/rephrased/styles.toml; each gets its own budget.",
    )
    selection: SelectionName = Field(
        default_of(Selection, "policy"), description="Which documents are rewritten."
    )
    near_miss_margin: float = Field(
        default_of(Selection, "near_miss_margin"),
        description="near_miss: relative distance to threshold.",
    )
    score_band_low: float = Field(
        default_of(Selection, "score_band")[0], description="score_band: lowest percentile."
    )
    score_band_high: float = Field(
        default_of(Selection, "score_band")[1], description="score_band: highest percentile."
    )
    max_new_documents: int = Field(
        default_of(Selection, "max_new_documents"), description="Budget of new rewrites per run."
    )
    band_sample: int = Field(
        default_of(Selection, "band_sample"),
        description="score_band: documents (smallest ids) whose scores set the percentiles.",
    )
    max_source_tokens_total: int = Field(
        default_of(Selection, "max_source_tokens_total"),
        description="Token budget of sources; 0 = none.",
    )
    languages: list[str] = Field(
        list(default_of(Selection, "languages")),
        description="Source languages the model handles.",
    )
    batch_size: int = Field(
        8,
        description="Documents per persisted batch (and per in-process vLLM call; over HTTP "
        "requests flow continuously, max_in_flight per endpoint).",
    )
    max_source_tokens: int = Field(
        default_of(ChunkLimits, "max_source_tokens"),
        description="Longer sources are cut (and marked).",
    )
    chunk_tokens: int = Field(
        default_of(ChunkLimits, "chunk_tokens"),
        description="Source tokens per request; chunks are rejoined.",
    )

    def selection_policy(self) -> Selection:
        return Selection(
            self.selection,
            self.near_miss_margin,
            (self.score_band_low, self.score_band_high),
            self.max_new_documents,
            self.max_source_tokens_total,
            tuple(self.languages),
            self.band_sample,
        )


@dg.asset(
    group_name="rephrased",
    code_version=CODE_VERSION,
    deps=["raw_documents", "cleaned_documents", "duplicate_clusters", "decontamination"],
    check_specs=check_specs("rephrased_documents"),
    kinds={"parquet", "duckdb"},
    pool=GPU_POOL,
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
    publication = Publication(context, lake, CONTRACT, CODE_VERSION)
    styles = [get_style(style_id) for style_id in config.styles]
    before = finished_work(lake)
    todos = _todos(lake, config.selection_policy(), styles, rewriter, before)
    selected: Counter[str] = Counter()

    def work() -> Iterator[tuple[Style, dict]]:
        for style, rows in todos:
            for doc in rows:
                selected[style.style_id] += 1
                yield style, doc

    bounded = all(isinstance(rows, list) for _, rows in todos)
    total = sum(len(rows) for _, rows in todos) if bounded else None  # type: ignore[arg-type]
    progress = Progress(context.log, "rewrites", total=total)
    limits = ChunkLimits(config.max_source_tokens, config.chunk_tokens)
    rules: Counter[str] = Counter()
    quarantined: list[Drop] = []
    outcomes = rewrite_documents(
        work(), rewriter, language_identifier.identify, QualityPolicy(), limits, config.batch_size
    )
    for batch in batched(outcomes, config.batch_size):
        checkpoint_batch(lake, batch)
        drops = [i for i in batch if isinstance(i, Drop)]
        quarantined += [d for d in drops if d.rule == REQUEST_FAILED]
        rules.update(d.rule for d in drops)
        progress.advance(len(batch))
    timings = progress.finish()
    final = finished_work(lake)
    with publication.write() as out:
        final.write(lake, out)
        rows = [d.row() for d in quarantined]
        out.write("dropped", pa.Table.from_pylist(rows, schema=DROPPED_SCHEMA), DROPPED_SCHEMA)
    rows_in = before.rows(lake) + sum(selected.values())
    new_per_style = {style.style_id: selected[style.style_id] for style in styles}
    yield from publication.results(
        rows_in,
        {
            "new_rewrites": sum(new_per_style.values()),
            "new_rewrites_per_style": dg.MetadataValue.json(new_per_style),
            "rejected_this_run": dg.MetadataValue.json(dict(rules)),
            "quarantined_this_run": len(quarantined),
            "checkpoints_read": len(before.fresh),
            "model": rewriter.model_id(),
            "styles": [f"{style.style_id} v{style.version}" for style in styles],
            **{k: dg.MetadataValue.json(v) for k, v in rewriter.http_stats().items()},
            **timings,
        },
    )
    if pruned := prune_folded(lake):
        context.log.info(
            f"rephrased_documents: {pruned} checkpoints held by the current version deleted"
        )


def _todos(
    lake: Lake,
    selection: Selection,
    styles: list[Style],
    rewriter: VLLMRewriter,
    finished: FinishedWork,
) -> list[tuple[Style, Iterable[dict]]]:
    """Each style's documents to rewrite: a list within a budget, a stream for `all`."""
    organic = organic_documents(lake)
    todos: list[tuple[Style, Iterable[dict]]] = []
    for style in styles:
        done = finished.done_sources(lake, _key(style, rewriter))
        rows = select_todo(lake, organic, selection, done, rewriter.count_tokens)
        todos.append((style, rows if selection.policy == "all" else list(rows)))
    return todos


def _key(style: Style, rewriter: VLLMRewriter) -> RewriteKey:
    return RewriteKey(style.style_id, style.version, style.prompt_hash, rewriter.model_id())
