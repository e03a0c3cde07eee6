"""The DuckDB catalog: which version of which asset and partition is current, and SQL views.

DuckDB lets one process write a database file at a time, and parallel Dagster steps are separate
processes. So the catalog is only ever opened for a short transaction (register a version, read a
file list) with a bounded retry on the file lock; the data itself stays in Parquet.

Publishing writes version rows and nothing else, so its cost does not grow with the number of
files. Readers get the SQL views: a read connection defines a temporary view over the current
files of each table its query names, at query time, and never writes the catalog file.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
DOC_INDEX = "_doc_index"  # folder of the doc index inside a local lake (resources/doc_index.py)


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
    """`index_dir`: the lake's doc index (resources/doc_index.py) for trace and why; by default
    the one of the default lake beside the catalog, None for a lake on object storage."""

    def __init__(
        self,
        path: str | Path,
        lock_timeout_s: float = 120.0,
        index_dir: str | Path | None = "",
    ) -> None:
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s
        if index_dir == "":
            index_dir = self.path.parent / "lake" / DOC_INDEX
        self.index_dir = Path(index_dir) if index_dir is not None else None

    @contextmanager
    def connect(self, read_only: bool = False, views: bool = True) -> Iterator[Any]:
        """Open the catalog briefly, backing off with jitter while another process holds it.

        A read-only connection is read-only even on a fresh home: the first reader creates the
        empty catalog in a short write transaction, then reopens it read-only. With `views` it
        is a `ReadConnection`: every current table is a view, defined when a query names it."""
        if read_only and views:
            with self._raw(read_only=True) as con:
                yield ReadConnection(con)
            return
        with self._raw(read_only=read_only) as con:
            yield con

    @contextmanager
    def _raw(self, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if read_only and not self.path.exists():
            with self._raw(read_only=False):
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

        Only rows are written (no view DDL), so the lock is held for the same short time at ten
        files or ten thousand. `current=False` records a version (one that failed its checks)
        without showing it."""
        if not tables:
            return
        rows = [
            [*_key(t), run_id, code_version, json.dumps(metadata or {}, default=str)]
            for t in tables
        ]
        with self._raw(read_only=False) as con:
            con.execute("BEGIN TRANSACTION")
            _insert_versions(con, rows, current)
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
        with self._raw(read_only=True) as con:
            rows = con.execute(sql + " ORDER BY partition", params).fetchall()
        return [TableVersion(*row) for row in rows]

    def paths(self) -> list[str]:
        """Every file any version ever registered, current or not."""
        with self._raw(read_only=True) as con:
            return [row[0] for row in con.execute("SELECT DISTINCT path FROM versions").fetchall()]

    def history(self, asset: str) -> list[dict]:
        with self._raw(read_only=True) as con:
            cur = con.execute(
                "SELECT * FROM versions WHERE asset = ? ORDER BY created_at, table_name", [asset]
            )
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _insert_versions(con: duckdb.DuckDBPyConnection, rows: list[list], current: bool) -> None:
    """The whole publish, inside its transaction: flip the partition's current flag, add rows.

    `created_at` is taken here, under the lock, so it follows commit order."""
    now = datetime.now(UTC)
    asset, partition = rows[0][0], rows[0][1]
    if current:
        con.execute(
            "UPDATE versions SET is_current = false "
            "WHERE is_current AND asset = ? AND partition = ?",
            [asset, partition],
        )
    con.executemany(
        "INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [[*row, now, current] for row in rows],
    )
    _drop_stored_views(con)


def _drop_stored_views(con: duckdb.DuckDBPyConnection) -> None:
    """Catalogs written before views moved to the readers hold stored views over old file
    lists; they would outlive the tables they show, so they go (once: later there are none)."""
    stored = con.execute(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary"
    ).fetchall()
    for (view,) in stored:
        con.execute(f"DROP VIEW IF EXISTS main.{sql_identifier(view)}")


def _key(t: TableVersion) -> list:
    return [t.asset, t.partition, t.version, t.table_name, t.path, t.row_count]


def view_name(asset: str, table_name: str) -> str:
    """`documents` is an asset's main table, so its view carries the asset's own name."""
    return asset if table_name == "documents" else f"{asset}__{table_name}"


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Queries that list what the catalog holds see every view.
_INTROSPECTION = re.compile(
    r"duckdb_views|duckdb_tables|duckdb_columns|information_schema|sqlite_master|pg_catalog"
    r"|\bshow\b|\bpragma\b",
    re.IGNORECASE,
)


class ReadConnection:
    """A read-only catalog connection with one view per current table.

    A view over N files costs DuckDB N file footers to define (it binds every schema), so a
    view is defined, as a TEMP view in this connection only, when a query first names it.
    Files on object storage get no view: DuckDB reads them only through its httpfs extension,
    which is downloaded at run time; their paths stay queryable in `versions`. Anything not
    defined here (fetchall, description, ...) is the DuckDB connection's own."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self._names: dict[str, str] | None = None  # lower-case name -> view name
        self._defined: set[str] = set()

    def execute(self, query: str, parameters: object = None) -> duckdb.DuckDBPyConnection:
        self.define_views(query)
        if parameters is None:
            return self._con.execute(query)
        return self._con.execute(query, parameters)

    def sql(self, query: str, **kwargs: Any) -> duckdb.DuckDBPyRelation | None:
        self.define_views(query)
        return self._con.sql(query, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)

    def view_names(self) -> list[str]:
        """Every view a query may name: the current tables, local files or not."""
        if self._names is None:
            rows = self._con.execute(
                "SELECT DISTINCT asset, table_name FROM versions WHERE is_current"
            ).fetchall()
            self._names = {view_name(a, t).lower(): view_name(a, t) for a, t in rows}
        return sorted(self._names.values())

    def define_views(self, query: str) -> None:
        """Define the views `query` names (all of them when it lists the catalog's tables)."""
        self.view_names()
        assert self._names is not None
        if _INTROSPECTION.search(query):
            wanted = set(self._names.values())
        else:
            words = {w.lower() for w in _WORD.findall(query)}
            wanted = {self._names[w] for w in words if w in self._names}
        todo = sorted(wanted - self._defined)
        if not todo:
            return
        self._defined.update(todo)
        rows = self._con.execute(
            "SELECT asset, table_name, list(path ORDER BY partition) FROM versions "
            "WHERE is_current AND list_contains(?, "
            "CASE WHEN table_name = 'documents' THEN asset ELSE asset || '__' || table_name END) "
            "GROUP BY asset, table_name",
            [todo],
        ).fetchall()
        for asset, table_name, paths in rows:
            if any("://" in p for p in paths):
                continue
            files = ", ".join(sql_string(p) for p in paths)
            self._con.execute(
                f"CREATE OR REPLACE TEMP VIEW {sql_identifier(view_name(asset, table_name))} AS "
                f"SELECT * FROM read_parquet([{files}], union_by_name = true)"
            )


def sql_string(value: str) -> str:
    """A SQL string literal for places that take no parameters (DDL)."""
    return "'" + value.replace("'", "''") + "'"


def sql_identifier(name: str) -> str:
    """A quoted SQL identifier: embedded double quotes are doubled, so a name cannot end it."""
    return '"' + name.replace('"', '""') + '"'


_sql_string = sql_string
