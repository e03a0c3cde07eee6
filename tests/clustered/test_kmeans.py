"""k-means domains, their labels and drift, on vectors of two clear topics."""

from __future__ import annotations

import numpy as np

from assets.clustered.kmeans import assign, cluster, drift
from assets.clustered.labels import ctfidf_terms


def test_kmeans_and_ctfidf_labels_separate_two_topics() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.05, (20, 8)) + np.eye(8)[0]
    b = rng.normal(0, 0.05, (20, 8)) + np.eye(8)[1]
    vectors = np.vstack([a, b]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    result = cluster(vectors, 2, seed=0)
    assert len(set(result.labels[:20])) == 1 and len(set(result.labels[20:])) == 1
    texts = ["kernel module driver kernel"] * 20 + ["recipe flour oven recipe"] * 20
    terms = ctfidf_terms(texts, result.labels, 2)
    assert {terms[result.labels[0]][0], terms[result.labels[20]][0]} == {"kernel", "recipe"}


def test_drift_is_near_zero_for_more_of_the_same_and_large_for_a_new_topic() -> None:
    rng = np.random.default_rng(1)

    def topic(axis: int, n: int) -> np.ndarray:
        v = rng.normal(0, 0.3, (n, 16)) + np.eye(16)[axis]
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    fitted = cluster(np.vstack([topic(0, 60), topic(1, 60)]), 8, seed=0)
    assert fitted.unseen_distance > float(np.mean(fitted.distances)), "held out sit farther"
    _, same = assign(np.vstack([topic(0, 30), topic(1, 30)]), fitted.centroids)
    _, new = assign(topic(2, 30), fitted.centroids)
    assert -0.25 < drift(same, fitted.unseen_distance) < 0.1
    assert drift(new, fitted.unseen_distance) > 0.5
    assert drift(new[:0], fitted.unseen_distance) == 0.0
