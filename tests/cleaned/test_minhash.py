"""MinHash LSH on planted near duplicates of real pages, measured against exact Jaccard."""

from __future__ import annotations

import itertools

import pytest

from assets.cleaned.minhash import (
    BandIndex,
    MinHashConfig,
    MinHasher,
    candidate_pairs,
    shingles,
    verify_pairs,
)
from benchmarks.bench_minhash import planted_documents


@pytest.fixture(scope="module")
def planted() -> list[tuple[str, str]]:
    """Real pages of both crawls plus one edited copy each, with 0-8% of words replaced."""
    return planted_documents(min_words=100)


def _find_pairs(docs: list[tuple[str, str]], config: MinHashConfig) -> set[frozenset[str]]:
    hasher = MinHasher(config)
    signed = [(d, hasher.signature(t)) for d, t in docs]
    candidates = candidate_pairs(signed, BandIndex(hasher), config.threshold - 0.2)
    return {frozenset((a, b)) for a, b, _ in verify_pairs(candidates, dict(docs), config)}


def test_precision_and_recall_at_0_8_against_exact_jaccard(planted) -> None:
    config = MinHashConfig()
    assert (config.ngram, config.bands, config.rows) == (5, 14, 8)
    sets = {d: shingles(t, 5) for d, t in planted}
    truth = {
        frozenset((a, b))
        for a, b in itertools.combinations(sets, 2)
        if len(sets[a] & sets[b]) / len(sets[a] | sets[b]) >= 0.8
    }
    found = _find_pairs(planted, config)
    assert len(truth) >= 30, "the planted set must contain enough true pairs to measure"
    precision = len(found & truth) / len(found)
    recall = len(found & truth) / len(truth)
    print(f"minhash planted set: precision {precision:.3f} recall {recall:.3f} pairs {len(truth)}")
    assert precision >= 0.95 and recall >= 0.95, (precision, recall, len(truth))


def test_incremental_search_finds_the_same_pairs_as_one_pass(planted) -> None:
    config = MinHashConfig()
    hasher = MinHasher(config)
    first, second = planted[: len(planted) // 2], planted[len(planted) // 2 :]
    index = BandIndex(hasher)
    old = candidate_pairs([(d, hasher.signature(t)) for d, t in first], index, 0.6)
    # A later run rebuilds the index from persisted signatures and only signs the new shard.
    rebuilt = BandIndex(hasher)
    for doc_id, signature in index.signatures.items():
        rebuilt.add(doc_id, signature)
    new = candidate_pairs([(d, hasher.signature(t)) for d, t in second], rebuilt, 0.6)
    texts = dict(planted)
    incremental = {frozenset((a, b)) for a, b, _ in verify_pairs(old + new, texts, config)}
    assert incremental == _find_pairs(planted, config)
