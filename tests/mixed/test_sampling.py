"""Token-budgeted sampling with repeat and synthetic-share caps."""

from __future__ import annotations

import polars as pl

from assets.mixed.sampling import MixturePolicy, sample_mixture, temperature_weights


def test_mixture_meets_budget_caps_repeats_and_synthetic_share() -> None:
    docs = pl.DataFrame(
        {
            "doc_id": [f"d{i}" for i in range(60)],
            "tokens": [100 + i for i in range(60)],
            "domain": ["a"] * 30 + ["b"] * 20 + ["s"] * 10,
            "origin": ["organic"] * 50 + ["synthetic"] * 10,
        }
    )
    policy = MixturePolicy(
        token_budget=20_000, temperature=2.0, max_repeats=4, max_synthetic_share=0.1
    )
    weights = temperature_weights(docs, policy)
    assert abs(sum(weights.values()) - 1) < 1e-9
    assert weights["s"] <= 0.1 + 1e-9
    samples = sample_mixture(docs, weights, policy)
    assert abs(samples["tokens"].sum() - 20_000) / 20_000 < 0.01
    assert samples.group_by("doc_id").len()["len"].max() <= 4
    again = sample_mixture(docs, weights, policy)
    assert samples.equals(again), "sampling is deterministic for a seed"
