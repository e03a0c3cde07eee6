"""A 2-D picture of the clusters (PCA of the embeddings), for the UI and the dataset card."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from sklearn.decomposition import PCA

from assets.plotting import png_bytes, pyplot


def plot_projection(
    vectors: np.ndarray, labels: np.ndarray, summary: pl.DataFrame, out: Path
) -> bytes:
    """Writes the PNG to `out` (it ships with the version) and returns its bytes for the UI."""
    points = (
        PCA(n_components=2, random_state=0).fit_transform(vectors)
        if len(vectors) > 2
        else (np.zeros((len(vectors), 2)))
    )
    fig, ax = pyplot().subplots(figsize=(7, 5), dpi=80)
    names = dict(zip(summary["cluster_id"].to_list(), summary["label"].to_list(), strict=True))
    for cluster_id in np.unique(labels):
        mask = labels == cluster_id
        ax.scatter(
            points[mask, 0], points[mask, 1], s=12, label=names.get(int(cluster_id), "")[:40]
        )
    ax.set_title("Documents by cluster (PCA of embeddings)")
    ax.legend(fontsize=6, loc="best", markerscale=1.5)
    png = png_bytes(fig)
    out.write_bytes(png)
    return png
