"""Four crawl shards ingested at once, each its own run (its own process, as in production), all
publishing into one lake and one DuckDB catalog: no lock errors, nothing lost.

The shards are small (a real sample WARC split at record boundaries) so that four run processes
fit a 2-core CI machine.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from itertools import pairwise
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from warcio.archiveiterator import ArchiveIterator

from assets.raw.extract import iter_documents
from resources.lake import Lake

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample_crawl" / "debian-faq-en.warc.gz"
SHARDS = 4


def split_warc(source: Path, folder: Path, parts: int) -> list[Path]:
    """Cut a .warc.gz at gzip-member (record) boundaries into `parts` valid shards."""
    data = source.read_bytes()
    with source.open("rb") as fh:
        records = ArchiveIterator(fh)
        starts = [records.get_record_offset() for _ in records]
    per = -(-len(starts) // parts)
    bounds = [*starts[::per], len(data)]
    paths = []
    for i, (start, end) in enumerate(pairwise(bounds)):
        path = folder / f"part-{i}.warc.gz"
        path.write_bytes(data[start:end])
        paths.append(path)
    return paths


_START: Any = None  # a barrier shared by the forked workers, so their runs start together


def _share_barrier(barrier: Any) -> None:
    global _START
    _START = barrier


def ingest_run(shard: str) -> tuple[bool, str]:
    """One partition's run of the real ingest job (raw step), as `foundry run` starts it."""
    from orchestration.runner import ensure_instance, ingest_job

    if _START is not None:  # a loaded machine must not serialise the runs by chance
        _START.wait(timeout=300)
    result = dg.execute_job(
        dg.reconstructable(ingest_job),
        ensure_instance(),
        asset_selection=[dg.AssetKey("raw_documents")],
        tags={"dagster/partition": shard},
    )
    return result.success, result.run_id


def test_four_partitions_in_parallel_without_lock_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crawl = tmp_path / "crawl"
    crawl.mkdir()
    paths = split_warc(SAMPLE, crawl, SHARDS)
    home = tmp_path / "foundry"
    monkeypatch.setenv("FOUNDRY_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.setenv("FOUNDRY_CRAWL_DIR", str(crawl))
    from orchestration.runner import ensure_instance, register_shards

    instance = ensure_instance()
    shards = register_shards(instance)
    assert len(shards) == SHARDS

    started = time.perf_counter()
    # The runs' own processes are forked from this one (already importing Dagster); each run
    # executes its shard's steps in its own process, as `foundry run` does.
    fork = get_context("fork")
    start_together = fork.Barrier(SHARDS)
    with ProcessPoolExecutor(
        SHARDS, mp_context=fork, initializer=_share_barrier, initargs=(start_together,)
    ) as pool:
        results = list(pool.map(ingest_run, shards))
    seconds = time.perf_counter() - started
    assert all(ok for ok, _ in results), results

    runs = [instance.get_run_record_by_id(run_id) for _, run_id in results]
    assert max(r.start_time for r in runs) < min(r.end_time for r in runs), "the runs overlapped"
    for _, run_id in results:
        failures = [
            e
            for e in instance.all_logs(run_id)
            if e.is_dagster_event and e.dagster_event.is_failure
        ]
        assert not failures
        text = " ".join(str(e.user_message) for e in instance.all_logs(run_id))
        assert "CatalogLockedError" not in text and "Could not set lock" not in text

    lake = Lake(home=str(home))
    assert sorted(tv.partition for tv in lake.files("raw_documents")) == shards
    published = lake.scan("raw_documents").collect().height
    published += lake.scan("raw_documents", "dropped").collect().height
    records = sum(1 for path in paths for _ in iter_documents(str(path)))
    assert published == records, "every record of every shard is in the lake"
    print(f"{SHARDS} parallel partition runs: {seconds:.1f}s")
