"""Deduplication over per-shard signatures: keep policies, planted near duplicates across shards,
incremental runs that sign only the new shard, and a bounded reduce on 50k synthetic signatures."""

from __future__ import annotations

import tracemalloc

import numpy as np
import polars as pl
import pytest

from assets.cleaned.dedup import (
    DedupPolicy,
    StaleSignaturesError,
    deduplicate,
    publish_duplicates,
)
from assets.cleaned.minhash import MinHashConfig, MinHasher, exact_jaccard
from assets.cleaned.schema import CLEANED_DOCUMENTS_SCHEMA
from assets.cleaned.signatures import BANDS_SCHEMA, signed_schema, store_signatures
from assets.documents import content_hash
from benchmarks.bench_minhash import planted_documents
from resources.lake import Lake

NONE = DedupPolicy(MinHashConfig(confirm="none"))


def _publish_cleaned(lake: Lake, shard: str, docs: list[tuple[str, str]], offset: int = 0):
    frame = pl.DataFrame(
        {
            "doc_id": [d for d, _ in docs],
            "shard": [shard] * len(docs),
            "text": [t for _, t in docs],
            "language": ["en"] * len(docs),
            "content_hash": [content_hash(t) for _, t in docs],
            "n_chars": [len(t) for _, t in docs],
            "source_offset": list(range(offset, offset + len(docs))),
        }
    )
    with lake.publish("cleaned_documents", shard, run_id="test") as out:
        out.write("documents", frame, CLEANED_DOCUMENTS_SCHEMA)


def _removed(lake: Lake) -> dict[str, str]:
    dropped = lake.scan("duplicate_clusters", "dropped").collect()
    return dict(dropped.select("doc_id", "rule").iter_rows())


@pytest.fixture(scope="module")
def planted() -> list[tuple[str, str]]:
    """60 real pages and an edited copy of each (0-8% of words replaced)."""
    return planted_documents(min_words=100)[:120]


def test_exact_copies_keep_the_earliest_or_the_longest(tmp_path) -> None:
    text = "the same words in the same order, over and over, make an exact copy here"
    docs = {"a": [("d1", "other text entirely " * 5), ("d2", text)], "b": [("d3", text.upper())]}
    lake = Lake(home=str(tmp_path))
    _publish_cleaned(lake, "a", docs["a"])
    _publish_cleaned(lake, "b", docs["b"])
    result = publish_duplicates(lake, NONE, "test")
    assert (result.rows_in, result.kept, result.duplicates, result.exact_pairs) == (3, 2, 1, 1)
    assert _removed(lake) == {"d3": "dedup:exact"}, "exact wins a tie with minhash at 1.0"
    clusters = lake.scan("duplicate_clusters").collect().sort("doc_id")
    assert clusters["kept_doc_id"].to_list() == ["d2", "d2"]
    assert clusters["is_kept"].to_list() == [True, False]
    dropped = lake.scan("duplicate_clusters", "dropped").collect()
    assert dropped["threshold"].to_list() == [1.0] and dropped["detail"][0] == "duplicate of d2"


def test_keep_policies_pick_their_copy(tmp_path) -> None:
    text = "alpha beta gamma delta epsilon zeta eta theta. iota kappa lambda mu"
    docs = [("x1", text), ("x2", text.replace(" ", "   ")), ("x3", text.upper())]
    lake = Lake(home=str(tmp_path))
    _publish_cleaned(lake, "s", docs)
    kept = {}
    for keep in ("earliest", "longest", "best_quality"):
        publish_duplicates(lake, DedupPolicy(MinHashConfig(confirm="none"), keep=keep), "t")
        clusters = lake.scan("duplicate_clusters").collect()
        assert clusters.height == 3
        kept[keep] = set(clusters["kept_doc_id"])
    assert kept["earliest"] == {"x1"} and kept["longest"] == {"x2"}
    assert len(kept["best_quality"]) == 1


def test_buckets_find_planted_near_duplicates_across_shards(tmp_path, planted) -> None:
    """Originals in two shards, their edited copies in a third: every removal is a copy, and the
    copy's cluster is kept by its original in another shard."""
    originals, copies = planted[0::2], planted[1::2]
    lake = Lake(home=str(tmp_path))
    _publish_cleaned(lake, "s1", originals[:30])
    _publish_cleaned(lake, "s2", originals[30:], offset=30)
    _publish_cleaned(lake, "s3", copies)
    result = publish_duplicates(lake, DedupPolicy(), "test")
    removed = _removed(lake)
    clear = {
        c for (_, o), (c, t) in zip(originals, copies, strict=True) if exact_jaccard(o, t) >= 0.85
    }
    assert len(clear) >= 10 and result.texts_compared > 0
    assert clear <= set(removed)
    clusters = lake.scan("duplicate_clusters").collect()
    kept = dict(clusters.select("doc_id", "kept_doc_id").iter_rows())
    originals_ids = {d for d, _ in originals}
    assert all(kept[c] in originals_ids for c in clear), "copies are kept by pages in s1/s2"
    stats = lake.scan("duplicate_clusters", "band_stats").collect()
    assert stats.height == 14 and stats["candidate_pairs"].sum() >= result.candidate_pairs


def test_a_new_shard_is_matched_against_stored_bands_without_re_signing(tmp_path, planted):
    """Run 1 signs shards s1 and s2; run 2 adds s3 (copies of s1's pages) and signs only s3.
    Its removals equal those of a single pass over all three shards, and the exact checks of
    run 1 are reused, not recomputed."""
    first, second = planted[:60], planted[60:]
    lake = Lake(home=str(tmp_path / "incremental"))
    _publish_cleaned(lake, "s1", first)
    _publish_cleaned(lake, "s2", second[::2], offset=100)
    publish_duplicates(lake, DedupPolicy(), "run1")
    signed_before = {f.partition: f.path for f in lake.files("minhash_signatures")}
    _publish_cleaned(lake, "s3", [(f"late-{d}", t + " fin") for d, t in first[::2]])
    again = publish_duplicates(lake, DedupPolicy(), "run2")
    signed_after = {f.partition: f.path for f in lake.files("minhash_signatures")}
    assert {s: signed_after[s] for s in signed_before} == signed_before, "old shards not re-signed"
    assert set(signed_after) == {"s1", "s2", "s3"}
    assert again.checks_reused > 0, "run 1's exact checks are not made again"
    publish_duplicates(lake, NONE, "run3")  # a run without checks keeps the earlier ones
    assert publish_duplicates(lake, DedupPolicy(), "run4").texts_compared == 0

    once = Lake(home=str(tmp_path / "once"))
    _publish_cleaned(once, "s1", first)
    _publish_cleaned(once, "s2", second[::2], offset=100)
    _publish_cleaned(once, "s3", [(f"late-{d}", t + " fin") for d, t in first[::2]])
    single = publish_duplicates(once, DedupPolicy(), "once")
    assert _removed(lake) == _removed(once)
    assert any(d.startswith("late-") for d in _removed(lake)), "the new shard met old bands"
    assert single.checks_reused == 0


def test_stale_signatures_are_refused(tmp_path) -> None:
    lake = Lake(home=str(tmp_path))
    _publish_cleaned(lake, "s", [("d1", "some words " * 10)])
    publish_duplicates(lake, NONE, "run1")
    _publish_cleaned(lake, "s", [("d1", "some words " * 10), ("d2", "more words " * 10)])
    stale = pytest.raises(StaleSignaturesError, match="older cleaned version")
    with stale, lake.publish("duplicate_clusters", run_id="stale") as out:
        deduplicate(lake, NONE, out)


def _synthetic_lake(home: str, shards: int, per_shard: int, planted: int) -> tuple[Lake, set]:
    """`shards` x `per_shard` documents with random signatures; `planted` of them copy one band
    (8 minima) of a document in another shard and differ everywhere else."""
    rng = np.random.default_rng(5)
    config = MinHashConfig()
    hasher = MinHasher(config)
    n = shards * per_shard
    signatures = rng.integers(0, 2**61, size=(n, config.num_hashes), dtype=np.uint64)
    sources = rng.choice(per_shard, size=planted, replace=False)  # all in shard 0
    targets = per_shard + rng.choice(n - per_shard, size=planted, replace=False)
    bands = rng.integers(0, config.bands, size=planted)
    for source, target, band in zip(sources, targets, bands, strict=True):
        columns = slice(band * config.rows, (band + 1) * config.rows)
        signatures[target, columns] = signatures[source, columns]
    lake = Lake(home=home)
    for s in range(shards):
        ids = range(s * per_shard, (s + 1) * per_shard)
        docs = [(f"doc{i:07d}", f"text {i}") for i in ids]
        _publish_cleaned(lake, f"shard{s}", docs, offset=0)
        (cleaned,) = lake.files("cleaned_documents", partitions=[f"shard{s}"])
        rows = [
            {"doc_id": d, "shard": f"shard{s}", "content_hash": content_hash(t), "n_chars": 9,
             "source_offset": i}
            for i, (d, t) in enumerate(docs)
        ]  # fmt: skip
        with lake.publish("minhash_signatures", f"shard{s}", run_id="synthetic") as out:
            store_signatures(
                zip(rows, signatures[ids.start : ids.stop], strict=True),
                hasher,
                cleaned.version,
                out.table("documents", signed_schema(config.num_hashes)),
                out.table("bands", BANDS_SCHEMA),
            )
    return lake, {f"doc{t:07d}" for t in targets}


def test_reduce_runs_in_bounded_memory_on_50k_synthetic_signatures(tmp_path) -> None:
    """50k documents (700k band rows): DuckDB limited to 64 MB and one thread, each band split
    into hash ranges; every planted pair is found, and Python's own allocations during the
    reduce stay far below the 45 MB that the signatures alone would take in a Python dict."""
    lake, copies = _synthetic_lake(str(tmp_path), shards=5, per_shard=10_000, planted=500)
    policy = DedupPolicy(
        MinHashConfig(confirm="none"),
        memory_limit_mb=64,
        threads=1,
        max_band_rows=20_000,
        temp_directory=str(tmp_path),
    )
    tracemalloc.start()
    with lake.publish("duplicate_clusters", run_id="bounded") as out:
        result = deduplicate(lake, policy, out)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"50k synthetic: python peak {peak / 2**20:.1f} MiB, {result.seconds:.1f}s")
    assert result.rows_in == 50_000 and result.candidate_pairs == 500
    assert set(_removed(lake)) == copies
    stats = lake.scan("duplicate_clusters", "band_stats").collect()
    assert set(stats["hash_ranges"]) == {3}, "50k rows per band / 20k per step"
    assert peak < 8 * 2**20, f"python peak {peak / 2**20:.1f} MiB"


def test_the_assets_sign_one_shard_then_reduce_with_checks_passing(tmp_path) -> None:
    """Through Dagster: minhash_signatures signs only its partition; duplicate_clusters refuses
    to run while a shard is unsigned, then publishes a version whose checks pass."""
    import dagster as dg

    from assets.cleaned.assets import duplicate_clusters, minhash_signatures

    text = "a page of words that a crawler found twice under two names on one site"
    lake = Lake(home=str(tmp_path))
    _publish_cleaned(lake, "s1", [("d1", text), ("d2", "another page, " * 8)])
    _publish_cleaned(lake, "s2", [("d3", text + " ")])
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("crawl_shards", ["s1", "s2"])
    resources = {"lake": lake}
    signed = dg.materialize(
        [minhash_signatures], instance=instance, partition_key="s1", resources=resources
    )
    assert all(c.passed for c in signed.get_asset_check_evaluations())
    assert [f.partition for f in lake.files("minhash_signatures")] == ["s1"]
    refused = dg.materialize(
        [duplicate_clusters], instance=instance, resources=resources, raise_on_error=False
    )
    assert not refused.success
    dg.materialize([minhash_signatures], instance=instance, partition_key="s2", resources=resources)
    result = dg.materialize([duplicate_clusters], instance=instance, resources=resources)
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)
    assert _removed(lake) == {"d3": "dedup:exact"}
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["rows_in"].value == 3 and metadata["dropped"].value == 1


def test_a_remote_lake_is_read_through_its_filesystem(tmp_path, planted) -> None:
    """On object storage (fsspec's memory:// here) DuckDB reads signatures, bands and the
    candidates' texts through the lake's own filesystem; same removals as a local lake."""
    docs = planted[:40]
    removed = []
    for where, url in (("remote", f"memory://{tmp_path.name}"), ("local", "")):
        lake = Lake(home=str(tmp_path / where), url=url)
        _publish_cleaned(lake, "s", docs)
        result = publish_duplicates(lake, DedupPolicy(keep="best_quality"), "test")
        assert result.texts_compared > 0
        removed.append(_removed(lake))
    assert removed[0] == removed[1] and removed[0]


def test_signatures_that_lost_a_document_fail_the_books_balance(tmp_path) -> None:
    """rows in are the cleaned versions' counts in the catalog; kept are counted from the
    signatures the reduce read. A signer that lost a document fails books_balance, and the last
    good version stays current."""
    import dagster as dg

    from assets.cleaned.assets import duplicate_clusters, minhash_signatures

    lake = Lake(home=str(tmp_path))
    _publish_cleaned(lake, "s1", [("d1", "one page of words " * 8), ("d2", "another page " * 8)])
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("crawl_shards", ["s1"])
    resources = {"lake": lake}
    dg.materialize([minhash_signatures], instance=instance, partition_key="s1", resources=resources)
    assert dg.materialize([duplicate_clusters], instance=instance, resources=resources).success
    [good] = lake.files("duplicate_clusters")
    signed = {t: lake.scan("minhash_signatures", t).collect() for t in ("documents", "bands")}
    with lake.publish("minhash_signatures", "s1", run_id="a-buggy-signer") as out:
        out.write("documents", signed["documents"].slice(1), signed_schema(112))
        lost = signed["documents"]["doc_id"][0]
        out.write("bands", signed["bands"].filter(pl.col("doc_id") != lost), BANDS_SCHEMA)
    result = dg.materialize(
        [duplicate_clusters], instance=instance, resources=resources, raise_on_error=False
    )
    [balance] = [c for c in result.get_asset_check_evaluations() if c.check_name == "books_balance"]
    books = {k: v.value for k, v in balance.metadata.items()}
    assert not balance.passed and books["rows_in"] == books["kept"] + books["dropped"] + 1
    assert lake.files("duplicate_clusters") == [good], "the last good version stays current"
