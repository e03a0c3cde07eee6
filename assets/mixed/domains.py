"""Domains of the documents the mixture draws from, and the proxy's target set.

The default target is a held-out slice of the best-scored organic documents: with no
downstream benchmark to aim at, "text like our best pages" is what DCLM- and CLIMB-style
selection optimises for. The slice is a fixed number of tokens (a stable perplexity, whatever
the corpus size) taken in seeded doc_id-hash order (stable as the corpus grows), and it is left
out of every candidate and of the mixture itself, so a mixture is never scored on documents it
was trained on. A file of target texts replaces it.
"""

import gzip
import json
from pathlib import Path

import duckdb
import polars as pl

from assets.mixed.draws import held_out_ids


def with_domains(docs: pl.DataFrame, high_bucket: int) -> pl.DataFrame:
    tier = (
        pl.when(pl.col("quality_bucket") >= high_bucket).then(pl.lit("hq")).otherwise(pl.lit("lq"))
    )
    domain = pl.format("c{}-{}-{}", pl.col("cluster_id"), tier, pl.col("origin"))
    return docs.with_columns(domain.alias("domain"))


def held_out_target(docs: pl.DataFrame, tokens: int, seed: int) -> pl.Series:
    """doc_ids of the target: organic documents of the top quality bucket, in seeded hash order,
    until `tokens` are reached, never more than half the bucket (the mixture keeps the rest).
    The in-memory form of `draws.held_out_ids`, which the mixture runs over its pool."""
    frame = docs.select(
        "doc_id", "origin", "quality_bucket", "tokens", pl.lit(None, pl.String).alias("lost")
    )
    con = duckdb.connect()
    con.register("pool", frame)
    return held_out_ids(con, tokens, seed).rename("doc_id")


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
