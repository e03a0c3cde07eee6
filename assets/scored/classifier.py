"""A DCLM / GPT-3 style quality classifier over hashed word n-grams.

Features are hashed word unigrams and bigrams (what DCLM's fastText classifier sees), weighted by
sublinear TF-IDF, into a class-balanced logistic regression. What the two classes are (by default
the crawl's own best and worst pages by the cleaned stage's heuristics, topic-matched) is decided
in `assets.scored.training.classifier_examples`.

Its held-out AUC comes from stratified k-fold out-of-fold predictions, which uses every example
once for evaluation: the sample crawl has only a few dozen documents, too few for one fixed
split. With so few examples the point estimate alone says little, so the evaluation carries a
seeded bootstrap confidence interval of that AUC (`bootstrap` resamples of the out-of-fold
scores, drawn within each class so every resample keeps both classes and their sizes); the
skill gate of the combined score compares the interval's lower bound with its threshold. The
interval covers the sampling of the evaluated examples, not the variance of refitting the model
on another sample: it is the usual, and an optimistic, choice, which is one more reason to gate
on its lower end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline


@dataclass(frozen=True)
class ClassifierSpec:
    n_features: int = 2**18
    ngram_max: int = 2
    c: float = 1.0
    folds: int = 5
    seed: int = 0
    max_chars: int = 20_000  # a page's first 20k characters say enough about its quality
    bootstrap: int = 1000  # resamples of the out-of-fold scores for the AUC's interval
    confidence: float = 0.95


@dataclass(frozen=True)
class Evaluation:
    auc: float | None
    reason: str | None  # why auc is None
    auc_ci_low: float | None  # bootstrap interval of the held-out AUC (None with auc)
    auc_ci_high: float | None
    n_positive: int
    n_negative: int
    folds: int
    heldout: np.ndarray  # out-of-fold P(reference) per example; NaN where none was computed


def make_model(spec: ClassifierSpec) -> Pipeline:
    return Pipeline(
        [
            (
                "hash",
                HashingVectorizer(
                    ngram_range=(1, spec.ngram_max),
                    n_features=spec.n_features,
                    alternate_sign=False,
                    norm=None,
                ),
            ),
            ("tfidf", TfidfTransformer(sublinear_tf=True)),
            (
                "logreg",
                LogisticRegression(
                    C=spec.c,
                    class_weight="balanced",
                    solver="liblinear",
                    max_iter=2000,
                    random_state=spec.seed,
                ),
            ),
        ]
    )


def train_classifier(
    texts: Sequence[str], labels: Sequence[int], spec: ClassifierSpec
) -> tuple[Pipeline | None, Evaluation]:
    """Evaluate out of fold, then fit on everything; no model when a class is empty."""
    y = np.asarray(labels, dtype=int)
    docs = [t[: spec.max_chars] for t in texts]
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    heldout = np.full(len(y), np.nan)
    if min(n_pos, n_neg) == 0:
        reason = f"need both classes (positive={n_pos}, negative={n_neg})"
        return None, Evaluation(None, reason, None, None, n_pos, n_neg, 0, heldout)
    folds = min(spec.folds, n_pos, n_neg)
    auc, reason, low, high = None, None, None, None
    if folds >= 2:
        split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=spec.seed)
        heldout = cross_val_predict(make_model(spec), docs, y, cv=split, method="predict_proba")[
            :, 1
        ]
        auc = float(roc_auc_score(y, heldout))
        low, high = bootstrap_auc(y, heldout, spec.bootstrap, spec.seed, spec.confidence)
    else:
        reason = f"a class has fewer than 2 examples (positive={n_pos}, negative={n_neg})"
    model = make_model(spec).fit(docs, y)
    return model, Evaluation(auc, reason, low, high, n_pos, n_neg, folds, heldout)


def bootstrap_auc(
    labels: np.ndarray, scores: np.ndarray, resamples: int, seed: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the ROC AUC of `scores` against `labels` (0/1).

    Positives and negatives are resampled separately (a stratified bootstrap), so no resample
    lacks a class; each resample's AUC is the Mann-Whitney statistic on its ranks (ties count
    half), as `roc_auc_score` computes it."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    pos, neg = scores[labels == 1], scores[labels == 0]
    rng = np.random.default_rng(seed)
    drawn = np.concatenate(
        [
            pos[rng.integers(0, len(pos), size=(resamples, len(pos)))],
            neg[rng.integers(0, len(neg), size=(resamples, len(neg)))],
        ],
        axis=1,
    )
    ranks = rankdata(drawn, axis=1)
    u = ranks[:, : len(pos)].sum(axis=1) - len(pos) * (len(pos) + 1) / 2
    aucs = u / (len(pos) * len(neg))
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(aucs, [tail, 1.0 - tail])
    return float(low), float(high)


def classifier_scores(model: Pipeline, texts: Sequence[str], spec: ClassifierSpec) -> np.ndarray:
    """P(positive class) per text, in input order."""
    if not texts:
        return np.zeros(0)
    return model.predict_proba([t[: spec.max_chars] for t in texts])[:, 1]
