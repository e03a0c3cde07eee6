"""Refit or assign: new documents join the last fit's centroids until they drift away from them.

Everything here works on the bounded, stratified sample of assets/clustered/sample.py: "new"
documents are sampled ones the last fit did not see. Because a stratum's sample only shrinks as
the corpus grows, those come from shards added since the fit (plus, rarely, a few unsampled old
documents, which sit like held-out ones and so add no drift).

Drift is measured on documents the last fit has not seen, against the distance that documents
held out at fitting time had (see `kmeans.unseen_distance`), so a new shard that looks like the
old ones keeps the domains the mixture was tuned on, and a shard from elsewhere triggers a refit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from assets.clustered.kmeans import Clustering, assign, choose_k, cluster, drift
from resources.lake import Lake

RefitPolicy = Literal["auto", "always", "never"]


@dataclass(frozen=True)
class FitPolicy:
    n_clusters: int = 0  # 0 picks k by silhouette on a sample
    max_auto_k: int = 24  # largest k tried when choosing automatically
    refit: RefitPolicy = "auto"  # auto refits past max_drift
    max_drift: float = 0.15  # relative rise of new documents' distance over held-out ones
    seed: int = 0
    silhouette_sample: int = 5_000  # silhouette is quadratic: scored on a sample of this size


@dataclass(frozen=True)
class PreviousFit:
    centroids: np.ndarray
    reference_distance: float
    fitted_ids: set[str]


@dataclass(frozen=True)
class FitDecision:
    fit: Clustering
    refitted: bool
    drift: float


def fit_or_assign(
    doc_ids: pl.Series, vectors: np.ndarray, previous: PreviousFit | None, policy: FitPolicy
) -> FitDecision:
    """Assign to the last fit's centroids unless the policy or the new documents' drift asks for
    a refit. Centroids of another vector space (the embedder changed) are never reused."""
    measured = 0.0
    if previous is not None and previous.centroids.shape[1] != vectors.shape[1]:
        previous = None
    if previous is not None and policy.refit != "always":
        labels, distances = assign(vectors, previous.centroids)
        new = ~doc_ids.is_in(list(previous.fitted_ids)).to_numpy()
        measured = drift(distances[new], previous.reference_distance)
        k = len(previous.centroids)
        same_k = policy.n_clusters in (0, k)
        if policy.refit == "never" or (same_k and measured <= policy.max_drift):
            kept = Clustering(
                labels, distances, previous.centroids, k, None, previous.reference_distance
            )
            return FitDecision(kept, False, measured)
    k = policy.n_clusters or choose_k(vectors, range(2, policy.max_auto_k + 1), policy.seed)
    return FitDecision(cluster(vectors, k, policy.seed, policy.silhouette_sample), True, measured)


def previous_fit(lake: Lake) -> PreviousFit | None:
    """Centroids, held-out baseline distance and the documents of the last fit."""
    if not (lake.has("clusters", "centroids") and lake.has("clusters", "fitted_documents")):
        return None
    frame = lake.scan("clusters", "centroids").collect().sort("cluster_id")
    if frame.is_empty():
        return None
    matrix = np.asarray(frame["centroid"].to_list(), dtype=np.float32)
    fitted = lake.scan("clusters", "fitted_documents").collect()["doc_id"]
    return PreviousFit(matrix, float(frame["reference_mean_distance"][0]), set(fitted))


def centroid_table(fit: Clustering, fitted_on: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "cluster_id": np.arange(fit.k, dtype=np.int32),
            "centroid": [c.tolist() for c in fit.centroids],
            "reference_mean_distance": [fit.unseen_distance] * fit.k,
            "fitted_on": [fitted_on] * fit.k,
        }
    )


def fitted_documents(
    doc_ids: pl.Series, decision: FitDecision, previous: PreviousFit | None
) -> pl.DataFrame:
    """The documents the current centroids were fitted on (carried over between refits)."""
    if decision.refitted or previous is None:
        return pl.DataFrame({"doc_id": doc_ids}, schema={"doc_id": pl.String})
    return pl.DataFrame({"doc_id": sorted(previous.fitted_ids)}, schema={"doc_id": pl.String})
