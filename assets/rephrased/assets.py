"""Dagster definition of the rephrased stage: vLLM rewrites, on the GPU pool, resumable."""

from collections import Counter
from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from assets.contracts import Contract, check_specs
from assets.corpus import organic_documents
from assets.defaults import default_of
from assets.documents import DROPPED_SCHEMA, Drop
from assets.partitions import GPU_POOL, GPU_TAG
from assets.progress import Progress
from assets.publishing import Publication
from assets.rephrased.checkpoints import checkpoint_batch, finished_work
from assets.rephrased.quality import QualityPolicy
from assets.rephrased.rewrite import ChunkLimits, RewriteKey, batched, rewrite_batch
from assets.rephrased.schema import REPHRASED_SCHEMA
from assets.rephrased.select import Selection, SelectionName, select_todo
from assets.rephrased.styles import Style, get_style
from resources.lake import Lake
from resources.langid import LanguageIdentifier
from resources.rewriter import VLLMRewriter

CODE_VERSION = "rephrased-2"  # 2: seeds recorded as sent, determinism column, new QC rules
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
    max_source_tokens_total: int = Field(
        default_of(Selection, "max_source_tokens_total"),
        description="Token budget of sources; 0 = none.",
    )
    languages: list[str] = Field(
        list(default_of(Selection, "languages")),
        description="Source languages the model handles.",
    )
    batch_size: int = Field(8, description="Documents per vLLM call (and per persisted batch).")
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
        )


@dg.asset(
    group_name="rephrased",
    code_version=CODE_VERSION,
    deps=["raw_documents", "cleaned_documents", "duplicate_clusters"],
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
    organic, done = organic_documents(lake), finished_work(lake)
    todos = [
        (
            style,
            select_todo(
                lake,
                organic,
                config.selection_policy(),
                _key(style, rewriter),
                done.doc_ids,
                rewriter.count_tokens,
            ),
        )
        for style in styles
    ]
    new_per_style = {style.style_id: todo.height for style, todo in todos}
    progress = Progress(context.log, "rewrites", total=sum(new_per_style.values()))
    limits = ChunkLimits(config.max_source_tokens, config.chunk_tokens)
    rules: Counter[str] = Counter()
    for style, todo in todos:
        for batch in batched(todo.iter_rows(named=True), config.batch_size):
            items = list(
                rewrite_batch(
                    batch, style, rewriter, language_identifier.identify, QualityPolicy(), limits
                )
            )
            checkpoint_batch(lake, items)
            rules.update(i.rule for i in items if isinstance(i, Drop))
            progress.advance(len(batch))
    timings = progress.finish()
    final = finished_work(lake)
    with publication.write() as out:
        out.write("documents", final.kept, REPHRASED_SCHEMA)
        out.write("dropped", final.dropped, DROPPED_SCHEMA)
    rows_in = done.kept.height + done.dropped.height + sum(new_per_style.values())
    yield from publication.results(
        rows_in,
        {
            "new_rewrites": sum(new_per_style.values()),
            "new_rewrites_per_style": dg.MetadataValue.json(new_per_style),
            "rejected_this_run": dg.MetadataValue.json(dict(rules)),
            "model": rewriter.model_id(),
            "styles": [f"{style.style_id} v{style.version}" for style in styles],
            **timings,
        },
    )


def _key(style: Style, rewriter: VLLMRewriter) -> RewriteKey:
    return RewriteKey(style.style_id, style.version, style.prompt_hash, rewriter.model_id())
