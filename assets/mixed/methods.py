"""Mixture weights chosen by hand or by QuaDMix's quality-diversity sampling function.

Domains are named `c<cluster>-<hq|lq>-<organic|synthetic>`; manual weights and QuaDMix
parameters are keyed by glob patterns over those names (`c3-*`, `*-synthetic`), so a config
need not list every domain and survives a re-clustering that adds one.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatch

import numpy as np
import polars as pl

from assets.mixed.sampling import MixturePolicy, cap_synthetic, synthetic_domains


def manual_weights(
    domains: pl.DataFrame, patterns: Mapping[str, float], policy: MixturePolicy
) -> dict[str, float]:
    """A pattern's weight is shared evenly by the domains it matches; unmatched domains get 0."""
    names = sorted(domains["domain"].unique().to_list())
    weights = dict.fromkeys(names, 0.0)
    for pattern, weight in patterns.items():
        matched = [d for d in names if fnmatch(d, pattern)]
        if not matched:
            raise ValueError(f"manual weight pattern {pattern!r} matches no domain of {names}")
        for d in matched:
            weights[d] += weight / len(matched)
    if sum(weights.values()) <= 0:
        raise ValueError("manual weights are all zero: set `manual_weights`")
    return cap_synthetic(weights, synthetic_domains(domains), policy.max_synthetic_share)


@dataclass(frozen=True)
class QuadMixParams:
    """The sampling function of one domain: S(r) = scale * 2 / (1 + exp(steepness * (r - t)))
    for quality rank r <= t (r = 0 is the best document), 0 past the threshold t."""

    threshold: float = 0.8
    steepness: float = 10.0
    scale: float = 1.0


def quadmix_copies(
    docs: pl.DataFrame, params: Mapping[str, QuadMixParams], policy: MixturePolicy
) -> pl.DataFrame:
    """Expected copies per document, scaled so the whole corpus fills the token budget.

    As in QuaDMix, quality is ranked within each diversity domain (cluster x origin, so the
    hq/lq split does not reset the rank), the domain's sigmoid turns the rank into a sampling
    value, and one global factor turns values into copies, capped at `max_repeats`.
    """
    level = pl.col("quality_score").fill_null(pl.col("quality_score").min())
    levels = docs.with_columns(level.alias("level"), pl.lit(1, pl.Int64).alias("n"))
    return quadmix_levels(levels, params, policy).drop("level", "n")


def quadmix_levels(
    levels: pl.DataFrame, params: Mapping[str, QuadMixParams], policy: MixturePolicy
) -> pl.DataFrame:
    """`quadmix_copies` on a histogram: rows of (domain, cluster_id, origin, level, n, tokens)
    with `n` documents at score `level` (higher is better). A document's rank is the share of
    its (cluster, origin) group above its level plus half its level (average rank of ties),
    so a bounded table of score bins ranks a corpus of any size."""
    group = ["cluster_id", "origin"]
    per_level = (
        levels.group_by(*group, "level")
        .agg(pl.col("n").sum().alias("same"))
        .sort(*group, "level", descending=[False, False, True])
        .with_columns(
            (pl.col("same").cum_sum().over(group) - pl.col("same")).alias("higher"),
            pl.col("same").sum().over(group).alias("group_n"),
        )
        .select(
            *group,
            "level",
            ((pl.col("higher") + pl.col("same") / 2) / pl.col("group_n")).alias("quality_rank"),
        )
    )
    ranked = levels.join(per_level, on=[*group, "level"], how="left", nulls_equal=True)
    domain_params = [_params_for(d, params) for d in ranked["domain"].to_list()]
    value = sampling_value(ranked["quality_rank"].to_numpy(), domain_params)
    factor = _fill_factor(value, ranked["tokens"].to_numpy(), policy)
    copies = np.minimum(factor * value, policy.max_repeats)
    return ranked.with_columns(
        pl.Series("value", value, dtype=pl.Float64), pl.Series("copies", copies, dtype=pl.Float64)
    )


def quadmix_weights(copies: pl.DataFrame, policy: MixturePolicy) -> dict[str, float]:
    """Domain weights implied by the expected copies: the diversity half of QuaDMix."""
    mass = copies.group_by("domain").agg((pl.col("copies") * pl.col("tokens")).sum().alias("m"))
    weights = dict(mass.sort("domain").iter_rows())
    if sum(weights.values()) <= 0:
        raise ValueError("QuaDMix thresholds leave no document to sample")
    return cap_synthetic(weights, synthetic_domains(copies), policy.max_synthetic_share)


def sampling_value(rank: np.ndarray, params: list[QuadMixParams]) -> np.ndarray:
    threshold = np.array([p.threshold for p in params])
    steepness = np.array([p.steepness for p in params])
    scale = np.array([p.scale for p in params])
    value = scale * 2.0 / (1.0 + np.exp(steepness * (rank - threshold)))
    return np.where(rank <= threshold, value, 0.0)


def _params_for(domain: str, params: Mapping[str, QuadMixParams]) -> QuadMixParams:
    """The most specific (longest) matching pattern wins; '*' is the usual default."""
    matched = [p for p in params if fnmatch(domain, p)]
    return params[max(matched, key=len)] if matched else QuadMixParams()


def _fill_factor(value: np.ndarray, tokens: np.ndarray, policy: MixturePolicy) -> float:
    """The factor c with sum(min(c * S, max_repeats) * tokens) = budget, by bisection."""

    def filled(c: float) -> float:
        return float((np.minimum(c * value, policy.max_repeats) * tokens).sum())

    low, high = 0.0, 1.0
    while filled(high) < policy.token_budget and high < 1e12:
        high *= 2
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if filled(mid) < policy.token_budget else (low, mid)
    return high
