"""The Parquet lake: immutable, versioned files published atomically, catalogued in DuckDB.

A materialization writes every table of a new version into a private staging folder, renames the
folder into place and then registers it in the catalog in one transaction. Readers only ever see
what the catalog lists, so a step killed mid-write leaves nothing visible, and earlier versions
stay on disk for audits.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from resources.catalog import UNPARTITIONED, Catalog, TableVersion
from resources.settings import foundry_home


class MissingUpstreamError(RuntimeError):
    """A stage asked for an asset that has never been materialized."""


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


class VersionWriter:
    """The tables of one new version, written in staging until the version is published."""

    def __init__(self, staging: Path) -> None:
        self.staging = staging
        self.sinks: dict[str, TableSink] = {}

    def table(self, name: str, schema: pa.Schema) -> TableSink:
        if name in self.sinks:
            return self.sinks[name]
        sink = TableSink(self.staging / f"{name}.parquet", schema)
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
    lock_timeout_s: float = Field(
        default=120.0, description="How long to wait for another process's catalog transaction."
    )
    _catalog: Catalog | None = PrivateAttr(default=None)

    @property
    def root(self) -> Path:
        return Path(self.home) / "lake"

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = Catalog(Path(self.home) / "catalog.duckdb", self.lock_timeout_s)
        return self._catalog

    @contextmanager
    def publish(
        self,
        asset: str,
        partition: str | None = None,
        *,
        run_id: str | None = None,
        code_version: str | None = None,
        metadata: dict | None = None,
    ) -> Iterator[VersionWriter]:
        """Write a new version; it becomes current only if the block finishes without error."""
        partition = partition or UNPARTITIONED
        staging = self.root / "_staging" / uuid.uuid4().hex
        staging.mkdir(parents=True)
        writer = VersionWriter(staging)
        try:
            yield writer
            for sink in writer.sinks.values():
                sink.close()
            version = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{(run_id or 'adhoc')[:8]}"
            final = self.root / asset / _safe(partition) / version
            final.parent.mkdir(parents=True, exist_ok=True)
            staging.rename(final)
            tables = [
                TableVersion(asset, partition, version, name, str(final / f"{name}.parquet"), rows)
                for name, rows in writer.row_counts().items()
            ]
            self.catalog.register(tables, run_id, code_version, metadata)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def write_checkpoint(self, asset: str, key: str, tables: dict[str, pa.Table]) -> None:
        """Persist one finished batch of a long step, so a crash loses only the batch in flight.

        The batch folder appears by rename, whole or not at all; the next materialization of
        the asset reads every checkpoint back and folds it into its version.
        """
        final = self.root / asset / "_checkpoints" / _safe(key)
        if final.exists():
            return
        staging = self.root / "_staging" / uuid.uuid4().hex
        staging.mkdir(parents=True)
        try:
            for name, table in tables.items():
                pq.write_table(table, staging / f"{name}.parquet", compression="zstd")
            final.parent.mkdir(parents=True, exist_ok=True)
            staging.rename(final)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def read_checkpoints(self, asset: str, table: str) -> pl.DataFrame | None:
        paths = sorted((self.root / asset / "_checkpoints").glob(f"*/{table}.parquet"))
        return pl.read_parquet(paths) if paths else None

    def files(
        self, asset: str, table: str = "documents", partitions: Sequence[str] | None = None
    ) -> list[TableVersion]:
        found = self.catalog.current(asset, table, partitions)
        if not found:
            raise MissingUpstreamError(
                f"No current version of {asset}/{table}"
                + (f" for partitions {list(partitions)}" if partitions else "")
                + ": materialize it first (or check FOUNDRY_HOME)."
            )
        return found

    def has(self, asset: str, table: str = "documents") -> bool:
        return bool(self.catalog.current(asset, table))

    def scan(
        self, asset: str, table: str = "documents", partitions: Sequence[str] | None = None
    ) -> pl.LazyFrame:
        """A lazy scan over the current version of every partition of one table."""
        paths = [f.path for f in self.files(asset, table, partitions)]
        return pl.scan_parquet(paths, missing_columns="insert", extra_columns="ignore")

    def iter_rows(
        self,
        asset: str,
        table: str = "documents",
        partitions: Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
        batch_rows: int = 1024,
    ) -> Iterator[dict[str, Any]]:
        """Stream rows batch by batch, for per-document Python work that polars cannot express."""
        for tv in self.files(asset, table, partitions):
            parquet = pq.ParquetFile(tv.path)
            cols = list(columns) if columns else None
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=cols):
                yield from batch.to_pylist()

    def versions_of(self, assets: Iterable[str]) -> dict[str, list[str]]:
        """Current version ids per upstream asset, so outputs name exactly what they read."""
        out: dict[str, list[str]] = {}
        for asset in assets:
            out[asset] = sorted({f.version for f in self.catalog.current(asset, "documents")})
        return out


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Order columns as the schema says; columns a stage does not produce become nulls."""
    arrays = [
        table[f.name].cast(f.type)
        if f.name in table.column_names
        else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _safe(partition: str) -> str:
    """Partition keys come from file names; keep them from escaping the lake folder."""
    cleaned = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in partition)
    if cleaned in {"", ".", ".."}:
        raise ValueError(f"unusable partition key {partition!r}")
    return cleaned
