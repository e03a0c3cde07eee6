"""The documents the mixture draws from, as one out-of-core DuckDB table (`pool.parquet`).

Every corpus document gets one row: its part (the crawl shard it sits in, or a chunk of the
rephrased table), origin, stored token count, cluster, quality score and bucket, domain, a
seeded unit hash `u`, and `lost`, the reason it cannot be drawn (no token count, cluster or
score). The join runs in DuckDB under an explicit memory limit with a spill folder, so the
mixture never holds the corpus; the table is sorted by part, so reading one part back touches
only that part's row groups.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import duckdb
import polars as pl

from assets.corpus import removal_assets
from resources.lake import Lake, TableSink
from resources.tokenizer import TokenCounter

# What a mixture domain is made of besides quality tier and origin: the document's cluster, or
# the domain DataMan's head gave it (`unlabelled` where the head was gated out).
DomainBy = Literal["cluster", "dataman"]
_DOMAIN_SQL = {
    "cluster": "'c' || k.cluster_id",
    "dataman": "replace(lower(coalesce(s.dm_domain, 'unlabelled')), ' ', '_')",
}

SYNTHETIC_PART_ROWS = 10_000
POOL_BUCKET_ROWS = 20_000  # documents per hash bucket of the pool's joins
UNIT = 2.0**53  # u = 53 bits of md5(seed:salt:doc_id): exact in a double, stable everywhere


def unit_hash_sql(seed: int, salt: str, column: str = "doc_id") -> str:
    """A uniform [0, 1) number per document from (seed, salt, doc_id): md5 is the same in every
    DuckDB version and on every machine, so each shard can draw its own documents alone."""
    return f"((md5_number_lower('{int(seed)}:{salt}:' || {column}) >> 11)::DOUBLE / {UNIT})"


def connect(
    workdir: Path, memory_limit: str = "1GB", threads: int = 2
) -> duckdb.DuckDBPyConnection:
    """A private DuckDB with explicit limits: its default memory limit is a share of the RAM."""
    spill = workdir / "duckdb_spill"
    spill.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.sql(f"SET memory_limit = '{memory_limit}'")
    con.sql(f"SET temp_directory = '{spill}'")
    con.sql(f"SET threads = {int(threads)}")
    con.sql("SET preserve_insertion_order = false")
    return con


def sql_list(paths: Sequence[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


@dataclass
class Sources:
    """The files the pool is built from, and which files hold the text of each part."""

    organic: dict[str, list[str]]  # shard -> cleaned_documents files
    counts: list[str]  # token_counts files
    synthetic: list[tuple[str, int]]  # rephrased_documents files with their row counts
    synthetic_counts: str | None = None  # (doc_id, tokens) of rewrites, counted here
    duplicates: list[str] = field(default_factory=list)  # dropped of duplicates, contamination
    clusters: list[str] = field(default_factory=list)
    clustered_out: list[str] = field(default_factory=list)  # clusters dropped
    scores: list[str] = field(default_factory=list)

    def text_files(self) -> dict[str, list[str]]:
        """Part -> the files that hold its texts."""
        parts = {shard: paths for shard, paths in self.organic.items()}
        for index, (path, rows) in enumerate(self.synthetic):
            for chunk in range(max(1, math.ceil(rows / SYNTHETIC_PART_ROWS))):
                parts[synthetic_part(index, chunk)] = [path]
        return parts


def synthetic_part(file_index: int, chunk: int) -> str:
    return f"rephrased-{file_index:04d}-{chunk:05d}"


def lake_sources(lake: Lake) -> Sources:
    def paths(asset: str, table: str = "documents") -> list[str]:
        return [f.path for f in lake.files(asset, table)] if lake.has(asset, table) else []

    organic: dict[str, list[str]] = {}
    for f in lake.files("cleaned_documents"):
        organic.setdefault(f.partition, []).append(f.path)
    synthetic = (
        [(f.path, f.row_count) for f in lake.files("rephrased_documents")]
        if lake.has("rephrased_documents")
        else []
    )
    return Sources(
        organic,
        paths("token_counts"),
        synthetic,
        None,
        [p for name in removal_assets(lake) for p in paths(name, "dropped")],
        paths("clusters"),
        paths("clusters", "dropped"),
        paths("quality_scores"),
    )


def count_synthetic(
    con: duckdb.DuckDBPyConnection, sources: Sources, counter: TokenCounter, out: Path
) -> None:
    """Token counts of rewrites, in bounded batches (rewrites are few: a rewrite budget)."""
    from assets.mixed.token_counts import TOKEN_COUNTS_SCHEMA

    sink = TableSink(out, TOKEN_COUNTS_SCHEMA)
    if sources.synthetic:
        files = sql_list([p for p, _ in sources.synthetic])
        reader = con.sql(f"SELECT doc_id, text FROM read_parquet({files})").to_arrow_reader(
            counter.chunk_docs
        )
        for batch in reader:
            texts = batch.column("text").to_pylist()
            counts = next(counter.count_chunks([texts]))
            sink.write(
                pl.DataFrame({"doc_id": batch.column("doc_id").to_pylist(), "tokens": counts})
            )
    sink.close()
    sources.synthetic_counts = str(out)


def build_pool(
    con: duckdb.DuckDBPyConnection,
    sources: Sources,
    out: Path,
    seed: int,
    high_bucket: int,
    bucket_rows: int = POOL_BUCKET_ROWS,
    domain_by: DomainBy = "cluster",
) -> None:
    """Join the corpus with token counts, clusters and scores out of core; sort by part.

    The joins run one doc_id-hash bucket of about `bucket_rows` documents at a time, so their
    hash tables stay that size whatever the corpus; the final sort spills to disk."""
    _views(con, sources, domain_by)
    rows = con.sql("SELECT count(*) FROM corpus").fetchall()[0][0]
    buckets = max(1, math.ceil(rows / bucket_rows))
    shuffled = out.parent / f"{out.stem}_shuffle"
    for name in ("corpus", "clustered_out", "counts", "assigned", "scored"):
        _shuffle(con, name, shuffled / name, buckets)
    joined = out.parent / f"{out.stem}_buckets"
    joined.mkdir(exist_ok=True)
    for bucket in range(buckets):
        query = _joined(shuffled, bucket, seed, high_bucket, domain_by)
        con.sql(f"COPY ({query}) TO '{joined}/{bucket}.parquet' (FORMAT parquet)")
    con.sql(
        f"COPY (SELECT * FROM read_parquet('{joined}/*.parquet') ORDER BY part) "
        f"TO '{out}' (FORMAT parquet, ROW_GROUP_SIZE 50000)"
    )
    con.sql(f"CREATE OR REPLACE VIEW pool AS SELECT * FROM read_parquet('{out}')")


def _shuffle(con: duckdb.DuckDBPyConnection, view: str, folder: Path, buckets: int) -> None:
    """One pass over a join input, split into doc_id-hash buckets (one file per bucket)."""
    folder.mkdir(parents=True, exist_ok=True)
    for bucket in range(buckets):  # an empty bucket still gets its (empty) file
        con.sql(f"COPY (SELECT * FROM {view} WHERE false) TO '{folder}/empty_{bucket}.parquet'")
    con.sql(
        f"COPY (SELECT *, hash(doc_id) % {buckets} AS bucket FROM {view}) TO '{folder}' "
        "(FORMAT parquet, PARTITION_BY (bucket), OVERWRITE_OR_IGNORE true)"
    )


def _joined(
    shuffled: Path, bucket: int, seed: int, high_bucket: int, domain_by: DomainBy = "cluster"
) -> str:
    """The pool rows of one doc_id-hash bucket: each join input read from its bucket's files."""

    def read(name: str) -> str:
        files = [f"{shuffled}/{name}/empty_{bucket}.parquet"]
        files += [str(p) for p in sorted((shuffled / name / f"bucket={bucket}").glob("*.parquet"))]
        return f"read_parquet({sql_list(files)}, union_by_name = true, hive_partitioning = false)"

    tier = f"CASE WHEN s.quality_bucket >= {int(high_bucket)} THEN 'hq' ELSE 'lq' END"
    return f"""
        SELECT c.doc_id, c.part, c.origin, t.tokens, k.cluster_id, s.quality_score,
               s.quality_bucket,
               {_DOMAIN_SQL[domain_by]} || '-' || {tier} || '-' || c.origin AS domain,
               {unit_hash_sql(seed, "mix", "c.doc_id")} AS u,
               CASE WHEN k.cluster_id IS NULL THEN 'mixed:missing_cluster'
                    WHEN s.quality_score IS NULL THEN 'mixed:missing_score'
                    WHEN t.tokens IS NULL THEN 'mixed:missing_token_count' END AS lost
        FROM {read("corpus")} c
        ANTI JOIN {read("clustered_out")} d ON c.doc_id = d.doc_id
        LEFT JOIN {read("counts")} t ON c.doc_id = t.doc_id
        LEFT JOIN {read("assigned")} k ON c.doc_id = k.doc_id
        LEFT JOIN {read("scored")} s ON c.doc_id = s.doc_id
    """


def _views(con: duckdb.DuckDBPyConnection, sources: Sources, domain_by: DomainBy) -> None:
    def view(name: str, paths: Sequence[str], columns: str, empty: str) -> None:
        body = f"SELECT {columns} FROM read_parquet({sql_list(paths)})" if paths else empty
        con.sql(f"CREATE OR REPLACE VIEW {name} AS {body}")

    files = [(shard, p) for shard, ps in sources.organic.items() for p in ps]
    listing = pl.DataFrame(  # noqa: F841 (read by SQL)
        {"path": [p for _, p in files], "part": [s for s, _ in files]},
        schema={"path": pl.String, "part": pl.String},
    )
    con.sql("CREATE OR REPLACE TABLE organic_files AS SELECT * FROM listing")
    view(
        "removed",
        sources.duplicates,
        "doc_id",
        "SELECT NULL::VARCHAR AS doc_id WHERE false",
    )
    organic = (
        f"SELECT c.doc_id, f.part, 'organic' AS origin "
        f"FROM read_parquet({sql_list([p for _, p in files])}, filename = true) c "
        f"JOIN organic_files f ON c.filename = f.path ANTI JOIN removed r ON c.doc_id = r.doc_id"
    )
    synthetic = [
        f"SELECT doc_id, 'rephrased-{i:04d}-' || lpad((file_row_number // {SYNTHETIC_PART_ROWS})"
        f"::VARCHAR, 5, '0') AS part, 'synthetic' AS origin "
        f"FROM read_parquet({sql_list([path])}, file_row_number = true)"
        for i, (path, _) in enumerate(sources.synthetic)
    ]
    con.sql(f"CREATE OR REPLACE VIEW corpus AS {' UNION ALL '.join([organic, *synthetic])}")
    counts = sources.counts + ([sources.synthetic_counts] if sources.synthetic_counts else [])
    none = "SELECT NULL::VARCHAR AS doc_id, {} WHERE false"
    view("counts", counts, "doc_id, tokens", none.format("NULL::BIGINT AS tokens"))
    view("assigned", sources.clusters, "doc_id, cluster_id", none.format("NULL::INT AS cluster_id"))
    view(
        "clustered_out",
        sources.clustered_out,
        "doc_id",
        "SELECT NULL::VARCHAR AS doc_id WHERE false",
    )
    dataman = domain_by == "dataman"
    view(
        "scored",
        sources.scores,
        "doc_id, quality_score, quality_bucket" + (", dm_domain" if dataman else ""),
        none.format(
            "NULL::DOUBLE AS quality_score, NULL::INT AS quality_bucket"
            + (", NULL::VARCHAR AS dm_domain" if dataman else "")
        ),
    )


def score_summary(
    con: duckdb.DuckDBPyConnection, sources: Sources, columns: Sequence[str], label: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """For the card: per score column the documents with a value and its mean, and documents
    per value of `label` (DataMan's domain), in two aggregates over the stored scores."""
    if not sources.scores:
        return pl.DataFrame(), pl.DataFrame()
    scores = f"read_parquet({sql_list(sources.scores)}, union_by_name = true)"
    present = set(con.sql(f"SELECT * FROM {scores} LIMIT 0").columns)
    shown = [c for c in columns if c in present]
    aggregates = ", ".join(f"count({c}), avg({c})" for c in shown)
    row = con.execute(f"SELECT {aggregates} FROM {scores}").fetchall()[0] if shown else ()
    summary = pl.DataFrame(
        {
            "score": shown,
            "documents": [int(row[2 * i]) for i in range(len(shown))],
            "mean": [
                None if row[2 * i + 1] is None else round(row[2 * i + 1], 3)
                for i in range(len(shown))
            ],
        }
    )
    if label not in present:
        return summary, pl.DataFrame()
    labels = con.sql(
        f"SELECT coalesce({label}, '(none)') AS {label}, count(*) AS documents FROM {scores} "
        f"GROUP BY 1 ORDER BY documents DESC, 1"
    ).pl()
    return summary, labels


def domain_totals(con: duckdb.DuckDBPyConnection, exclude: str = "held") -> pl.DataFrame:
    """domain, origin, cluster_id, tokens, documents of every drawable domain: one GROUP BY."""
    return con.sql(
        f"""
        SELECT domain, origin, any_value(cluster_id) AS cluster_id,
               sum(tokens)::BIGINT AS tokens, count(*)::BIGINT AS documents
        FROM pool p ANTI JOIN {exclude} h ON p.doc_id = h.doc_id
        WHERE lost IS NULL GROUP BY domain, origin ORDER BY domain
        """
    ).pl()
