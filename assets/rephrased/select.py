"""Which documents get rewritten: a policy, a document budget and a token budget.

`sample` takes a seeded sample of the surviving organic documents (WRAP); `all` takes every one;
`near_miss` recycles pages the cleaned stage dropped by a narrow margin on a quality rule
(REWIRE's point: the discarded web is a resource); `score_band` takes organic documents whose
heuristic quality percentile lies in a band (Nemotron-CC rewrites by quality tier). Model-based
scores come later in the graph, so the band uses the scored stage's heuristic signals directly.

Ids are content hashes, so id order is a fixed pseudo-random shuffle: a budget of k takes the k
smallest ids not yet rewritten, found as a bounded bottom-k over the id column (a page at a time
when the token budget skips some), never by sorting every row. `all` walks the cleaned shards one
at a time, each in id order. `score_band` places documents against percentiles of a bounded
sample (the smallest ids), then walks candidates in id order until the budget is spent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Literal, get_args

import numpy as np
import polars as pl

from assets.corpus import removed_ids
from assets.measures import HEURISTIC_WEIGHTS, LOG_SCALED, heuristic_signals, weighted
from resources.lake import Lake

SelectionName = Literal["sample", "all", "near_miss", "score_band"]
POLICIES = get_args(SelectionName)
QUALITY_RULES = ("gopher_quality:", "gopher_repetition:", "c4:", "fineweb_quality:")
COLUMNS = ("doc_id", "text", "language")
MAX_PAGE = 4096  # rows (with texts) held at once while walking candidates in id order


@dataclass(frozen=True)
class Selection:
    policy: SelectionName = "sample"
    near_miss_margin: float = 0.2  # near_miss: relative distance to the threshold
    score_band: tuple[float, float] = (0.0, 0.5)  # score_band: percentiles [low, high)
    max_new_documents: int = 8  # budget of new rewrites per run and style
    max_source_tokens_total: int = 0  # token budget of sources; 0 = none
    languages: tuple[str, ...] = ("en",)  # source languages the model handles
    band_sample: int = 2048  # score_band: documents whose scores set the percentiles


def select_todo(
    lake: Lake,
    organic: pl.LazyFrame,
    selection: Selection,
    done_sources: pl.LazyFrame,
    count: Callable[[str], int],
) -> Iterator[dict]:
    """(doc_id, text, language) of the documents to rewrite: the policy's candidates in id
    order, minus `done_sources` (doc_id of sources finished for this style), within budgets."""
    budget = selection.max_new_documents if selection.policy != "all" else 10**12
    if budget <= 0:
        return iter(())
    done = done_sources.collect().lazy()  # the sources finished so far: read once
    if selection.policy == "all":
        rows = _by_shard(lake, selection.languages, done)
    else:
        pool = candidates(lake, organic, selection.policy, selection.near_miss_margin)
        pool = pool.filter(pl.col("language").is_in(selection.languages)).select(COLUMNS)
        todo = pool.join(done, on="doc_id", how="anti")
        rows = in_id_order(todo, first_page=budget if not selection.max_source_tokens_total else 0)
        if selection.policy == "score_band":
            rows = in_band(rows, BandScale.fit(pool, selection.band_sample), *selection.score_band)
    return within_budget(rows, budget, selection.max_source_tokens_total, count)


def candidates(lake: Lake, organic: pl.LazyFrame, policy: str, margin: float) -> pl.LazyFrame:
    """(doc_id, text, language) of the documents the policy allows, in no particular order."""
    if policy in ("sample", "all", "score_band"):
        return organic.select(COLUMNS)
    if policy == "near_miss":
        return near_misses(lake, margin)
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
    return drops.select("doc_id", language).join(raw, on="doc_id")


def in_id_order(pool: pl.LazyFrame, first_page: int = 0) -> Iterator[dict]:
    """Rows of `pool` in ascending doc_id, a page at a time: each page is a bottom-k of the ids
    past the previous page (memory bounded by the page), then the texts of just those ids.
    Pages double (up to MAX_PAGE), so a walk of m rows scans the ids O(log m + m / MAX_PAGE)
    times."""
    page, cursor = min(max(first_page, 16), MAX_PAGE), None
    while True:
        rest = pool if cursor is None else pool.filter(pl.col("doc_id") > cursor)
        ids = rest.select("doc_id").bottom_k(page, by="doc_id").collect(engine="streaming")
        if ids.is_empty():
            return
        chosen = pool.filter(pl.col("doc_id").is_in(ids["doc_id"].implode()))
        rows = chosen.collect(engine="streaming").unique("doc_id").sort("doc_id")
        yield from rows.iter_rows(named=True)
        if ids.height < page:
            return
        cursor, page = ids["doc_id"].max(), min(page * 2, MAX_PAGE)


def _by_shard(lake: Lake, languages: tuple[str, ...], done: pl.LazyFrame) -> Iterator[dict]:
    """Every organic document not yet rewritten, one cleaned shard at a time, each in id order
    (memory bounded by a shard)."""
    removed = removed_ids(lake)
    shards = sorted({f.partition for f in lake.files("cleaned_documents")})
    for shard in shards:
        docs = lake.scan("cleaned_documents", partitions=[shard]).select(COLUMNS)
        docs = docs.filter(pl.col("language").is_in(languages))
        for other in (removed, done):
            if other is not None:
                docs = docs.join(other, on="doc_id", how="anti")
        yield from docs.collect(engine="streaming").sort("doc_id").iter_rows(named=True)


@dataclass(frozen=True)
class BandScale:
    """Heuristic quality percentiles from a bounded sample (the smallest ids of the pool): each
    signal's median, mean and std, and the sample's sorted scores, place any document."""

    stats: dict[str, tuple[float, float, float]]
    scores: np.ndarray

    @classmethod
    def fit(cls, pool: pl.LazyFrame, size: int) -> BandScale:
        texts = [row["text"] for _, row in zip(range(size), in_id_order(pool, size), strict=False)]
        return cls.from_texts(texts)

    @classmethod
    def from_texts(cls, texts: list[str]) -> BandScale:
        signals = _signals(texts)
        stats = {}
        for name in HEURISTIC_WEIGHTS:
            x = _prepared(signals, name)
            median = x.median()
            x = x.fill_null(median)
            stats[name] = (median or 0.0, x.mean() or 0.0, x.std() or 0.0)
        scale = cls(stats, np.empty(0))
        return replace(scale, scores=np.sort(scale.score(signals)))

    def score(self, signals: pl.DataFrame) -> np.ndarray:
        """Weighted sum of the signals standardised with the sample's statistics."""
        columns = {}
        for name, (median, mean, std) in self.stats.items():
            x = _prepared(signals, name).fill_null(median)
            columns[name] = ((x - mean) / std).fill_null(0.0) if std > 0 else x * 0.0
        return weighted(pl.DataFrame(columns), HEURISTIC_WEIGHTS)

    def percentile(self, texts: list[str]) -> np.ndarray:
        """Share of the sample scoring below each text (the sample's own ordinal percentile)."""
        below = np.searchsorted(self.scores, self.score(_signals(texts)), side="left")
        return np.minimum(below / max(len(self.scores) - 1, 1), 1.0)


def in_band(rows: Iterator[dict], scale: BandScale, low: float, high: float) -> Iterator[dict]:
    """The rows whose percentile against `scale` lies in [low, high) ([low, 1] when high is 1),
    judged a page at a time."""
    while page := [row for _, row in zip(range(256), rows, strict=False)]:
        percentile = scale.percentile([row["text"] for row in page])
        inside = (percentile >= low) & (percentile < high if high < 1 else percentile <= high)
        yield from (row for row, keep in zip(page, inside, strict=True) if keep)


def score_band(organic: pl.LazyFrame, low: float, high: float, sample: int = 2048) -> pl.DataFrame:
    """Organic documents (of a small frame) whose heuristic quality percentile is in
    [low, high): `select_todo`'s band over the first `sample` ids as the reference."""
    scale = BandScale.fit(organic.select(COLUMNS), sample)
    rows = list(in_band(in_id_order(organic.select(COLUMNS)), scale, low, high))
    return pl.DataFrame(rows, schema=dict.fromkeys(COLUMNS, pl.String))


def within_budget(
    rows: Iterator[dict], max_documents: int, max_tokens: int, count: Callable[[str], int]
) -> Iterator[dict]:
    """Take rows until either budget is spent; max_tokens 0 means no token budget."""
    taken = spent = 0
    for row in rows:
        if taken >= max_documents:
            return
        tokens = count(row["text"]) if max_tokens else 0
        if max_tokens and spent + tokens > max_tokens:
            continue
        spent += tokens
        taken += 1
        yield row


def _signals(texts: list[str]) -> pl.DataFrame:
    return pl.DataFrame([heuristic_signals(t) for t in texts])


def _prepared(signals: pl.DataFrame, name: str) -> pl.Series:
    x = signals[name].cast(pl.Float64).fill_nan(None)
    return x.log1p() if name in LOG_SCALED else x
