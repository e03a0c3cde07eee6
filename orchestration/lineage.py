"""Document lineage from the catalog's views: from a mixture sample back to its crawl record.

Every query is parameterised; view names come from the fixed list below, never from input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

from resources.catalog import Catalog

Row = dict[str, Any]


@dataclass
class Trace:
    doc_id: str
    steps: list[tuple[str, list[Row]]] = field(default_factory=list)

    def add(self, title: str, rows: list[Row]) -> None:
        if rows:
            self.steps.append((title, rows))

    def found(self, title: str) -> bool:
        return any(t == title for t, _ in self.steps)


def trace_document(catalog: Catalog, doc_or_sample_id: str) -> Trace:
    with catalog.connect(read_only=True) as con:
        views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
        q = _Query(con, views)
        mixture = q.rows(
            "training_mixture", "doc_id = ? OR sample_id = ?", doc_or_sample_id, doc_or_sample_id
        )
        doc_id = mixture[0]["doc_id"] if mixture else doc_or_sample_id
        trace = Trace(doc_id)
        trace.add("mixture samples", mixture)
        trace.add("not in the mixture", q.rows("training_mixture__dropped", "doc_id = ?", doc_id))
        trace.add("scores", q.rows("quality_scores", "doc_id = ?", doc_id))
        trace.add("cluster", q.cluster(doc_id))
        trace.add(
            "removed as semantic duplicate", q.rows("clusters__dropped", "doc_id = ?", doc_id)
        )
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


class _Query:
    def __init__(self, con: duckdb.DuckDBPyConnection, views: set[str]) -> None:
        self.con, self.views = con, views

    def rows(self, view: str, where: str, *params: Any, omit: tuple[str, ...] = ()) -> list[Row]:
        if view not in self.views:
            return []
        exclude = f" EXCLUDE ({', '.join(omit)})" if omit else ""
        cur = self.con.execute(f'SELECT *{exclude} FROM "{view}" WHERE {where}', list(params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def cluster(self, doc_id: str) -> list[Row]:
        if not {"clusters", "clusters__summary"} <= self.views:
            return []
        cur = self.con.execute(
            "SELECT c.cluster_id, s.label, s.size, c.distance FROM clusters c "
            "JOIN clusters__summary s USING (cluster_id) WHERE c.doc_id = ?",
            [doc_id],
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def format_trace(trace: Trace) -> str:
    if not trace.steps:
        return f"{trace.doc_id}: not found in any stage (is FOUNDRY_HOME right?)"
    lines = [f"document {trace.doc_id}"]
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
        views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
        q = _Query(con, views)
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
