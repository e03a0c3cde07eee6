"""The combined score: standardised within language, weighted, bucketed; weights can be learned."""

import numpy as np
import polars as pl

from assets.measures import buckets, standardise, weighted
from assets.scored.combine import learn_weights, skilled
from assets.scored.signals import redpajama_signals, text_signals


def test_standardise_within_language_and_fill_missing_with_the_median() -> None:
    frame = pl.DataFrame(
        {
            "language": ["en"] * 4 + ["ja"] * 3 + ["zh"],
            "x": [1.0, 2.0, 3.0, None, 100.0, 200.0, 300.0, 7.0],
        }
    )
    z = standardise(frame, ["x"], by="language", min_group=3)["x"].to_list()
    assert z[0] < z[1] < z[2] and z[4] < z[5] < z[6]
    assert abs(z[4] + z[6]) < 1e-9 and abs(z[5]) < 1e-9  # ja compared with ja only
    assert z[3] == z[3] and z[7] == z[7]  # no NaN: the missing value and the lone zh document
    corpus = standardise(frame, ["x"], by=None, min_group=3)["x"].to_list()
    assert corpus[0] < corpus[4]  # corpus-wide, Japanese values dominate


def test_constant_or_absent_signals_contribute_nothing() -> None:
    frame = pl.DataFrame({"c": [2.0, 2.0, 2.0], "n": [None, None, None]}, strict=False)
    z = standardise(frame, ["c", "n"], by=None, min_group=3)
    assert z["c"].to_list() == [0.0, 0.0, 0.0] and z["n"].to_list() == [0.0, 0.0, 0.0]


def test_weights_and_buckets() -> None:
    z = pl.DataFrame({"good": [1.0, 0.0, -1.0, 2.0, -2.0], "bad": [0.0, 1.0, 0.0, 0.0, 0.0]})
    total = weighted(z, {"good": 1.0, "bad": -2.0})
    assert list(total) == [1.0, -2.0, -1.0, 2.0, -2.0]
    assert list(buckets(np.arange(10.0))) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_learned_weights_recover_the_signal_the_ratings_follow() -> None:
    rng = np.random.default_rng(0)
    z = pl.DataFrame({"helps": rng.normal(size=30), "noise": rng.normal(size=30)})
    target = 2.5 + z["helps"].to_numpy()
    target[:5] = np.nan  # unrated documents
    learned = learn_weights(z, ["helps", "noise"], target, alpha=1.0)
    assert learned.n_rows == 25 and learned.weights["helps"] > 0.8
    few = learn_weights(z, ["helps"], np.where(np.arange(30) < 5, 3.0, np.nan))
    assert few.weights is None and "only 5" in few.reason


def test_redpajama_signals_reuse_the_cleaned_measurements() -> None:
    measured = pl.DataFrame(
        {
            "doc_id": ["d"],
            "gopher_quality.n_words": [200.0],
            "gopher_quality.stop_words": [50.0],
            "gopher_quality.alpha_words_ratio": [0.9],
            "gopher_quality.hash_ratio": [0.01],
            "gopher_quality.ellipsis_ratio": [0.02],
            "c4.lines_kept": [8.0],
            "c4.lines_removed": [2.0],
            "fineweb_quality.line_punct_ratio": [0.7],
        }
    )
    row = redpajama_signals(measured).row(0, named=True)
    assert row["rps_doc_word_count"] == 200.0
    assert row["rps_doc_stop_word_fraction"] == 0.25
    assert abs(row["rps_doc_frac_no_alph_words"] - 0.1) < 1e-12
    assert abs(row["rps_doc_symbol_to_word_ratio"] - 0.03) < 1e-12
    assert row["c4_lines_removed_fraction"] == 0.2
    assert row["rps_lines_ending_with_terminal_punctution_mark"] == 0.7
    assert row["rps_doc_frac_chars_top_2gram"] is None  # not measured: null, not a guess


def test_text_signals() -> None:
    s = text_signals("the cat the dog {x}")
    assert s["rps_doc_frac_unique_words"] == 0.8
    assert abs(s["rps_doc_unigram_entropy"] - (-(0.4 * np.log(0.4)) - 3 * 0.2 * np.log(0.2))) < 1e-9
    assert s["rps_doc_curly_bracket"] == 2 / len("the cat the dog {x}")


def test_model_scores_without_heldout_skill_weigh_nothing() -> None:
    """`heldout` holds each score's lower confidence bound; Spearman's must also exceed 0."""
    weights = {
        "classifier_score": 1.0,
        "cleanliness": 0.5,
        "writing_style": 0.5,
        "educational_value": 0.5,
        "toxicity": -0.5,
    }
    heldout = {
        "classifier_score": 0.93,
        "cleanliness": -0.4,
        "writing_style": None,
        "educational_value": 0.0,
    }
    thresholds = {"classifier_score": 0.6, "cleanliness": 0.1, "writing_style": 0.1}
    thresholds["educational_value"] = -0.5  # a lenient setting cannot admit an interval at 0
    floors = {"cleanliness": 0.0, "writing_style": 0.0, "educational_value": 0.0}
    kept, excluded = skilled(weights, heldout, thresholds, floors)
    assert kept == {"classifier_score": 1.0, "toxicity": -0.5}
    assert excluded == {
        "cleanliness": "held-out CI low -0.400 < 0.1",
        "writing_style": "held-out CI low n/a < 0.1",
        "educational_value": "held-out CI low 0.000 <= 0.0: no skill distinguishable",
    }
