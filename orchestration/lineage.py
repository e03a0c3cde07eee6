"""Document lineage from the catalog: from a mixture sample back to its crawl record.

A trace reads exactly what a mixture was built from: the upstream versions its manifest pins
(`upstream_versions`), for the current mixture or an older one, not whatever is current today.
Documents are found through the lake's doc index (resources/doc_index.py): a lookup opens a
bounded number of small sorted index files and then only the rows it names, so it takes the same
time at ten shards or ten thousand. Versions older than the index are scanned as before. Every
query is parameterised; table names come from the fixed list below, never from input, and file
lists come from the catalog.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from resources.catalog import Catalog, sql_string, view_name
from resources.doc_index import TRACED_VIEWS, DocIndex, Hit

MIXTURE = "training_mixture"

Row = dict[str, Any]


@dataclass
class Trace:
    doc_id: str
    steps: list[tuple[str, list[Row]]] = field(default_factory=list)
    versions: dict[str, list[str]] = field(default_factory=dict)  # what was read, per asset

    def add(self, title: str, rows: list[Row]) -> None:
        if rows:
            self.steps.append((title, rows))

    def found(self, title: str) -> bool:
        return any(t == title for t, _ in self.steps)


class UnknownMixtureError(LookupError):
    """The requested mixture version is not in the catalog."""


def trace_document(catalog: Catalog, doc_or_sample_id: str, mixture: str | None = None) -> Trace:
    """`mixture`: a training_mixture version id; None traces through the current mixture."""
    with catalog.connect(read_only=True, views=False) as con:
        q = _Query(con, catalog, _pinned(con, mixture))
        return _trace(q, doc_or_sample_id)


def _trace(q: _Query, doc_or_sample_id: str) -> Trace:
    mixture = q.rows("training_mixture", doc_or_sample_id, ("doc_id", "sample_id"))
    doc_id = mixture[0]["doc_id"] if mixture else doc_or_sample_id
    trace = Trace(doc_id)
    trace.add("mixture samples", mixture)
    trace.add("not in the mixture", q.rows("training_mixture__dropped", doc_id))
    trace.add("scores", q.rows("quality_scores", doc_id))
    trace.add("cluster", q.cluster(doc_id))
    trace.add("removed as semantic duplicate", q.rows("clusters__dropped", doc_id))
    rewrite = q.rows("rephrased_documents", doc_id, omit=("text",))
    trace.add("rewrite", rewrite)
    trace.add("rejected rewrite", q.rows("rephrased_documents__dropped", doc_id))
    source = rewrite[0]["source_doc_id"] if rewrite else doc_id
    _trace_organic(q, trace, source)
    trace.versions = q.read_versions()
    return trace


def _trace_organic(q: _Query, trace: Trace, doc_id: str) -> None:
    trace.add("duplicate cluster", q.rows("duplicate_clusters", doc_id))
    trace.add("removed as duplicate", q.rows("duplicate_clusters__dropped", doc_id))
    trace.add("removed as contaminated", q.rows("decontamination__dropped", doc_id))
    trace.add("cleaned", q.rows("cleaned_documents", doc_id, omit=("text",)))
    trace.add("filter signals", q.rows("cleaned_documents__signals", doc_id))
    trace.add("dropped by cleaning", q.rows("cleaned_documents__dropped", doc_id))
    trace.add("raw record", q.rows("raw_documents", doc_id, omit=("text",)))
    trace.add("quarantined raw record", q.rows("raw_documents__dropped", doc_id))


@dataclass(frozen=True)
class _Pins:
    """Which versions a trace may read: the mixture's own, the upstream versions its manifest
    pins, and the current version of anything it does not pin."""

    mixture: str | None
    versions: dict[str, list[str]]

    def where(self, alias: str = "") -> tuple[str, list]:
        a = f"{alias}." if alias else ""
        sql = (
            f"((({a}is_current AND NOT list_contains(?, {a}asset)) "
            f"OR list_contains(?, {a}asset || '/' || {a}version)))"
        )
        keys = [f"{asset}/{v}" for asset, vs in self.versions.items() for v in vs]
        return sql, [list(self.versions), keys]


def _pinned(con: Any, mixture: str | None) -> _Pins:
    if mixture is None:
        rows = con.execute(
            "SELECT version FROM versions WHERE asset = ? AND is_current LIMIT 1", [MIXTURE]
        ).fetchall()
        mixture = rows[0][0] if rows else None
    if mixture is None:
        return _Pins(None, {})
    found = con.execute(
        "SELECT metadata FROM versions WHERE asset = ? AND version = ? LIMIT 1",
        [MIXTURE, mixture],
    ).fetchall()
    if not found:
        raise UnknownMixtureError(
            f"no training_mixture version {mixture!r}: list them with foundry sql "
            '"SELECT DISTINCT version, created_at FROM versions WHERE asset = '
            "'training_mixture' ORDER BY created_at\""
        )
    upstream = json.loads(found[0][0] or "{}").get("upstream_versions", {})
    return _Pins(mixture, {MIXTURE: [mixture], **upstream})


class _Query:
    """Rows of the traced tables by key, from the versions the pins allow."""

    def __init__(self, con: Any, catalog: Catalog, pins: _Pins) -> None:
        self.con, self.pins = con, pins
        self.index = DocIndex(catalog.index_dir) if catalog.index_dir is not None else None
        self.since = self.index.since if self.index is not None else None
        self._found: dict[str, dict[str, list[tuple[str, str, str, list[int]]]]] = {}
        self._legacy: dict[str, list[str]] | None = None
        self._read: dict[str, set[str]] = {}

    def rows(
        self,
        view: str,
        key: str,
        columns: tuple[str, ...] = ("doc_id",),
        omit: tuple[str, ...] = (),
    ) -> list[Row]:
        """Rows of `view` whose `columns` hold `key`: indexed rows, then unindexed files."""
        assert view in TRACED_VIEWS, view
        found = []
        for asset, version, path, rows in self._indexed(key).get(view, []):
            for row in self._fetch(path, rows, omit):
                if any(row.get(c) == key for c in columns):
                    found.append(row)
                    self._read.setdefault(asset, set()).add(version)
        return found + self._scan(view, key, columns, omit)

    def cluster(self, doc_id: str) -> list[Row]:
        rows = self.rows("clusters", doc_id)
        files = self._files("clusters__summary") if rows else []
        if not files:
            return []
        ids = sorted({r["cluster_id"] for r in rows})
        cur = self.con.execute(
            f"SELECT cluster_id, label, size FROM {_source(files)} "
            "WHERE list_contains(?, cluster_id)",
            [ids],
        )
        summary = {cid: (label, size) for cid, label, size in cur.fetchall()}
        return [
            {
                "cluster_id": r["cluster_id"],
                "label": summary[r["cluster_id"]][0],
                "size": summary[r["cluster_id"]][1],
                "distance": r.get("distance"),
            }
            for r in rows
            if r["cluster_id"] in summary
        ]

    def read_versions(self) -> dict[str, list[str]]:
        """The mixture read through, and the versions in which the document was found."""
        read = {a: set(v) for a, v in self._read.items()}
        if self.pins.mixture is not None:
            read.setdefault(MIXTURE, set()).add(self.pins.mixture)
        return {a: sorted(v) for a, v in sorted(read.items())}

    # ------------------------------------------------------------------------ through the index

    def _indexed(self, key: str) -> dict[str, list[tuple[str, str, str, list[int]]]]:
        """view -> (asset, version, path, rows) of each allowed version that holds `key`."""
        if key in self._found:
            return self._found[key]
        hits = self.index.lookup([key]) if self.index is not None else []
        found: dict[str, list[tuple[str, str, str, list[int]]]] = {}
        if hits:
            table = pa.Table.from_pylist([_hit_row(h) for h in hits])
            self.con.register("doc_index_hits", table)
            where, params = self.pins.where("v")
            rows = self.con.execute(
                "SELECT v.asset, v.table_name, v.version, v.path, list(h.row ORDER BY h.row) "
                "FROM doc_index_hits h JOIN versions v "
                "USING (asset, partition, version, table_name) "
                f"WHERE {where} AND v.path NOT LIKE '%://%' "
                "GROUP BY ALL ORDER BY v.path",
                params,
            ).fetchall()
            self.con.unregister("doc_index_hits")
            for asset, table_name, version, path, row_numbers in rows:
                found.setdefault(view_name(asset, table_name), []).append(
                    (asset, version, path, row_numbers)
                )
        self._found[key] = found
        return found

    def _fetch(self, path: str, rows: list[int], omit: tuple[str, ...]) -> list[Row]:
        exclude = ", ".join(["file_row_number", *omit])
        cur = self.con.execute(
            f"SELECT * EXCLUDE ({exclude}) FROM read_parquet(?, file_row_number = true) "
            "WHERE list_contains(?, file_row_number) ORDER BY file_row_number",
            [path, rows],
        )
        return _dicts(cur)

    # ------------------------------------------------------------ versions older than the index

    def _scan(self, view: str, key: str, columns: tuple[str, ...], omit: tuple[str, ...]):
        """Rows of versions published before the index existed, read the old way."""
        files = self._legacy_files().get(view)
        if not files:
            return []
        exclude = f" EXCLUDE ({', '.join(omit)})" if omit else ""
        match = " OR ".join(f"{c} = ?" for c in columns)
        cur = self.con.execute(
            f"SELECT *{exclude} FROM {_source(files)} WHERE {match}", [key] * len(columns)
        )
        return _dicts(cur)

    def _legacy_files(self) -> dict[str, list[str]]:
        if self._legacy is None:
            self._legacy = self._files_where(
                "created_at < ?" if self.since is not None else "true",
                [self.since] if self.since is not None else [],
            )
        return self._legacy

    def _files(self, view: str) -> list[str]:
        return self._files_where("true", [], views=[view]).get(view, [])

    def _files_where(self, extra: str, params: list, views=TRACED_VIEWS) -> dict[str, list[str]]:
        """Local files per view of the allowed versions (remote files need DuckDB's httpfs)."""
        where, pins = self.pins.where()
        rows = self.con.execute(
            "SELECT asset, table_name, list(path ORDER BY partition), bool_or(path LIKE '%://%') "
            f"FROM versions WHERE {where} AND {extra} AND list_contains(?, "
            "CASE WHEN table_name = 'documents' THEN asset ELSE asset || '__' || table_name END) "
            "GROUP BY asset, table_name",
            [*pins, *params, sorted(views)],
        ).fetchall()
        return {view_name(a, t): paths for a, t, paths, remote in rows if not remote}


def _hit_row(hit: Hit) -> dict:
    return {
        "asset": hit.asset,
        "partition": hit.partition,
        "version": hit.version,
        "table_name": hit.table_name,
        "row": hit.row,
    }


def _source(files: list[str]) -> str:
    return "read_parquet([" + ", ".join(map(sql_string, files)) + "], union_by_name = true)"


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[Row]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def format_trace(trace: Trace) -> str:
    if not trace.steps:
        return f"{trace.doc_id}: not found in any stage (is FOUNDRY_HOME right?)"
    lines = [f"document {trace.doc_id}"]
    if MIXTURE in trace.versions:
        lines.append(f"read through {MIXTURE} version {', '.join(trace.versions[MIXTURE])}")
    for title, rows in trace.steps:
        lines.append(f"\n== {title}")
        for row in rows[:20]:
            lines.append("   " + ", ".join(f"{k}={_short(v)}" for k, v in row.items()))
        if len(rows) > 20:
            lines.append(f"   ... {len(rows) - 20} more")
    return "\n".join(lines)


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "..."


DROP_STEPS = (
    "quarantined raw record",
    "dropped by cleaning",
    "removed as duplicate",
    "removed as contaminated",
    "removed as semantic duplicate",
    "rejected rewrite",
    "not in the mixture",
)


def explain(catalog: Catalog, url_or_doc_id: str) -> list[str]:
    """Why each raw record with this URL (or id) is, or is not, in the mixture."""
    with catalog.connect(read_only=True, views=False) as con:
        q = _Query(con, catalog, _pinned(con, None))
        ids = [
            r["doc_id"]
            for view in ("raw_documents", "raw_documents__dropped")
            for r in q.rows(view, url_or_doc_id, ("url", "doc_id"))
        ]
        if not ids:
            return [f"{url_or_doc_id}: no raw record has this URL or id"]
        return [_verdict(_trace(q, doc_id)) for doc_id in dict.fromkeys(ids)]


def _verdict(trace: Trace) -> str:
    steps = dict(trace.steps)
    if "mixture samples" in steps:
        samples = steps["mixture samples"]
        domain = samples[0]["domain"]
        return f"{trace.doc_id}: IN the mixture, {len(samples)} sample(s), domain {domain}"
    for title in DROP_STEPS:
        if title in steps:
            row = steps[title][0]
            measured = f" (value {row.get('value')}, threshold {row.get('threshold')})"
            return (
                f"{trace.doc_id}: NOT in the mixture - {title} at stage {row.get('stage')}: "
                f"{row.get('rule')}{measured if row.get('value') is not None else ''}"
                f"{'; ' + row['detail'] if row.get('detail') else ''}"
            )
    return f"{trace.doc_id}: NOT in the mixture - not yet processed by a later stage"
