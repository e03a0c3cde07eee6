"""The documents that flow past the cleaned stage: organic survivors plus accepted rewrites.

Clustering, scoring and mixing all read this one definition, so organic and synthetic documents
are treated alike and every stage agrees on what "the corpus" is.
"""

from __future__ import annotations

import polars as pl

from resources.lake import Lake

CORPUS_COLUMNS = ["doc_id", "text", "language", "origin", "source_doc_id"]


def organic_documents(lake: Lake) -> pl.LazyFrame:
    """Cleaned documents minus those removed as duplicates."""
    docs = lake.scan("cleaned_documents")
    if lake.has("duplicate_clusters", "dropped"):
        removed = lake.scan("duplicate_clusters", "dropped").select("doc_id")
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
