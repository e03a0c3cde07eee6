"""The catalog at scale: a publish costs the same at 100 files or 5,000, sixteen publishers at
once never wait out the lock, and trace/why find one document among ten million through the doc
index without opening the other files."""

from __future__ import annotations

import multiprocessing as mp
import statistics
import time
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestration.lineage import explain, trace_document
from resources.catalog import Catalog, TableVersion
from resources.doc_index import FANOUT, DocIndex, index_key
from resources.lake import Lake

RAW = pa.schema([("doc_id", pa.string()), ("url", pa.string()), ("text", pa.string())])


def doc_id(partition: str, version: int, i: int) -> str:
    """A hex id like production's (blake2b, 24 hex), unique per partition, version and row."""
    return index_key(f"{partition}/{version}/{i}")[:24]


def _publish_versions(home: str, partition: str, versions: int, rows: int, barrier) -> None:
    barrier.wait(120)  # all sixteen start publishing together
    lake = Lake(home=home, lock_timeout_s=60.0)
    for v in range(versions):
        with lake.publish("raw_documents", partition, run_id=f"r{v}") as out:
            out.write(
                "documents",
                pa.table(
                    {
                        "doc_id": [doc_id(partition, v, i) for i in range(rows)],
                        "url": [f"https://{partition}.example/{v}/{i}" for i in range(rows)],
                        "text": ["x"] * rows,
                    }
                ),
                RAW,
            )


def test_sixteen_publishers_at_once_never_hit_the_lock(tmp_path: Path) -> None:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["resources.lake"])
    writers, versions, rows = 16, 3, 40
    barrier = ctx.Barrier(writers)
    procs = [
        ctx.Process(
            target=_publish_versions, args=(str(tmp_path), f"p{w}", versions, rows, barrier)
        )
        for w in range(writers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0] * writers, "a publisher failed (CatalogLockedError?)"

    lake = Lake(home=str(tmp_path))
    history = lake.catalog.history("raw_documents")
    assert len(history) == writers * versions
    current = lake.files("raw_documents")
    assert len(current) == writers
    for tv in current:  # the last version each publisher wrote is the current one
        last = max(h["version"] for h in history if h["partition"] == tv.partition)
        assert tv.version == last and tv.row_count == rows
    for h in history:  # every version, current or not, stays readable
        assert pq.read_metadata(h["path"]).num_rows == rows
    assert lake.scan("raw_documents").collect().height == writers * rows

    index = lake.doc_index
    assert index is not None and index._manifest()["runs"], "publishers compacted the index"
    assert len(index.files(doc_id("p3", versions - 1, 7))) < writers * versions
    found = trace_document(lake.catalog, doc_id("p3", versions - 1, 7))
    assert dict(found.steps)["raw record"][0]["url"] == f"https://p3.example/{versions - 1}/7"
    assert trace_document(lake.catalog, doc_id("p3", 0, 7)).steps == [], "not current"


# --------------------------------------------------------------------------- publish cost


def _catalog_with_files(home: Path, files: int) -> Catalog:
    """A catalog whose cleaned_documents has `files` current partitions (rows written in bulk;
    every path names the same small real file, so a view over them can be read)."""
    part = home / "part.parquet"
    home.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"doc_id": ["a", "b"], "n": [1, 2]}).write_parquet(part)
    catalog = Catalog(home / "catalog.duckdb")
    catalog.register(
        [TableVersion("cleaned_documents", "s0", "v0", "documents", str(part), 2)], None, None
    )
    with catalog.connect() as con:
        con.execute(
            "INSERT INTO versions SELECT 'cleaned_documents', 's' || i, 'v0', 'documents', ?, 2, "
            "NULL, NULL, '{}', now(), true FROM range(1, ?) t(i)",
            [str(part), files],
        )
    return catalog


def _register_ms(catalog: Catalog, path: str, times: int = 7) -> float:
    took = []
    for v in range(times):
        table = TableVersion("cleaned_documents", "new", f"v{v}", "documents", path, 2)
        started = time.perf_counter()
        catalog.register([table], "run", "1")
        took.append(time.perf_counter() - started)
    return statistics.median(took) * 1000


def test_publish_cost_does_not_grow_with_the_number_of_files(tmp_path: Path) -> None:
    small = _catalog_with_files(tmp_path / "small", 100)
    large = _catalog_with_files(tmp_path / "large", 5000)
    small_ms = _register_ms(small, str(tmp_path / "small" / "part.parquet"))
    large_ms = _register_ms(large, str(tmp_path / "large" / "part.parquet"))
    # Re-creating views took ~95 us per file per view: ~475 ms at 5,000 files.
    assert large_ms < 3 * small_ms + 50, (small_ms, large_ms)
    with large.connect(read_only=True, views=False) as con:
        stored = con.execute(
            "SELECT count(*) FROM duckdb_views() WHERE NOT internal AND NOT temporary"
        ).fetchall()
        assert stored == [(0,)], "a publish writes no view into the catalog"
    with large.connect(read_only=True) as con:  # readers still see the view, over every file
        assert con.execute("SELECT count(*) FROM cleaned_documents").fetchall() == [(10_002,)]


def test_read_connections_define_only_the_views_a_query_names(tmp_path: Path) -> None:
    catalog = _catalog_with_files(tmp_path, 3)
    path = str(tmp_path / "part.parquet")
    catalog.register([TableVersion("raw_documents", "s0", "v0", "dropped", path, 2)], None, None)
    with catalog.connect(read_only=True) as con:
        con.execute("SELECT count(*) FROM versions").fetchall()
        assert con.execute("SELECT count(*) FROM duckdb_views() WHERE temporary").fetchall()
        names = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
        assert {"cleaned_documents", "raw_documents__dropped"} <= names
    with catalog.connect(read_only=True) as con:
        con.execute("SELECT * FROM raw_documents__dropped").fetchall()
        defined = con._defined
        assert defined == {"raw_documents__dropped"}, defined
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("CREATE TABLE evil (a INT)")


# --------------------------------------------------------------------------- doc index


def test_compaction_keeps_every_key_findable_and_runs_sorted(tmp_path: Path) -> None:
    lake = Lake(home=str(tmp_path))
    published = []
    for v in range(FANOUT * 2 + 3):
        ids = [doc_id("p", v, i) for i in range(30)]
        with lake.publish("raw_documents", f"p{v % 5}", run_id="r") as out:
            out.write(
                "documents",
                pa.table({"doc_id": ids, "url": [f"u{v}-{i}" for i in range(30)], "text": ids}),
                RAW,
            )
        published.append((v, ids))
    index = lake.doc_index
    assert index is not None
    manifest = index._manifest()
    assert [r["level"] for r in manifest["runs"]] == [1, 1]
    assert len(list((index.root / "pending").iterdir())) == 3
    for v, ids in published:
        hits = index.lookup([ids[4], f"u{v}-9"])
        assert {(h.table_name, h.row) for h in hits} == {("documents", 4), ("documents", 9)}
    for run in manifest["runs"]:
        keys = pq.read_table(index.root / "runs" / run["file"], columns=["key"])["key"]
        assert keys.to_pylist() == sorted(keys.to_pylist())


def _generated_id(n: int, total: int) -> str:
    """Hex ids in increasing order whose prefixes still spread over all buckets."""
    return f"{n * 16**6 // total:06x}{n:018x}"


def _generated_id_sql(total: int) -> str:
    return f"printf('%06x%018x', (n * {16**6}) // {total}, n)"


@pytest.mark.slow
def test_trace_and_why_find_one_document_among_ten_million_in_under_a_second(
    tmp_path: Path,
) -> None:
    """raw_documents and cleaned_documents over 10,000 shards x 1,000 documents: catalog rows and
    the 10 million raw index entries are generated in bulk, laid out as compaction leaves them;
    the traced shard's cleaned version is published for real (a pending segment). Only that
    shard's data files exist, so a lookup that opened any other file would fail."""
    shards, docs = 10_000, 1_000
    total = shards * docs
    lake = Lake(home=str(tmp_path))
    index = lake.doc_index
    assert index is not None
    index.start()
    with lake.catalog.connect() as con:
        con.execute(
            "INSERT INTO versions SELECT a, 's' || s, 'v1', 'documents', "
            "? || '/' || a || '/s' || s || '/v1/documents.parquet', ?, NULL, NULL, '{}', now(), "
            "true FROM range(?) t(s), (VALUES ('raw_documents'), ('cleaned_documents')) v(a)",
            [str(lake.root), docs, shards],
        )
    _generate_runs(index, shards, docs)

    shard, row = 1234, 567
    ids = [_generated_id(i * shards + shard, total) for i in range(docs)]
    urls = [f"https://site{shard}.example/{i}" for i in range(docs)]
    frame = pl.DataFrame({"doc_id": ids, "url": urls, "text": ["t"] * docs})
    raw = lake.root / "raw_documents" / f"s{shard}" / "v1" / "documents.parquet"
    raw.parent.mkdir(parents=True)
    frame.write_parquet(raw)
    with lake.publish("cleaned_documents", f"s{shard}", run_id="r") as out:
        out.write("documents", frame.drop("url").to_arrow(), pa.schema(list(RAW)[::2]))
    with lake.publish("raw_documents", "fresh", run_id="r") as out:
        out.write(
            "documents",
            pa.table({"doc_id": ["f" * 24], "url": ["https://fresh.example/"], "text": ["t"]}),
            RAW,
        )

    target = ids[row]
    trace, trace_s = _timed(trace_document, lake.catalog, target)
    steps = dict(trace.steps)
    assert steps["raw record"][0]["url"] == urls[row]
    assert steps["cleaned"][0]["doc_id"] == target
    assert trace.versions["raw_documents"] == ["v1"]
    assert trace.versions["cleaned_documents"] != ["v1"], "the published version is current"

    (verdict,), why_s = _timed(explain, lake.catalog, target)
    assert verdict.startswith(f"{target}: NOT in the mixture")
    (fresh,), why_url_s = _timed(explain, lake.catalog, "https://fresh.example/")
    assert fresh.startswith("f" * 24)

    files = len(index.files(index_key(target)))
    print(
        f"\n10M docs, {files} index files per key: trace {trace_s * 1000:.0f} ms, "
        f"why {why_s * 1000:.0f} ms, why by URL {why_url_s * 1000:.0f} ms"
    )
    assert files <= 3 * FANOUT
    assert max(trace_s, why_s, why_url_s) < 1.0, (trace_s, why_s, why_url_s)


def _timed(fn, *args):
    started = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - started


def _generate_runs(index: DocIndex, shards: int, docs: int) -> None:
    """Runs over shard ranges as size-tiered compaction leaves them (levels 3, 2, 1), written
    in key order without a sort: id n = doc * shards + shard increases with the row."""
    total = shards * docs
    start = 0
    for level, width in ((3, FANOUT**3), (2, FANOUT**2), (1, FANOUT)):
        count = 0
        while shards - start >= width and count < FANOUT - 1:
            source = (
                f"SELECT {_generated_id_sql(total)} AS key, 'raw_documents' AS asset, "
                "'s' || s AS partition, 'v1' AS version, 'documents' AS table_name, i AS row "
                f"FROM (SELECT u // {width} AS i, {start} + u % {width} AS s, "
                f"(u // {width}) * {shards} + {start} + u % {width} AS n "
                f"FROM range({docs * width}) r(u))"
            )
            index.add_run(source, level, docs * width, in_key_order=True)
            start += width
            count += 1
    assert start == shards - shards % FANOUT


def test_foundry_sql_cannot_change_the_views_readers_define(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from orchestration.cli import main

    monkeypatch.setenv("FOUNDRY_HOME", str(tmp_path))
    _catalog_with_files(tmp_path, 3)
    for query in ("DROP VIEW cleaned_documents", "CREATE OR REPLACE VIEW x AS SELECT 1"):
        assert main(["sql", query]) == 1
        assert "foundry sql only reads" in capsys.readouterr().err
    assert main(["sql", "SELECT count(*) AS n FROM cleaned_documents"]) == 0
    assert "6" in capsys.readouterr().out
