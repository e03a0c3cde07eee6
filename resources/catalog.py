"""The DuckDB catalog: which version of which asset and partition is current, and SQL views.

DuckDB lets one process write a database file at a time, and parallel Dagster steps are separate
processes. So the catalog is only ever opened for a short transaction (register a version, read a
file list) with a bounded retry on the file lock; the data itself stays in Parquet.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    asset VARCHAR NOT NULL,
    partition VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    table_name VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    row_count BIGINT NOT NULL,
    run_id VARCHAR,
    code_version VARCHAR,
    metadata JSON,
    created_at TIMESTAMPTZ NOT NULL,
    is_current BOOLEAN NOT NULL,
    PRIMARY KEY (asset, partition, version, table_name)
);
"""

UNPARTITIONED = "__all__"


class CatalogLockedError(RuntimeError):
    """Another process held the catalog longer than the configured wait."""


@dataclass(frozen=True, slots=True)
class TableVersion:
    asset: str
    partition: str
    version: str
    table_name: str
    path: str
    row_count: int


class Catalog:
    def __init__(self, path: str | Path, lock_timeout_s: float = 120.0) -> None:
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the catalog briefly, backing off with jitter while another process holds it.

        A read-only connection is read-only even on a fresh home: the first reader creates the
        empty catalog in a short write transaction, then reopens it read-only."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if read_only and not self.path.exists():
            with self.connect():
                pass
        con = self._open_with_retry(read_only)
        try:
            if not read_only:
                con.execute(SCHEMA)
            yield con
        finally:
            con.close()

    def _open_with_retry(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise CatalogLockedError(
                        f"The catalog {self.path} stayed locked by another process for "
                        f"{self.lock_timeout_s:.0f}s ({exc}). Close other DuckDB sessions on it "
                        "(for example a `duckdb` shell) or raise lock_timeout_s."
                    ) from exc
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 2.0)

    def register(
        self,
        tables: Sequence[TableVersion],
        run_id: str | None,
        code_version: str | None,
        metadata: dict | None = None,
        current: bool = True,
    ) -> None:
        """Make a version current in one transaction, so readers see all its tables or none.

        `current=False` records a version (one that failed its checks) without showing it."""
        if not tables:
            return
        now = datetime.now(UTC)
        meta = json.dumps(metadata or {}, default=str)
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            first = tables[0]
            if current:
                con.execute(
                    "UPDATE versions SET is_current = false WHERE asset = ? AND partition = ?",
                    [first.asset, first.partition],
                )
            con.executemany(
                "INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [[*_key(t), run_id, code_version, meta, now, current] for t in tables],
            )
            if current:
                _refresh_views(con, {t.asset for t in tables})
            con.execute("COMMIT")

    def current(
        self, asset: str, table_name: str, partitions: Sequence[str] | None = None
    ) -> list[TableVersion]:
        """The current files of one table of an asset, in partition order."""
        sql = (
            "SELECT asset, partition, version, table_name, path, row_count FROM versions "
            "WHERE is_current AND asset = ? AND table_name = ?"
        )
        params: list = [asset, table_name]
        if partitions is not None:
            sql += " AND list_contains(?, partition)"
            params.append(list(partitions))
        with self.connect(read_only=True) as con:
            rows = con.execute(sql + " ORDER BY partition", params).fetchall()
        return [TableVersion(*row) for row in rows]

    def paths(self) -> list[str]:
        """Every file any version ever registered, current or not."""
        with self.connect(read_only=True) as con:
            return [row[0] for row in con.execute("SELECT DISTINCT path FROM versions").fetchall()]

    def history(self, asset: str) -> list[dict]:
        with self.connect(read_only=True) as con:
            cur = con.execute(
                "SELECT * FROM versions WHERE asset = ? ORDER BY created_at, table_name", [asset]
            )
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _key(t: TableVersion) -> list:
    return [t.asset, t.partition, t.version, t.table_name, t.path, t.row_count]


def view_name(asset: str, table_name: str) -> str:
    """`documents` is an asset's main table, so its view carries the asset's own name."""
    return asset if table_name == "documents" else f"{asset}__{table_name}"


def _refresh_views(con: duckdb.DuckDBPyConnection, assets: set[str]) -> None:
    """One view per current table. DDL takes no parameters, so names and paths are quoted.

    Files on object storage get no view: DuckDB reads them only through its httpfs extension,
    which is downloaded at run time; their paths stay queryable in `versions`."""
    rows = con.execute(
        "SELECT asset, table_name, list(path ORDER BY partition) FROM versions "
        "WHERE is_current AND list_contains(?, asset) GROUP BY asset, table_name",
        [sorted(assets)],
    ).fetchall()
    _drop_stale_views(con, assets, {view_name(asset, table) for asset, table, _ in rows})
    for asset, table_name, paths in rows:
        view = sql_identifier(view_name(asset, table_name))
        if any("://" in p for p in paths):
            con.execute(f"DROP VIEW IF EXISTS {view}")
            continue
        files = ", ".join(sql_string(p) for p in paths)
        con.execute(
            f"CREATE OR REPLACE VIEW {view} AS "
            f"SELECT * FROM read_parquet([{files}], union_by_name = true)"
        )


def _drop_stale_views(con: duckdb.DuckDBPyConnection, assets: set[str], current: set[str]) -> None:
    """Views of tables the current version no longer writes would show an older version's rows
    as if they were current (a mixture made without search keeps the last search's rounds)."""
    existing = [r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()]
    for view in existing:
        owner = view.split("__", 1)[0]
        if owner in assets and view not in current:
            con.execute(f"DROP VIEW IF EXISTS {sql_identifier(view)}")


def sql_string(value: str) -> str:
    """A SQL string literal for places that take no parameters (DDL)."""
    return "'" + value.replace("'", "''") + "'"


def sql_identifier(name: str) -> str:
    """A quoted SQL identifier: embedded double quotes are doubled, so a name cannot end it."""
    return '"' + name.replace('"', '""') + '"'


_sql_string = sql_string
