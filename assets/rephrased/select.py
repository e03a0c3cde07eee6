"""Which documents get rewritten: a policy, a document budget and a token budget.

`sample` takes a seeded sample of the surviving organic documents (WRAP); `all` takes every one;
`near_miss` recycles pages the cleaned stage dropped by a narrow margin on a quality rule
(REWIRE's point: the discarded web is a resource); `score_band` takes organic documents whose
heuristic quality percentile lies in a band (Nemotron-CC rewrites by quality tier). Model-based
scores come later in the graph, so the band uses the scored stage's heuristic signals directly.
Ids are hashes, so id order is a seeded shuffle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import polars as pl

from resources.lake import Lake

POLICIES = ("sample", "all", "near_miss", "score_band")
QUALITY_RULES = ("gopher_quality:", "gopher_repetition:", "c4:", "fineweb_quality:")


def candidates(
    lake: Lake, organic: pl.LazyFrame, policy: str, margin: float, band: tuple[float, float]
) -> pl.LazyFrame:
    """(doc_id, text, language) of the documents the policy allows, in a stable order."""
    if policy in ("sample", "all"):
        return organic.select("doc_id", "text", "language").sort("doc_id")
    if policy == "near_miss":
        return near_misses(lake, margin)
    if policy == "score_band":
        return score_band(organic, *band)
    raise ValueError(f"selection policy {policy!r} is not one of {POLICIES}")


def near_misses(lake: Lake, margin: float) -> pl.LazyFrame:
    """Documents dropped by a quality rule whose measured value was within `margin` (relative)
    of the threshold."""
    drops = lake.scan("cleaned_documents", "dropped").filter(
        pl.any_horizontal([pl.col("rule").str.starts_with(r) for r in QUALITY_RULES])
        & pl.col("threshold").is_not_null()
        & ((pl.col("value") - pl.col("threshold")).abs() <= margin * pl.col("threshold").abs())
    )
    language = pl.col("detail").str.extract(r"language=(\w+)").alias("language")
    raw = lake.scan("raw_documents").select("doc_id", "text")
    return drops.select("doc_id", language).join(raw, on="doc_id").sort("doc_id")


def score_band(organic: pl.LazyFrame, low: float, high: float) -> pl.LazyFrame:
    """Organic documents whose heuristic quality percentile is in [low, high)."""
    from assets.scored.signals import DEFAULT_WEIGHTS, combine, heuristic_signals

    docs = organic.select("doc_id", "text", "language").collect()
    if docs.is_empty():
        return docs.lazy()
    signals = pl.DataFrame([heuristic_signals(t) for t in docs["text"]])
    scores = combine(signals, DEFAULT_WEIGHTS)["quality_score"]
    percentile = (scores.rank("ordinal") - 1) / max(len(scores) - 1, 1)
    mask = (percentile >= low) & (percentile < high if high < 1 else percentile <= high)
    return docs.filter(mask).sort("doc_id").lazy()


def within_budget(
    rows: Iterator[dict], max_documents: int, max_tokens: int, count: Callable[[str], int]
) -> list[dict]:
    """Take rows until either budget is spent; max_tokens 0 means no token budget."""
    chosen: list[dict] = []
    spent = 0
    for row in rows:
        if len(chosen) >= max_documents:
            break
        tokens = count(row["text"]) if max_tokens else 0
        if max_tokens and spent + tokens > max_tokens:
            continue
        spent += tokens
        chosen.append(row)
    return chosen
