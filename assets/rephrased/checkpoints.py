"""Finished rewriting work: published versions plus batches checkpointed since, so a killed run
resumes where it stopped and no document is rewritten twice.

Each published version lists, in its `checkpoints` table, the checkpoint keys whose rows it holds.
A run therefore lists checkpoint folder names and reads the rows of the new ones only; what it
needs of the published version (ids, sources, counts) it reads column by column, and the next
version streams the published rows through in batches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, replace

import polars as pl
import pyarrow as pa

from assets.documents import DROPPED_SCHEMA, Drop
from assets.rephrased.rewrite import REQUEST_FAILED, RewriteKey
from assets.rephrased.schema import REPHRASED_SCHEMA
from resources.lake import Lake, VersionWriter

ASSET = "rephrased_documents"
FOLDED = "checkpoints"  # table of a version: the checkpoint keys whose rows it holds
FOLDED_SCHEMA = pa.schema([("checkpoint", pa.string())])
_SOURCE = r"source=(\S+)"


def checkpoint_batch(lake: Lake, items: list[dict | Drop]) -> None:
    """Persist a finished batch at once: a crash later loses nothing that was generated here.
    Quarantined documents (requests that failed) are not finished work and are left out."""
    rows = [i for i in items if not isinstance(i, Drop)]
    drops = [i.row() for i in items if isinstance(i, Drop) and i.rule != REQUEST_FAILED]
    if not rows and not drops:
        return
    ids = sorted(r["doc_id"] for r in rows) + sorted(d["doc_id"] for d in drops)
    batch_key = hashlib.blake2b("".join(ids).encode(), digest_size=10).hexdigest()
    tables = {
        "documents": pa.Table.from_pylist(rows, schema=REPHRASED_SCHEMA),
        "dropped": pa.Table.from_pylist(drops, schema=DROPPED_SCHEMA),
    }
    lake.write_checkpoint(ASSET, batch_key, tables)


@dataclass(frozen=True)
class FinishedWork:
    """Every rewrite and rejection so far: the current version plus the checkpoints it does not
    hold yet (`fresh`, whose rows are read: at most what the runs since the last publish made)."""

    published: bool
    folded: tuple[str, ...]
    fresh: tuple[str, ...]
    fresh_kept: pl.DataFrame
    fresh_dropped: pl.DataFrame
    live_sources: pl.DataFrame  # (source_doc_id) of the rewrites that raw_documents still holds

    def kept(self, lake: Lake) -> pl.LazyFrame:
        """Accepted rewrites whose source is still in the crawl (organic survivors for most
        policies, dropped near misses for `near_miss`), once each."""
        live = self.live_sources.lazy()
        return _all_kept(lake, self).join(live, on="source_doc_id", how="semi")

    def dropped(self, lake: Lake) -> pl.LazyFrame:
        """Rejected rewrites, once each; a quarantine (a failed request) lasts one version."""
        frames = [self.fresh_dropped.lazy()]
        if self.published:
            frames.insert(0, lake.scan(ASSET, "dropped").select(DROPPED_SCHEMA.names))
        dropped = pl.concat(frames, how="diagonal_relaxed")
        dropped = dropped.filter(pl.col("rule") != REQUEST_FAILED)
        return dropped.unique("doc_id", keep="first", maintain_order=True)

    def rows(self, lake: Lake) -> int:
        """Finished rewrites and rejections a new version carries over."""
        count = pl.len()
        kept = self.kept(lake).select(count).collect().item()
        return kept + self.dropped(lake).select(count).collect().item()

    def done_sources(self, lake: Lake, key: RewriteKey) -> pl.LazyFrame:
        """(doc_id) of the sources rewritten or rejected for this style version, prompt and model:
        ids and a few key columns are read, never texts."""
        same = (
            (pl.col("style_id") == key.style_id)
            & (pl.col("style_version") == key.style_version)
            & (pl.col("prompt_hash") == key.prompt_hash)
            & (pl.col("model") == key.model)
        )
        kept = self.kept(lake).filter(same).select(pl.col("source_doc_id").alias("doc_id"))
        rejected = (
            self.dropped(lake)
            .filter(pl.col("detail").str.contains(f"style={key.style_id}", literal=True))
            .select("doc_id", pl.col("detail").str.extract(_SOURCE).alias("source"))
            .collect()
        )
        own = [s for d, s in rejected.iter_rows() if s and key.rewrite_id(s) == d]
        sources = pl.LazyFrame({"doc_id": own}, schema={"doc_id": pl.String})
        return pl.concat([kept, sources]).unique()

    def write(self, lake: Lake, out: VersionWriter) -> None:
        """Stream the finished work into a new version, batch by batch, with the keys it holds."""
        sinks = {
            "documents": (out.table("documents", REPHRASED_SCHEMA), self.kept(lake)),
            "dropped": (out.table("dropped", DROPPED_SCHEMA), self.dropped(lake)),
        }
        for sink, rows in sinks.values():
            for batch in _batches(rows):
                sink.write(batch)
        keys = sorted({*self.folded, *self.fresh})
        out.write(FOLDED, pa.table({"checkpoint": keys}, schema=FOLDED_SCHEMA), FOLDED_SCHEMA)


def finished_work(lake: Lake) -> FinishedWork:
    """What is finished, reading checkpoint names, the current version's list of the checkpoints
    it holds, and the rows of the other checkpoints only."""
    published = lake.has(ASSET)
    folded: tuple[str, ...] = ()
    if published and lake.has(ASSET, FOLDED):
        folded = tuple(lake.scan(ASSET, FOLDED).collect()["checkpoint"])
    known = set(folded)
    fresh = tuple(k for k in lake.checkpoint_keys(ASSET) if k not in known)
    frames = {}
    for table, schema in (("documents", REPHRASED_SCHEMA), ("dropped", DROPPED_SCHEMA)):
        rows = lake.read_checkpoints(ASSET, table, keys=fresh) if fresh else None
        frames[table] = pl.from_arrow(schema.empty_table()) if rows is None else rows
    work = FinishedWork(published, folded, fresh, frames["documents"], frames["dropped"], _NONE)
    return replace(work, live_sources=_live_sources(lake, _all_kept(lake, work)))


def prune_folded(lake: Lake) -> int:
    """Delete the checkpoints the current version holds: their rows are in it, and no later run
    reads them. Checkpoints of a rejected or failed version stay until one is committed."""
    if not lake.has(ASSET, FOLDED):
        return 0
    folded = set(lake.scan(ASSET, FOLDED).collect()["checkpoint"])
    held = [key for key in lake.checkpoint_keys(ASSET) if key in folded]
    lake.delete_checkpoints(ASSET, held)
    return len(held)


_NONE = pl.DataFrame(schema={"source_doc_id": pl.String})


def _all_kept(lake: Lake, work: FinishedWork) -> pl.LazyFrame:
    frames = [work.fresh_kept.lazy()]
    if work.published:
        frames.insert(0, lake.scan(ASSET).select(REPHRASED_SCHEMA.names))
    kept = pl.concat(frames, how="diagonal_relaxed")
    return kept.unique("doc_id", keep="first", maintain_order=True)


def _live_sources(lake: Lake, kept: pl.LazyFrame) -> pl.DataFrame:
    """The rewrites' source ids that raw_documents still holds: the raw scan is filtered by
    the source ids of the rewrites (one column), so nothing corpus-sized is held."""
    sources = kept.select("source_doc_id").unique().collect()["source_doc_id"]
    if sources.is_empty():
        return _NONE
    raw = lake.scan("raw_documents").select(pl.col("doc_id").alias("source_doc_id"))
    return raw.filter(pl.col("source_doc_id").is_in(sources.implode())).unique().collect()


def _batches(rows: pl.LazyFrame, size: int = 2048) -> Iterator[pl.DataFrame]:
    yield from rows.collect_batches(chunk_size=size)
