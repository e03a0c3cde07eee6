"""k-means domains over document embeddings (CLIMB): the domains that mixture search weighs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import silhouette_score

MINI_BATCH_ABOVE = 20_000  # documents; full k-means is exact and fast enough below this
SILHOUETTE_SAMPLE = 5_000  # silhouette is quadratic: scored on a seeded sample of this size


@dataclass(frozen=True)
class Clustering:
    labels: np.ndarray  # cluster id per document
    distances: np.ndarray  # cosine distance to the document's centroid
    centroids: np.ndarray  # unit-normalised
    k: int
    silhouette: float | None
    unseen_distance: float  # mean distance of held-out documents: the baseline for drift


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


def cluster(
    vectors: np.ndarray, k: int, seed: int, silhouette_sample: int = SILHOUETTE_SAMPLE
) -> Clustering:
    """Fit on `vectors` (the bounded sample); the silhouette on at most `silhouette_sample`."""
    k = max(1, min(k, len(vectors)))
    centroids = _fit_centroids(vectors, k, seed)
    labels, distances = assign(vectors, centroids)
    silhouette = None
    if 1 < len(np.unique(labels)) < len(vectors):
        size = min(silhouette_sample, len(vectors))
        silhouette = float(
            silhouette_score(vectors, labels, metric="cosine", sample_size=size, random_state=seed)
        )
    unseen = unseen_distance(vectors, k, seed)
    return Clustering(labels, distances, centroids, k, silhouette, unseen)


def _fit_centroids(vectors: np.ndarray, k: int, seed: int) -> np.ndarray:
    model_cls = MiniBatchKMeans if len(vectors) > MINI_BATCH_ABOVE else KMeans
    model = model_cls(n_clusters=k, n_init=3, random_state=seed).fit(vectors)
    return _normalise(model.cluster_centers_)


def unseen_distance(vectors: np.ndarray, k: int, seed: int, folds: int = 5) -> float:
    """Mean distance of documents to centroids fitted without them (k-fold).

    Fitted documents sit closer to their centroids than any new document can, the more so the
    larger k is against the corpus; drift compared with that optimistic figure would call every
    new shard a change. Documents the fit never saw are the fair baseline.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(vectors))
    distances: list[np.ndarray] = []
    for fold in np.array_split(order, min(folds, len(vectors))):
        rest = np.setdiff1d(order, fold)
        if len(rest) < k or len(fold) == 0:
            continue
        _, held_out = assign(vectors[fold], _fit_centroids(vectors[rest], k, seed))
        distances.append(held_out)
    return float(np.mean(np.concatenate(distances))) if distances else 0.0


def _normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)


def assign(vectors: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest existing centroid per document, for new shards between refits."""
    similarity = vectors @ centroids.T
    labels = similarity.argmax(axis=1).astype(np.int32)
    return labels, (1.0 - similarity[np.arange(len(vectors)), labels]).astype(np.float32)


def drift(new_distances: np.ndarray, unseen_reference: float) -> float:
    """Relative growth of new documents' mean distance over the held-out baseline of the fit.

    New documents that fit the existing domains keep it near 0; a shard about something new
    lands far from every centroid and pushes it up. No new documents, no drift.
    """
    if len(new_distances) == 0 or unseen_reference <= 0:
        return 0.0
    return float(np.mean(new_distances)) / unseen_reference - 1.0
