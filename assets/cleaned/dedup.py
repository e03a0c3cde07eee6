"""Cross-shard deduplication, out of core: datatrove's buckets -> clusters -> filter over the
band keys every shard's `minhash_signatures` stored (signing is the per-shard map, see
``signatures.py``).

Bucket steps: band by band (and hash range by hash range when a band holds more rows than
`max_band_rows`), DuckDB groups the (band_hash, doc_id) rows of every shard under an explicit
memory limit, spilling to a temporary folder, and pairs each member of a bucket with the bucket's
smallest doc_id, as datatrove's ``MinhashDedupBuckets`` does. Exact copies pair the same way on
the content hash. Candidates are confirmed as configured (exact Jaccard of the texts, read only
for candidates; the signatures' estimate; or not at all, as FineWeb). Connected components run
over the confirmed pairs only, and the keep policy reads only the members' rows. Python holds
O(pairs) (the component labels), never a per-corpus structure; a new shard is bucketed against
the stored bands of old shards, which are never signed again, and exact checks already made
are reused by content hash.
"""

from __future__ import annotations

import itertools
import math
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal, get_args

import duckdb
import numpy as np
import pyarrow as pa
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from assets.cleaned.minhash import MinHashConfig, MinHasher, estimated_jaccards, shingle_hashes
from assets.cleaned.signatures import sign_into
from assets.documents import DROPPED_SCHEMA
from assets.measures import heuristic_signals
from resources.catalog import TableVersion
from resources.lake import Lake, MissingUpstreamError, VersionWriter

DEDUP_CODE_VERSION = "dedup-4"  # 4: out-of-core buckets over per-shard minhash_signatures
KeepPolicy = Literal["earliest", "longest", "best_quality"]
KEEP_POLICIES = get_args(KeepPolicy)
PREFILTER_MARGIN = 0.2  # candidates whose estimate is this far below the threshold are skipped
CONFIRM_BATCH = 2000  # candidate pairs whose texts are read and compared at once
READ_BATCH = 65_536

CLUSTER_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("cluster_id", pa.string()),
        ("kept_doc_id", pa.string()),
        ("similarity", pa.float64()),
        ("method", pa.string()),
        ("is_kept", pa.bool_()),
    ]
)
PAIRS_SCHEMA = pa.schema(
    [("a", pa.string()), ("b", pa.string()), ("similarity", pa.float64()), ("method", pa.string())]
)
CONFIRMATIONS_SCHEMA = pa.schema(
    [
        ("hash_a", pa.string()),
        ("hash_b", pa.string()),
        ("config", pa.string()),
        ("similarity", pa.float64()),
    ]
)
BAND_STATS_SCHEMA = pa.schema(
    [
        ("band", pa.int16()),
        ("hash_ranges", pa.int32()),
        ("buckets", pa.int64()),
        ("candidate_pairs", pa.int64()),
        ("seconds", pa.float64()),
    ]
)


class StaleSignaturesError(RuntimeError):
    """minhash_signatures does not match the current cleaned documents (or this configuration)."""


@dataclass(frozen=True)
class DedupPolicy:
    minhash: MinHashConfig = field(default_factory=MinHashConfig)
    near_duplicates: bool = True
    keep: KeepPolicy = "earliest"
    memory_limit_mb: int = 256  # DuckDB's limit for every reduce step; beyond it, it spills
    threads: int = 2
    max_band_rows: int = 20_000_000  # rows one bucket step groups; a larger band splits by hash
    temp_directory: str | None = None  # where DuckDB spills; None = the system's temp folder

    def key(self) -> str:
        m = self.minhash
        return f"w{m.ngram}-b{m.bands}x{m.rows}-s{m.seed}-t{m.threshold}-{m.confirm}-sha1"

    def confirmation_key(self) -> str:
        """What an exact Jaccard check depends on: the shingles and the threshold."""
        return f"w{self.minhash.ngram}-t{self.minhash.threshold}"


@dataclass
class DedupResult:
    rows_in: int = 0
    kept: int = 0
    duplicates: int = 0
    clusters: int = 0
    shards: int = 0
    candidate_pairs: int = 0
    near_pairs: int = 0
    exact_pairs: int = 0
    texts_compared: int = 0
    checks_reused: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class SignatureFiles:
    """The current signature tables of every cleaned shard, and the cleaned files themselves."""

    documents: list[TableVersion]
    bands: list[TableVersion]
    cleaned: dict[str, TableVersion]  # shard -> its cleaned documents

    @property
    def band_rows(self) -> int:
        return sum(f.row_count for f in self.bands)


def signature_files(lake: Lake, policy: DedupPolicy) -> SignatureFiles:
    """The signatures of exactly the current cleaned shards; refuses missing ones (signing is
    the per-shard `minhash_signatures`, never done here)."""
    cleaned = {f.partition: f for f in lake.files("cleaned_documents")}
    signed = {f.partition: f for f in current_files(lake, "minhash_signatures")}
    bands = {f.partition: f for f in current_files(lake, "minhash_signatures", "bands")}
    missing = sorted(s for s in cleaned if s not in signed or s not in bands)
    if missing:
        raise StaleSignaturesError(
            f"minhash_signatures has no current version for shards {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}: materialize it for them first"
        )
    shards = sorted(cleaned)
    return SignatureFiles([signed[s] for s in shards], [bands[s] for s in shards], cleaned)


def current_files(lake: Lake, asset: str, table: str = "documents") -> list[TableVersion]:
    """The current files of a table, none when it was never published (one catalog query)."""
    try:
        return lake.files(asset, table)
    except MissingUpstreamError:
        return []


def deduplicate(lake: Lake, policy: DedupPolicy, out: VersionWriter) -> DedupResult:
    """Find exact and near duplicates over the stored signatures and stream the version's
    tables (documents, dropped, pairs, confirmations, band_stats) into `out`."""
    started = time.perf_counter()
    if policy.keep not in KEEP_POLICIES:
        raise ValueError(f"keep policy {policy.keep!r} is not one of {KEEP_POLICIES}")
    files = signature_files(lake, policy)
    rows_in = sum(f.row_count for f in files.cleaned.values())  # the catalog's count
    result = DedupResult(rows_in=rows_in, shards=len(files.cleaned))
    with _duckdb(policy) as con:
        if lake.remote:  # DuckDB reads the lake's files through the lake's own filesystem
            con.register_filesystem(lake.filesystem)
        _register(con, "signed", [f.path for f in files.documents])
        _register(con, "bands", [f.path for f in files.bands])
        _check_fresh(con, files, policy)
        con.execute("CREATE TABLE edges (a VARCHAR, b VARCHAR, similarity DOUBLE, method VARCHAR)")
        if policy.near_duplicates:
            stats = bucket_pairs(con, policy, files.band_rows)
            out.write("band_stats", stats, BAND_STATS_SCHEMA)
            result.candidate_pairs = _count(con, "candidates")
            _score_candidates(con)
            _confirm(con, lake, policy, files, out, result)
        result.near_pairs = _count(con, "edges")
        result.exact_pairs = exact_pairs(con)
        _components(con)
        _members(con, lake, policy, files)
        _write(con, out, policy)
        result.duplicates = _scalar(con, "SELECT count(*) FROM clusters WHERE NOT is_kept")
        result.clusters = _scalar(con, "SELECT count(*) FROM clusters WHERE is_kept")
        # counted from the signatures read, not from rows_in: a lost document fails the books
        result.kept = _scalar(con, "SELECT count(*) FROM signed") - result.duplicates
    result.seconds = time.perf_counter() - started
    return result


def publish_duplicates(lake: Lake, policy: DedupPolicy, run_id: str | None) -> DedupResult:
    """Sign every shard not yet signed, then find and publish at once, without the assets'
    checks (benchmarks and tests): the same work as both assets."""
    hasher = MinHasher(policy.minhash)
    signed = {f.partition for f in current_files(lake, "minhash_signatures")}
    for shard in (f.partition for f in lake.files("cleaned_documents")):
        if shard not in signed:
            with lake.publish("minhash_signatures", shard, run_id=run_id) as out:
                sign_into(lake, shard, hasher, out)
    meta = {"upstream": lake.versions_of(["cleaned_documents"]), "policy": policy.key()}
    with lake.publish(
        "duplicate_clusters", run_id=run_id, code_version=DEDUP_CODE_VERSION, metadata=meta
    ) as out:
        result = deduplicate(lake, policy, out)
    return result


# ------------------------------------------------------------------------------ DuckDB plumbing


@contextmanager
def _duckdb(policy: DedupPolicy) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB with explicit limits: memory, spill folder, threads."""
    with tempfile.TemporaryDirectory(prefix="foundry-dedup-", dir=policy.temp_directory) as tmp:
        con = duckdb.connect(":memory:")
        try:
            con.execute(f"SET memory_limit='{int(policy.memory_limit_mb)}MB'")
            con.execute(f"SET temp_directory='{_quote(tmp)}'")
            con.execute(f"SET threads={int(policy.threads)}")
            con.execute("SET preserve_insertion_order=false")
            yield con
        finally:
            con.close()


def _register(con: duckdb.DuckDBPyConnection, name: str, paths: list[str]) -> None:
    """A view over Parquet files of the lake (remote ones through the lake's fsspec filesystem,
    registered once per connection by `deduplicate`)."""
    listed = ", ".join(f"'{_quote(p)}'" for p in paths)
    con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{listed}])")


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(con.execute(sql).fetchone()[0])


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return _scalar(con, f"SELECT count(*) FROM {table}")


def _check_fresh(con: duckdb.DuckDBPyConnection, files: SignatureFiles, policy: DedupPolicy):
    """Every shard signed from its current cleaned version, with this configuration."""
    rows = con.execute("SELECT DISTINCT shard, cleaned_version, config FROM signed").fetchall()
    key = policy.minhash.signing_key()
    stale = sorted({s for s, v, c in rows if files.cleaned.get(s, None) is None
                    or files.cleaned[s].version != v})  # fmt: skip
    if stale:
        raise StaleSignaturesError(
            f"minhash_signatures of shards {stale[:5]} were signed from an older cleaned version: "
            "materialize minhash_signatures for them"
        )
    other = sorted({c for _, _, c in rows if c != key})
    if other:
        raise StaleSignaturesError(
            f"minhash_signatures were signed with {other}, this run asks for {key}: "
            "set the same ngram/bands/rows/seed on both assets, or re-sign every shard"
        )


# ------------------------------------------------------------------------------ bucket steps


def bucket_pairs(con: duckdb.DuckDBPyConnection, policy: DedupPolicy, band_rows: int) -> pa.Table:
    """datatrove's bucket step, one band (and hash range) at a time: every bucket of two or more
    documents pairs each member with its smallest doc_id. Fills table `candidates` (a < b)."""
    bands = policy.minhash.bands
    ranges = max(1, math.ceil(band_rows / bands / policy.max_band_rows))
    con.execute("CREATE TABLE candidate_rows (a VARCHAR, b VARCHAR)")
    stats = []
    for band in range(bands):
        started, buckets, pairs = time.perf_counter(), 0, 0
        for where in _hash_ranges(ranges):
            con.execute(
                "CREATE OR REPLACE TEMP TABLE buckets AS SELECT band_hash, min(doc_id) AS a "
                f"FROM bands WHERE band = {band} {where} "
                "GROUP BY band_hash HAVING count(*) > 1"
            )
            buckets += _count(con, "buckets")
            pairs += _scalar(
                con,
                "INSERT INTO candidate_rows SELECT buckets.a, rows.doc_id FROM bands AS rows "
                f"JOIN buckets USING (band_hash) WHERE rows.band = {band} {where} "
                "AND rows.doc_id <> buckets.a",
            )
        stats.append((band, ranges, buckets, pairs, time.perf_counter() - started))
    con.execute("DROP TABLE IF EXISTS buckets")
    con.execute("CREATE TABLE candidates AS SELECT DISTINCT a, b FROM candidate_rows")
    con.execute("DROP TABLE candidate_rows")
    names = BAND_STATS_SCHEMA.names
    return pa.Table.from_pylist(
        [dict(zip(names, s, strict=True)) for s in stats], BAND_STATS_SCHEMA
    )


def _hash_ranges(ranges: int) -> list[str]:
    """SQL conditions splitting the uint64 band hashes into `ranges` equal ranges."""
    if ranges == 1:
        return [""]
    edges = [i * (1 << 64) // ranges for i in range(ranges)] + [None]
    return [
        f"AND band_hash >= {lo}::UBIGINT" + (f" AND band_hash < {hi}::UBIGINT" if hi else "")
        for lo, hi in itertools.pairwise(edges)
    ]


def _score_candidates(con: duckdb.DuckDBPyConnection) -> None:
    """Each candidate's estimated Jaccard from the two stored signatures (read by semi-join),
    streamed batch by batch into table `scored`."""
    con.execute(
        "CREATE TABLE scored (a VARCHAR, b VARCHAR, hash_a VARCHAR, hash_b VARCHAR, "
        "shard_a VARCHAR, shard_b VARCHAR, estimate DOUBLE)"
    )
    con.execute(  # one scan of the signatures, for the candidates' documents only
        "CREATE TABLE candidate_docs AS SELECT doc_id, content_hash, shard, signature "
        "FROM signed WHERE doc_id IN (SELECT a FROM candidates UNION SELECT b FROM candidates)"
    )
    reader = con.cursor().sql(
        "SELECT c.a, c.b, x.content_hash AS hash_a, y.content_hash AS hash_b, "
        "x.shard AS shard_a, y.shard AS shard_b, x.signature AS sig_a, y.signature AS sig_b "
        "FROM candidates c JOIN candidate_docs x ON x.doc_id = c.a "
        "JOIN candidate_docs y ON y.doc_id = c.b"
    )
    for batch in reader.to_arrow_reader(READ_BATCH):
        estimates = estimated_jaccards(_matrix(batch["sig_a"]), _matrix(batch["sig_b"]))
        scored = {
            **{n: batch[n] for n in ("a", "b", "hash_a", "hash_b", "shard_a", "shard_b")},
            "estimate": pa.array(estimates, pa.float64()),
        }
        _insert(con, "scored", pa.table(scored))
    con.execute("DROP TABLE candidates")
    con.execute("DROP TABLE candidate_docs")


def _matrix(column: pa.Array) -> np.ndarray:
    values = column.flatten().to_numpy(zero_copy_only=False)
    return values.reshape(len(column), -1)


def _confirm(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    policy: DedupPolicy,
    files: SignatureFiles,
    out: VersionWriter,
    result: DedupResult,
) -> None:
    """Candidates become `edges` as configured: all of them (datatrove), those whose estimate
    reaches the threshold, or those whose exact Jaccard does (texts read for candidates only;
    checks of earlier runs reused by content hash)."""
    config, key = policy.minhash, policy.confirmation_key()
    con.execute(
        "CREATE TABLE checks (hash_a VARCHAR, hash_b VARCHAR, similarity DOUBLE, fresh BOOLEAN)"
    )
    _previous_checks(con, lake, key)
    if config.confirm == "none":
        con.execute("INSERT INTO edges SELECT a, b, estimate, 'minhash' FROM scored")
    elif config.confirm == "estimate":
        con.execute(
            "INSERT INTO edges SELECT a, b, estimate, 'minhash' FROM scored "
            f"WHERE estimate >= {float(config.threshold)}"
        )
    else:
        _confirm_exactly(con, files, config, result)
    # the checks that still concern current candidates go on to the next version, whatever
    # this run's mode: a run with confirm "none" does not cost the next "exact" run its cache
    reader = con.cursor().sql(
        f"SELECT hash_a, hash_b, '{_quote(key)}' AS config, similarity FROM checks "
        "WHERE (hash_a, hash_b) IN (SELECT (least(hash_a, hash_b), greatest(hash_a, hash_b)) "
        "FROM scored)"
    )
    out.table("confirmations", CONFIRMATIONS_SCHEMA)
    for batch in reader.to_arrow_reader(READ_BATCH):
        out.write("confirmations", batch, CONFIRMATIONS_SCHEMA)


def _confirm_exactly(
    con: duckdb.DuckDBPyConnection,
    files: SignatureFiles,
    config: MinHashConfig,
    result: DedupResult,
) -> None:
    """Edges of candidates whose exact Jaccard reaches the threshold: pairs of equal content
    are 1.0, pairs checked before reuse their result, the rest compare their texts."""
    con.execute(
        "CREATE TABLE todo AS SELECT DISTINCT least(hash_a, hash_b) AS hash_a, "
        "greatest(hash_a, hash_b) AS hash_b, first(a) AS a, first(b) AS b, "
        "first(shard_a) AS shard_a, first(shard_b) AS shard_b FROM scored "
        f"WHERE estimate >= {float(config.threshold) - PREFILTER_MARGIN} AND hash_a <> hash_b "
        "AND NOT EXISTS (SELECT 1 FROM checks k WHERE k.hash_a = least(scored.hash_a, "
        "scored.hash_b) AND k.hash_b = greatest(scored.hash_a, scored.hash_b)) "
        "GROUP BY ALL ORDER BY shard_a, shard_b"
    )
    result.checks_reused = _scalar(
        con,
        "SELECT count(*) FROM (SELECT DISTINCT least(hash_a, hash_b) AS h1, "
        "greatest(hash_a, hash_b) AS h2 FROM scored WHERE hash_a <> hash_b) s "
        "JOIN checks k ON k.hash_a = s.h1 AND k.hash_b = s.h2",
    )
    result.texts_compared = _compare_texts(con, files, config.ngram)
    con.execute(
        "INSERT INTO edges SELECT s.a, s.b, "
        "CASE WHEN s.hash_a = s.hash_b THEN 1.0 ELSE k.similarity END AS similarity, 'minhash' "
        "FROM scored s LEFT JOIN checks k ON k.hash_a = least(s.hash_a, s.hash_b) "
        "AND k.hash_b = greatest(s.hash_a, s.hash_b) "
        f"WHERE s.hash_a = s.hash_b OR k.similarity >= {float(config.threshold)}"
    )


def _previous_checks(con: duckdb.DuckDBPyConnection, lake: Lake, key: str) -> None:
    """Exact Jaccard checks the previous version made under the same settings: a pair of texts
    (content hashes) never needs reading twice."""
    previous = current_files(lake, "duplicate_clusters", "confirmations")
    if not previous:
        return
    _register(con, "previous", [f.path for f in previous])
    con.execute(
        "INSERT INTO checks SELECT hash_a, hash_b, any_value(similarity), false FROM previous "
        f"WHERE config = '{_quote(key)}' GROUP BY hash_a, hash_b"
    )


def _compare_texts(con: duckdb.DuckDBPyConnection, files: SignatureFiles, ngram: int) -> int:
    """Exact Jaccard of every pair in `todo`. Each shard's cleaned file is read once, for its
    candidates' texts only, which become their distinct shingle hashes (a DuckDB table that
    spills); then the pairs compare those sets, CONFIRM_BATCH pairs at a time."""
    con.execute(
        "CREATE TABLE wanted AS SELECT a AS doc_id, shard_a AS shard FROM todo "
        "UNION SELECT b, shard_b FROM todo"
    )
    con.execute("CREATE TABLE shingled (doc_id VARCHAR, hashes UBIGINT[])")
    shards = [s for (s,) in con.execute("SELECT DISTINCT shard FROM wanted").fetchall()]
    for shard in sorted(shards):
        reader = con.cursor().sql(
            f"SELECT doc_id, text FROM read_parquet('{_quote(files.cleaned[shard].path)}') "
            f"WHERE doc_id IN (SELECT doc_id FROM wanted WHERE shard = '{_quote(shard)}')"
        )
        for batch in reader.to_arrow_reader(1024):
            hashes = [np.unique(shingle_hashes(t, ngram)) for t in batch["text"].to_pylist()]
            _insert(
                con, "shingled", pa.table({"doc_id": batch["doc_id"], "hashes": _lists(hashes)})
            )
    compared = 0
    pairs = con.cursor().sql("SELECT hash_a, hash_b, a, b FROM todo")
    lookup = con.cursor()
    for batch in pairs.to_arrow_reader(CONFIRM_BATCH):
        sets = _shingle_sets(lookup, batch)
        similarity = [
            _set_jaccard(sets[a], sets[b])
            for a, b in zip(batch["a"].to_pylist(), batch["b"].to_pylist(), strict=True)
        ]
        checked = {
            "hash_a": batch["hash_a"],
            "hash_b": batch["hash_b"],
            "similarity": pa.array(similarity, pa.float64()),
            "fresh": pa.array([True] * batch.num_rows),
        }
        _insert(con, "checks", pa.table(checked))
        compared += batch.num_rows
    return compared


def _shingle_sets(con: duckdb.DuckDBPyConnection, pairs: pa.RecordBatch) -> dict[str, np.ndarray]:
    """The shingle sets of one batch of pairs' documents: a semi-join on the batch's ids, so no
    hash table is ever built over the (large, list-valued) shingled table."""
    ids = pa.table({"doc_id": pa.concat_arrays([pairs["a"], pairs["b"]]).unique()})
    con.register("batch_ids", ids)
    found = con.sql(
        "SELECT doc_id, hashes FROM shingled WHERE doc_id IN (SELECT doc_id FROM batch_ids)"
    ).to_arrow_table()
    con.unregister("batch_ids")
    return dict(zip(found["doc_id"].to_pylist(), _arrays(found["hashes"]), strict=True))


def _set_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard of two sorted distinct hash arrays (``exact_jaccard`` on shingle hashes)."""
    common = np.intersect1d(a, b, assume_unique=True).size
    union = a.size + b.size - common
    return common / union if union else 1.0


def _lists(arrays: list[np.ndarray]) -> pa.Array:
    offsets = np.cumsum([0] + [a.size for a in arrays])
    values = np.concatenate(arrays) if arrays else np.empty(0, np.uint64)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values, pa.uint64()))


def _arrays(column: pa.ChunkedArray | pa.Array) -> list[np.ndarray]:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    values = column.values.to_numpy(zero_copy_only=False)
    offsets = column.offsets.to_numpy()
    return [values[offsets[i] : offsets[i + 1]] for i in range(len(column))]


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> None:
    con.register("incoming", rows)
    con.execute(f"INSERT INTO {table} SELECT * FROM incoming")
    con.unregister("incoming")


def exact_pairs(con: duckdb.DuckDBPyConnection) -> int:
    """Every document with the same content hash as another, paired with the group's smallest
    doc_id (signed or not: texts too short to shingle still have exact copies)."""
    return _scalar(
        con,
        "INSERT INTO edges SELECT g.a, s.doc_id, 1.0, 'exact' FROM signed s JOIN "
        "(SELECT content_hash, min(doc_id) AS a FROM signed GROUP BY content_hash "
        "HAVING count(*) > 1) g USING (content_hash) WHERE s.doc_id <> g.a",
    )


# ------------------------------------------------------------------------------ clusters


def _components(con: duckdb.DuckDBPyConnection) -> None:
    """Connected components over the edges only (scipy, O(pairs) memory): table `nodes`
    (doc_id, node, component)."""
    con.execute(
        "CREATE TABLE ids AS SELECT doc_id, (row_number() OVER () - 1)::BIGINT AS node FROM "
        "(SELECT a AS doc_id FROM edges UNION SELECT b FROM edges)"
    )
    n = _count(con, "ids")
    arrays = con.execute(
        "SELECT x.node AS i, y.node AS j FROM edges JOIN ids x ON x.doc_id = edges.a "
        "JOIN ids y ON y.doc_id = edges.b"
    ).fetchnumpy()
    i, j = np.asarray(arrays["i"], np.int64), np.asarray(arrays["j"], np.int64)
    graph = sp.coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    del graph, i, j
    components = pa.table(
        {"node": np.arange(n, dtype=np.int64), "component": labels.astype(np.int64)}
    )
    con.register("components", components)
    con.execute(
        "CREATE TABLE nodes AS SELECT ids.doc_id, ids.node, c.component FROM ids "
        "JOIN components c USING (node)"
    )
    con.unregister("components")
    con.execute("DROP TABLE ids")


def _members(
    con: duckdb.DuckDBPyConnection, lake: Lake, policy: DedupPolicy, files: SignatureFiles
) -> None:
    """Table `clusters`: each member's best tie (exact wins ties), and the one copy kept per
    component by the keep policy, from the members' own rows only."""
    con.execute(
        "CREATE TABLE members AS SELECT n.doc_id, n.component, t.similarity, t.method, "
        "s.shard, s.source_offset, s.n_chars, NULL::DOUBLE AS quality FROM nodes n "
        "JOIN (SELECT doc_id, arg_max(similarity, rank) AS similarity, "
        "arg_max(method, rank) AS method FROM (SELECT doc_id, similarity, method, "
        "similarity + CASE WHEN method = 'exact' THEN 0.5 ELSE 0 END AS rank FROM "
        "(SELECT a AS doc_id, similarity, method FROM edges UNION ALL "
        "SELECT b, similarity, method FROM edges)) GROUP BY doc_id) t USING (doc_id) "
        "JOIN signed s USING (doc_id)"
    )
    if policy.keep == "best_quality":
        _score_members(con, files)
    order = {
        "earliest": "shard, source_offset, doc_id",
        "longest": "n_chars DESC, shard, source_offset, doc_id",
        "best_quality": "quality DESC, shard, source_offset, doc_id",
    }[policy.keep]
    con.execute(
        "CREATE TABLE clusters AS SELECT doc_id, kept_doc_id, similarity, method, "
        "doc_id = kept_doc_id AS is_kept FROM (SELECT doc_id, similarity, method, "
        f"first_value(doc_id) OVER (PARTITION BY component ORDER BY {order}) AS kept_doc_id "
        "FROM members)"
    )


def _score_members(con: duckdb.DuckDBPyConnection, files: SignatureFiles) -> None:
    """The keep policy's quality proxy (distinct-word share times punctuated lines), for
    members only, one shard's members at a time."""
    shards = [s for (s,) in con.execute("SELECT DISTINCT shard FROM members").fetchall()]
    cursor = con.cursor()
    for shard in shards:
        rows = cursor.execute(
            f"SELECT doc_id, text FROM read_parquet('{_quote(files.cleaned[shard].path)}') "
            "WHERE doc_id IN (SELECT doc_id FROM members WHERE shard = ?)",
            [shard],
        ).fetchall()
        scores = pa.table(
            {"doc_id": [d for d, _ in rows], "q": [quality_proxy(t) for _, t in rows]}
        )
        cursor.register("scores", scores)
        cursor.execute(
            "UPDATE members SET quality = scores.q FROM scores WHERE members.doc_id = scores.doc_id"
        )
        cursor.unregister("scores")


def quality_proxy(text: str) -> float:
    s = heuristic_signals(text)
    return s["unique_word_ratio"] * s["line_punct_ratio"]


def _write(con: duckdb.DuckDBPyConnection, out: VersionWriter, policy: DedupPolicy) -> None:
    """Stream the version's tables out of DuckDB: cluster rows of members, the removed ones
    with their rule and similarity, and the confirmed pairs."""
    threshold = float(policy.minhash.threshold)
    queries = {
        "documents": (
            CLUSTER_SCHEMA,
            "SELECT doc_id, kept_doc_id AS cluster_id, kept_doc_id, similarity, method, is_kept "
            "FROM clusters ORDER BY cluster_id, doc_id",
        ),
        "dropped": (
            DROPPED_SCHEMA,
            "SELECT doc_id, 'cleaned' AS stage, 'dedup:' || method AS rule, similarity AS value, "
            f"CASE WHEN method = 'exact' THEN 1.0 ELSE {threshold} END AS threshold, "
            "'duplicate of ' || kept_doc_id AS detail FROM clusters WHERE NOT is_kept "
            "ORDER BY doc_id",
        ),
        "pairs": (PAIRS_SCHEMA, "SELECT a, b, similarity, method FROM edges ORDER BY a, b"),
    }
    for name, (schema, sql) in queries.items():
        sink = out.table(name, schema)
        for batch in con.cursor().sql(sql).to_arrow_reader(READ_BATCH):
            sink.write(batch)
