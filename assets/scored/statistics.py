"""The corpus statistics the combined score needs, computed without holding the corpus.

`assets.measures.standardise` and `buckets` define the score on a frame in memory: each signal
(log-scaled where heavy-tailed) has its nulls filled with the column's median, then becomes a
z-score within its language when the language has `min_group` documents and a spread, else over
the corpus; the score's quintile ranks are its buckets. Here the same numbers come in two parts:

- the medians (for the fill: the language's median for the language's statistics, the corpus
  median for the corpus statistics and the values, as `standardise` evaluates its expression)
  and the bucket edges are quantiles of a bounded, seeded sample (the bottom-k documents by a
  seeded hash of doc_id, `BottomK`): exact while the corpus fits in the sample, an estimate
  from k documents beyond that;
- mean, standard deviation and size per language come from one streaming aggregate over the
  stored features (polars' streaming engine, a group per language), and the corpus figures are
  pooled from the groups' (exact, Chan et al.'s parallel formulas).

`ScoreStatistics.z` then applies them to any frame, shard by shard.

One deliberate difference: a language whose values of a signal are all equal has no spread and
takes the corpus z-score, as `standardise` intends (`std > 0`). `standardise` itself can miss
that: its windowed mean of n equal values is not always exactly the value, so it finds a std of
about 1e-17 and divides float noise by it (z-scores of +-8 for a constant signal, seen on
generated corpora). Here "no spread" is decided exactly, by the group's min and max.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from assets.measures import LOG_SCALED, N_BUCKETS

GROUP = "language"
_N = "_n"
_SAMPLED = "_sampled"


def prepared(name: str, median: float | None = None) -> pl.Expr:
    """A signal as `standardise` compares it: float, NaN as missing, log-scaled where heavy-tailed,
    and (given a median) missing values filled with it."""
    x = pl.col(name).cast(pl.Float64).fill_nan(None)
    x = x.log1p() if name in LOG_SCALED else x
    return x if median is None else x.fill_null(pl.lit(median, pl.Float64))


def sample_medians(
    sample: pl.DataFrame, columns: Sequence[str]
) -> tuple[dict[str, float | None], pl.DataFrame]:
    """Median of each prepared signal over the sample (None where it has no value), and per
    language (language, {column}_median)."""
    medians = [prepared(c).median().alias(f"{c}_median") for c in columns]
    per_language = (
        sample.group_by(GROUP).agg(medians).sort(GROUP, nulls_last=True)
        if not sample.is_empty()
        else pl.DataFrame(schema={GROUP: pl.String, **{f"{c}_median": pl.Float64 for c in columns}})
    )
    if sample.is_empty():
        return dict.fromkeys(columns), per_language
    row = sample.select(medians).row(0, named=True)
    overall = {
        c: (None if row[f"{c}_median"] is None else float(row[f"{c}_median"])) for c in columns
    }
    return overall, per_language


@dataclass(frozen=True)
class ScoreStatistics:
    columns: tuple[str, ...]
    medians: dict[str, float | None]
    groups: pl.DataFrame  # language, _n, {column}_mean, {column}_std per language
    overall: dict[str, tuple[float | None, float | None]]  # column -> (mean, std)
    by: str | None  # "language", or None: corpus statistics only
    min_group: int

    def z(self, frame: pl.DataFrame) -> pl.DataFrame:
        """z-scores of `frame`'s columns, as `standardise` gives over the whole corpus."""
        values = frame.select(
            pl.col(GROUP), *(prepared(c, self.medians[c]) for c in self.columns)
        ).with_row_index("_row")
        if self.by is not None:
            values = values.join(
                self.groups, on=GROUP, how="left", nulls_equal=True, maintain_order="left"
            )
        exprs = []
        for c in self.columns:
            mean, std = (pl.lit(v, pl.Float64) for v in self.overall[c])
            z = _z(pl.col(c), mean, std)
            if self.by is not None:
                g_mean, g_std = pl.col(f"{c}_mean"), pl.col(f"{c}_std")
                varies = pl.col(f"{c}_varies")
                usable = (pl.col(_N) >= self.min_group) & (g_std > 0) & varies
                z = pl.when(usable).then(_z(pl.col(c), g_mean, g_std)).otherwise(z)
            exprs.append(z.fill_null(0.0).alias(c))
        return values.sort("_row").select(exprs)


def _z(x: pl.Expr, mean: pl.Expr, std: pl.Expr) -> pl.Expr:
    return pl.when(std > 0).then((x - mean) / std).otherwise(0.0)


def aggregate(
    features: pl.LazyFrame,
    columns: Sequence[str],
    medians: tuple[dict[str, float | None], pl.DataFrame],
    by: str | None,
    min_group: int,
) -> ScoreStatistics:
    """One streaming pass over `features` (a scan of the stored per-shard features).

    As in `standardise`, where a value is missing the language's statistics see the language's
    median and the corpus statistics (and the z-score itself) the corpus median; a language the
    sample does not hold takes the corpus median."""
    overall_medians, per_language = medians
    stats = [pl.len().alias(_N)]
    values = []
    for c in columns:
        corpus = prepared(c, overall_medians[c])
        in_sample = pl.col(_SAMPLED).fill_null(False)
        grouped = pl.when(in_sample).then(prepared(c).fill_null(pl.col(f"{c}_median")))
        values += [corpus.alias(f"{c}_corpus"), grouped.otherwise(corpus).alias(c)]
        stats += [pl.col(c).mean().alias(f"{c}_mean"), pl.col(c).std().alias(f"{c}_std")]
        stats += [(pl.col(c).max() > pl.col(c).min()).alias(f"{c}_varies")]
        stats += [pl.col(f"{c}_corpus").mean().alias(f"{c}_cmean")]
        stats += [pl.col(f"{c}_corpus").std().alias(f"{c}_cstd")]
        stats += [pl.col(f"{c}_corpus").min().alias(f"{c}_cmin")]
        stats += [pl.col(f"{c}_corpus").max().alias(f"{c}_cmax")]
    groups = (
        features.join(
            per_language.lazy().with_columns(pl.lit(True).alias(_SAMPLED)),
            on=GROUP,
            how="left",
            nulls_equal=True,
        )
        .select(pl.col(GROUP), *values)
        .group_by(GROUP)
        .agg(stats)
        .collect(engine="streaming")
        .sort(GROUP, nulls_last=True)
    )
    overall = {c: _overall(groups, c) for c in columns}
    return ScoreStatistics(tuple(columns), overall_medians, groups, overall, by, min_group)


def _overall(groups: pl.DataFrame, c: str) -> tuple[float | None, float | None]:
    """Pooled corpus mean and std; the std is 0 when every value is the same (pooling the
    groups' means would otherwise leave float noise where there is no spread)."""
    mean, std = pooled(groups, f"{c}_cmean", f"{c}_cstd")
    low, high = groups[f"{c}_cmin"].min(), groups[f"{c}_cmax"].max()
    return (mean, 0.0) if std is not None and low == high else (mean, std)


def pooled(groups: pl.DataFrame, mean: str, std: str) -> tuple[float | None, float | None]:
    """Corpus mean and sample standard deviation of a column from its per-group ones."""
    rows = [(n, m, s) for n, m, s in groups.select(_N, mean, std).iter_rows() if m is not None]
    total = sum(n for n, _, _ in rows)
    if total == 0:
        return None, None
    mean = sum(n * m for n, m, _ in rows) / total
    if total < 2:
        return mean, None
    m2 = sum((n - 1) * (s or 0.0) ** 2 + n * (m - mean) ** 2 for n, m, s in rows)
    return mean, math.sqrt(m2 / (total - 1))


def bucket_edges(scores: np.ndarray, n_buckets: int = N_BUCKETS) -> np.ndarray:
    """The lowest score of buckets 1..n-1 as `buckets` ranks them: bucket b starts at rank
    ceil(b * n / n_buckets) of the sorted scores (+inf where no rank is that high)."""
    ordered = np.sort(np.asarray(scores, dtype=float))
    n = len(ordered)
    starts = [-(-b * n // n_buckets) for b in range(1, n_buckets)]
    return np.array([ordered[r] if r < n else np.inf for r in starts])


def bucket_of(scores: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bucket per score: how many bucket edges it reaches."""
    return np.searchsorted(edges, np.asarray(scores, dtype=float), side="right").astype(np.int32)
