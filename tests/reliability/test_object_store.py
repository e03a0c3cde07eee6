"""The lake on S3-compatible object storage (fsspec + s3fs), against moto's server on loopback.

Object stores have no atomic rename: a version is uploaded under its final prefix and becomes
visible only when the local DuckDB catalog commits it, so an upload that dies half-way leaves
an invisible orphan, as a local kill between move and commit does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow as pa
import pytest

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

from assets.raw.assets import raw_documents  # noqa: E402
from resources.crawl import CrawlSource  # noqa: E402
from resources.lake import COMPLETE_MARKER, Lake, MissingUpstreamError  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SHARD = "debian-faq-en.warc.gz"
SCHEMA = pa.schema([("doc_id", pa.string()), ("n", pa.int64())])
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",  # polars' own S3 reader, used by the contract checks
}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in CREDENTIALS.items():
            mp.setenv(key, value)
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        mp.setenv("AWS_ENDPOINT_URL", url)
        try:
            yield url
        finally:
            server.stop()


@pytest.fixture
def bucket(endpoint: str, request: pytest.FixtureRequest) -> str:
    import s3fs

    name = "lake-" + "".join(c for c in request.node.name.lower() if c.isalnum())[:40]
    s3fs.S3FileSystem(endpoint_url=endpoint).mkdir(name)
    return name


def _lake(tmp_path: Path, endpoint: str, bucket: str) -> Lake:
    options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
    return Lake(home=str(tmp_path / "home"), url=f"s3://{bucket}/lake", storage_options=options)


def _publish(lake: Lake, partition: str, rows: int) -> None:
    with lake.publish("things", partition, run_id=f"run-{partition}") as out:
        sink = out.table("documents", SCHEMA)
        for i in range(rows):
            sink.append({"doc_id": f"{partition}-{i}", "n": i})
        out.write("dropped", pa.table({"doc_id": [f"{partition}-x"], "n": [-1]}), SCHEMA)
        (out.staging / "manifest.json").write_text('{"extra": "files travel too"}')


def test_publish_scan_and_versions_on_s3(tmp_path: Path, endpoint: str, bucket: str) -> None:
    lake = _lake(tmp_path, endpoint, bucket)
    assert lake.remote and lake.location == f"s3://{bucket}/lake"
    _publish(lake, "p1", 3)
    _publish(lake, "p2", 4)
    first = lake.files("things", partitions=["p1"])[0]
    _publish(lake, "p1", 5)

    files = lake.files("things")
    assert all(f.path.startswith(f"s3://{bucket}/lake/things/") for f in files)
    assert lake.scan("things").select(pl.len()).collect().item() == 9
    assert lake.scan("things").filter(pl.col("n") >= 3).collect().height == 3
    assert sorted(r["doc_id"] for r in lake.iter_rows("things", partitions=["p2"])) == [
        f"p2-{i}" for i in range(4)
    ]
    assert lake.scan("things", "dropped").collect().height == 2
    fs = lake.filesystem
    assert fs.exists(first.path), "earlier versions stay on the store"
    assert (
        fs.cat(first.path.rsplit("/", 1)[0] + "/manifest.json") == b'{"extra": "files travel too"}'
    )
    assert not (tmp_path / "home" / "lake").exists(), "nothing of the lake is written locally"
    with lake.catalog.connect(read_only=True) as con:
        views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
        assert "things" not in views, "no view DuckDB could only read through httpfs"
        (count,) = con.execute("SELECT count(*) FROM versions WHERE is_current").fetchone()
        assert count == 4


def test_an_upload_that_dies_leaves_nothing_visible(
    tmp_path: Path, endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = _lake(tmp_path, endpoint, bucket)
    _publish(lake, "p1", 2)
    before = lake.files("things")
    real_put = lake.filesystem.put_file
    uploads: list[str] = []

    def dying_put(local: str, remote: str, **kwargs) -> None:
        if uploads:
            raise ConnectionResetError("connection lost mid-upload")
        uploads.append(remote)
        real_put(local, remote, **kwargs)

    monkeypatch.setattr(lake.filesystem, "put_file", dying_put)
    with pytest.raises(ConnectionResetError):
        _publish(lake, "p1", 7)
    monkeypatch.undo()

    assert lake.files("things") == before, "the previous version is still the current one"
    assert lake.scan("things").collect().height == 2
    (orphan,) = lake.orphan_versions()
    assert uploads[0].startswith(orphan.removeprefix("s3://"))
    _publish(lake, "p1", 7)
    assert lake.scan("things").collect().height == 7
    assert lake.orphan_versions() == [orphan]


def test_checkpoints_count_only_when_complete(tmp_path: Path, endpoint: str, bucket: str) -> None:
    lake = _lake(tmp_path, endpoint, bucket)
    batch = pa.table({"doc_id": ["a", "b"], "n": [1, 2]})
    lake.write_checkpoint("things", "batch-1", {"documents": batch})
    # a batch whose upload died before its completion marker
    partial = f"{bucket}/lake/things/_checkpoints/batch-2/documents.parquet"
    with lake.filesystem.open(partial, "wb") as out:
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"doc_id": ["zombie"], "n": [0]}), out)

    read = lake.read_checkpoints("things", "documents")
    assert read is not None and read["doc_id"].to_list() == ["a", "b"]
    assert lake.filesystem.exists(f"{bucket}/lake/things/_checkpoints/batch-1/{COMPLETE_MARKER}")
    lake.delete_checkpoints("things", ["batch-1"])
    assert (
        lake.checkpoint_keys("things") == []
        and lake.read_checkpoints("things", "documents") is None
    )
    assert not lake.filesystem.exists(f"{bucket}/lake/things/_checkpoints/batch-1")
    with pytest.raises(MissingUpstreamError):
        lake.files("things")


def test_the_raw_step_reads_and_writes_object_storage(
    tmp_path: Path, endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Crawl shards and lake both on S3, configured by the standard environment only."""
    import s3fs

    s3fs.S3FileSystem().put_file(
        str(REPO / "data" / "sample_crawl" / SHARD), f"{bucket}/crawl/{SHARD}"
    )
    monkeypatch.setenv("FOUNDRY_LAKE_URL", f"s3://{bucket}/lake")
    crawl = CrawlSource(location=f"s3://{bucket}/crawl")
    assert crawl.list_shards() == [SHARD]
    lake = Lake(home=str(tmp_path / "home"))
    assert lake.remote

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("crawl_shards", [SHARD])
    result = dg.materialize(
        [raw_documents],
        instance=instance,
        partition_key=SHARD,
        resources={"lake": lake, "crawl": crawl},
    )
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())
    (materialization,) = result.asset_materializations_for_node("raw_documents")
    docs = lake.scan("raw_documents").collect()
    dropped = lake.scan("raw_documents", "dropped").collect()
    assert docs.height == materialization.metadata["kept"].value > 10
    assert docs.height + dropped.height == materialization.metadata["rows_in"].value
    assert set(docs["source_file"]) == {f"s3://{bucket}/crawl/{SHARD}"}
