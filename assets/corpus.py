"""The documents that flow past the cleaned stage: organic survivors plus accepted rewrites.

Clustering, scoring and mixing all read this one definition, so organic and synthetic documents
are treated alike and every stage agrees on what "the corpus" is.
"""

from __future__ import annotations

import polars as pl

from resources.lake import Lake

CORPUS_COLUMNS = ["doc_id", "text", "language", "origin", "source_doc_id"]
REMOVED_AFTER_CLEANING = ("duplicate_clusters", "decontamination")
"""Corpus-wide assets whose `dropped` tables take organic documents out after cleaning, in
pipeline order; each sees only what the ones before it kept, so no document is removed twice."""


def removal_assets(lake: Lake, before: str | None = None) -> list[str]:
    """The removing assets (those before `before`, if given) that have a current version."""
    names = REMOVED_AFTER_CLEANING
    if before in names:
        names = names[: names.index(before)]
    return [name for name in names if lake.has(name, "dropped")]


def removed_ids(lake: Lake, before: str | None = None) -> pl.LazyFrame | None:
    """doc_id of every organic document removed after cleaning (None: nothing to remove)."""
    scans = [lake.scan(name, "dropped").select("doc_id") for name in removal_assets(lake, before)]
    return pl.concat(scans) if scans else None


def organic_documents(lake: Lake, before: str | None = None) -> pl.LazyFrame:
    """Cleaned documents minus those removed as duplicates or as contaminated."""
    docs = lake.scan("cleaned_documents")
    if (removed := removed_ids(lake, before)) is not None:
        docs = docs.join(removed, on="doc_id", how="anti")
    return docs


def corpus_documents(lake: Lake) -> pl.LazyFrame:
    organic = organic_documents(lake).select(
        "doc_id",
        "text",
        "language",
        pl.lit("organic").alias("origin"),
        pl.lit(None, dtype=pl.String).alias("source_doc_id"),
    )
    if not lake.has("rephrased_documents"):
        return organic
    synthetic = lake.scan("rephrased_documents").select(
        "doc_id", "text", "language", pl.lit("synthetic").alias("origin"), "source_doc_id"
    )
    return pl.concat([organic, synthetic], how="vertical_relaxed")


def catalog_rows(lake: Lake, asset: str, table: str = "documents", partitions=None) -> int:
    """Rows of the current version(s) of a table, as the catalog recorded them at publish: an
    independent count for a stage's books balance, not one taken from the stage's own reads."""
    if not lake.has(asset, table):
        return 0
    return sum(f.row_count for f in lake.files(asset, table, partitions))


def corpus_size(lake: Lake) -> int:
    """What `corpus_documents` should yield, from the catalog's row counts alone."""
    removed = sum(catalog_rows(lake, name, "dropped") for name in removal_assets(lake))
    return (
        catalog_rows(lake, "cleaned_documents")
        - removed
        + catalog_rows(lake, "rephrased_documents")
    )
