"""Figures of the scored stage for the UI: score histograms and the scorers' evaluations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from assets.plotting import png_bytes, pyplot


def histograms(columns: Mapping[str, np.ndarray], bins: int = 20) -> bytes:
    """One small histogram per score (NaNs left out)."""
    plt = pyplot()
    n = max(len(columns), 1)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), dpi=80, squeeze=False)
    for ax, (name, values) in zip(axes.flat, columns.items(), strict=False):
        finite = values[np.isfinite(values)]
        ax.hist(finite, bins=bins, color="#4472c4")
        ax.set_title(f"{name} (n={len(finite)})", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return png_bytes(fig)


def classifier_evaluation(labels: np.ndarray, heldout: np.ndarray, auc: float | None) -> bytes:
    """ROC curve of the out-of-fold scores, and their distribution per class."""
    from sklearn.metrics import roc_curve

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2), dpi=80)
    seen = np.isfinite(heldout)
    if seen.any() and len(np.unique(labels[seen])) == 2:
        fpr, tpr, _ = roc_curve(labels[seen], heldout[seen])
        left.plot(fpr, tpr, color="#4472c4")
    left.plot([0, 1], [0, 1], linestyle=":", color="grey")
    left.set_title(f"held-out ROC, AUC={auc:.3f}" if auc is not None else "held-out ROC: n/a")
    left.set_xlabel("false positive rate")
    left.set_ylabel("true positive rate")
    for label, name in ((1, "reference"), (0, "crawl")):
        right.hist(heldout[seen & (labels == label)], bins=15, range=(0, 1), alpha=0.6, label=name)
    right.set_title("out-of-fold P(reference)")
    right.legend(fontsize=7)
    return png_bytes(fig)


def rating_agreement(panels: Sequence[tuple[str, np.ndarray, np.ndarray, float | None]]) -> bytes:
    """Per dimension: LLM rating against the head's out-of-fold prediction."""
    plt = pyplot()
    n = max(len(panels), 1)
    fig, axes = plt.subplots(1, n, figsize=(2.8 * n, 2.8), dpi=80, squeeze=False)
    for ax, (name, ratings, heldout, rho) in zip(axes.flat, panels, strict=False):
        jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(ratings))
        ax.scatter(ratings + jitter, heldout, s=10)
        ax.set_xlim(-0.5, 5.5)
        ax.set_title(f"{name}\nrho={'n/a' if rho is None else f'{rho:.2f}'}", fontsize=8)
        ax.set_xlabel("LLM rating", fontsize=7)
        ax.set_ylabel("held-out prediction", fontsize=7)
        ax.tick_params(labelsize=7)
    return png_bytes(fig)
