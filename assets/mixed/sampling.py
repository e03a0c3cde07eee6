"""Domain weights and token-budgeted, seeded sampling with a cap on repeats per document.

Temperature sampling (as in multilingual pretraining mixtures) flattens domain sizes:
w_d is proportional to tokens_d ** (1 / T). Documents are drawn in a seeded order per domain and
may repeat up to `max_repeats` epochs, the point past which "To Repeat or Not To Repeat" finds
repeated data stops helping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True)
class MixturePolicy:
    token_budget: int
    temperature: float = 2.0
    max_repeats: int = 4
    max_synthetic_share: float = 0.3
    seed: int = 0


def temperature_weights(domains: pl.DataFrame, policy: MixturePolicy) -> dict[str, float]:
    """Weights from `domain`, `tokens`, `origin` columns, with the synthetic share capped."""
    sizes = domains.group_by("domain", "origin").agg(pl.col("tokens").sum()).sort("domain")
    raw = sizes["tokens"].to_numpy().astype(float) ** (1.0 / policy.temperature)
    weights = raw / raw.sum()
    synthetic = (sizes["origin"] == "synthetic").to_numpy()
    share = weights[synthetic].sum()
    if share > policy.max_synthetic_share and share < 1.0:
        weights[synthetic] *= policy.max_synthetic_share / share
        weights[~synthetic] *= (1 - policy.max_synthetic_share) / (1 - share)
    return dict(zip(sizes["domain"].to_list(), weights.tolist(), strict=True))


def sample_domain(
    docs: pl.DataFrame, target_tokens: int, max_repeats: int, seed: int
) -> list[tuple[str, int, int]]:
    """(doc_id, repeat, tokens) draws that fill the target without overshooting it."""
    rng = np.random.default_rng(seed)
    ids, tokens = docs["doc_id"].to_list(), docs["tokens"].to_list()
    picked: list[tuple[str, int, int]] = []
    total = 0
    for repeat in range(max_repeats):
        progress = False
        for i in rng.permutation(len(ids)):
            if total + tokens[i] <= target_tokens and tokens[i] > 0:
                picked.append((ids[i], repeat, tokens[i]))
                total += tokens[i]
                progress = True
        if not progress or total >= target_tokens:
            break
    return picked


def sample_mixture(
    docs: pl.DataFrame, weights: dict[str, float], policy: MixturePolicy
) -> pl.DataFrame:
    """Draws for every domain; a domain that runs out hands its shortfall to the next ones."""
    rows: list[dict] = []
    carry = 0.0
    for index, domain in enumerate(sorted(weights, key=weights.get, reverse=True)):
        target = int(weights[domain] * policy.token_budget + carry)
        members = docs.filter(pl.col("domain") == domain).sort("doc_id")
        draws = sample_domain(members, target, policy.max_repeats, policy.seed + index)
        carry = target - sum(t for _, _, t in draws)
        rows += [
            {"doc_id": d, "repeat": r, "tokens": t, "domain": domain, "weight": weights[domain]}
            for d, r, t in draws
        ]
    return pl.DataFrame(
        rows,
        schema={
            "doc_id": pl.String,
            "repeat": pl.Int32,
            "tokens": pl.Int64,
            "domain": pl.String,
            "weight": pl.Float64,
        },
    )
