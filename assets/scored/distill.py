"""LLM ratings distilled into cheap regression heads on the document embeddings.

FineWeb-Edu annotates a sample with an LLM and fits a small head on embeddings that then scores
the whole crawl; QuRating and Meta-rater do the same for several dimensions. Here one ridge
regression per dimension (its penalty chosen by leave-one-out inside RidgeCV). Agreement is the
Spearman correlation between the ratings and out-of-fold predictions (k-fold), so every rated
document is predicted once by a head that never saw it. When it is undefined (constant ratings
or predictions, too few documents) it is recorded as null with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.model_selection import KFold

ALPHAS = (0.1, 1.0, 10.0, 100.0)
MIN_RATED = 3


@dataclass(frozen=True)
class HeadReport:
    dimension: str
    n_rated: int
    spearman: float | None
    reason: str | None  # why spearman is None
    alpha: float | None
    heldout: np.ndarray  # out-of-fold prediction per rated document (NaN where none)


def fit_head(
    dimension: str, vectors: np.ndarray, ratings: np.ndarray, folds: int = 5, seed: int = 0
) -> tuple[Ridge | None, HeadReport]:
    """One dimension: held-out agreement first, then the head fitted on every rated document."""
    n = len(ratings)
    heldout = np.full(n, np.nan)
    if n < MIN_RATED:
        reason = f"only {n} parsed ratings (need {MIN_RATED})"
        return None, HeadReport(dimension, n, None, reason, None, heldout)
    alpha = float(RidgeCV(alphas=ALPHAS).fit(vectors, ratings).alpha_)
    for train, test in KFold(n_splits=min(folds, n), shuffle=True, random_state=seed).split(
        vectors
    ):
        head = Ridge(alpha=alpha).fit(vectors[train], ratings[train])
        heldout[test] = np.clip(head.predict(vectors[test]), 0.0, 5.0)
    spearman, reason = agreement(ratings, heldout)
    head = Ridge(alpha=alpha).fit(vectors, ratings)
    return head, HeadReport(dimension, n, spearman, reason, alpha, heldout)


def agreement(ratings: np.ndarray, predictions: np.ndarray) -> tuple[float | None, str | None]:
    """Spearman's rho, or None with the reason it is undefined."""
    if len(np.unique(ratings)) < 2:
        return None, f"ratings are constant (all {ratings[0]:g}): rank correlation undefined"
    if np.ptp(predictions) < 1e-9:
        return None, "held-out predictions are constant: rank correlation undefined"
    rho = float(spearmanr(ratings, predictions).statistic)
    return (None, "Spearman returned NaN") if np.isnan(rho) else (rho, None)


def fit_heads(
    vectors: np.ndarray, ratings: Mapping[str, tuple[np.ndarray, np.ndarray]], folds: int, seed: int
) -> tuple[dict[str, Ridge], list[HeadReport]]:
    """`ratings[dim] = (row indices into vectors, scores)`; dimensions without a head are
    reported and left out of the returned heads."""
    heads: dict[str, Ridge] = {}
    reports = []
    for dim, (rows, scores) in ratings.items():
        head, report = fit_head(dim, vectors[rows], scores.astype(float), folds, seed)
        reports.append(report)
        if head is not None:
            heads[dim] = head
    return heads, reports


def predict(heads: Mapping[str, Ridge], vectors: np.ndarray) -> dict[str, np.ndarray]:
    """Every head's prediction for every row, clipped to the rating scale."""
    return {dim: np.clip(head.predict(vectors), 0.0, 5.0) for dim, head in heads.items()}
