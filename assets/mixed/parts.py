"""One part (crawl shard, or chunk of rewrites) of the mixture: its draws, dropped rows and shards.

A part reads only its own rows of the draws table and its own text file(s); given the thresholds
and extras (assets/mixed/quota.py) its copies are fixed, so parts can run in any order, apart
or in parallel, and write their own output shards. The manifest adds up their results.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from assets.documents import DROPPED_SCHEMA
from assets.mixed.pool import sql_list, unit_hash_sql
from assets.mixed.quota import Quotas, copies_sql
from resources.lake import VersionWriter, safe_key

SHARD_ROWS = 10_000
MIXTURE_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("doc_id", pa.string()),
        ("repeat", pa.int32()),
        ("tokens", pa.int64()),
        ("domain", pa.string()),
        ("weight", pa.float64()),
        ("shard", pa.string()),
    ]
)
LOST_DETAIL = {
    "mixed:missing_cluster": "not in the current clusters or quality_scores version",
    "mixed:missing_score": "not in the current clusters or quality_scores version",
    "mixed:missing_token_count": "no stored token count: token_counts of its shard is missing "
    "or older than its cleaned_documents",
}


@dataclass
class Totals:
    """What the parts drew, added up for the manifest, the card and the books."""

    tokens_per_domain: Counter = field(default_factory=Counter)
    samples: int = 0
    documents: int = 0  # distinct documents drawn at least once
    dropped: int = 0
    shards: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return int(sum(self.tokens_per_domain.values()))


def prepare(con: duckdb.DuckDBPyConnection, quotas: Quotas, weights: dict[str, float]) -> None:
    """The small tables every part joins: thresholds per domain and the fill's extras."""
    q = quotas.frame(weights)  # noqa: F841 (read by SQL)
    ids = pl.DataFrame({"doc_id": quotas.extras}, schema={"doc_id": pl.String})  # noqa: F841
    con.sql("CREATE OR REPLACE TABLE quotas AS SELECT * FROM q")
    con.sql("CREATE OR REPLACE TABLE extras AS SELECT DISTINCT doc_id FROM ids")


def draw_part(con: duckdb.DuckDBPyConnection, draws: Path, part: str, max_repeats: int) -> None:
    """`part_rows`: the part's rows of the draws table with their weight and copies `n`."""
    con.sql(
        f"""
        CREATE OR REPLACE TEMP TABLE part_rows AS
        SELECT d.*, coalesce(q.weight, 0.0) AS weight,
               {copies_sql(max_repeats)} + (x.doc_id IS NOT NULL)::INTEGER AS n
        FROM read_parquet('{draws}') d
        LEFT JOIN quotas q ON d.domain = q.domain
        LEFT JOIN extras x ON d.doc_id = x.doc_id
        WHERE d.part = ?
        """,
        params=[part],
    )


def sample_part(
    con: duckdb.DuckDBPyConnection,
    draws: Path,
    part: str,
    text_files: list[str],
    max_repeats: int,
    seed: int,
    out: VersionWriter,
    totals: Totals,
) -> None:
    """Draw one part's copies, write its samples, dropped rows and output shards."""
    draw_part(con, draws, part, max_repeats)
    dropped = con.sql(_DROPPED_SQL).to_arrow_table()
    out.table("dropped", DROPPED_SCHEMA).write(dropped)
    totals.dropped += dropped.num_rows
    prefix = f"mixture-{safe_key(part)}-"
    con.sql(
        f"""
        CREATE OR REPLACE TEMP TABLE part_samples AS
        SELECT *, '{prefix}' || lpad(((row_number() OVER (ORDER BY h, sample_id) - 1)
                  // {SHARD_ROWS})::VARCHAR, 3, '0') AS shard
        FROM (
            SELECT doc_id || '-' || r AS sample_id, doc_id, r::INTEGER AS repeat, tokens, domain,
                   weight, origin, cluster_id, quality_bucket,
                   {unit_hash_sql(seed, "shuffle", "doc_id || '-' || r")} AS h
            FROM (SELECT *, unnest(range(n)) AS r FROM part_rows WHERE n > 0)
        )
        """
    )
    rows = con.sql(
        "SELECT sample_id, doc_id, repeat, tokens, domain, weight, shard "
        "FROM part_samples ORDER BY shard, h, sample_id"
    ).to_arrow_table()
    out.table("documents", MIXTURE_SCHEMA).write(rows)
    if not rows.num_rows:
        return
    totals.samples += rows.num_rows
    totals.documents += con.sql("SELECT count(*) FROM part_rows WHERE n > 0").fetchall()[0][0]
    for domain, tokens in con.sql(
        "SELECT domain, sum(tokens)::BIGINT FROM part_samples GROUP BY domain"
    ).fetchall():
        totals.tokens_per_domain[domain] += tokens
    _write_shards(con, text_files, out.staging / "shards", totals)


def _write_shards(
    con: duckdb.DuckDBPyConnection, text_files: list[str], folder: Path, totals: Totals
) -> None:
    """Parquet and JSONL.gz (id, text, metadata) per output shard of at most SHARD_ROWS rows."""
    folder.mkdir(parents=True, exist_ok=True)
    con.sql(
        f"""
        CREATE OR REPLACE TEMP TABLE part_texts AS
        SELECT t.doc_id, t.text FROM read_parquet({sql_list(text_files)}) t
        SEMI JOIN part_rows p ON t.doc_id = p.doc_id AND p.n > 0
        """
    )
    names = [r[0] for r in con.sql("SELECT DISTINCT shard FROM part_samples ORDER BY 1").fetchall()]
    for name in names:
        query = f"""
            SELECT s.sample_id AS id, t.text,
                   struct_pack(doc_id := s.doc_id, repeat := s.repeat, domain := s.domain,
                               origin := s.origin, cluster_id := s.cluster_id,
                               quality_bucket := s.quality_bucket, tokens := s.tokens) AS metadata
            FROM part_samples s JOIN part_texts t ON s.doc_id = t.doc_id
            WHERE s.shard = '{name}' ORDER BY s.h, s.sample_id
        """
        con.sql(f"COPY ({query}) TO '{folder / name}.parquet' (FORMAT parquet)")
        con.sql(f"COPY ({query}) TO '{folder / name}.jsonl.gz' (FORMAT json, COMPRESSION gzip)")
        totals.shards.append(name)


_DROPPED_SQL = """
SELECT doc_id, 'mixed' AS stage,
       CASE WHEN lost IS NOT NULL THEN lost
            WHEN held THEN 'mixture:proxy_target'
            WHEN quality_rank IS NOT NULL AND lam = 0 AND tokens > 0
                THEN 'mixture:quadmix_below_threshold'
            ELSE 'mixture:not_sampled' END AS rule,
       CASE WHEN lost IS NOT NULL THEN NULL
            WHEN quality_rank IS NOT NULL AND lam = 0 AND NOT held AND tokens > 0
                THEN quality_rank
            ELSE weight END AS value,
       NULL::DOUBLE AS threshold,
       CASE WHEN lost = 'mixed:missing_token_count' THEN '{token}'
            WHEN lost IS NOT NULL THEN '{other}'
            WHEN held THEN 'held out as the target set the mixture search scores proxies on'
            WHEN quality_rank IS NOT NULL AND lam = 0 AND tokens > 0
                THEN 'quality rank past its domain''s QuaDMix threshold'
            WHEN tokens <= 0 THEN 'the document has no tokens'
            WHEN weight = 0 THEN 'domain ' || domain || ' has weight 0'
            ELSE 'domain ' || domain || ' filled its token share without it' END AS detail,
       NULL::VARCHAR AS url, NULL::VARCHAR AS source_file, NULL::BIGINT AS source_offset
FROM part_rows WHERE n = 0
""".format(
    token=LOST_DETAIL["mixed:missing_token_count"], other=LOST_DETAIL["mixed:missing_cluster"]
)
