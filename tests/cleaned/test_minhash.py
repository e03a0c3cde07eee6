"""MinHash LSH on planted near duplicates of real pages, measured against exact Jaccard, and
against datatrove's MinHash pipeline (the oracle): same signatures, same removed documents."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from assets.cleaned.dedup import DedupPolicy, publish_duplicates
from assets.cleaned.minhash import MinHashConfig, MinHasher, shingles, simplify
from benchmarks.bench_minhash import (
    cleaned_lake,
    datatrove,
    jaccard,
    planted_documents,
    timed_ours,
)
from resources.lake import Lake

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


def _found_pairs(lake: Lake) -> set[frozenset[str]]:
    """Pairs of documents the published version puts in one duplicate cluster."""
    clusters = lake.scan("duplicate_clusters").collect()
    groups: dict[str, list[str]] = {}
    for doc_id, cluster in clusters.select("doc_id", "cluster_id").iter_rows():
        groups.setdefault(cluster, []).append(doc_id)
    return {frozenset(p) for g in groups.values() for p in itertools.combinations(g, 2)}


def test_precision_and_recall_at_0_8_against_exact_jaccard(planted, tmp_path) -> None:
    """The production path (per-shard signatures, DuckDB buckets, exact confirmation, connected
    components) against exact Jaccard over every pair of the planted set."""
    config = MinHashConfig()
    assert (config.ngram, config.bands, config.rows) == (5, 14, 8)
    sets = {d: shingles(t, 5) for d, t in planted}
    truth = {
        frozenset((a, b))
        for a, b in itertools.combinations(sets, 2)
        if len(sets[a] & sets[b]) / len(sets[a] | sets[b]) >= 0.8
    }
    lake = cleaned_lake(planted, str(tmp_path))
    publish_duplicates(lake, DedupPolicy(config), run_id="test")
    found = _found_pairs(lake)
    assert len(truth) >= 30, "the planted set must contain enough true pairs to measure"
    precision = len(found & truth) / len(found)
    recall = len(found & truth) / len(truth)
    print(f"minhash planted set: precision {precision:.3f} recall {recall:.3f} pairs {len(truth)}")
    assert precision >= 0.95 and recall >= 0.95, (precision, recall, len(truth))


def test_texts_too_short_to_shingle_have_no_signature_and_no_near_pairs(tmp_path) -> None:
    hasher = MinHasher(MinHashConfig())
    assert hasher.signature("one two three four") is None
    assert hasher.signature("") is None
    docs = [("a", "one two three four"), ("b", "One  two three FOUR"), ("c", "a b c d e f")]
    lake = cleaned_lake(docs, str(tmp_path))
    result = publish_duplicates(lake, DedupPolicy(MinHashConfig(confirm="none")), "test")
    signed = lake.scan("minhash_signatures").collect()
    assert signed.height == 3 and signed["signature"].null_count() == 2
    assert lake.scan("minhash_signatures", "bands").collect()["doc_id"].unique().to_list() == ["c"]
    # "a" and "b" normalise to the same content hash: an exact pair, though never signed
    assert result.candidate_pairs == 0 and result.exact_pairs == 1


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
