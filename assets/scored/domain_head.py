"""A classification head on the document embeddings that learns the LLM's domain labels.

DataMan labels every document with a domain by running its fine-tuned rater over the whole
corpus; here the rater labels a bounded sample and a logistic regression on the embeddings
carries the labels to every document (as `distill.py` does for ratings).

Skill is measured out of fold (k-fold; every labelled document predicted once by a head that
never saw it) as accuracy and macro-F1. A sample of a few dozen gives a noisy accuracy, so it
carries a seeded bootstrap interval, and the baseline is the share of the most common label:
a head whose interval does not clear it has learned nothing a constant would not give.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import KFold

from assets.scored.distill import BOOTSTRAP, CONFIDENCE

MIN_LABELLED = 6


@dataclass(frozen=True)
class DomainReport:
    n_labelled: int
    n_domains: int
    majority_share: float | None  # accuracy of always answering the most common label
    accuracy: float | None
    accuracy_ci_low: float | None
    accuracy_ci_high: float | None
    macro_f1: float | None
    reason: str | None  # why there is no accuracy
    heldout: list[str | None]  # out-of-fold label per labelled document


def fit_domain_head(
    vectors: np.ndarray, labels: list[str], folds: int = 5, seed: int = 0, c: float = 1.0
) -> tuple[LogisticRegression | None, DomainReport]:
    """Held-out accuracy first (k-fold), then the head fitted on every labelled document."""
    n = len(labels)
    names, counts = np.unique(np.asarray(labels, dtype=object), return_counts=True)
    majority = float(counts.max() / n) if n else None
    empty = [None] * n
    if n < MIN_LABELLED:
        reason = f"only {n} parsed domain labels (need {MIN_LABELLED})"
        return None, DomainReport(n, len(names), majority, None, None, None, None, reason, empty)
    if len(names) < 2:
        reason = f"every label is {names[0]!r}: nothing to learn"
        return None, DomainReport(n, 1, majority, None, None, None, None, reason, empty)
    target = np.asarray(labels, dtype=object)
    heldout = np.empty(n, dtype=object)
    for train, test in KFold(n_splits=min(folds, n), shuffle=True, random_state=seed).split(
        vectors
    ):
        heldout[test] = _fit(vectors[train], target[train], c).predict(vectors[test])
    right = (heldout == target).astype(float)
    low, high = _bootstrap_mean(right, seed)
    f1 = float(f1_score(target.astype(str), heldout.astype(str), average="macro"))
    report = DomainReport(
        n, len(names), majority, float(right.mean()), low, high, f1, None, heldout.tolist()
    )
    return _fit(vectors, target, c), report


class _Constant:
    """The one label a training fold had: the head a fold without a choice would fit."""

    def __init__(self, label: str) -> None:
        self.label = label

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        return np.full(len(vectors), self.label, dtype=object)


def _fit(vectors: np.ndarray, labels: np.ndarray, c: float) -> LogisticRegression | _Constant:
    if len(set(labels)) < 2:
        return _Constant(str(labels[0]))
    return LogisticRegression(C=c, max_iter=1000).fit(vectors, labels.astype(str))


def _bootstrap_mean(values: np.ndarray, seed: int) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean (here: of per-document correctness)."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(BOOTSTRAP, len(values)))].mean(axis=1)
    tail = (1.0 - CONFIDENCE) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def predict_domains(head: LogisticRegression, vectors: np.ndarray) -> np.ndarray:
    return head.predict(vectors).astype(object)
