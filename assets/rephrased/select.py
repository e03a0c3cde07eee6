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
from dataclasses import dataclass
from typing import Literal, get_args

import polars as pl

from assets.measures import HEURISTIC_WEIGHTS, heuristic_scores, heuristic_signals
from assets.rephrased.rewrite import RewriteKey
from resources.lake import Lake

SelectionName = Literal["sample", "all", "near_miss", "score_band"]
POLICIES = get_args(SelectionName)
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
    docs = organic.select("doc_id", "text", "language").collect()
    if docs.is_empty():
        return docs.lazy()
    signals = pl.DataFrame([heuristic_signals(t) for t in docs["text"]])
    scores = heuristic_scores(signals, HEURISTIC_WEIGHTS)["quality_score"]
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


@dataclass(frozen=True)
class Selection:
    policy: SelectionName = "sample"
    near_miss_margin: float = 0.2  # near_miss: relative distance to the threshold
    score_band: tuple[float, float] = (0.0, 0.5)  # score_band: percentiles [low, high)
    max_new_documents: int = 8  # budget of new rewrites per run and style
    max_source_tokens_total: int = 0  # token budget of sources; 0 = none
    languages: tuple[str, ...] = ("en",)  # source languages the model handles


def select_todo(
    lake: Lake,
    organic: pl.LazyFrame,
    selection: Selection,
    key: RewriteKey,
    done: set[str],
    count: Callable[[str], int],
) -> pl.DataFrame:
    """The policy's candidates in a stable order, minus finished work, within the budgets."""
    pool = candidates(
        lake, organic, selection.policy, selection.near_miss_margin, selection.score_band
    )
    pool = pool.filter(pl.col("language").is_in(selection.languages))
    pool = pool.select("doc_id", "text", "language")
    rows = (
        row
        for batch in pool.collect_batches(chunk_size=1024)
        for row in batch.iter_rows(named=True)
        if key.rewrite_id(row["doc_id"]) not in done
    )
    limit = selection.max_new_documents if selection.policy != "all" else 10**12
    chosen = within_budget(rows, limit, selection.max_source_tokens_total, count)
    return pl.DataFrame(
        chosen, schema={"doc_id": pl.String, "text": pl.String, "language": pl.String}
    )
