"""Where `clusters` reads its documents, one source at a time: each crawl shard's organic
documents (cleaned minus duplicates, with the shard's vectors) and the rewritten documents
(vectors embedded inside `clusters`). Every read is bounded by one shard."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from assets.corpus import removal_assets
from resources.lake import Lake, MissingUpstreamError

SYNTHETIC = "synthetic"


@dataclass(frozen=True)
class Source:
    name: str  # the crawl shard, or SYNTHETIC
    origin: str  # "organic" or "synthetic"


def sources(lake: Lake, synthetic_spill: Path | None) -> list[Source]:
    shards = sorted({f.partition for f in lake.files("cleaned_documents")})
    out = [Source(shard, "organic") for shard in shards]
    if synthetic_spill is not None:
        out.append(Source(SYNTHETIC, "synthetic"))
    return out


class SourceReader:
    """Reads one source's documents, vectors and texts for `clusters`."""

    def __init__(self, lake: Lake, model_id: str, synthetic_spill: Path | None) -> None:
        self.lake, self.model_id, self.spill = lake, model_id, synthetic_spill

    def documents(self, source: Source) -> pl.DataFrame:
        """(doc_id, language) of the source's corpus documents; language "" when unknown."""
        if source.origin == "synthetic":
            frame = self.lake.scan("rephrased_documents").select("doc_id", "language").collect()
        else:
            frame = self._organic(source.name)
        return frame.with_columns(pl.col("language").fill_null(""))

    def _organic(self, shard: str) -> pl.DataFrame:
        """The shard's cleaned documents minus those duplicate_clusters removed (the organic
        logic of assets/corpus.py, read for one shard: the shard's partition of the removals
        when they are partitioned by shard, else the removed ids filtered by the shard's ids
        while they are scanned, so no corpus-wide set is held)."""
        docs = (
            self.lake.scan("cleaned_documents", partitions=[shard])
            .select("doc_id", "language")
            .collect()
        )
        for name in removal_assets(self.lake):
            parts = {f.partition for f in self.lake.files(name, "dropped")}
            removed = (
                self.lake.scan(name, "dropped", [shard] if shard in parts else None)
                .select("doc_id")
                .filter(pl.col("doc_id").is_in(docs["doc_id"].implode()))
                .collect()
            )
            docs = docs.join(removed, on="doc_id", how="anti")
        return docs

    def vectors(self, source: Source, only: pl.Series | None = None) -> pl.DataFrame:
        """(doc_id, embedding) of this model, optionally only for `only` ids."""
        scan = self._vector_scan(source)
        if scan is None:
            return pl.DataFrame(schema={"doc_id": pl.String, "embedding": pl.List(pl.Float32)})
        if only is not None:
            scan = scan.filter(pl.col("doc_id").is_in(only.implode()))
        return scan.select("doc_id", "embedding").collect()

    def vector_ids(self, source: Source) -> pl.Series:
        scan = self._vector_scan(source)
        if scan is None:
            return pl.Series("doc_id", [], dtype=pl.String)
        return scan.select("doc_id").collect()["doc_id"]

    def _vector_scan(self, source: Source) -> pl.LazyFrame | None:
        if source.origin == "synthetic":
            return pl.scan_parquet(self.spill) if self.spill is not None else None
        try:
            scan = self.lake.scan("document_embeddings", partitions=[source.name])
        except MissingUpstreamError:
            return None
        return scan.filter(pl.col("model_id") == self.model_id)

    def texts(self, source: Source, ids: pl.Series, max_chars: int) -> pl.DataFrame:
        """(doc_id, text) of the given ids, cut at max_chars (c-TF-IDF label documents)."""
        if ids.is_empty():
            return pl.DataFrame(schema={"doc_id": pl.String, "text": pl.String})
        if source.origin == "synthetic":
            scan = self.lake.scan("rephrased_documents")
        else:
            scan = self.lake.scan("cleaned_documents", partitions=[source.name])
        return (
            scan.filter(pl.col("doc_id").is_in(ids.implode()))
            .select("doc_id", pl.col("text").str.slice(0, max_chars))
            .collect()
        )
