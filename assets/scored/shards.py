"""The corpus one crawl shard at a time: what the scored stage's maps read.

A unit of work is a crawl shard: its organic documents are that partition of cleaned_documents
minus the duplicates removed from it, and its synthetic ones that partition of
rephrased_documents when rewrites are partitioned by shard. Rewrites stored unpartitioned form
one more unit of their own (their number is bounded by the rewrite budget). A table partitioned
by shard is read by partition; an unpartitioned one is filtered by the unit's ids. Either way
no read grows with the corpus times the number of batches, and nothing holds more than a shard.
"""

from __future__ import annotations

from functools import cache

import polars as pl

from assets.corpus import REMOVED_AFTER_CLEANING
from resources.catalog import UNPARTITIONED
from resources.lake import Lake

DOC_COLUMNS = ("doc_id", "origin", "language", "text")
VECTOR_COLUMNS = ("doc_id", "text_hash", "model_id", "embedding")


class ShardReader:
    """Per-unit reads of the tables the scored stage uses; partitions are listed once per table."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self.partitions = cache(self._partitions)

    def _partitions(self, asset: str, table: str = "documents") -> frozenset[str]:
        if not self.lake.has(asset, table):
            return frozenset()
        return frozenset(f.partition for f in self.lake.files(asset, table))

    def units(self, synthetic: bool = True) -> list[str]:
        """Shards in partition order, then the unpartitioned rewrites if there are any
        (`synthetic=False`: the shards of organic documents only)."""
        named = self.partitions("cleaned_documents")
        if synthetic:
            named |= self.partitions("rephrased_documents")
        return sorted(named - {UNPARTITIONED}) + sorted(named & {UNPARTITIONED})

    def _scan(self, asset: str, table: str, unit: str) -> pl.LazyFrame | None:
        """The unit's partition of a table, or None when the table has no such partition."""
        if unit not in self.partitions(asset, table):
            return None
        return self.lake.scan(asset, table, [unit])

    def organic(self, unit: str) -> pl.LazyFrame | None:
        docs = self._scan("cleaned_documents", "documents", unit)
        if docs is None:
            return None
        for name in REMOVED_AFTER_CLEANING:
            parts = self.partitions(name, "dropped")
            if parts:
                where = [unit] if unit in parts else sorted(parts)
                removed = self.lake.scan(name, "dropped", where).select("doc_id")
                docs = docs.join(removed, on="doc_id", how="anti")
        return docs

    def documents(self, unit: str) -> pl.LazyFrame:
        """doc_id, origin, language, text of the unit's corpus documents (organic first)."""
        frames = []
        if (organic := self.organic(unit)) is not None:
            frames.append(
                organic.select("doc_id", pl.lit("organic").alias("origin"), "language", "text")
            )
        if (synthetic := self._scan("rephrased_documents", "documents", unit)) is not None:
            frames.append(
                synthetic.select("doc_id", pl.lit("synthetic").alias("origin"), "language", "text")
            )
        if not frames:
            return pl.LazyFrame(schema=dict.fromkeys(DOC_COLUMNS, pl.String))
        return pl.concat(frames, how="vertical_relaxed")

    def rows(
        self,
        asset: str,
        table: str,
        ids: pl.Series,
        unit: str | None = None,
        columns: list[str] | None = None,
    ) -> pl.DataFrame:
        """Rows of `ids` in one table: read from the unit's partition when the table is
        partitioned by shard, else filtered out of the whole table (an empty frame when the
        table does not exist)."""
        parts = self.partitions(asset, table)
        if not parts or ids.is_empty():
            return pl.DataFrame(schema={"doc_id": pl.String})
        where = [unit] if unit in parts and unit != UNPARTITIONED else None
        wanted = pl.col("doc_id").is_in(ids.implode())
        scan = self.lake.scan(asset, table, where)
        scan = scan.select(columns) if columns else scan
        return scan.filter(wanted).collect(engine="streaming")

    def vectors(
        self, ids: pl.Series, model_id: str | None, unit: str | None = None
    ) -> pl.DataFrame:
        """doc_id, text_hash, model_id, embedding of `ids`. The one place that knows where
        vectors live: organic documents' in document_embeddings (partitioned by shard), rewrites'
        in the clusters asset's synthetic_embeddings table. The unit's own place is read first;
        the other only for ids still missing."""
        sources = [("document_embeddings", "documents"), ("clusters", "synthetic_embeddings")]
        if unit not in self.partitions("document_embeddings"):
            sources.reverse()
        found = []
        missing = ids
        for asset, table in sources:
            if missing.is_empty():
                break
            rows = self.rows(asset, table, missing, unit, list(VECTOR_COLUMNS))
            if model_id is not None and not rows.is_empty():
                rows = rows.filter(pl.col("model_id") == model_id)
            if not rows.is_empty():
                found.append(rows)
                missing = missing.filter(~missing.is_in(rows["doc_id"].implode()))
        if not found:
            schema = {c: pl.String for c in VECTOR_COLUMNS[:3]}
            return pl.DataFrame(schema={**schema, "embedding": pl.List(pl.Float32)})
        return pl.concat(found, how="diagonal_relaxed").select(VECTOR_COLUMNS)
