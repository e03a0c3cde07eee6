"""Document lineage from the catalog: from a mixture sample back to its crawl record.

A trace reads exactly what a mixture was built from: the upstream versions its manifest pins
(`upstream_versions`), for the current mixture or an older one, not whatever is current today.
Every query is parameterised; table names come from the fixed list below, never from input, and
file lists come from the catalog.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import duckdb

from resources.catalog import Catalog, sql_string, view_name

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
    with catalog.connect(read_only=True) as con:
        q = _Query(con, *_pinned_sources(con, mixture))
        return _trace(q, doc_or_sample_id)


def _trace(q: _Query, doc_or_sample_id: str) -> Trace:
    mixture = q.rows(
        "training_mixture", "doc_id = ? OR sample_id = ?", doc_or_sample_id, doc_or_sample_id
    )
    doc_id = mixture[0]["doc_id"] if mixture else doc_or_sample_id
    trace = Trace(doc_id, versions=q.versions)
    trace.add("mixture samples", mixture)
    trace.add("not in the mixture", q.rows("training_mixture__dropped", "doc_id = ?", doc_id))
    trace.add("scores", q.rows("quality_scores", "doc_id = ?", doc_id))
    trace.add("cluster", q.cluster(doc_id))
    trace.add("removed as semantic duplicate", q.rows("clusters__dropped", "doc_id = ?", doc_id))
    rewrite = q.rows("rephrased_documents", "doc_id = ?", doc_id, omit=("text",))
    trace.add("rewrite", rewrite)
    trace.add("rejected rewrite", q.rows("rephrased_documents__dropped", "doc_id = ?", doc_id))
    source = rewrite[0]["source_doc_id"] if rewrite else doc_id
    _trace_organic(q, trace, source)
    return trace


def _trace_organic(q: _Query, trace: Trace, doc_id: str) -> None:
    trace.add("duplicate cluster", q.rows("duplicate_clusters", "doc_id = ?", doc_id))
    trace.add("removed as duplicate", q.rows("duplicate_clusters__dropped", "doc_id = ?", doc_id))
    trace.add("cleaned", q.rows("cleaned_documents", "doc_id = ?", doc_id, omit=("text",)))
    trace.add("filter signals", q.rows("cleaned_documents__signals", "doc_id = ?", doc_id))
    trace.add("dropped by cleaning", q.rows("cleaned_documents__dropped", "doc_id = ?", doc_id))
    trace.add("raw record", q.rows("raw_documents", "doc_id = ?", doc_id, omit=("text",)))
    trace.add("quarantined raw record", q.rows("raw_documents__dropped", "doc_id = ?", doc_id))


def _pinned_sources(
    con: duckdb.DuckDBPyConnection, mixture: str | None
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Files per table name, and versions per asset: the mixture's own version, the upstream
    versions its manifest pins, and the current version of anything it does not pin."""
    if mixture is None:
        row = con.execute(
            "SELECT version FROM versions WHERE asset = ? AND is_current LIMIT 1", [MIXTURE]
        ).fetchone()
        mixture = row[0] if row else None
    pinned: dict[str, list[str]] = {}
    if mixture is not None:
        meta = con.execute(
            "SELECT metadata FROM versions WHERE asset = ? AND version = ? LIMIT 1",
            [MIXTURE, mixture],
        ).fetchone()
        if meta is None:
            raise UnknownMixtureError(
                f"no training_mixture version {mixture!r}: list them with foundry sql "
                '"SELECT DISTINCT version, created_at FROM versions WHERE asset = '
                "'training_mixture' ORDER BY created_at\""
            )
        pinned = {MIXTURE: [mixture], **json.loads(meta[0] or "{}").get("upstream_versions", {})}
    rows = con.execute(
        "SELECT asset, version, table_name, path FROM versions "
        "WHERE (is_current AND NOT list_contains(?, asset)) "
        "OR list_contains(?, asset || '/' || version) ORDER BY partition",
        [list(pinned), [f"{a}/{v}" for a, vs in pinned.items() for v in vs]],
    ).fetchall()
    files: dict[str, list[str]] = {}
    versions: dict[str, set[str]] = {}
    for asset, version, table, path in rows:
        files.setdefault(view_name(asset, table), []).append(path)
        versions.setdefault(asset, set()).add(version)
    return files, {a: sorted(v) for a, v in versions.items()}


class _Query:
    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        files: dict[str, list[str]],
        versions: dict[str, list[str]],
    ) -> None:
        self.con, self.versions = con, versions
        self.sources = {
            name: "read_parquet([" + ", ".join(map(sql_string, paths)) + "], union_by_name = true)"
            for name, paths in files.items()
            if not any("://" in p for p in paths)  # remote files need DuckDB's httpfs
        }

    def rows(self, view: str, where: str, *params: Any, omit: tuple[str, ...] = ()) -> list[Row]:
        if view not in self.sources:
            return []
        exclude = f" EXCLUDE ({', '.join(omit)})" if omit else ""
        source = self.sources[view]
        cur = self.con.execute(f"SELECT *{exclude} FROM {source} WHERE {where}", list(params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def cluster(self, doc_id: str) -> list[Row]:
        if not {"clusters", "clusters__summary"} <= set(self.sources):
            return []
        cur = self.con.execute(
            f"SELECT c.cluster_id, s.label, s.size, c.distance FROM {self.sources['clusters']} c "
            f"JOIN {self.sources['clusters__summary']} s USING (cluster_id) WHERE c.doc_id = ?",
            [doc_id],
        )
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
    "removed as semantic duplicate",
    "rejected rewrite",
    "not in the mixture",
)


def explain(catalog: Catalog, url_or_doc_id: str) -> list[str]:
    """Why each raw record with this URL (or id) is, or is not, in the mixture."""
    with catalog.connect(read_only=True) as con:
        q = _Query(con, *_pinned_sources(con, None))
        ids = [
            r["doc_id"]
            for r in q.rows("raw_documents", "url = ? OR doc_id = ?", url_or_doc_id, url_or_doc_id)
        ]
        ids += [
            r["doc_id"]
            for r in q.rows(
                "raw_documents__dropped", "url = ? OR doc_id = ?", url_or_doc_id, url_or_doc_id
            )
        ]
    if not ids:
        return [f"{url_or_doc_id}: no raw record has this URL or id"]
    return [_verdict(trace_document(catalog, doc_id)) for doc_id in dict.fromkeys(ids)]


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
