"""SIGKILL a real raw-ingest step at each point of a publish; the re-run gives the same result.

Each test runs the real `raw_documents` asset (`dg.materialize`, one shard of the bundled sample
crawl) in a child process, stops it at one point of `Lake.publish` with a hook that signals and
then waits, kills it with SIGKILL, and checks that nothing partial is visible through the
catalog or its SQL views, that leftovers are ignored (and staging swept by the next publish),
and that the re-run publishes exactly the rows of an uninterrupted run.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.raw.assets import raw_documents
from resources.crawl import CrawlSource
from resources.lake import STAGING, Lake, MissingUpstreamError

REPO = Path(__file__).resolve().parents[2]
SAMPLE_CRAWL = REPO / "data" / "sample_crawl"
SHARD = "debian-faq-en.warc.gz"
DOC_COLUMNS = ["doc_id", "url", "source_offset", "fetch_time", "title", "text"]
DROP_COLUMNS = ["doc_id", "rule", "source_offset"]
KILL_WAIT_S = 180


def materialize_shard(home: str) -> None:
    """The raw step exactly as the shard job runs it, on one shard of the sample crawl."""
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("crawl_shards", [SHARD])
    result = dg.materialize(
        [raw_documents],
        instance=instance,
        partition_key=SHARD,
        resources={"lake": Lake(home=home), "crawl": CrawlSource(location=str(SAMPLE_CRAWL))},
    )
    assert result.success


def _stall(marker: str) -> None:
    """Tell the parent where we are, then wait for SIGKILL."""
    Path(marker).write_text(str(os.getpid()))
    while True:
        time.sleep(1)


def _killable_step(home: str, kill_point: str, marker: str) -> None:
    """Child process: install the hook for `kill_point`, then run the step."""
    import assets.raw.ingest as ingest
    import resources.catalog as catalog
    import resources.lake as lake

    if kill_point == "mid_write":
        lake.TableSink.__init__.__defaults__ = (4,)  # flush every 4 rows: real partial files
        real = ingest.iter_documents

        def slow_documents(path: str, **kwargs):
            for index, item in enumerate(real(path, **kwargs)):
                if index == 12:
                    _stall(marker)
                yield item

        ingest.iter_documents = slow_documents
    elif kill_point == "before_commit":
        lake.Catalog.register = lambda *args, **kwargs: _stall(marker)
    elif kill_point == "mid_commit":
        catalog._insert_versions = lambda *args, **kwargs: _stall(marker)  # inside the transaction
    materialize_shard(home)


def _kill_at(home: Path, kill_point: str) -> None:
    marker = home.parent / f"{kill_point}.reached"
    ctx = mp.get_context("spawn")
    child = ctx.Process(target=_killable_step, args=(str(home), kill_point, str(marker)))
    child.start()
    deadline = time.monotonic() + KILL_WAIT_S
    while not marker.exists():
        assert child.is_alive(), f"step ended before reaching {kill_point}: {child.exitcode}"
        assert time.monotonic() < deadline, f"{kill_point} not reached in {KILL_WAIT_S}s"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    assert child.exitcode == -signal.SIGKILL


def _published(lake: Lake) -> tuple[pl.DataFrame, pl.DataFrame]:
    docs = lake.scan("raw_documents").select(DOC_COLUMNS).collect().sort("doc_id")
    drops = lake.scan("raw_documents", "dropped").select(DROP_COLUMNS).collect().sort("doc_id")
    return docs, drops


def _assert_catalog_sound(lake: Lake) -> None:
    """Every file the catalog lists is a complete Parquet file, and the views agree."""
    for path in lake.catalog.paths():
        pq.read_metadata(path)
    with lake.catalog.connect(read_only=True) as con:
        views = {row[0] for row in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
        for table in ("documents", "dropped"):
            current = lake.catalog.current("raw_documents", table)
            view = "raw_documents" if table == "documents" else "raw_documents__dropped"
            if not current:
                assert view not in views
                continue
            (count,) = con.execute(f'SELECT count(*) FROM "{view}"').fetchone()
            assert count == sum(tv.row_count for tv in current)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, pl.DataFrame]:
    home = tmp_path_factory.mktemp("uninterrupted") / "foundry"
    materialize_shard(str(home))
    docs, drops = _published(Lake(home=str(home)))
    assert docs.height > 10 and drops.height > 0
    return docs, drops


def test_kill_mid_write_leaves_nothing_visible_and_rerun_matches(
    tmp_path: Path, uninterrupted: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    home = tmp_path / "foundry"
    _kill_at(home, "mid_write")
    lake = Lake(home=str(home))

    (leftover,) = (home / "lake" / STAGING).iterdir()
    partial = leftover / "documents.parquet"
    assert partial.stat().st_size > 4, "the killed step had written rows"
    with pytest.raises(pa.ArrowInvalid):
        pq.read_metadata(partial)  # no footer: a torn file, and nobody lists it
    with pytest.raises(MissingUpstreamError):
        lake.files("raw_documents")
    assert lake.catalog.paths() == []
    _assert_catalog_sound(lake)

    materialize_shard(str(home))
    assert not leftover.exists(), "the next publish sweeps the dead process's staging"
    _assert_same(lake, uninterrupted)


def test_kill_between_move_and_commit_leaves_an_invisible_orphan(
    tmp_path: Path, uninterrupted: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    home = tmp_path / "foundry"
    _kill_at(home, "before_commit")
    lake = Lake(home=str(home))

    (orphan,) = lake.orphan_versions()
    assert sorted(p.name for p in Path(orphan).iterdir()) == [
        "checks.json",  # the checks ran on the staged version; the kill came before the commit
        "documents.parquet",
        "dropped.parquet",
    ]
    with pytest.raises(MissingUpstreamError):
        lake.files("raw_documents")
    _assert_catalog_sound(lake)

    materialize_shard(str(home))
    assert lake.orphan_versions() == [orphan], "still invisible; the new version is registered"
    assert orphan not in {str(Path(tv.path).parent) for tv in lake.files("raw_documents")}
    _assert_same(lake, uninterrupted)


def test_kill_inside_the_catalog_transaction_keeps_the_previous_version(
    tmp_path: Path, uninterrupted: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    home = tmp_path / "foundry"
    materialize_shard(str(home))
    lake = Lake(home=str(home))
    before = lake.files("raw_documents")

    _kill_at(home, "mid_commit")
    assert lake.files("raw_documents") == before, "the half-done commit was rolled back"
    assert [h["version"] for h in lake.catalog.history("raw_documents")] == [
        before[0].version
    ] * 2  # documents and dropped of the first version, nothing of the killed one
    _assert_catalog_sound(lake)
    _assert_same(lake, uninterrupted)

    materialize_shard(str(home))
    assert lake.files("raw_documents")[0].version != before[0].version
    _assert_same(lake, uninterrupted)


def _checkpoint_child(home: str, marker: str) -> None:
    import resources.lake as lake

    lake.Lake._move_into_place = lambda *args, **kwargs: _stall(marker)
    lake.Lake(home=home).write_checkpoint("things", "batch-1", {"documents": _batch()})


def _batch() -> pa.Table:
    return pa.table({"doc_id": [f"d{i}" for i in range(100)], "n": list(range(100))})


def test_kill_while_checkpointing_loses_only_that_batch(tmp_path: Path) -> None:
    home = tmp_path / "foundry[1]"  # glob characters in the home path are only a name
    marker = tmp_path / "checkpoint.reached"
    child = mp.get_context("spawn").Process(target=_checkpoint_child, args=(str(home), str(marker)))
    child.start()
    deadline = time.monotonic() + KILL_WAIT_S
    while not marker.exists():
        assert child.is_alive() and time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)

    lake = Lake(home=str(home))
    assert lake.read_checkpoints("things", "documents") is None
    lake.write_checkpoint("things", "batch-1", {"documents": _batch()})
    assert lake.read_checkpoints("things", "documents").equals(pl.from_arrow(_batch()))
    assert not any((home / "lake" / STAGING).iterdir()), "the killed writer's staging is swept"


def _assert_same(lake: Lake, expected: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    docs, drops = _published(lake)
    assert docs.equals(expected[0]), "same documents, ids and text as an uninterrupted run"
    assert drops.equals(expected[1]), "same quarantine rows as an uninterrupted run"
