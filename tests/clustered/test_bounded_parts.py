"""The bounded pieces of the clustered stage: the fast embedder, the stratified sample, SemDeDup
in blocks and the refit decision."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from assets.clustered.fit import FitPolicy, PreviousFit, fit_or_assign
from assets.clustered.kmeans import cluster
from assets.clustered.sample import count_strata, quotas, take
from assets.clustered.semdedup import ClusterSpill, blockwise_duplicates, semdedup_spill
from resources.embedder import Embedder
from resources.hashing_svd import FAST_MODEL, HashingSVDSpec, reference_hash
from resources.settings import SAMPLE_CRAWL_DIR

APT = "Debian installs software with apt: run apt-get install to add a package to the system."
APT_AGAIN = "To add software on a Debian system, apt-get install fetches and installs a package."
CAKE = "Preheat the oven, mix flour with butter and sugar, then bake the cake for forty minutes."


@pytest.fixture(scope="module")
def fast() -> Embedder:
    return Embedder(model=FAST_MODEL)


def test_fast_embedder_is_deterministic_unit_length_and_meaningful(fast: Embedder) -> None:
    vectors = fast.encode([APT, APT_AGAIN, CAKE])
    again = fast.encode([CAKE, APT])  # another batch, another order: the same vectors
    assert vectors.shape == (3, fast.dimension()) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(again, vectors[[2, 0]], atol=1e-6)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > unrelated + 0.3, (similar, unrelated)


def test_fast_model_id_names_parameters_and_reference(fast: Embedder) -> None:
    model_id = fast.model_id()
    assert (
        model_id.startswith(f"{FAST_MODEL}-") and reference_hash(str(SAMPLE_CRAWL_DIR)) in model_id
    )
    assert Embedder(model=FAST_MODEL, fast_dimension=128).model_id() != model_id
    assert Embedder(model=FAST_MODEL, fast_seed=1).model_id() != model_id
    other_reference = HashingSVDSpec(reference=str(SAMPLE_CRAWL_DIR.parent))
    assert other_reference.model_id() != HashingSVDSpec().model_id()


def test_quotas_are_proportional_and_add_up_to_the_sample() -> None:
    counts = {("a", "en"): 700, ("a", "de"): 200, ("b", "en"): 99, ("b", "ja"): 1}
    chosen = quotas(counts, 100)
    assert sum(chosen.values()) == 100
    assert chosen[("a", "en")] == 70 and chosen[("a", "de")] == 20 and chosen[("b", "en")] == 10
    assert quotas(counts, 5000) == counts  # a small corpus is taken whole


def test_sample_of_a_grown_shard_keeps_its_earlier_members() -> None:
    """Smaller quotas keep a subset: documents new to the fit come from new shards."""
    frame = pl.DataFrame({"doc_id": [f"d{i}" for i in range(500)], "language": ["en"] * 500})
    big = take(frame, "s", {("s", "en"): 50}, seed=3)
    small = take(frame, "s", {("s", "en"): 20}, seed=3)
    assert big.height == 50 and small.height == 20
    assert set(small["doc_id"]) <= set(big["doc_id"])
    assert set(take(frame, "s", {("s", "en"): 20}, seed=4)["doc_id"]) != set(small["doc_id"])
    assert count_strata("s", frame) == {("s", "en"): 500}


def _greedy(vectors: np.ndarray, distances: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """The one-matrix SemDeDup the blocks must reproduce: hardest first, survivors remove."""
    order = np.argsort(-distances, kind="stable")
    sims = vectors[order] @ vectors[order].T
    gone: set[int] = set()
    out = []
    for i in range(len(order)):
        if i in gone:
            continue
        for j in np.flatnonzero(sims[i, i + 1 :] >= threshold) + i + 1:
            if int(j) not in gone:
                gone.add(int(j))
                out.append((int(order[j]), int(order[i])))
    return sorted(out)


def test_blockwise_semdedup_equals_the_whole_matrix_greedy() -> None:
    rng = np.random.default_rng(0)
    for _ in range(10):
        n = int(rng.integers(20, 250))
        centres = rng.normal(size=(n // 3 + 1, 8))
        vectors = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 0.15, (n, 8))
        vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
        distances = rng.random(n).astype(np.float32)
        expected = _greedy(vectors, distances, 0.95)
        assert expected, "the data must hold near duplicates"
        for block in (1, 7, 64, 1000):
            found = blockwise_duplicates(vectors, distances, 0.95, block)
            assert sorted((r, k) for r, k, _ in found) == expected


def test_semdedup_finds_planted_copies_across_blocks_and_shards(tmp_path) -> None:
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(300, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    copies = vectors[[5, 100]] + rng.normal(0, 0.01, (2, 32)).astype(np.float32)
    copies /= np.linalg.norm(copies, axis=1, keepdims=True)
    spill = ClusterSpill(tmp_path, 32)
    ids = [f"d{i}" for i in range(300)]
    for shard in (slice(0, 150), slice(150, 300)):  # one cluster, written shard by shard
        rows = np.arange(300)[shard]
        spill.append(
            [ids[i] for i in rows], np.zeros(len(rows)), np.full(len(rows), 0.5), vectors[rows]
        )
    spill.append(["copy5", "copy100"], np.zeros(2), np.array([0.1, 0.1]), copies)
    found = list(semdedup_spill(spill, threshold=0.95, block=16))  # 302 rows: 19 blocks
    assert sorted((r, k) for r, k, _ in found) == [("copy100", "d100"), ("copy5", "d5")]


def _topic(rng, axis: int, n: int, dim: int = 16) -> np.ndarray:
    v = rng.normal(0, 0.3, (n, dim)) + np.eye(dim)[axis]
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def fitted():
    rng = np.random.default_rng(2)
    vectors = np.vstack([_topic(rng, 0, 60), _topic(rng, 1, 60)])
    ids = [f"old{i}" for i in range(120)]
    fit = cluster(vectors, 4, seed=0)
    previous = PreviousFit(fit.centroids, fit.unseen_distance, set(ids))
    return rng, vectors, ids, previous


def _decide(rng, vectors, ids, previous, new: np.ndarray, **policy):
    sample = np.vstack([vectors, new])
    doc_ids = pl.Series(ids + [f"new{i}" for i in range(len(new))])
    return fit_or_assign(doc_ids, sample, previous, FitPolicy(n_clusters=4, **policy))


def test_refit_decision_assigns_more_of_the_same(fitted) -> None:
    rng, vectors, ids, previous = fitted
    decision = _decide(
        rng, vectors, ids, previous, np.vstack([_topic(rng, 0, 20), _topic(rng, 1, 20)])
    )
    assert not decision.refitted and decision.drift < 0.15
    np.testing.assert_array_equal(decision.fit.centroids, previous.centroids)


def test_refit_decision_refits_a_new_topic_and_obeys_the_policy(fitted) -> None:
    rng, vectors, ids, previous = fitted
    new_topic = _topic(rng, 2, 40)
    decision = _decide(rng, vectors, ids, previous, new_topic)
    assert decision.refitted and decision.drift > 0.15
    assert not _decide(rng, vectors, ids, previous, new_topic, refit="never").refitted
    same = np.vstack([_topic(rng, 0, 20), _topic(rng, 1, 20)])
    assert _decide(rng, vectors, ids, previous, same, refit="always").refitted
    other_space = PreviousFit(previous.centroids[:, :8], previous.reference_distance, set(ids))
    assert _decide(rng, vectors, ids, other_space, same).refitted, "another embedder: refit"
