"""The Parquet lake: immutable, versioned files published atomically, catalogued in DuckDB.

A materialization writes every table of a new version into a private staging folder, moves it to
`<lake>/<asset>/<partition>/<version>/` and then registers it in the catalog in one transaction.
Readers only ever see what the catalog lists, so the catalog commit is the publish: a step killed
mid-write (or between the move and the commit) leaves nothing visible, and earlier versions stay
on disk for audits.

The lake lives in a local folder (`<FOUNDRY_HOME>/lake`, moved by a rename) or on object storage
through fsspec (`FOUNDRY_LAKE_URL=s3://bucket/prefix`). Object stores have no atomic rename, so a
remote version is uploaded object by object under its final prefix and only the catalog commit
makes it visible. The DuckDB catalog always stays in the local `home` folder.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from dagster import ConfigurableResource
from fsspec.implementations.local import LocalFileSystem
from pydantic import Field, PrivateAttr

from resources.catalog import DOC_INDEX, UNPARTITIONED, Catalog, TableVersion
from resources.doc_index import DocIndex, write_segment
from resources.settings import foundry_home

LAKE_URL_ENV = "FOUNDRY_LAKE_URL"
STAGING = "_staging"
CHECKPOINTS = "_checkpoints"
COMPLETE_MARKER = "_COMPLETE"  # written last into a remote checkpoint: the upload finished
STALE_STAGING_S = 24 * 3600  # staging folders of unknown owners are removed after a day
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class MissingUpstreamError(RuntimeError):
    """A stage asked for an asset that has never been materialized."""


class UndeclaredReadError(RuntimeError):
    """An asset read a table of an asset it does not list in its `deps`: Dagster's lineage, its
    staleness and the run order would all be wrong about it."""


class TableSink:
    """Streams rows into one Parquet file in bounded batches; no stage holds a corpus in memory."""

    def __init__(self, path: Path, schema: pa.Schema, batch_rows: int = 2048) -> None:
        self.path = path
        self.schema = schema
        self.batch_rows = batch_rows
        self.rows = 0
        self._pending: list[dict[str, Any]] = []
        self._writer = pq.ParquetWriter(path, schema, compression="zstd")

    def append(self, row: dict[str, Any]) -> None:
        self._pending.append(row)
        if len(self._pending) >= self.batch_rows:
            self._flush()

    def write(self, data: pa.Table | pa.RecordBatch | pl.DataFrame) -> None:
        self._flush()
        table = data.to_arrow() if isinstance(data, pl.DataFrame) else data
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        table = _conform(table, self.schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def _flush(self) -> None:
        if self._pending:
            batch = pa.RecordBatch.from_pylist(self._pending, schema=self.schema)
            self._writer.write_batch(batch)
            self.rows += batch.num_rows
            self._pending = []

    def close(self) -> None:
        self._flush()
        self._writer.close()


@dataclass(frozen=True)
class StagedVersion:
    """A version whose files are in place but which no reader sees until it is committed."""

    folder: str
    tables: list[TableVersion]
    run_id: str | None
    code_version: str | None
    metadata: dict[str, Any]

    def table(self, name: str) -> TableVersion | None:
        return next((t for t in self.tables if t.table_name == name), None)


class VersionWriter:
    """The tables of one new version, written in staging until the version is published.

    `staging` is always a local folder, also for a remote lake: stages may put extra files
    (plots, manifests, shards) there and they are published with the tables."""

    def __init__(self, staging: Path) -> None:
        self.staging = staging
        self.sinks: dict[str, TableSink] = {}
        self.staged: StagedVersion | None = None  # set once the block has finished

    def table(self, name: str, schema: pa.Schema) -> TableSink:
        if name in self.sinks:
            return self.sinks[name]
        sink = TableSink(self.staging / f"{check_name(name, 'table')}.parquet", schema)
        self.sinks[name] = sink
        return sink

    def write(self, name: str, data: pa.Table | pl.DataFrame, schema: pa.Schema) -> int:
        sink = self.table(name, schema)
        sink.write(data)
        return sink.rows

    def row_counts(self) -> dict[str, int]:
        return {name: sink.rows for name, sink in self.sinks.items()}


class Lake(ConfigurableResource):
    """Where every stage reads and writes its data. `home` is FOUNDRY_HOME by default."""

    home: str = Field(default_factory=lambda: str(foundry_home()))
    url: str = Field(
        default_factory=lambda: os.environ.get(LAKE_URL_ENV, ""),
        description="fsspec URL of the lake, e.g. s3://bucket/prefix (FOUNDRY_LAKE_URL); "
        "'' = <home>/lake. The catalog stays in <home>.",
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec options for `url` (s3fs: endpoint_url, key, secret, ...); by "
        "default the standard environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).",
    )
    lock_timeout_s: float = Field(
        default=120.0, description="How long to wait for another process's catalog transaction."
    )
    _catalog: Catalog | None = PrivateAttr(default=None)
    _fs: Any = PrivateAttr(default=None)
    _reader: str | None = PrivateAttr(default=None)
    _readable: frozenset[str] | None = PrivateAttr(default=None)

    def declare_reads(self, reader: str, upstream: Iterable[str]) -> None:
        """From now on only `upstream` and the reader's own earlier versions may be read."""
        self._reader, self._readable = reader, frozenset({reader, *upstream})

    def for_worker(self) -> tuple[dict[str, Any], str | None, frozenset[str] | None]:
        """What a worker process needs to open this lake with the same declared reads."""
        return self.model_dump(), self._reader, self._readable

    @classmethod
    def in_worker(cls, handoff: tuple[dict[str, Any], str | None, frozenset[str] | None]) -> Lake:
        fields, reader, readable = handoff
        lake = cls(**fields)
        lake._reader, lake._readable = reader, readable
        return lake

    def _may_read(self, asset: str) -> None:
        if self._readable is not None and asset not in self._readable:
            raise UndeclaredReadError(
                f"{self._reader} read {asset} without declaring it: add {asset!r} to the deps "
                f"of {self._reader} (declared: {sorted(self._readable - {self._reader})})"
            )

    # ---------------------------------------------------------------------------- location

    @property
    def remote(self) -> bool:
        """True when the lake is on a non-local filesystem (object storage)."""
        return not isinstance(self.filesystem, LocalFileSystem)

    @property
    def filesystem(self) -> fsspec.AbstractFileSystem:
        if self._fs is None:
            self._fs = (
                fsspec.core.url_to_fs(self.url, **self.storage_options)[0]
                if self.url
                else LocalFileSystem()
            )
        return self._fs

    @property
    def root(self) -> Path:
        """The local lake folder; remote lakes have `location` instead."""
        if self.url and self.remote:
            raise ValueError(f"the lake is remote ({self.url}): use Lake.location")
        if self.url:
            return Path(os.path.abspath(fsspec.core.url_to_fs(self.url)[1]))
        return Path(os.path.abspath(self.home)) / "lake"

    @property
    def location(self) -> str:
        """Root of the lake as a path (local) or a protocol-qualified URL (remote)."""
        return self._base() if not self.remote else self.filesystem.unstrip_protocol(self._base())

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            index = None if self.remote else self.root / DOC_INDEX
            self._catalog = Catalog(Path(self.home) / "catalog.duckdb", self.lock_timeout_s, index)
        return self._catalog

    @property
    def doc_index(self) -> DocIndex | None:
        """doc_id -> file and row, for trace and why (local lakes only)."""
        return None if self.remote else DocIndex(self.root / DOC_INDEX)

    # ---------------------------------------------------------------------------- writing

    @contextmanager
    def publish(
        self, asset: str, partition: str | None = None, **version: Any
    ) -> Iterator[VersionWriter]:
        """Write a new version and make it current at once, unchecked (tests, tools); assets
        stage, check, then commit (assets/publishing.py). `version`: as for `stage`."""
        with self.stage(asset, partition, **version) as writer:
            yield writer
        self.commit(writer.staged)

    @contextmanager
    def stage(
        self,
        asset: str,
        partition: str | None = None,
        *,
        run_id: str | None = None,
        code_version: str | None = None,
        metadata: dict | None = None,
    ) -> Iterator[VersionWriter]:
        """Write a new version into its final place without making it current: after the block,
        `writer.staged` holds its files for checks, then `commit` or `reject` decides."""
        check_name(asset, "asset")
        partition = partition or UNPARTITIONED
        part_dir = safe_key(partition)
        staging = self._new_staging()
        writer = VersionWriter(staging)
        try:
            yield writer
            for sink in writer.sinks.values():
                sink.close()
            version = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{safe_key((run_id or 'adhoc')[:8])}"
            index = self.doc_index
            files = {name: sink.path for name, sink in writer.sinks.items()}
            relative = f"{asset}/{part_dir}/{version}"
            segment = index and write_segment(index, relative, asset, partition, version, files)
            final = self._move_into_place(staging, relative)
            if index and segment:
                index.add(segment)
            tables = [
                TableVersion(asset, partition, version, name, f"{final}/{name}.parquet", rows)
                for name, rows in writer.row_counts().items()
            ]
            writer.staged = StagedVersion(final, tables, run_id, code_version, metadata or {})
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def commit(self, staged: StagedVersion | None) -> None:
        """Make a staged version current (one catalog transaction)."""
        if staged is not None:
            self.catalog.register(
                staged.tables, staged.run_id, staged.code_version, staged.metadata
            )
            self._compact_index()

    def reject(self, staged: StagedVersion, reasons: dict[str, Any]) -> None:
        """Record a staged version that failed its checks: it stays on disk and in the catalog's
        history with the reasons, and is never current, so nothing downstream reads it."""
        metadata = {**staged.metadata, "rejected": reasons}
        self.catalog.register(
            staged.tables, staged.run_id, staged.code_version, metadata, current=False
        )
        self._compact_index()

    def _compact_index(self) -> None:
        """After the catalog commit, outside its lock: merge the doc index once enough is
        pending (one publisher in FANOUT does it; the others skip)."""
        index = self.doc_index
        if index is not None:
            index.compact()

    def write_checkpoint(self, asset: str, key: str, tables: dict[str, pa.Table]) -> None:
        """Persist one finished batch of a long step, so a crash loses only the batch in flight.

        The batch folder appears whole or not at all (a rename locally; remotely its objects
        count only once the completion marker, uploaded last, is there); the next
        materialization of the asset reads every checkpoint back and folds it into its version.
        """
        relative = f"{check_name(asset, 'asset')}/{CHECKPOINTS}/{safe_key(key)}"
        if self._checkpoint_complete(self._path(relative)):
            return
        staging = self._new_staging()
        try:
            for name, table in tables.items():
                path = staging / f"{check_name(name, 'table')}.parquet"
                pq.write_table(table, path, compression="zstd")
            (staging / COMPLETE_MARKER).write_bytes(b"")
            self._move_into_place(staging, relative)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def read_checkpoints(
        self, asset: str, table: str, keys: Iterable[str] | None = None
    ) -> pl.DataFrame | None:
        """Rows of one table of every complete checkpoint, or only of those named in `keys`."""
        self._may_read(asset)
        base = self._path(f"{check_name(asset, 'asset')}/{CHECKPOINTS}")
        name = f"{check_name(table, 'table')}.parquet"
        if keys is not None:
            found = [f"{base}/{safe_key(key)}/{name}" for key in keys]
            paths = sorted(p for p in found if self.filesystem.exists(p))
        elif not self.remote:  # the folder name itself is not a pattern ("[" in a home path)
            paths = sorted(str(p) for p in Path(base).glob(f"*/{name}"))
        else:
            paths = sorted(self.filesystem.glob(f"{base}/*/{name}"))
        if not self.remote:
            return pl.read_parquet(paths, glob=False) if paths else None
        paths = [p for p in paths if self._checkpoint_complete(_parent(p))]
        if not paths:
            return None
        return pl.concat([pl.from_arrow(self._read_table(p)) for p in paths], how="diagonal")

    def checkpoint_keys(self, asset: str) -> list[str]:
        """Keys of the complete checkpoints of an asset: folder names only, no rows read."""
        self._may_read(asset)
        base = self._path(f"{check_name(asset, 'asset')}/{CHECKPOINTS}")
        if not self.filesystem.exists(base):
            return []
        folders = self.filesystem.ls(base, detail=False)
        return sorted(_basename(f) for f in folders if self._checkpoint_complete(f))

    def delete_checkpoints(self, asset: str, keys: Iterable[str]) -> None:
        """Remove checkpoints whose rows a committed version holds. Each goes at once from the
        readers' view: locally by a rename into staging, remotely by its marker going first."""
        base = f"{check_name(asset, 'asset')}/{CHECKPOINTS}"
        folders = {safe_key(key): self._path(f"{base}/{safe_key(key)}") for key in keys}
        if not folders:
            return
        if self.remote:
            for folder in folders.values():
                self.filesystem.rm_file(f"{folder}/{COMPLETE_MARKER}")
                self.filesystem.rm(folder, recursive=True)
            return
        trash = self._new_staging()  # one staging folder for the batch: one sweep, one rmtree
        try:
            for name, folder in folders.items():
                Path(folder).rename(trash / name)
        finally:
            shutil.rmtree(trash, ignore_errors=True)

    def _checkpoint_complete(self, folder: str) -> bool:
        fs = self.filesystem
        if not self.remote:  # a local checkpoint folder only ever appears by rename
            return fs.isdir(folder)
        return fs.exists(f"{folder}/{COMPLETE_MARKER}")

    def _new_staging(self) -> Path:
        """A private local folder named after its owner (host, pid), so a later publish can tell
        the leftovers of a killed process from the staging of one still running."""
        owner = f"{uuid.uuid4().hex}-{os.getpid()}-{_host()}"
        if self.remote:
            return Path(tempfile.mkdtemp(prefix=f"foundry-{owner}-"))
        base = self.root / STAGING
        base.mkdir(parents=True, exist_ok=True)
        sweep_staging(base)
        staging = base / owner
        staging.mkdir()
        return staging

    def _move_into_place(self, staging: Path, relative: str) -> str:
        """Local: one rename. Remote: upload every file under the final prefix; the prefix is
        invisible to readers until the catalog (or a checkpoint's marker) says otherwise."""
        final = self._path(relative)
        if not self.remote:
            Path(final).parent.mkdir(parents=True, exist_ok=True)
            staging.rename(final)
            return final
        files = sorted(p for p in staging.rglob("*") if p.is_file())
        files.sort(key=lambda p: p.name == COMPLETE_MARKER)  # the marker goes last
        for path in files:
            self.filesystem.put_file(str(path), f"{final}/{path.relative_to(staging).as_posix()}")
        return self.filesystem.unstrip_protocol(final)

    def _path(self, relative: str) -> str:
        """Filesystem path of a lake-relative location, checked to stay inside the lake."""
        parts = relative.split("/")
        if any(part in {"", ".", ".."} for part in parts):
            raise ValueError(f"lake path {relative!r} would leave the lake root")
        base = self._base()
        if not self.remote:
            root = Path(base).resolve()
            if not (root / relative).resolve().is_relative_to(root):
                raise ValueError(f"lake path {relative!r} resolves outside {root}")
        return f"{base}/{relative}"

    def _base(self) -> str:
        """The lake root as this filesystem names it (no protocol)."""
        if not self.remote:
            return str(self.root)
        return fsspec.core.url_to_fs(self.url, **self.storage_options)[1].rstrip("/")

    # ---------------------------------------------------------------------------- reading

    def files(
        self, asset: str, table: str = "documents", partitions: Sequence[str] | None = None
    ) -> list[TableVersion]:
        self._may_read(asset)
        found = self.catalog.current(asset, table, partitions)
        if not found:
            raise MissingUpstreamError(
                f"No current version of {asset}/{table}"
                + (f" for partitions {list(partitions)}" if partitions else "")
                + ": materialize it first (or check FOUNDRY_HOME)."
            )
        return found

    def has(self, asset: str, table: str = "documents") -> bool:
        self._may_read(asset)
        return bool(self.catalog.current(asset, table))

    def scan(
        self, asset: str, table: str = "documents", partitions: Sequence[str] | None = None
    ) -> pl.LazyFrame:
        """A lazy scan over the current version of every partition of one table."""
        paths = [f.path for f in self.files(asset, table, partitions)]
        if not _any_remote(paths):
            return pl.scan_parquet(
                paths, missing_columns="insert", extra_columns="ignore", glob=False
            )
        # Through the lake's own fsspec filesystem: same credentials and endpoint as the writes,
        # and the columns of the first file, as polars' missing/extra column rules give locally.
        fs = self.filesystem
        dataset = ds.dataset([fs._strip_protocol(p) for p in paths], filesystem=fs)
        return pl.scan_pyarrow_dataset(dataset)

    def iter_rows(
        self,
        asset: str,
        table: str = "documents",
        partitions: Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
        batch_rows: int = 1024,
    ) -> Iterator[dict[str, Any]]:
        """Stream rows batch by batch, for per-document Python work that polars cannot express."""
        cols = list(columns) if columns else None
        for tv in self.files(asset, table, partitions):
            remote = "://" in tv.path
            with self.filesystem.open(tv.path, "rb") if remote else nullcontext(tv.path) as source:
                parquet = pq.ParquetFile(source)
                for batch in parquet.iter_batches(batch_size=batch_rows, columns=cols):
                    yield from batch.to_pylist()

    def versions_of(self, assets: Iterable[str]) -> dict[str, list[str]]:
        """Current version ids per upstream asset, so outputs name exactly what they read."""
        out: dict[str, list[str]] = {}
        for asset in assets:
            self._may_read(asset)
            out[asset] = sorted({f.version for f in self.catalog.current(asset, "documents")})
        return out

    def orphan_versions(self) -> list[str]:
        """Version folders on storage that the catalog never registered: left by a step killed
        between the move into place and the catalog commit. Invisible to readers; listed here
        for audits and clean-up."""
        fs = self.filesystem
        base = self._base()
        known = {_parent(fs._strip_protocol(p)) for p in self.catalog.paths()}
        found = []
        for asset in fs.ls(base, detail=False) if fs.exists(base) else []:
            if _basename(asset).startswith("_") or not fs.isdir(asset):
                continue
            for partition in fs.ls(asset, detail=False):
                if _basename(partition).startswith("_") or not fs.isdir(partition):
                    continue
                found += [v for v in fs.ls(partition, detail=False) if v not in known]
        return sorted(fs.unstrip_protocol(v) if self.remote else v for v in found)

    def _read_table(self, path: str) -> pa.Table:
        with self.filesystem.open(path, "rb") as source:
            return pq.read_table(source)


def check_name(name: str, kind: str) -> str:
    """Asset and table names become folder, file and SQL view names: identifiers only."""
    if not _NAME.match(name):
        raise ValueError(f"unusable {kind} name {name!r}: letters, digits and '_' only")
    return name


def safe_key(key: str) -> str:
    """Partition keys come from file names; keep them from escaping the lake folder."""
    cleaned = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in key)
    if cleaned in {"", ".", ".."}:
        raise ValueError(f"unusable partition key {key!r}")
    return cleaned


_safe = safe_key  # the earlier private name


def sweep_staging(base: Path, now: float | None = None) -> list[Path]:
    """Remove staging folders whose owning process is gone (killed mid-write).

    A folder is removed when its owner ran on this host and no longer exists, or when its owner
    is unknown and it is older than a day; other hosts' folders are theirs to clean."""
    removed = []
    now = time.time() if now is None else now
    for folder in base.iterdir() if base.is_dir() else []:
        parts = folder.name.split("-", 2)
        try:
            if len(parts) == 3 and parts[1].isdigit():
                stale = parts[2] == _host() and not _alive(int(parts[1]))
            else:
                stale = now - folder.stat().st_mtime > STALE_STAGING_S
        except FileNotFoundError:  # another publisher swept it first
            continue
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _host() -> str:
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname()) or "host"


def _any_remote(paths: Sequence[str]) -> bool:
    return any("://" in p for p in paths)


def _parent(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[0]


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Order columns as the schema says; columns a stage does not produce become nulls."""
    arrays = [
        table[f.name].cast(f.type)
        if f.name in table.column_names
        else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)
