"""Skill gates that can fail (#15, item 10).

- The classifier's examples are topic-matched: both classes are the crawl's own pages of the same
  languages, its best against its worst by the cleaned stage's heuristics, not CPython's
  documentation against Debian pages (a contrast of topics that reached AUC 1.0).
- Its gate and the rating gate use the lower bound of a seeded bootstrap interval: a scorer with
  no skill (random labels, random ratings) is excluded, also when its point estimate happens to
  clear the threshold; a skilled one is kept.
- The ridge penalty of the distilled heads is chosen inside each outer fold, on rows that exclude
  the held-out ones.
"""

import numpy as np
import polars as pl
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold

from assets.cleaned.clean import Cleaned, CleaningPolicy, clean_document
from assets.cleaned.schema import CLEANED_DOCUMENTS_SCHEMA, SIGNALS_SCHEMA
from assets.documents import make_doc_id
from assets.scored import distill
from assets.scored.artifacts import save_model
from assets.scored.classifier import ClassifierSpec, bootstrap_auc, train_classifier
from assets.scored.combine import skilled
from assets.scored.distill import bootstrap_spearman, fit_head
from assets.scored.features import HEADS_FILE, load_scorers
from assets.scored.ratings import DIMENSIONS
from assets.scored.reference import BUILTIN_PYTHON_DOCS, load_reference
from assets.scored.schema import CLASSIFIER_METRICS_SCHEMA, SCORER_METRICS_SCHEMA, frame
from assets.scored.scoring import ScoringPolicy, gates
from assets.scored.training import classifier_examples, quality_tiers
from resources.lake import Lake
from resources.langid import LanguageIdentifier
from tests.scored.conftest import faq_pages

SPEC = ClassifierSpec(n_features=2**16, folds=5)
POLICY = ScoringPolicy()


# ------------------------------------------------------------------ a lake of real sample pages


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Lake:
    """The cleaned stage's own functions on the English and German Debian FAQ shards."""
    lake = Lake(home=str(tmp_path_factory.mktemp("foundry")))
    identify = LanguageIdentifier().identify
    for language in ("en", "de"):
        kept: list[Cleaned] = []
        for i, text in enumerate(faq_pages(language)):
            doc = {
                "doc_id": make_doc_id(f"faq-{language}", text),
                "shard": f"faq-{language}",
                "url": f"u{i}",
                "text": text,
                "source_offset": i,
            }
            result = clean_document(doc, identify, CleaningPolicy())
            if isinstance(result, Cleaned):
                kept.append(result)
        with lake.publish("cleaned_documents", f"faq-{language}") as out:
            rows = pl.DataFrame([c.row for c in kept])
            out.write("documents", rows, CLEANED_DOCUMENTS_SCHEMA)
            signals = [
                {"doc_id": c.row["doc_id"], "signal": k, "value": v}
                for c in kept
                for k, v in c.signals.items()
            ]
            out.write("signals", pl.DataFrame(signals), SIGNALS_SCHEMA)
    return lake


@pytest.fixture(scope="module")
def reference() -> list[str]:
    return load_reference([BUILTIN_PYTHON_DOCS])


# ------------------------------------------------------------------ topic-matched negatives


def test_both_classes_are_the_crawls_own_pages_of_one_language(lake, reference) -> None:
    examples = classifier_examples(lake, reference, ["en"], 2000, 0)
    crawl = lake.scan("cleaned_documents").filter(pl.col("language") == "en").collect()
    positives = examples.filter(pl.col("label") == 1)
    negatives = examples.filter(pl.col("label") == 0)
    assert positives.height == negatives.height == crawl.height // 3 > 3
    assert set(examples["source"]) == {"crawl"}  # no CPython passage among the positives
    assert set(examples["doc_id"]) <= set(crawl["doc_id"])
    assert set(positives["language"]) == set(negatives["language"]) == {"en"}

    # negatives are the crawl's low-signal pages: every one ranks below every positive
    tiers = quality_tiers(lake, crawl.select("doc_id", "text", "language"), 1 / 3)
    quality = dict(zip(tiers["doc_id"], tiers["heuristic_quality"], strict=True))
    assert max(quality[d] for d in negatives["doc_id"]) < min(
        quality[d] for d in positives["doc_id"]
    )


def test_negatives_share_the_positives_topic(lake, reference) -> None:
    """Measured in words: each negative's nearest example by TF-IDF cosine (content words only)
    is a positive, never one of CPython's documentation passages (the old positives); and both
    classes talk about Debian as much as each other. Topic no longer separates the classes."""
    examples = classifier_examples(lake, reference, ["en"], 2000, 0)
    negatives = examples.filter(pl.col("label") == 0)["text"].to_list()
    positives = examples.filter(pl.col("label") == 1)["text"].to_list()
    python_docs = reference[::8]
    tfidf = TfidfVectorizer(sublinear_tf=True, stop_words="english")
    tfidf.fit(negatives + positives + python_docs)
    similarity = (tfidf.transform(negatives) @ tfidf.transform(positives + python_docs).T).toarray()
    assert (similarity.argmax(axis=1) < len(positives)).all()

    def debian_share(texts: list[str]) -> float:
        return float(np.mean(["debian" in text.lower() for text in texts]))

    assert debian_share(negatives) >= 0.8 and debian_share(positives) >= 0.8
    assert debian_share(python_docs) == 0.0


def test_classes_are_balanced_per_language_when_all_languages_train(lake, reference) -> None:
    examples = classifier_examples(lake, reference, None, 2000, 0)
    counts = examples.group_by("language", "label").len().sort("language", "label")
    assert set(counts["language"]) == {"en", "de"}
    for language in ("en", "de"):
        per_label = counts.filter(pl.col("language") == language)["len"].to_list()
        assert len(per_label) == 2 and per_label[0] == per_label[1] > 0


def test_reference_contrast_takes_the_low_tier_as_negatives(lake, reference) -> None:
    default = classifier_examples(lake, reference, ["en"], 2000, 0)
    dclm = classifier_examples(lake, reference, ["en"], 20, 0, contrast="reference")
    assert set(dclm.filter(pl.col("label") == 1)["source"]) == {"reference"}
    assert dclm.filter(pl.col("label") == 1).height == 20
    low = set(default.filter(pl.col("label") == 0)["doc_id"])
    assert set(dclm.filter(pl.col("label") == 0)["doc_id"]) == low
    with pytest.raises(ValueError, match="unknown contrast"):
        classifier_examples(lake, reference, ["en"], 20, 0, contrast="random")


def test_examples_are_stable(lake, reference) -> None:
    first = classifier_examples(lake, reference, ["en"], 5, 3)
    assert first.height == 10
    assert first.equals(classifier_examples(lake, reference, ["en"], 5, 3))


# ------------------------------------------------------------------ the classifier's AUC gate


def test_bootstrap_auc_is_seeded_and_brackets_the_point_estimate() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([1, 0], 30)
    scores = rng.normal(size=60) + labels
    low, high = bootstrap_auc(labels, scores, 1000, seed=0)
    assert (low, high) == bootstrap_auc(labels, scores, 1000, seed=0)
    assert low < roc_auc_score(labels, scores) < high and high - low < 0.5


def test_a_classifier_on_random_labels_is_excluded(faq_en: list[str], reference) -> None:
    texts = reference[::4][: len(faq_en)] + faq_en
    labels = [1] * (len(texts) - len(faq_en)) + [0] * len(faq_en)
    shuffled = list(np.random.default_rng(0).permutation(labels))
    _, evaluation = train_classifier(texts, shuffled, SPEC)
    assert evaluation.auc_ci_low < POLICY.min_heldout_auc
    kept, excluded = skilled(
        {"classifier_score": 1.0}, {"classifier_score": evaluation.auc_ci_low}, *gates(POLICY)
    )
    assert kept == {} and "classifier_score" in excluded

    _, skilled_eval = train_classifier(texts, labels, SPEC)
    assert skilled_eval.auc_ci_low >= POLICY.min_heldout_auc
    assert skilled_eval.auc_ci_low <= skilled_eval.auc <= skilled_eval.auc_ci_high
    kept, _ = skilled(
        {"classifier_score": 1.0}, {"classifier_score": skilled_eval.auc_ci_low}, *gates(POLICY)
    )
    assert kept == {"classifier_score": 1.0}


def test_a_lucky_point_estimate_does_not_pass_the_gate() -> None:
    """Eight examples a side ranked with AUC 0.69: the point estimate clears 0.6, the interval's
    lower bound does not."""
    labels = np.repeat([1, 0], 8)
    scores = np.array([9, 8, 6, 5, 3, 2, 1, 0.5, 7, 4.5, 4, 3.5, 2.5, 1.5, 0.2, 0.1])
    auc = roc_auc_score(labels, scores)
    low, _ = bootstrap_auc(labels, scores, 1000, seed=0)
    assert auc >= POLICY.min_heldout_auc > low


# ------------------------------------------------------------------ the rating gate


def _embedded(n: int = 24, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim))
    latent = vectors @ rng.normal(size=dim)
    return vectors, np.clip(np.round(2.5 + 1.2 * latent / latent.std()), 0, 5)


def test_a_head_on_random_ratings_is_excluded_and_a_skilled_one_kept() -> None:
    vectors, learnable = _embedded()
    noise = np.random.default_rng(1).integers(0, 6, size=len(vectors)).astype(float)
    _, random_head = fit_head("cleanliness", vectors, noise)
    _, good_head = fit_head("educational_value", vectors, learnable)
    assert random_head.spearman_ci_low is not None and random_head.spearman_ci_low <= 0.0
    assert good_head.spearman_ci_low > POLICY.min_heldout_spearman
    assert good_head.spearman_ci_low <= good_head.spearman <= good_head.spearman_ci_high
    heldout = {"cleanliness": random_head.spearman_ci_low}
    heldout["educational_value"] = good_head.spearman_ci_low
    kept, excluded = skilled(
        {"cleanliness": 0.5, "educational_value": 0.5}, heldout, *gates(POLICY)
    )
    assert kept == {"educational_value": 0.5} and set(excluded) == {"cleanliness"}


def test_a_spearman_that_clears_the_threshold_by_chance_is_excluded() -> None:
    """24 ratings with rho about 0.3: above min_heldout_spearman, but the interval holds 0."""
    rng = np.random.default_rng(4)
    ratings = rng.integers(0, 6, size=24).astype(float)
    predictions = ratings + rng.normal(scale=4.0, size=24)
    rho, _ = distill.agreement(ratings, predictions)
    low, high = bootstrap_spearman(ratings, predictions, seed=0)
    assert rho >= POLICY.min_heldout_spearman and low <= 0.0 < high
    kept, excluded = skilled({"writing_style": 0.5}, {"writing_style": low}, *gates(POLICY))
    assert kept == {} and "writing_style" in excluded


def test_a_zero_spearman_threshold_still_requires_an_interval_above_zero() -> None:
    lenient = ScoringPolicy(min_heldout_spearman=-1.0)
    kept, _ = skilled({"writing_style": 0.5}, {"writing_style": 0.0}, *gates(lenient))
    assert kept == {}
    kept, _ = skilled({"writing_style": 0.5}, {"writing_style": 0.01}, *gates(lenient))
    assert kept == {"writing_style": 0.5}


def test_the_gate_reads_the_stored_lower_bounds(foundry_home) -> None:
    """What quality_scores gates on is the interval's lower bound recorded by the trained assets,
    not their point estimates."""
    lake = Lake(home=str(foundry_home))
    classifier = {
        "fingerprint": "f",
        "trained": False,
        "auc": 0.69,
        "auc_ci_low": 0.41,
        "auc_ci_high": 0.93,
        "n_reference": 8,
        "n_crawl": 8,
        "folds": 5,
    }
    with lake.publish("quality_classifier") as out:
        examples = pl.DataFrame(
            {"doc_id": ["a"], "source": ["crawl"], "language": ["en"], "label": [0]},
            schema_overrides={"label": pl.Int8},
        ).with_columns(pl.lit(0.5).alias("heldout_score"), pl.lit(10).alias("n_chars"))
        out.write("documents", examples, examples.to_arrow().schema)
        out.write(
            "metrics", frame([classifier], CLASSIFIER_METRICS_SCHEMA), CLASSIFIER_METRICS_SCHEMA
        )
    scorer = [
        {"fingerprint": "g", "dimension": d, "spearman": 0.3, "spearman_ci_low": -0.1}
        for d in DIMENSIONS
    ]
    with lake.publish("rating_scorer") as out:
        table = pl.DataFrame({"doc_id": ["a"]})
        out.write("documents", table, table.to_arrow().schema)
        out.write("metrics", frame(scorer, SCORER_METRICS_SCHEMA), SCORER_METRICS_SCHEMA)
        save_model({"heads": {}, "embedding_model": None}, out.staging / HEADS_FILE)
    scorers = load_scorers(lake)
    assert scorers.heldout == {"classifier_score": 0.41, **dict.fromkeys(DIMENSIONS, -0.1)}
    weights = {"classifier_score": 1.0, "writing_style": 0.5, "toxicity": -0.5}
    kept, excluded = skilled(weights, scorers.heldout, *gates(POLICY))
    assert kept == {"toxicity": -0.5} and set(excluded) == {"classifier_score", "writing_style"}


# ------------------------------------------------------------------ alpha inside each fold


def test_alpha_is_chosen_without_the_heldout_fold(monkeypatch) -> None:
    vectors, ratings = _embedded(n=30)
    vectors[:, 0] = np.arange(30)  # a row's first value names it
    seen: list[set[int]] = []
    choose = distill.choose_alpha

    def spy(x: np.ndarray, y: np.ndarray) -> float:
        seen.append({int(v) for v in x[:, 0]})
        return choose(x, y)

    monkeypatch.setattr(distill, "choose_alpha", spy)
    _, report = fit_head("educational_value", vectors, ratings, folds=5, seed=0)
    folds = list(KFold(n_splits=5, shuffle=True, random_state=0).split(vectors))
    assert len(seen) == len(folds) + 1
    for rows, (train, test) in zip(seen, folds, strict=False):
        assert rows == set(train.tolist()) and rows.isdisjoint(test.tolist())
    assert seen[-1] == set(range(30))  # the shipped head's penalty: every rated document
    assert np.isfinite(report.heldout).all()
