"""Every mixing method meets its token budget and the caps, deterministically, on real text."""

import polars as pl
import pytest

from assets.mixed.methods import QuadMixParams, manual_weights, quadmix_copies
from assets.mixed.plan import (
    MixturePlan,
    TargetSpec,
    plan_manual,
    plan_quadmix,
    plan_search,
    plan_temperature,
)
from assets.mixed.proxy import NgramProxy
from assets.mixed.sampling import MixturePolicy, sample_mixture
from assets.mixed.search import SearchParams

BUDGET = 30_000
QUICK_SEARCH = SearchParams(rounds=2, candidates_per_round=5, pool_size=256, top_k=4)


def build(method: str, docs: pl.DataFrame, policy: MixturePolicy) -> MixturePlan:
    if method == "manual":
        return plan_manual(docs, policy, {"c0-*": 2.0, "c1-hq-*": 1.0, "*-synthetic": 1.0})
    if method == "quadmix":
        return plan_quadmix(docs, policy, {"*": QuadMixParams(), "c2-*": QuadMixParams(0.5)})
    if method == "search":
        return plan_search(
            docs, policy, QUICK_SEARCH, NgramProxy(), TargetSpec(tokens=3_000), 15_000
        )
    return plan_temperature(docs, policy)


def mixture(method: str, docs: pl.DataFrame, policy: MixturePolicy) -> pl.DataFrame:
    plan = build(method, docs, policy)
    return sample_mixture(plan.pool, plan.weights, policy)


def synthetic_share(samples: pl.DataFrame) -> float:
    synthetic = samples.filter(pl.col("domain").str.ends_with("-synthetic"))["tokens"].sum()
    return synthetic / samples["tokens"].sum()


@pytest.mark.parametrize("method", ["manual", "temperature", "quadmix", "search"])
def test_each_method_meets_the_budget_and_the_caps(faq_docs: pl.DataFrame, method: str) -> None:
    policy = MixturePolicy(BUDGET, max_repeats=4, max_synthetic_share=0.2, seed=3)
    samples = mixture(method, faq_docs, policy)
    assert abs(samples["tokens"].sum() - BUDGET) / BUDGET < 0.01
    assert samples["tokens"].sum() <= BUDGET
    assert samples.group_by("doc_id").len()["len"].max() <= 4
    assert synthetic_share(samples) <= 0.2 + 1e-9
    assert samples.select("doc_id", "repeat").is_unique().all()


@pytest.mark.parametrize("method", ["manual", "temperature", "quadmix"])
def test_same_seed_same_mixture_other_seed_another(faq_docs: pl.DataFrame, method: str) -> None:
    policy = MixturePolicy(BUDGET, seed=11)
    first = mixture(method, faq_docs, policy)
    assert first.equals(mixture(method, faq_docs, policy))
    other = mixture(method, faq_docs, MixturePolicy(BUDGET, seed=12))
    assert set(first["doc_id"]) != set(other["doc_id"])


def test_a_budget_past_the_corpus_repeats_documents_at_most_max_repeats(
    faq_docs: pl.DataFrame,
) -> None:
    organic = faq_docs.filter(pl.col("origin") == "organic")
    corpus = int(organic["tokens"].sum())
    policy = MixturePolicy(int(corpus * 1.8), max_repeats=2, max_synthetic_share=0.0)
    samples = mixture("temperature", organic, policy)
    repeats = samples.group_by("doc_id").len()["len"]
    assert repeats.max() == 2, "the budget needs repeats"
    assert abs(samples["tokens"].sum() - policy.token_budget) / policy.token_budget < 0.01
    tight = MixturePolicy(corpus * 3, max_repeats=2, max_synthetic_share=0.0)
    capped = mixture("temperature", organic, tight)
    assert capped.group_by("doc_id").len()["len"].max() == 2
    assert capped["tokens"].sum() == 2 * corpus, "short of budget rather than a third epoch"


def test_weights_that_favour_synthetic_text_are_capped(faq_docs: pl.DataFrame) -> None:
    policy = MixturePolicy(BUDGET, max_synthetic_share=0.1)
    weights = manual_weights(faq_docs, {"*-synthetic": 9.0, "*-organic": 1.0}, policy)
    assert sum(w for d, w in weights.items() if d.endswith("synthetic")) == pytest.approx(0.1)
    samples = sample_mixture(faq_docs, weights, policy)
    assert synthetic_share(samples) <= 0.1
    assert abs(samples["tokens"].sum() - BUDGET) / BUDGET < 0.01


def test_manual_patterns_share_their_weight_and_unknown_patterns_fail(
    faq_docs: pl.DataFrame,
) -> None:
    policy = MixturePolicy(BUDGET, max_synthetic_share=1.0)
    weights = manual_weights(faq_docs, {"c0-*": 1.0, "c1-hq-organic": 1.0}, policy)
    assert weights["c0-hq-organic"] == pytest.approx(0.25)
    assert weights["c1-hq-organic"] == pytest.approx(0.5)
    assert weights["c2-lq-organic"] == 0.0
    samples = sample_mixture(faq_docs, weights, policy)
    assert set(samples["domain"]) <= {"c0-hq-organic", "c0-lq-organic", "c1-hq-organic"}
    with pytest.raises(ValueError, match="matches no domain"):
        manual_weights(faq_docs, {"c9-*": 1.0}, policy)


def test_quadmix_samples_better_ranked_documents_more_and_cuts_past_the_threshold(
    faq_docs: pl.DataFrame,
) -> None:
    policy = MixturePolicy(BUDGET, max_repeats=4, seed=5)
    params = {"*": QuadMixParams(threshold=0.6, steepness=8.0)}
    copies = quadmix_copies(faq_docs, params, policy)
    assert (copies["copies"] * copies["tokens"]).sum() == pytest.approx(BUDGET, rel=1e-6)
    assert copies.filter(pl.col("quality_rank") > 0.6)["copies"].max() == 0
    top = copies.filter(pl.col("quality_rank") < 0.2)["copies"].mean()
    middle = copies.filter(pl.col("quality_rank").is_between(0.4, 0.6))["copies"].mean()
    assert top > 1.25 * middle  # S(0.1) / S(0.5) = 1.42 for these parameters
    plan = plan_quadmix(faq_docs, policy, params)
    drawn = sample_mixture(plan.pool, plan.weights, policy).join(
        copies.select("doc_id", "quality_rank"), on="doc_id"
    )
    assert drawn["quality_rank"].quantile(0.95) <= 0.6 + 1e-9
    assert drawn["quality_rank"].mean() < copies["quality_rank"].mean()
