"""How many copies of each document the mixture takes: a seeded function every shard applies alone.

Document i of domain d gets

    n_i = min(R, max(0, ceil(lam_i * t_d - u_i)))   (+1 for the few `extras`)

copies, where u_i is a seeded hash of its doc_id (pool.unit_hash_sql), lam_i its intensity
(1 for weight methods; QuaDMix's sampling value of its quality rank, 0 below the threshold) and
R = max_repeats. For lam * t <= 1 that is "u_i < lam_i * t_d": a seeded Bernoulli draw; past 1
it adds whole epochs, so every document gets its k-th copy before any gets a (k+1)-th.

The thresholds t_d are the only corpus-wide decision. They are solved by bisection, each step one
streaming GROUP BY over (domain, u, lam, tokens), so that each domain's tokens reach its target
(weight x budget, with shortfalls of exhausted domains carried to the next, as before) without
overshooting. The remaining gap (less than one document per domain) is closed from a bounded
list of each domain's next documents in draw order: the `extras`, drawn once more. Given t_d and
the extras, a shard's copies depend on nothing but its own rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from assets.mixed.sampling import MixturePolicy

BISECTION_STEPS = 64
FILL_CANDIDATES = 64  # next documents per domain the fill may draw from


def copies_sql(max_repeats: int, draws: str = "d", quotas: str = "q") -> str:
    """The copies of one document: the formula in the module docstring, without extras."""
    return (
        f"CASE WHEN {draws}.lam > 0 AND {quotas}.t IS NOT NULL THEN least({int(max_repeats)}, "
        f"greatest(0, ceil({draws}.lam * {quotas}.t - {draws}.u)))::INTEGER ELSE 0 END"
    )


@dataclass
class Quotas:
    thresholds: dict[str, float]  # t_d
    targets: dict[str, float]  # tokens each domain was asked for
    extras: list[str] = field(default_factory=list)  # doc_ids drawn once more to fill the gap
    tokens: int = 0  # tokens the thresholds and extras draw, corpus-wide

    def frame(self, weights: dict[str, float]) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "domain": list(self.thresholds),
                "t": list(self.thresholds.values()),
                "weight": [weights.get(d, 0.0) for d in self.thresholds],
            },
            schema={"domain": pl.String, "t": pl.Float64, "weight": pl.Float64},
        )


def domain_capacity(con: duckdb.DuckDBPyConnection, draws: str) -> pl.DataFrame:
    """Per domain: drawable tokens, smallest positive intensity, synthetic or not."""
    return con.sql(
        f"""
        SELECT domain, sum(tokens)::BIGINT AS tokens, min(lam) AS min_lam,
               bool_or(origin = 'synthetic') AS synthetic
        FROM read_parquet('{draws}') WHERE lam > 0 GROUP BY domain ORDER BY domain
        """
    ).pl()


def solve_quotas(
    con: duckdb.DuckDBPyConnection, draws: Path, weights: dict[str, float], policy: MixturePolicy
) -> Quotas:
    capacity = {
        row["domain"]: row for row in domain_capacity(con, str(draws)).iter_rows(named=True)
    }
    targets = domain_targets(weights, capacity, policy)
    thresholds, got = _bisect(con, str(draws), targets, capacity, policy.max_repeats)
    quotas = Quotas(thresholds, targets)
    _fill(con, str(draws), quotas, got, capacity, weights, policy)
    return quotas


def domain_targets(
    weights: dict[str, float], capacity: dict[str, dict], policy: MixturePolicy
) -> dict[str, float]:
    """Tokens per domain: weight x budget, a shortfall carried to the next domain (by weight),
    then a fill pass over every domain with room; synthetic domains share their cap."""
    order = sorted(
        (d for d in weights if weights[d] > 0 and d in capacity), key=_by_weight(weights)
    )
    room = {d: float(capacity[d]["tokens"]) * policy.max_repeats for d in order}
    synthetic_room = policy.max_synthetic_share * policy.token_budget
    assigned = dict.fromkeys(order, 0.0)
    total, synthetic, carry = 0.0, 0.0, 0.0
    for fill in (False, True):
        for d in order:
            target = (
                policy.token_budget - total if fill else weights[d] * policy.token_budget + carry
            )
            if capacity[d]["synthetic"]:
                target = min(target, synthetic_room - synthetic)
            got = max(0.0, min(target, room[d] - assigned[d]))
            carry = 0.0 if fill else max(0.0, target - got)
            assigned[d] += got
            total += got
            synthetic += got if capacity[d]["synthetic"] else 0.0
    return assigned


def _bisect(
    con: duckdb.DuckDBPyConnection,
    draws: str,
    targets: dict[str, float],
    capacity: dict[str, dict],
    max_repeats: int,
) -> tuple[dict[str, float], dict[str, int]]:
    """Largest t_d whose tokens stay within each target; all domains step together."""
    top = {d: (max_repeats + 1) / capacity[d]["min_lam"] for d in targets}
    full = {d for d in targets if capacity[d]["tokens"] * max_repeats <= targets[d]}
    lo = {d: (top[d] if d in full else 0.0) for d in targets}
    got = {d: (capacity[d]["tokens"] * max_repeats if d in full else 0) for d in targets}
    hi = dict(top)
    active = {d for d in targets if d not in full and targets[d] >= 1}
    for _ in range(BISECTION_STEPS):
        if not active:
            break
        mid = {d: (lo[d] + hi[d]) / 2 for d in active}
        for d, tokens in _tokens_at(con, draws, mid, max_repeats).items():
            if tokens <= targets[d]:
                lo[d], got[d] = mid[d], tokens
            else:
                hi[d] = mid[d]
        active = {d for d in active if got[d] < int(targets[d]) and hi[d] - lo[d] > 1e-15 * hi[d]}
    return lo, got


def _tokens_at(
    con: duckdb.DuckDBPyConnection, draws: str, t: dict[str, float], max_repeats: int
) -> dict[str, int]:
    trial = pl.DataFrame({"domain": list(t), "t": list(t.values())})  # noqa: F841 (read by SQL)
    rows = con.sql(
        f"""
        SELECT d.domain, sum(d.tokens * {copies_sql(max_repeats)})::BIGINT
        FROM read_parquet('{draws}') d JOIN trial q ON d.domain = q.domain
        WHERE d.lam > 0 GROUP BY d.domain
        """
    ).fetchall()
    found = dict(rows)
    return {d: int(found.get(d, 0)) for d in t}


def _fill(
    con: duckdb.DuckDBPyConnection,
    draws: str,
    quotas: Quotas,
    got: dict[str, int],
    capacity: dict[str, dict],
    weights: dict[str, float],
    policy: MixturePolicy,
) -> None:
    """Close the gap the thresholds leave with each domain's next documents in draw order."""
    gap = policy.token_budget - sum(got.values())
    synthetic_room = policy.max_synthetic_share * policy.token_budget - sum(
        g for d, g in got.items() if capacity[d]["synthetic"]
    )
    quotas.tokens = sum(got.values())
    if gap <= 0 or not quotas.thresholds:
        return
    q = quotas.frame(weights)  # noqa: F841 (read by SQL)
    copies = copies_sql(policy.max_repeats)
    rows = con.sql(
        f"""
        SELECT domain,
               min_by(struct_pack(doc_id := doc_id, tokens := tokens), next, {FILL_CANDIDATES})
        FROM (
            SELECT d.domain, d.doc_id, d.tokens, ({copies} + d.u) / d.lam AS next
            FROM read_parquet('{draws}') d JOIN q ON d.domain = q.domain
            WHERE d.lam > 0 AND {copies} < {int(policy.max_repeats)}
        ) GROUP BY domain
        """
    ).fetchall()
    candidates = dict(rows)
    for d in sorted(quotas.thresholds, key=_by_weight(weights)):
        for cand in candidates.get(d, []):
            size = int(cand["tokens"])
            if size > gap or (capacity[d]["synthetic"] and size > synthetic_room):
                continue
            quotas.extras.append(cand["doc_id"])
            gap -= size
            quotas.tokens += size
            synthetic_room -= size if capacity[d]["synthetic"] else 0


def _by_weight(weights: dict[str, float]):
    return lambda d: (-weights[d], d)
