"""RegMix/CLIMB search on real pages: it finds the language of the target and beats uniform."""

import json

import numpy as np
import polars as pl
import pytest

from assets.mixed.domains import held_out_target
from assets.mixed.plan import TargetSpec, plan_search
from assets.mixed.proxy import NgramProxy
from assets.mixed.sampling import MixturePolicy
from assets.mixed.search import SearchParams, search_mixture

PARAMS = SearchParams(rounds=3, candidates_per_round=8, pool_size=1024, top_k=6, seed=0)
TARGET_PAGES = ["en-03", "en-09", "en-15"]  # whole pages, so no target text leaks into training


@pytest.fixture(scope="module")
def english_target(faq_docs: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    page = pl.col("doc_id").str.slice(0, 5)
    target = faq_docs.filter(page.is_in(TARGET_PAGES))["text"].to_list()
    return faq_docs.filter(~page.is_in(TARGET_PAGES)), target


@pytest.fixture(scope="module")
def searched(english_target):
    pool, target = english_target
    policy = MixturePolicy(60_000, max_synthetic_share=0.3, seed=0)
    return plan_search(pool, policy, PARAMS, NgramProxy(), TargetSpec(target, source="en"), 30_000)


def english_share(weights: dict[str, float]) -> float:
    return sum(w for d, w in weights.items() if d.startswith("c0-"))


def test_search_beats_uniform_and_moves_weight_to_the_target_language(searched) -> None:
    result = searched.search
    uniform = result.score("uniform")
    assert result.chosen_score() < 0.8 * uniform
    assert result.score("final") < uniform, "the regression's own pick beats uniform"
    assert searched.details["recheck_chosen_score"] < searched.details["recheck_uniform_score"]
    uniform_weights = dict(zip(result.domains, result.trials[0].weights, strict=True))
    assert english_share(searched.weights) > 1.5 * english_share(uniform_weights)
    assert max(searched.weights, key=searched.weights.get).startswith("c0-")
    assert result.cv_rank_correlation > 0.4, "the regression ranks mixtures it was not fit on"
    synthetic = sum(w for d, w in searched.weights.items() if d.endswith("synthetic"))
    assert synthetic <= 0.3 + 1e-9
    assert sum(searched.weights.values()) == pytest.approx(1.0)


def test_search_rounds_are_recorded_and_guided_rounds_beat_random_draws(searched) -> None:
    table = searched.search.table()
    assert table["round"].unique().sort().to_list() == [0, 1, 2, 3, 4]
    assert table.filter(pl.col("round") == 0)["candidate"].to_list() == ["uniform", "temperature"]
    assert table.filter(pl.col("round").is_between(1, 3)).height == 3 * PARAMS.candidates_per_round
    assert table.filter(pl.col("round") <= 1)["predicted"].null_count() == 2 + 8
    assert table.filter(pl.col("round") >= 2)["predicted"].null_count() == 0
    assert table["observed"].min() > 1.0
    weights = json.loads(table["weights"][0])
    assert set(weights) == set(searched.weights)
    mean = dict(table.group_by("round").agg(pl.col("observed").mean()).iter_rows())
    assert mean[2] < 0.8 * mean[1] and mean[3] < 0.8 * mean[1], "guided rounds beat random ones"


def test_search_is_deterministic_for_a_seed(english_target) -> None:
    pool, target = english_target
    policy = MixturePolicy(40_000, seed=4)
    quick = SearchParams(rounds=2, candidates_per_round=4, pool_size=256, top_k=3, seed=4)
    runs = [
        plan_search(pool, policy, quick, NgramProxy(), TargetSpec(target), 10_000) for _ in range(2)
    ]
    assert runs[0].weights == runs[1].weights
    assert runs[0].search.table().equals(runs[1].search.table())


def test_search_finds_the_optimum_of_a_known_objective() -> None:
    """With a noiseless quadratic score the regression must lead the search to the optimum."""
    best = np.array([0.6, 0.3, 0.1, 0.0])
    prior = np.full(4, 0.25)

    def score(w: np.ndarray) -> float:
        return float(10 + 50 * ((w - best) ** 2).sum())

    result = search_mixture(
        list("abcd"), prior, {"uniform": prior}, score, lambda w: w / w.sum(), PARAMS
    )
    assert np.abs(result.chosen - best).max() < 0.1
    assert result.score("uniform") == pytest.approx(20.5)
    assert result.score("final") < 11.0, "the pick closes 90% of the gap from uniform to 10"


def test_default_target_is_a_held_out_slice_of_the_top_bucket(faq_docs: pl.DataFrame) -> None:
    ids = held_out_target(faq_docs, tokens=5_000, seed=0)
    chosen = faq_docs.filter(pl.col("doc_id").is_in(ids.implode()))
    top = faq_docs["quality_bucket"].max()
    assert (chosen["quality_bucket"] == top).all() and (chosen["origin"] == "organic").all()
    assert 5_000 <= chosen["tokens"].sum() < 5_000 + chosen["tokens"].max()
    assert ids.equals(held_out_target(faq_docs, tokens=5_000, seed=0))
    assert not ids.equals(held_out_target(faq_docs, tokens=5_000, seed=1))
    bucket = faq_docs.filter((pl.col("quality_bucket") == top) & (pl.col("origin") == "organic"))
    everything = held_out_target(faq_docs, tokens=10**9, seed=0)
    assert everything.len() == bucket.height // 2, "the mixture keeps half the top bucket"
    policy = MixturePolicy(20_000)
    quick = SearchParams(rounds=1, candidates_per_round=2, pool_size=64, top_k=2)
    plan = plan_search(faq_docs, policy, quick, NgramProxy(), TargetSpec(tokens=5_000), 5_000)
    assert plan.held_out.sort().equals(ids.sort())
    assert not plan.pool["doc_id"].is_in(ids.implode()).any()
