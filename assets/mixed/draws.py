"""Per-document inputs of the draw, computed from bounded aggregates over the pool.

- the proxy's held-out target: a top-N by seeded hash (DuckDB keeps N rows, not the corpus);
- QuaDMix quality ranks: a histogram of scores per (cluster, origin) on LEVELS bins, so a rank
  is a lookup in a table of at most clusters x origins x LEVELS rows;
- the search's proxy pool: a seeded sample of about `tokens` per domain, texts fetched by a
  semi-join;
- `draws.parquet`: the pool plus each document's intensity `lam` (assets/mixed/quota.py).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from assets.mixed.pool import sql_list, unit_hash_sql

LEVELS = 4096  # quality-score bins per (cluster, origin) for QuaDMix's rank


def set_held(con: duckdb.DuckDBPyConnection, ids: pl.Series | None) -> None:
    frame = pl.DataFrame({"doc_id": [] if ids is None else ids}, schema={"doc_id": pl.String})  # noqa: F841
    con.sql("CREATE OR REPLACE TABLE held AS SELECT DISTINCT doc_id FROM frame")


def held_out_ids(con: duckdb.DuckDBPyConnection, tokens: int, seed: int) -> pl.Series:
    """Organic documents of the top quality bucket in seeded hash order until `tokens` are
    reached, never more than half the bucket (the mixture keeps the rest)."""
    eligible = "lost IS NULL AND origin = 'organic'"
    top, size = con.sql(
        f"SELECT max(quality_bucket), count(*) FILTER (WHERE quality_bucket = "
        f"(SELECT max(quality_bucket) FROM pool WHERE {eligible})) FROM pool WHERE {eligible}"
    ).fetchall()[0]
    limit = max(1, size // 2)
    fetch = min(limit, 256)
    while True:
        ranked = con.sql(
            f"SELECT doc_id, tokens FROM pool WHERE {eligible} AND quality_bucket = ? "
            f"ORDER BY {unit_hash_sql(seed, 'target')}, doc_id LIMIT {fetch}",
            params=[top],
        ).pl()
        before = ranked["tokens"].cum_sum() - ranked["tokens"]
        keep = ranked.filter(before < tokens).head(limit)
        if keep.height < ranked.height or fetch >= limit:
            return keep["doc_id"]
        fetch = min(limit, fetch * 4)


def score_range(con: duckdb.DuckDBPyConnection) -> tuple[float, float]:
    lo, hi = con.sql(
        "SELECT min(quality_score), max(quality_score) FROM pool WHERE lost IS NULL"
    ).fetchall()[0]
    return float(lo or 0.0), float(hi or 0.0)


def level_sql(lo: float, hi: float, column: str = "quality_score") -> str:
    if hi <= lo:
        return "0"
    scale = LEVELS / (hi - lo)
    return f"least({LEVELS - 1}, greatest(0, floor(({column} - {lo!r}) * {scale!r})))::INTEGER"


def quality_levels(con: duckdb.DuckDBPyConnection, lo: float, hi: float) -> pl.DataFrame:
    """Documents and tokens per (domain, cluster, origin, score bin), held-out target excluded."""
    return con.sql(
        f"""
        SELECT domain, cluster_id, origin, {level_sql(lo, hi)} AS level,
               count(*)::BIGINT AS n, sum(tokens)::BIGINT AS tokens
        FROM pool p ANTI JOIN held h ON p.doc_id = h.doc_id
        WHERE lost IS NULL GROUP BY ALL ORDER BY ALL
        """
    ).pl()


def build_draws(
    con: duckdb.DuckDBPyConnection,
    out: Path,
    levels: pl.DataFrame | None = None,
    score_bounds: tuple[float, float] = (0.0, 0.0),
) -> None:
    """pool + held + quality_rank + lam; lam = 0 for what may not be drawn. With `levels`
    (domain, level, lam, quality_rank) intensities are QuaDMix's, else 1."""
    join, lam, rank = "", "1.0::DOUBLE", "NULL::DOUBLE"
    if levels is not None:
        lv = levels.select("domain", "level", "lam", "quality_rank")  # noqa: F841 (read by SQL)
        con.sql("CREATE OR REPLACE TABLE levels AS SELECT * FROM lv")
        level = level_sql(*score_bounds, "p.quality_score")
        join = f"LEFT JOIN levels l ON p.domain = l.domain AND {level} = l.level"
        lam, rank = "coalesce(l.lam, 0.0)::DOUBLE", "l.quality_rank"
    con.sql(
        f"""
        COPY (
            SELECT p.*, h.doc_id IS NOT NULL AS held, {rank} AS quality_rank,
                   CASE WHEN p.lost IS NULL AND h.doc_id IS NULL AND p.tokens > 0
                        THEN {lam} ELSE 0.0::DOUBLE END AS lam
            FROM pool p LEFT JOIN held h ON p.doc_id = h.doc_id {join}
            ORDER BY p.part
        ) TO '{out}' (FORMAT parquet, ROW_GROUP_SIZE 50000)
        """
    )


def proxy_sample(
    con: duckdb.DuckDBPyConnection, draws: Path, totals: pl.DataFrame, tokens: int, seed: int
) -> pl.DataFrame:
    """A seeded sample of about `tokens` per domain (all of a smaller domain)."""
    rates = totals.select(  # noqa: F841 (read by SQL)
        "domain", (tokens / pl.col("tokens").clip(1)).clip(upper_bound=1.0).alias("rate")
    )
    return con.sql(
        f"""
        SELECT d.doc_id, d.part, d.tokens, d.domain, d.origin, d.quality_bucket
        FROM read_parquet('{draws}') d JOIN rates r ON d.domain = r.domain
        WHERE d.lam > 0 AND {unit_hash_sql(seed, "proxy", "d.doc_id")} < r.rate
        ORDER BY d.domain, d.doc_id
        """
    ).pl()


def fetch_texts(con: duckdb.DuckDBPyConnection, files: list[str], ids: pl.Series) -> pl.DataFrame:
    """doc_id, text of a bounded set of documents, in one streaming pass over the text files."""
    wanted = pl.DataFrame({"doc_id": ids}, schema={"doc_id": pl.String})
    if not files or wanted.is_empty():
        return pl.DataFrame(schema={"doc_id": pl.String, "text": pl.String})
    return con.sql(
        f"SELECT t.doc_id, t.text FROM read_parquet({sql_list(files)}, union_by_name = true) t "
        "SEMI JOIN wanted w ON t.doc_id = w.doc_id"
    ).pl()
