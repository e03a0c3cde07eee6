"""Exact deduplication and the keep policies, on small frames."""

from __future__ import annotations

import polars as pl

from assets.cleaned.dedup import choose_kept, cluster_members, duplicate_drops, exact_pairs


def test_exact_dedup_keeps_the_earliest_copy_and_records_the_rest() -> None:
    docs = pl.DataFrame(
        {
            "doc_id": ["d1", "d2", "d3", "d4"],
            "shard": ["a", "a", "b", "b"],
            "source_offset": [10, 5, 0, 9],
            "content_hash": ["h1", "h2", "h1", "h1"],
            "n_chars": [10, 20, 30, 5],
        }
    )
    members = cluster_members(docs, exact_pairs(docs))
    clusters = choose_kept(members, docs, "earliest", None)
    assert set(clusters["doc_id"]) == {"d1", "d3", "d4"}
    assert set(clusters["kept_doc_id"]) == {"d1"}
    drops = duplicate_drops(clusters, 0.8)
    assert sorted(drops["doc_id"]) == ["d3", "d4"]
    assert set(drops["rule"]) == {"dedup:exact"} and set(drops["threshold"]) == {1.0}
    longest = choose_kept(members, docs, "longest", None)
    assert set(longest["kept_doc_id"]) == {"d3"}
