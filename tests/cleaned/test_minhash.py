"""MinHash LSH on planted near duplicates of real pages, measured against exact Jaccard, and
against datatrove's MinHash pipeline (the oracle): same signatures, same removed documents."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from assets.cleaned.minhash import (
    BandIndex,
    MinHashConfig,
    MinHasher,
    candidate_pairs,
    shingles,
    simplify,
    verify_pairs,
)
from benchmarks.bench_minhash import datatrove, jaccard, planted_documents, timed_ours

TRICKY = [
    "Don't stop: we're gonna win 3,5 to 1.000.000 — c'est déjà l'été!",
    "Ünïcödé   café\u00a0naïve\tcoöperate 2024-01-05 ２０２４ ٣٫١٤ Åström",
    "cannot CANNOT Cannot wont won't y'all ima gotta 10km 5kg $5 50% #tag @user",
    "Привет, мир! Это тест: ёлка, йогурт. 東京都に住んでいます。",
    "one two three four",  # fewer than five words: no shingle, no signature
    "",
]


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


def test_texts_too_short_to_shingle_have_no_signature_and_no_pairs() -> None:
    hasher = MinHasher(MinHashConfig())
    assert hasher.signature("one two three four") is None
    assert hasher.signature("") is None
    signed = [("a", None), ("b", None), ("c", hasher.signature("a b c d e f"))]
    assert candidate_pairs(signed, BandIndex(hasher), 0.0) == []


@pytest.mark.oracle
def test_simplification_and_signatures_are_datatrove_s(planted) -> None:
    pytest.importorskip("datatrove")
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
    from datatrove.utils.hashing import HashConfig
    from datatrove.utils.text import simplify_text

    theirs = MinhashDedupSignature(
        "unused", config=MinhashConfig(hash_config=HashConfig(hash_fc="sha1"))
    )
    hasher = MinHasher(MinHashConfig())
    for text in TRICKY + [t for _, t in planted[:80]]:
        assert simplify(text) == simplify_text(text)
        grams = theirs.get_shingles(text)
        signature = hasher.signature(text)
        if grams.size == 0:
            assert signature is None
        else:
            expected = np.concatenate(theirs.get_signature(grams)).astype(np.uint64)
            assert np.array_equal(signature, expected), text[:80]


@pytest.mark.oracle
def test_removed_documents_agree_with_datatrove_s_pipeline(planted) -> None:
    pytest.importorskip("datatrove")
    # our production path (publish_duplicates on a lake), as the benchmark times it
    removed_ours, removed_theirs = timed_ours(planted, "none").result, datatrove(planted)
    agreement = jaccard(removed_ours, removed_theirs)
    print(f"removed: ours {len(removed_ours)}, datatrove {len(removed_theirs)}, J={agreement}")
    assert len(removed_theirs) >= 30
    assert agreement >= 0.95
