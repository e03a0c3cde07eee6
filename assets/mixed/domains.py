"""The documents the mixture draws from, their domains, and the proxy's target set.

The default target is a held-out slice of the best-scored organic documents: with no
downstream benchmark to aim at, "text like our best pages" is what DCLM- and CLIMB-style
selection optimises for. The slice is a fixed number of tokens (a stable perplexity, whatever
the corpus size) taken in seeded doc_id-hash order (stable as the corpus grows), and it is left
out of every candidate and of the mixture itself, so a mixture is never scored on documents it
was trained on. A file of target texts replaces it.
"""

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import xxhash

from assets.corpus import corpus_documents
from resources.lake import Lake
from resources.tokenizer import TokenCounter


@dataclass(frozen=True)
class Domains:
    docs: pl.DataFrame  # what the mixture may draw from, with domain and token count
    lost: pl.DataFrame  # corpus documents without a cluster or a score: dropped with the reason


def load_domains(lake: Lake, tokens: TokenCounter, high_bucket: int) -> Domains:
    """Corpus documents with their domain: cluster x quality tier x origin, and token counts.

    Documents the clustered stage dropped (SemDeDup, no embedding) are its to account for; a
    document that reaches the mixture with no cluster or no score is recorded here, not lost."""
    corpus = corpus_documents(lake).select("doc_id", "text", "origin")
    assigned = lake.scan("clusters").select("doc_id", "cluster_id")
    scored = lake.scan("quality_scores").select("doc_id", "quality_score", "quality_bucket")
    clustered_out = lake.scan("clusters", "dropped").select("doc_id")
    joined = (
        corpus.join(clustered_out, on="doc_id", how="anti")
        .join(assigned, on="doc_id", how="left")
        .join(scored, on="doc_id", how="left")
        .collect()
    )
    missing = pl.col("cluster_id").is_null() | pl.col("quality_score").is_null()
    docs = joined.filter(~missing)
    counts = tokens.count(docs["text"].to_list())
    docs = with_domains(docs.with_columns(pl.Series("tokens", counts, dtype=pl.Int64)), high_bucket)
    return Domains(docs, _lost(joined.filter(missing)))


def _lost(rows: pl.DataFrame) -> pl.DataFrame:
    rule = (
        pl.when(pl.col("cluster_id").is_null())
        .then(pl.lit("mixed:missing_cluster"))
        .otherwise(pl.lit("mixed:missing_score"))
    )
    return rows.select(
        "doc_id",
        pl.lit("mixed").alias("stage"),
        rule.alias("rule"),
        pl.lit(None, pl.Float64).alias("value"),
        pl.lit(None, pl.Float64).alias("threshold"),
        pl.lit("not in the current clusters or quality_scores version").alias("detail"),
    )


def with_domains(docs: pl.DataFrame, high_bucket: int) -> pl.DataFrame:
    tier = (
        pl.when(pl.col("quality_bucket") >= high_bucket).then(pl.lit("hq")).otherwise(pl.lit("lq"))
    )
    domain = pl.format("c{}-{}-{}", pl.col("cluster_id"), tier, pl.col("origin"))
    return docs.with_columns(domain.alias("domain"))


def held_out_target(docs: pl.DataFrame, tokens: int, seed: int) -> pl.Series:
    """doc_ids of the target: organic documents of the top quality bucket, in seeded hash order,
    until `tokens` are reached, never more than half the bucket (the mixture keeps the rest)."""
    top = docs.filter(
        (pl.col("origin") == "organic")
        & (pl.col("quality_bucket") == pl.col("quality_bucket").max())
    )
    ranked = top.with_columns(
        pl.col("doc_id").map_elements(lambda d: _unit_hash(d, seed), pl.Float64).alias("h")
    ).sort("h", "doc_id")
    before = ranked["tokens"].cum_sum() - ranked["tokens"]
    keep = ranked.filter(before < tokens).head(max(1, ranked.height // 2))
    return keep["doc_id"].rename("doc_id")


def _unit_hash(doc_id: str, seed: int) -> float:
    return xxhash.xxh64_intdigest(doc_id.encode(), seed=seed) / 2**64


def read_target_file(path: str) -> list[str]:
    """Target texts from Parquet (`text` column), JSONL[.gz] (`text` field) or plain text."""
    file = Path(path)
    if file.suffix == ".parquet":
        return pl.read_parquet(file, columns=["text"])["text"].drop_nulls().to_list()
    if file.name.endswith((".jsonl", ".jsonl.gz")):
        opener = gzip.open if file.suffix == ".gz" else open
        with opener(file, "rt", encoding="utf-8") as fh:
            return [json.loads(line)["text"] for line in fh if line.strip()]
    return [file.read_text(encoding="utf-8")]
