"""k-means domains over document embeddings (CLIMB): the domains that mixture search weighs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import silhouette_score

MINI_BATCH_ABOVE = 20_000  # documents; full k-means is exact and fast enough below this


@dataclass(frozen=True)
class Clustering:
    labels: np.ndarray  # cluster id per document
    distances: np.ndarray  # cosine distance to the document's centroid
    centroids: np.ndarray  # unit-normalised
    k: int
    silhouette: float | None


def choose_k(vectors: np.ndarray, candidates: range, seed: int, sample: int = 5000) -> int:
    """The k with the best silhouette on a sample: a cheap, standard automatic choice."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vectors), size=min(sample, len(vectors)), replace=False)
    data = vectors[rows]
    scores = {}
    for k in candidates:
        if 2 <= k < len(data):
            labels = KMeans(k, n_init=3, random_state=seed).fit_predict(data)
            scores[k] = silhouette_score(data, labels, metric="cosine")
    return max(scores, key=scores.get) if scores else 1


def cluster(vectors: np.ndarray, k: int, seed: int) -> Clustering:
    k = max(1, min(k, len(vectors)))
    model_cls = MiniBatchKMeans if len(vectors) > MINI_BATCH_ABOVE else KMeans
    model = model_cls(n_clusters=k, n_init=3, random_state=seed).fit(vectors)
    centroids = _normalise(model.cluster_centers_)
    labels = model.labels_.astype(np.int32)
    distances = 1.0 - np.einsum("ij,ij->i", vectors, centroids[labels])
    silhouette = (
        float(silhouette_score(vectors, labels, metric="cosine")) if 1 < k < len(vectors) else None
    )
    return Clustering(labels, distances.astype(np.float32), centroids, k, silhouette)


def _normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)
