"""PreSelect (#18): a ladder of n-gram LMs of known ability, each document's predictive strength,
and the classifier that learns it, on real text (CPython's documentation as the reference, the
sample's Debian FAQ pages as the crawl)."""

from __future__ import annotations

import dagster as dg
import numpy as np
import polars as pl
import pytest

from assets.cleaned.schema import CLEANED_DOCUMENTS_SCHEMA
from assets.documents import DROPPED_SCHEMA
from assets.ngram import KneserNeyLM
from assets.scored.classifier import ClassifierSpec
from assets.scored.features import document_features, load_scorers
from assets.scored.preselect import (
    LadderSpec,
    fit_preselect,
    model_ladder_scores,
    ngram_ladder,
    ngram_ladder_scores,
    predictive_strength,
    strength_labels,
)
from assets.scored.preselect_assets import preselect_classifier
from assets.scored.reference import BUILTIN_PYTHON_DOCS, load_reference
from benchmarks.bench_scale import cleaned_row
from resources.lake import Lake
from resources.tokenizer import TokenCounter
from tests.scored.conftest import faq_pages

SPEC = ClassifierSpec(n_features=2**14, folds=3, bootstrap=200)


@pytest.fixture(scope="module")
def tokens() -> TokenCounter:
    return TokenCounter()


@pytest.fixture(scope="module")
def reference(tokens) -> list[np.ndarray]:
    return [np.asarray(t) for t in tokens.encode(load_reference([BUILTIN_PYTHON_DOCS]))]


def test_each_rung_is_trained_on_twice_the_text_and_is_better(reference, tokens) -> None:
    ladder = ngram_ladder(reference, tokens.vocab_size(), LadderSpec(rungs=4))
    sizes = np.array(ladder.train_tokens)
    assert np.all(np.diff(ladder.abilities) > 0)
    assert np.all((sizes[1:] / sizes[:-1] > 1.6) & (sizes[1:] / sizes[:-1] < 2.6))


def test_document_losses_are_each_documents_log_perplexity() -> None:
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 40, size=n) for n in (50, 0, 20)]
    model = KneserNeyLM(3, 40).fit([rng.integers(0, 40, size=200)])
    losses = model.document_losses(docs)
    assert np.isnan(losses[1])
    for i in (0, 2):
        assert losses[i] == pytest.approx(np.log(model.perplexity([docs[i]])))


def test_strength_is_the_share_of_rung_pairs_ordered_by_ability() -> None:
    abilities = np.array([-6.0, -5.0, -4.0])
    losses = np.array(
        [
            [8.0, 7.0, 6.0],  # every better rung relatively lower: predictive
            [6.0, 7.0, 8.0],  # reversed
            [7.0, 7.0, 7.0],  # flat: the lowest rung is, relative to its level, the best
            [7.5, 7.0, np.nan],  # not scored by one rung
        ]
    )
    strength = predictive_strength(losses, abilities)
    assert strength.agreement[:3] == pytest.approx([1.0, 0.0, 0.0])
    assert strength.correlation[0] > 0.9 and strength.correlation[1] < -0.9
    assert np.isnan(strength.agreement[3])
    labels = strength_labels(strength, share=0.34)
    assert labels.tolist() == [1, 0, -1, -1]


@pytest.fixture(scope="module")
def sample() -> pl.DataFrame:
    texts = faq_pages("en") + faq_pages("de")
    return pl.DataFrame(
        {
            "doc_id": [f"d{i}" for i in range(len(texts))],
            "text": texts,
            "language": ["en"] * len(faq_pages("en")) + ["de"] * len(faq_pages("de")),
        }
    )


def test_the_classifier_learns_strength_with_a_heldout_auc(sample, tokens) -> None:
    texts = sample["text"].to_list()
    reference_texts = load_reference([BUILTIN_PYTHON_DOCS])
    scores = ngram_ladder_scores(texts, reference_texts, tokens, LadderSpec(), 512)
    fit = fit_preselect(sample, scores, 0.3, SPEC)
    table = fit.table
    assert table["label"].value_counts().sort("label")["count"].to_list()[1:] == [11, 11]
    assert fit.model is not None and fit.evaluation.auc is not None
    assert fit.evaluation.auc_ci_low <= fit.evaluation.auc <= fit.evaluation.auc_ci_high
    trained = table.filter(pl.col("label") >= 0)
    assert trained["heldout_score"].null_count() == 0
    assert table.filter(pl.col("label") < 0)["heldout_score"].null_count() == table.height - 22
    assert all(len(losses) == 4 for losses in table["losses"])
    losses = np.array(table["losses"].to_list())
    strength = predictive_strength(losses, scores.abilities)
    assert np.allclose(strength.agreement, table["agreement"].to_numpy())
    assert [r["train_tokens"] for r in scores.rungs] == sorted(
        r["train_tokens"] for r in scores.rungs
    )


def test_a_ladder_of_real_models_scored_by_vllm_prompt_logprobs(sample, in_process_model) -> None:
    """The plug: a rung is any model vLLM loads, its loss in nats per character of the prompt."""
    repeated = "Debian is a free operating system. " * 20
    noise = "qz8 Xv#k 0pL@ wq7% mZ!r " * 28
    losses = in_process_model.prompt_losses([repeated, noise, "x"], 256)
    assert losses[0] < losses[1] and np.isnan(losses[2])
    uniform = np.log(95)  # a model that knows nothing: every printable character alike
    rungs = [
        ("SmolLM2-135M-Instruct", 1.0, in_process_model.prompt_losses),
        ("uniform-characters", 0.0, lambda texts, _: [uniform] * len(texts)),
    ]
    scores = model_ladder_scores(sample["text"].to_list(), rungs, 256)
    assert scores.losses.shape == (sample.height, 2) and np.all(scores.losses[:, 0] < uniform)
    fit = fit_preselect(sample, scores, 0.3, SPEC)
    assert fit.model is not None and scores.rungs[0]["model"] == rungs[0][0]


def _cleaned_lake(home) -> Lake:
    lake = Lake(home=str(home))
    for language in ("en", "de"):
        shard = f"faq-{language}"
        with lake.publish("cleaned_documents", shard) as out:
            rows = out.table("documents", CLEANED_DOCUMENTS_SCHEMA)
            out.table("dropped", DROPPED_SCHEMA)
            for offset, text in enumerate(faq_pages(language)):
                rows.append(cleaned_row(shard, offset, text, language, f"u{offset}"))
    return lake


def test_the_asset_trains_once_and_quality_scores_applies_it(tmp_path, tokens) -> None:
    lake = _cleaned_lake(tmp_path)
    config = {"languages": None, "folds": 3, "n_features": 2**14, "max_doc_tokens": 512}
    run_config = {"ops": {"preselect_classifier": {"config": config}}}
    resources = {"lake": lake, "tokens": tokens}
    first = dg.materialize([preselect_classifier], resources=resources, run_config=run_config)
    assert first.success
    meta = first.get_asset_materialization_events()[0].materialization.metadata
    assert meta["heldout_auc"].value is not None and meta["reused"].value is False
    assert [r["train_tokens"] for r in meta["ladder"].value] == sorted(
        r["train_tokens"] for r in meta["ladder"].value
    )
    again = dg.materialize([preselect_classifier], resources=resources, run_config=run_config)
    meta = again.get_asset_materialization_events()[0].materialization.metadata
    assert meta["reused"].value is True

    scorers = load_scorers(lake)
    assert scorers.preselect is not None and "preselect_score" in scorers.heldout
    docs = lake.scan("cleaned_documents").collect()
    batch = docs.select("doc_id", pl.lit("organic").alias("origin"), "language", "text")
    measured = docs.select("doc_id", "toxicity", pl.lit("cleaned").alias("toxicity_source"))
    features = document_features(
        batch, measured, pl.DataFrame(schema={"doc_id": pl.String}), scorers
    )
    scores = features["preselect_score"]
    assert scores.null_count() == 0 and scores.min() >= 0 and scores.max() <= 1
    trained = lake.scan("preselect_classifier").filter(pl.col("label") >= 0).collect()
    out_of_fold = features.join(trained, on="doc_id")
    assert np.allclose(out_of_fold["preselect_score"], out_of_fold["heldout_score"])
