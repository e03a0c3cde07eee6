"""The lake publishes versions atomically and the catalog survives parallel writers."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from resources.catalog import CatalogLockedError
from resources.lake import Lake, MissingUpstreamError

SCHEMA = pa.schema([("doc_id", pa.string()), ("n", pa.int64())])


def _publish(home: str, partition: str, rows: int) -> None:
    lake = Lake(home=home)
    with lake.publish("things", partition, run_id=f"run-{partition}", code_version="t1") as out:
        sink = out.table("documents", SCHEMA)
        for i in range(rows):
            sink.append({"doc_id": f"{partition}-{i}", "n": i})


def test_versions_are_immutable_and_current_moves(tmp_path: Path) -> None:
    lake = Lake(home=str(tmp_path))
    _publish(str(tmp_path), "p1", 3)
    first = lake.files("things")[0]
    _publish(str(tmp_path), "p1", 5)
    second = lake.files("things")[0]
    assert first.version != second.version
    assert Path(first.path).exists(), "an earlier version stays readable"
    assert lake.scan("things").collect().height == 5
    history = lake.catalog.history("things")
    assert [h["row_count"] for h in history] == [3, 5]
    assert [h["is_current"] for h in history] == [False, True]
    assert history[1]["code_version"] == "t1" and history[1]["run_id"] == "run-p1"


def test_failed_write_publishes_nothing(tmp_path: Path) -> None:
    lake = Lake(home=str(tmp_path))
    with pytest.raises(RuntimeError), lake.publish("things", "p1") as out:
        out.table("documents", SCHEMA).append({"doc_id": "a", "n": 1})
        raise RuntimeError("crash mid-write")
    with pytest.raises(MissingUpstreamError):
        lake.files("things")
    assert not any((tmp_path / "lake" / "_staging").iterdir())
    assert not (tmp_path / "lake" / "things").exists()


def test_views_show_current_data_in_sql(tmp_path: Path) -> None:
    _publish(str(tmp_path), "p1", 2)
    _publish(str(tmp_path), "p2", 3)
    with Lake(home=str(tmp_path)).catalog.connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM things").fetchone()[0] == 5


def test_parallel_writers_do_not_fail_on_the_duckdb_lock(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_publish, args=(str(tmp_path), f"p{i}", 50)) for i in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 6
    lake = Lake(home=str(tmp_path))
    assert len(lake.files("things")) == 6
    assert lake.scan("things").collect().height == 300


def test_held_catalog_gives_a_clear_error(tmp_path: Path) -> None:
    _publish(str(tmp_path), "p1", 1)
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(tmp_path / "catalog.duckdb"), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        lake = Lake(home=str(tmp_path), lock_timeout_s=1.0)
        with pytest.raises(CatalogLockedError, match="stayed locked"):
            lake.files("things")
    finally:
        release.set()
        holder.join(30)


def _hold(path: str, ready, release) -> None:
    con = duckdb.connect(path)
    ready.set()
    release.wait(60)
    con.close()
