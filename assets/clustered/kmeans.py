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


def assign(vectors: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest existing centroid per document, for new shards between refits."""
    similarity = vectors @ centroids.T
    labels = similarity.argmax(axis=1).astype(np.int32)
    return labels, (1.0 - similarity[np.arange(len(vectors)), labels]).astype(np.float32)


def drift(distances: np.ndarray, reference_distances: np.ndarray) -> float:
    """Relative growth of the mean distance to centroids since the last fit.

    New documents that fit the existing domains keep it near 0; a shard about something new
    lands far from every centroid and pushes it up.
    """
    reference = float(np.mean(reference_distances)) if len(reference_distances) else 0.0
    return float(np.mean(distances)) / reference - 1.0 if reference > 0 else 0.0


def semantic_duplicates(
    vectors: np.ndarray, labels: np.ndarray, distances: np.ndarray, threshold: float
) -> list[tuple[int, int, float]]:
    """SemDeDup: inside each cluster, (removed, kept, cosine) for pairs above the threshold.

    As in NeMo Curator's default, the member farthest from its centroid (the "hard" example) is
    kept and the closer near-copies are removed.
    """
    removed: list[tuple[int, int, float]] = []
    for cluster_id in np.unique(labels):
        members = np.flatnonzero(labels == cluster_id)
        members = members[np.argsort(-distances[members], kind="stable")]  # hardest first
        sims = vectors[members] @ vectors[members].T
        gone: set[int] = set()
        for i in range(len(members)):
            if i in gone:
                continue
            for j in np.flatnonzero(sims[i, i + 1 :] >= threshold) + i + 1:
                if j not in gone:
                    gone.add(int(j))
                    removed.append((int(members[j]), int(members[i]), float(sims[i, j])))
    return removed
