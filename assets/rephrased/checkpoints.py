"""Finished rewriting work: published versions plus batches checkpointed since, so a killed run
resumes where it stopped and no document is rewritten twice."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from assets.documents import DROPPED_SCHEMA, Drop
from assets.rephrased.schema import REPHRASED_SCHEMA
from resources.lake import Lake

ASSET = "rephrased_documents"


@dataclass(frozen=True)
class FinishedWork:
    kept: pl.DataFrame
    dropped: pl.DataFrame

    @property
    def doc_ids(self) -> set[str]:
        return set(self.kept["doc_id"]) | set(self.dropped["doc_id"])


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
    lake.write_checkpoint(ASSET, batch_key, tables)


def finished_work(lake: Lake) -> FinishedWork:
    """Every rewrite and rejection so far (published or checkpointed) whose source is still in
    the crawl (organic survivors for most policies, dropped near misses for `near_miss`)."""
    kept = [pl.from_arrow(REPHRASED_SCHEMA.empty_table())]
    dropped = [pl.from_arrow(DROPPED_SCHEMA.empty_table())]
    if lake.has(ASSET):
        kept.append(lake.scan(ASSET).collect())
        dropped.append(lake.scan(ASSET, "dropped").collect())
    for frames, table in ((kept, "documents"), (dropped, "dropped")):
        checkpointed = lake.read_checkpoints(ASSET, table)
        if checkpointed is not None:
            frames.append(checkpointed)
    sources = lake.scan("raw_documents").select(pl.col("doc_id").alias("source_doc_id")).collect()
    all_kept = pl.concat(kept, how="diagonal_relaxed").unique("doc_id", keep="first")
    all_kept = all_kept.join(sources, on="source_doc_id", how="semi").sort("doc_id")
    all_dropped = pl.concat(dropped, how="diagonal_relaxed").unique("doc_id", keep="first")
    return FinishedWork(all_kept, all_dropped.sort("doc_id"))
