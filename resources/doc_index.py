"""The doc index: key (doc_id, sample_id or URL) -> (asset, partition, version, table, row).

`foundry trace` and `foundry why` look one document up among millions in thousands of files; the
index lets them open a bounded number of small sorted files instead of every data file.

- At publish (outside the catalog lock), each version writes a *segment*: the keys of its traced
  tables with their row numbers, sorted by key (`segments/<asset>/<partition>/<version>.parquet`),
  and once its folder is in place drops a marker naming it into `pending/`.
- Compaction is an LSM tree, size-tiered: once FANOUT segments are pending, one publisher (the
  one that wins a file lock) merges them into a sorted *run*; FANOUT runs of one level merge
  into one run of the next. A lookup reads the pending segments and at most FANOUT - 1 runs per
  level. Big runs are split into buckets by key prefix (`b=<prefix>/`), so a lookup opens one
  small file per run, and reads the key column of the row groups whose range holds the key.
- Keys: a hex id (doc_id) is its own key, so its hex prefix spreads over the buckets; any other
  value (sample_id, URL) is keyed by its md5, for the same reason.
- The index never decides what is current: a hit is kept only if the catalog says its version
  is current (or pinned by the traced mixture's manifest). Runs hold every version ever indexed.
- Versions published before the index existed (older than `SINCE`) are not in it; lineage scans
  their files as before. Lakes on object storage have no index.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq

KEY_COLUMNS = ("doc_id", "sample_id", "url")
# The tables (as view names) that lineage reads by key: orchestration/lineage.py.
TRACED_VIEWS = frozenset(
    {
        "training_mixture",
        "training_mixture__dropped",
        "quality_scores",
        "clusters",
        "clusters__dropped",
        "rephrased_documents",
        "rephrased_documents__dropped",
        "duplicate_clusters",
        "duplicate_clusters__dropped",
        "decontamination__dropped",
        "cleaned_documents",
        "cleaned_documents__signals",
        "cleaned_documents__dropped",
        "raw_documents",
        "raw_documents__dropped",
    }
)
FANOUT = 16  # segments per first-level run, and runs per level before they merge
ROW_GROUP_ROWS = 8192  # small row groups: a lookup reads one of them per file
RETIRED_GRACE_S = 600.0  # merged-away runs stay this long for lookups that listed them
SORT_MEMORY = "512MB"  # DuckDB spills bigger merges to disk
BUCKET_ROWS = 262_144  # a run is split by key prefix until its buckets hold about this many
MAX_PREFIX = 3
_HEX_ID = re.compile(r"[0-9a-f]{16,}")
_KEY_SQL = "CASE WHEN regexp_full_match({v}, '[0-9a-f]{{16,}}') THEN {v} ELSE md5({v}) END"


def index_key(value: str) -> str:
    """The stored key of a value; `_KEY_SQL` is the same in DuckDB."""
    if _HEX_ID.fullmatch(value):
        return value
    return hashlib.md5(value.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class Hit:
    key: str
    asset: str
    partition: str
    version: str
    table_name: str
    row: int


def traced_view(asset: str, table_name: str) -> str:
    return asset if table_name == "documents" else f"{asset}__{table_name}"


def write_segment(
    index: DocIndex,
    name: str,
    asset: str,
    partition: str,
    version: str,
    tables: Mapping[str, Path],
) -> Path | None:
    """Write the segment of one version, its files still in staging, to
    `segments/<name>.parquet`; None when the version has no traced table.

    A segment is only read once its marker is in `pending/` (after the version's folder is in
    place), and its rows only count for versions the catalog lists."""
    selects = []
    for table, path in sorted(tables.items()):
        if traced_view(asset, table) not in TRACED_VIEWS:
            continue
        names = set(pq.read_schema(path).names)
        for column in (c for c in KEY_COLUMNS if c in names):
            key = _KEY_SQL.format(v=f"CAST({column} AS VARCHAR)")
            selects.append(
                f"SELECT {key} AS key, {_literal(table)} AS table_name, "
                f"file_row_number AS row FROM read_parquet({_literal(str(path))}, "
                f"file_row_number = true) WHERE {column} IS NOT NULL"
            )
    if not selects:
        return None
    body = " UNION ALL ".join(selects)
    index.start()
    segment = index.root / "segments" / f"{name}.parquet"
    segment.parent.mkdir(parents=True, exist_ok=True)
    tmp = segment.with_name(f".{segment.name}")
    with _duckdb(index.root) as con:
        con.execute(
            f"COPY (SELECT key, {_literal(asset)} AS asset, {_literal(partition)} AS partition, "
            f"{_literal(version)} AS version, table_name, row FROM ({body}) ORDER BY key) "
            f"TO {_literal(str(tmp))} "
            f"(FORMAT parquet, ROW_GROUP_SIZE {ROW_GROUP_ROWS}, COMPRESSION zstd)"
        )
    tmp.rename(segment)
    return segment


class DocIndex:
    """The index folder of one local lake: `pending/` markers, `runs/`, `MANIFEST.json`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def since(self) -> datetime | None:
        """When this lake started indexing: versions older than this are not in the index."""
        try:
            return datetime.fromisoformat((self.root / "SINCE").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def start(self) -> None:
        """Record SINCE once, before the first segment, so every later version is indexed."""
        (self.root / "pending").mkdir(parents=True, exist_ok=True)
        (self.root / "runs").mkdir(exist_ok=True)
        if (self.root / "SINCE").exists():
            return
        tmp = self.root / f".since-{uuid.uuid4().hex}"
        tmp.write_text(datetime.now(UTC).isoformat())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, self.root / "SINCE")  # the first one wins, atomically
        tmp.unlink()

    def add(self, segment: str | Path) -> None:
        """Make a version's segment visible to lookups (a marker, created whole by rename)."""
        tmp = self.root / f".marker-{uuid.uuid4().hex}"
        tmp.write_text(str(segment))
        tmp.rename(self.root / "pending" / f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}")

    # ---------------------------------------------------------------------------- lookups

    def files(self, key: str | None = None) -> list[str]:
        """The index files a lookup of `key` reads (every index file when None): pending
        segments, then one bucket of each run.

        Markers are listed before the manifest is read: a compaction writes its manifest before
        it removes the markers it merged, so a key is never in neither (at worst in both)."""
        found = []
        for marker in sorted((self.root / "pending").glob("[0-9]*")):
            with contextlib.suppress(FileNotFoundError):
                found.append(marker.read_text())
        for run in self._manifest()["runs"]:
            found += self._run_files(run, key)
        return [f for f in found if os.path.exists(f)]

    def _run_files(self, run: dict, key: str | None) -> list[str]:
        path = self.root / "runs" / run["file"]
        prefix = run.get("prefix", 0)
        if not prefix:
            return [str(path)]
        pattern = f"b={key[:prefix]}/*.parquet" if key is not None else "b=*/*.parquet"
        return sorted(str(p) for p in path.glob(pattern))

    def lookup(self, values: Sequence[str]) -> list[Hit]:
        """Every (version, table, row) whose key column holds one of `values`, current or not."""
        hits: set[Hit] = set()
        for key in dict.fromkeys(index_key(v) for v in values):
            for path in self.files(key):
                hits.update(_find(path, key))
        return sorted(hits, key=lambda h: (h.asset, h.table_name, h.partition, h.version, h.row))

    # ---------------------------------------------------------------------------- compaction

    def compact(self, fanout: int = FANOUT) -> bool:
        """Merge pending segments into a run, and full levels into the next; False if another
        process is compacting (it will do the same work)."""
        with self._exclusive() as mine:
            if not mine:
                return False
            markers = sorted((self.root / "pending").glob("[0-9]*"))
            if len(markers) >= fanout:
                segments = [m.read_text() for m in markers]
                self._merge([s for s in segments if os.path.exists(s)], [], level=1)
                for marker in markers:  # only after the manifest names their run
                    marker.unlink(missing_ok=True)
            level = 1
            while True:
                runs = [r for r in self._manifest()["runs"] if r["level"] == level]
                if not runs:
                    break
                if len(runs) >= fanout:
                    files = [f for r in runs for f in self._run_files(r, None)]
                    self._merge(files, [r["file"] for r in runs], level=level + 1)
                level += 1
            self._sweep_retired()
            return True

    def add_run(self, source_sql: str, level: int, rows: int, in_key_order: bool = False) -> None:
        """Write one run from a SQL query with the index's columns and list it in the manifest.

        `in_key_order`: the query already yields rows in key order, so the run is written without
        a sort (bulk loads of generated indexes)."""
        entry = self._write_run(source_sql, level, rows, in_key_order)
        manifest = self._manifest()
        manifest["runs"].append(entry)
        self._write_manifest(manifest)

    def _merge(self, files: list[str], replaces: list[str], level: int) -> None:
        """One sorted run out of `files`, then a manifest that lists it instead of `replaces`."""
        entry = None
        if files:
            rows = sum(pq.read_metadata(f).num_rows for f in files)
            source = (
                f"SELECT DISTINCT * FROM read_parquet([{', '.join(map(_literal, files))}], "
                "hive_partitioning = false)"
            )
            entry = self._write_run(source, level, rows, in_key_order=False)
        manifest = self._manifest()
        manifest["runs"] = [r for r in manifest["runs"] if r["file"] not in replaces]
        if entry is not None:
            manifest["runs"].append(entry)
        manifest["retired"] += [{"file": f, "at": time.time()} for f in replaces]
        self._write_manifest(manifest)

    def _write_run(self, source_sql: str, level: int, rows: int, in_key_order: bool) -> dict:
        """A run file, or a folder of bucket files `b=<key prefix>/` when it is big, made visible
        by one rename."""
        name = f"L{level}-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        prefix = 0
        while rows > BUCKET_ROWS * 16**prefix and prefix < MAX_PREFIX:
            prefix += 1
        (self.root / "runs").mkdir(parents=True, exist_ok=True)
        tmp = self.root / "runs" / f".{name}"
        order = "" if in_key_order else " ORDER BY key"
        options = f"FORMAT parquet, ROW_GROUP_SIZE {ROW_GROUP_ROWS}, COMPRESSION zstd"
        with _duckdb(self.root, keep_order=in_key_order) as con:
            if prefix:
                con.execute(
                    f"COPY (SELECT *, substr(key, 1, {prefix}) AS b FROM ({source_sql}){order}) "
                    f"TO {_literal(str(tmp))} ({options}, PARTITION_BY (b))"
                )
            else:
                con.execute(f"COPY ({source_sql}{order}) TO {_literal(str(tmp))} ({options})")
        final = f"{name}.parquet" if not prefix else name
        tmp.rename(self.root / "runs" / final)
        return {"file": final, "level": level, "prefix": prefix, "rows": rows}

    def _sweep_retired(self) -> None:
        """Delete runs merged away long enough ago, and runs a killed compaction left half
        written (hidden names that were never renamed into place)."""
        for leftover in (self.root / "runs").glob(".L*"):
            with contextlib.suppress(FileNotFoundError):
                if time.time() - leftover.stat().st_mtime <= RETIRED_GRACE_S:
                    continue
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink()
        manifest = self._manifest()
        keep = []
        for entry in manifest["retired"]:
            if time.time() - entry["at"] > RETIRED_GRACE_S:
                path = self.root / "runs" / entry["file"]
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            else:
                keep.append(entry)
        if len(keep) != len(manifest["retired"]):
            manifest["retired"] = keep
            self._write_manifest(manifest)

    def _manifest(self) -> dict:
        try:
            return json.loads((self.root / "MANIFEST.json").read_text())
        except FileNotFoundError:
            return {"runs": [], "retired": []}

    def _write_manifest(self, manifest: dict) -> None:
        tmp = self.root / f".manifest-{uuid.uuid4().hex}"
        tmp.write_text(json.dumps(manifest))
        tmp.replace(self.root / "MANIFEST.json")

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[bool]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _find(path: str, key: str) -> list[Hit]:
    """Rows of one sorted index file that hold `key`: its footer's key ranges say which row
    groups can, and only those are read."""
    try:
        parquet = pq.ParquetFile(path)
    except FileNotFoundError:  # a run merged away and deleted since the manifest was read
        return []
    meta = parquet.metadata
    column = parquet.schema_arrow.get_field_index("key")
    groups = []
    for group in range(meta.num_row_groups):
        stats = meta.row_group(group).column(column).statistics
        if stats is None or not stats.has_min_max or stats.min <= key <= stats.max:
            groups.append(group)
    hits = []
    for group in groups:  # the key column first: most files a lookup opens do not hold the key
        keys = parquet.read_row_group(group, columns=["key"], use_threads=False)["key"]
        rows = pc.indices_nonzero(pc.equal(keys, key))
        if len(rows):
            table = parquet.read_row_group(group, use_threads=False).take(rows)
            hits += [Hit(**row) for row in table.to_pylist()]
    return hits


@contextlib.contextmanager
def _duckdb(spill: Path, keep_order: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB with a bounded memory limit that spills beside the index."""
    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = '{SORT_MEMORY}'")
        con.execute(f"SET temp_directory = {_literal(str(spill / '.duckdb_tmp'))}")
        if not keep_order:  # an ORDER BY still orders; this frees everything else
            con.execute("SET preserve_insertion_order = false")
        yield con
    finally:
        con.close()


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
