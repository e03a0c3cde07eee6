"""Broken crawl shards are quarantined with a reason, the run goes on and the books balance.

The corpus (tests/reliability/corpus.py) is made from a real sample WARC: truncated gzip,
garbled WARC headers, wrong Content-Length, text that is not UTF-8, binary payloads served as
HTML, a 50 MB page, a decompression bomb, 200,000 nested <div>s, empty files and files with the
wrong extension. Each one goes through the real raw stage.
"""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from broken_corpus import HUGE_PAGE_BYTES, SAMPLE_WARC, SHARDS, build

from assets.documents import DROPPED_SCHEMA
from assets.raw.assets import raw_documents
from assets.raw.extract import iter_documents
from assets.raw.ingest import ingest_shard
from assets.raw.readers import read_shard
from assets.raw.records import Quarantined, RawRecord
from assets.raw.schema import RAW_DOCUMENTS_SCHEMA
from resources.crawl import CrawlSource
from resources.lake import Lake

EXPECTED = {shard.name: shard for shard in SHARDS}


@pytest.fixture(scope="module")
def bad_crawl(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build(tmp_path_factory.mktemp("bad_crawl"))


@pytest.fixture(scope="module")
def intact() -> pl.DataFrame:
    """Documents of the untouched sample WARC, to compare what survives of its broken copies."""
    rows = [
        {"offset": item[0].source_offset, "url": item[0].url, "text": item[1].text}
        for item in iter_documents(str(SAMPLE_WARC))
        if not isinstance(item, Quarantined)
    ]
    return pl.DataFrame(rows)


def _ingest(lake: Lake, path: Path) -> tuple:
    with lake.publish("raw_documents", path.name) as out:
        counts = ingest_shard(
            str(path),
            path.name,
            out.table("documents", RAW_DOCUMENTS_SCHEMA),
            out.table("dropped", DROPPED_SCHEMA),
        )
    return counts


def test_every_broken_shard_is_quarantined_and_the_books_balance(
    tmp_path: Path, bad_crawl: dict[str, Path], intact: pl.DataFrame
) -> None:
    lake = Lake(home=str(tmp_path / "foundry"))
    started = time.perf_counter()
    for name, path in bad_crawl.items():
        counts = _ingest(lake, path)  # never raises: the run goes on to the next shard
        expected = EXPECTED[name]
        assert expected.reasons & counts.reasons.keys(), (name, counts.reasons)
        assert counts.documents >= expected.good_documents, name
        assert counts.records == counts.documents + counts.quarantined > 0, name
        docs = lake.files("raw_documents", "documents", [name])[0]
        dropped = lake.files("raw_documents", "dropped", [name])[0]
        assert (docs.row_count, dropped.row_count) == (counts.documents, counts.quarantined)
        quarantine = lake.scan("raw_documents", "dropped", [name]).collect()
        assert quarantine["detail"].str.len_chars().min() > 0, "every reason has a detail"
        assert set(quarantine["source_file"]) == {str(path)}
    assert time.perf_counter() - started < 120

    all_docs = lake.scan("raw_documents").collect()
    all_dropped = lake.scan("raw_documents", "dropped").collect()
    assert all_docs.height + all_dropped.height == sum(
        tv.row_count for t in ("documents", "dropped") for tv in lake.files("raw_documents", t)
    )
    # what survives of the broken sample copies is exactly the intact sample's text
    for name in ("truncated.warc.gz", "bad-header.warc"):
        kept = all_docs.filter(pl.col("shard") == name).select("url", "text")
        assert kept.height > 0
        assert kept.join(intact.select("url", "text"), on=["url", "text"]).height == kept.height


def test_truncated_archive_loses_no_whole_record(bad_crawl: dict[str, Path]) -> None:
    """Every record that ends before the cut is read as in the intact file; the rest of the
    file is one quarantine row that names where the damage starts."""
    whole = {item.source_offset: item for item in read_shard(str(SAMPLE_WARC))}
    *complete, tail = read_shard(str(bad_crawl["truncated.warc.gz"]))
    assert isinstance(tail, Quarantined) and tail.reason == "corrupt_archive"
    offsets = sorted(whole)
    for item in complete:
        same = replace(whole[item.source_offset], source_file=item.source_file)
        assert item == same, "a record before the cut is read unchanged"
    assert len(complete) == sum(o < tail.source_offset for o in offsets)
    assert tail.source_offset in offsets, "the damaged record's own offset"


def test_a_50mb_page_costs_neither_memory_nor_time(bad_crawl: dict[str, Path]) -> None:
    for name in ("huge.warc", "bomb.warc.gz"):
        tracemalloc.start()
        started = time.perf_counter()
        outcomes = [getattr(i, "reason", "document") for i in iter_documents(str(bad_crawl[name]))]
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert outcomes == ["too_large", "document"], name
        assert peak < HUGE_PAGE_BYTES, f"{name}: peak {peak / 1e6:.0f} MB, the page is never held"
        assert seconds < 20, name


def test_a_50mb_page_under_a_raised_cap_is_bounded_by_the_extraction_timeout(
    bad_crawl: dict[str, Path],
) -> None:
    started = time.perf_counter()
    items = list(iter_documents(str(bad_crawl["huge.warc"]), max_payload_bytes=2 * HUGE_PAGE_BYTES))
    assert time.perf_counter() - started < 60
    first = items[0]  # on a fast machine it may even finish; either way it is bounded
    assert isinstance(first, tuple) or first.reason == "extraction_timeout"
    assert isinstance(items[1], tuple) and isinstance(items[1][0], RawRecord)


def test_the_raw_asset_runs_every_broken_shard_with_passing_checks(
    tmp_path: Path, bad_crawl: dict[str, Path]
) -> None:
    """The Dagster step itself: broken shards materialize and both blocking checks pass."""
    folder = next(iter(bad_crawl.values())).parent
    crawl = CrawlSource(location=str(folder))
    listed = crawl.list_shards()
    assert "page.html" not in listed, "files of unknown type are not shards"
    assert len(listed) == len(SHARDS) - 1
    shards = ["truncated.warc.gz", "bomb.warc.gz", "binary.warc.gz", "empty.jsonl", "png.warc.gz"]
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("crawl_shards", shards)
    resources = {"lake": Lake(home=str(tmp_path / "foundry")), "crawl": crawl}
    for shard in shards:
        result = dg.materialize(
            [raw_documents], instance=instance, partition_key=shard, resources=resources
        )
        assert result.success, shard
        checks = result.get_asset_check_evaluations()
        assert {c.check_name for c in checks if c.passed} == {"contract", "books_balance"}, shard
        (materialization,) = result.asset_materializations_for_node("raw_documents")
        reasons = materialization.metadata["quarantine_reasons"].data
        assert EXPECTED[shard].reasons & reasons.keys(), (shard, reasons)
