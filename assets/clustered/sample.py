"""The bounded, seeded, stratified sample that k-means fits on.

Strata are (shard, language), synthetic documents forming their own shard. Each stratum gets a
share of the sample proportional to its size (largest remainders, so the quotas add up to the
sample size exactly), and inside a stratum the documents with the smallest seeded hash of their
id are taken. The hash depends on the document alone, so as the corpus grows and quotas shrink
an old stratum's sample is a subset of its earlier one: documents new to the fit come from new
shards, which is what the drift measure (assets/clustered/fit.py) must see.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import polars as pl

Stratum = tuple[str, str]  # (shard, language)


def sample_key(doc_id: str, seed: int) -> int:
    """A seeded, stable 64-bit rank of a document (independent of polars' hash, which may
    change between versions)."""
    digest = hashlib.blake2b(f"{seed}:{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1  # fits polars' Int64


def with_sample_key(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    keys = [sample_key(d, seed) for d in frame["doc_id"]]
    return frame.with_columns(pl.Series("sample_key", keys, dtype=pl.Int64))


def quotas(counts: Mapping[Stratum, int], size: int) -> dict[Stratum, int]:
    """Per-stratum sample sizes proportional to the strata's sizes, adding up to
    min(size, total); ties in the remainders are broken by the stratum's name."""
    total = sum(counts.values())
    if total <= size:
        return dict(counts)
    exact = {s: size * n / total for s, n in counts.items()}
    out = {s: int(v) for s, v in exact.items()}
    short = size - sum(out.values())
    by_remainder = sorted(exact, key=lambda s: (-(exact[s] - out[s]), s))
    for stratum in by_remainder[:short]:
        out[stratum] += 1
    return out


def take(frame: pl.DataFrame, shard: str, quota: Mapping[Stratum, int], seed: int) -> pl.DataFrame:
    """The sampled rows of one shard's (doc_id, language) frame (language never null: use "" for
    unknown): each language's quota of the smallest keys."""
    if frame.is_empty():
        return frame.select("doc_id", "language")
    ranked = with_sample_key(frame, seed).with_columns(
        pl.col("sample_key").rank("ordinal").over("language").alias("_rank")
    )
    wanted = pl.DataFrame(
        {
            "language": [lang for (s, lang) in quota if s == shard],
            "_quota": [n for (s, _), n in quota.items() if s == shard],
        },
        schema={"language": pl.String, "_quota": pl.Int64},
    )
    return (
        ranked.join(wanted, on="language", how="inner")
        .filter(pl.col("_rank") <= pl.col("_quota"))
        .sort("sample_key")
        .select("doc_id", "language")
    )


def count_strata(shard: str, frame: pl.DataFrame) -> dict[Stratum, int]:
    """Documents per language of one shard's (doc_id, language) frame."""
    counts = frame.group_by("language").len()
    return {(shard, lang): n for lang, n in counts.iter_rows()}
