"""LLM ratings distilled into cheap regression heads on the document embeddings.

FineWeb-Edu annotates a sample with an LLM and fits a small head on embeddings that then scores
the whole crawl; QuRating and Meta-rater do the same for several dimensions. Here one ridge
regression per dimension.

Agreement is the Spearman correlation between the ratings and out-of-fold predictions (k-fold),
so every rated document is predicted once by a head that never saw it. The ridge penalty is a
hyper-parameter fitted to data, so it is chosen inside each outer fold (nested cross-validation:
leave-one-out `RidgeCV` on that fold's training rows only); choosing it once on every rated
document would let the held-out rows pick the penalty that predicts them best. The head that is
shipped chooses its penalty on every rated document, which is fine: it is not the one evaluated.

A few dozen ratings give a noisy Spearman, so the report carries a seeded bootstrap interval
(`bootstrap` resamples of the (rating, out-of-fold prediction) pairs); the skill gate of the
combined score compares its lower bound with the threshold. When Spearman is undefined (constant
ratings or predictions, too few documents) it and its interval are null, with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata, spearmanr
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.model_selection import KFold

ALPHAS = (0.1, 1.0, 10.0, 100.0)
MIN_RATED = 3
BOOTSTRAP = 1000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class HeadReport:
    dimension: str
    n_rated: int
    spearman: float | None
    reason: str | None  # why spearman is None
    alpha: float | None  # the shipped head's penalty (each outer fold chose its own)
    heldout: np.ndarray  # out-of-fold prediction per rated document (NaN where none)
    spearman_ci_low: float | None = None  # bootstrap interval of spearman (None with it)
    spearman_ci_high: float | None = None


def choose_alpha(vectors: np.ndarray, ratings: np.ndarray) -> float:
    """The ridge penalty that leave-one-out prefers on these rows (and on no others)."""
    return float(RidgeCV(alphas=ALPHAS).fit(vectors, ratings).alpha_)


def fit_head(
    dimension: str,
    vectors: np.ndarray,
    ratings: np.ndarray,
    folds: int = 5,
    seed: int = 0,
    bootstrap: int = BOOTSTRAP,
    scale: tuple[float, float] = (0.0, 5.0),
) -> tuple[Ridge | None, HeadReport]:
    """One dimension: held-out agreement first (nested CV), then the head fitted on every rated
    document. Held-out predictions are clipped to the rating `scale`."""
    n = len(ratings)
    heldout = np.full(n, np.nan)
    if n < MIN_RATED:
        reason = f"only {n} parsed ratings (need {MIN_RATED})"
        return None, HeadReport(dimension, n, None, reason, None, heldout)
    for train, test in KFold(n_splits=min(folds, n), shuffle=True, random_state=seed).split(
        vectors
    ):
        alpha = choose_alpha(vectors[train], ratings[train])
        head = Ridge(alpha=alpha).fit(vectors[train], ratings[train])
        heldout[test] = np.clip(head.predict(vectors[test]), *scale)
    spearman, reason = agreement(ratings, heldout)
    low, high = (None, None)
    if spearman is not None:
        low, high = bootstrap_spearman(ratings, heldout, bootstrap, seed)
    alpha = choose_alpha(vectors, ratings)
    head = Ridge(alpha=alpha).fit(vectors, ratings)
    return head, HeadReport(dimension, n, spearman, reason, alpha, heldout, low, high)


def agreement(ratings: np.ndarray, predictions: np.ndarray) -> tuple[float | None, str | None]:
    """Spearman's rho, or None with the reason it is undefined."""
    if len(np.unique(ratings)) < 2:
        return None, f"ratings are constant (all {ratings[0]:g}): rank correlation undefined"
    if np.ptp(predictions) < 1e-9:
        return None, "held-out predictions are constant: rank correlation undefined"
    rho = float(spearmanr(ratings, predictions).statistic)
    return (None, "Spearman returned NaN") if np.isnan(rho) else (rho, None)


def bootstrap_spearman(
    ratings: np.ndarray,
    predictions: np.ndarray,
    resamples: int = BOOTSTRAP,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """Percentile bootstrap interval of Spearman's rho over resampled (rating, prediction) pairs.

    A resample whose ratings or predictions are all equal has no rank correlation; it counts as
    0 (no evidence of agreement) rather than being skipped, which would favour the resamples
    that happen to agree."""
    ratings, predictions = np.asarray(ratings, float), np.asarray(predictions, float)
    n = len(ratings)
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n, size=(resamples, n))
    a = rankdata(ratings[rows], axis=1)
    b = rankdata(predictions[rows], axis=1)
    a -= a.mean(axis=1, keepdims=True)
    b -= b.mean(axis=1, keepdims=True)
    scale = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    rho = np.divide((a * b).sum(axis=1), scale, out=np.zeros(resamples), where=scale > 1e-12)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(rho, [tail, 1.0 - tail])
    return float(low), float(high)


def fit_heads(
    vectors: np.ndarray,
    ratings: Mapping[str, tuple[np.ndarray, np.ndarray]],
    folds: int,
    seed: int,
    scale: tuple[float, float] = (0.0, 5.0),
) -> tuple[dict[str, Ridge], list[HeadReport]]:
    """`ratings[dim] = (row indices into vectors, scores)`; dimensions without a head are
    reported and left out of the returned heads."""
    heads: dict[str, Ridge] = {}
    reports = []
    for dim, (rows, scores) in ratings.items():
        head, report = fit_head(dim, vectors[rows], scores.astype(float), folds, seed, scale=scale)
        reports.append(report)
        if head is not None:
            heads[dim] = head
    return heads, reports


def predict(heads: Mapping[str, Ridge], vectors: np.ndarray) -> dict[str, np.ndarray]:
    """Every head's prediction for every row, clipped to the rating scale."""
    return {dim: np.clip(head.predict(vectors), 0.0, 5.0) for dim, head in heads.items()}
