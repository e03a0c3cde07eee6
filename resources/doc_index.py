"""The doc index: key (doc_id, sample_id or URL) -> (asset, partition, version, table, row).

`foundry trace` and `foundry why` look one document up among millions in thousands of files; the
index lets them open a bounded number of small sorted files instead of every data file.

- At publish (outside the catalog lock), each version writes a *segment*: the keys of its traced
  tables with their row numbers, sorted by key, into its own folder (`_doc_index.parquet`), and
  drops a marker into `<lake>/_doc_index/pending/`.
- Compaction is an LSM tree, size-tiered: once FANOUT segments are pending, one publisher (the
  one that wins a file lock) merges them into a sorted *run*; FANOUT runs of one level merge
  into one run of the next. A lookup reads the pending segments and at most FANOUT - 1 runs per
  level, and DuckDB skips every row group whose key range misses the key.
- The index never decides what is current: a hit is kept only if the catalog says its version
  is current (or pinned by the traced mixture's manifest). Runs hold every version ever indexed.
- Versions published before the index existed (older than `SINCE`) are not in it; lineage scans
  their files as before. Lakes on object storage have no index.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

SEGMENT = "_doc_index.parquet"  # a version's own index, inside its folder
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
    folder: Path,
    asset: str,
    partition: str,
    version: str,
    tables: Mapping[str, Path],
) -> bool:
    """Write the segment of one version into its (staging) folder; False if nothing is traced."""
    selects = []
    for table, path in sorted(tables.items()):
        if traced_view(asset, table) not in TRACED_VIEWS:
            continue
        names = set(pq.read_schema(path).names)
        for column in (c for c in KEY_COLUMNS if c in names):
            selects.append(
                f"SELECT {column} AS key, {_literal(table)} AS table_name, "
                f"file_row_number AS row FROM read_parquet({_literal(str(path))}, "
                "file_row_number = true) WHERE key IS NOT NULL"
            )
    if not selects:
        return False
    body = " UNION ALL ".join(selects)
    index.start()
    with _duckdb(index.root) as con:
        con.execute(
            f"COPY (SELECT key, {_literal(asset)} AS asset, {_literal(partition)} AS partition, "
            f"{_literal(version)} AS version, table_name, row FROM ({body}) ORDER BY key) "
            f"TO {_literal(str(folder / SEGMENT))} "
            f"(FORMAT parquet, ROW_GROUP_SIZE {ROW_GROUP_ROWS}, COMPRESSION zstd)"
        )
    return True


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

    def files(self) -> list[str]:
        """Every index file a lookup reads: pending segments first, then the manifest's runs.

        Markers are listed before the manifest is read: a compaction writes its manifest before
        it removes the markers it merged, so a key is never in neither (at worst in both)."""
        segments = []
        for marker in sorted((self.root / "pending").glob("[0-9]*")):
            with contextlib.suppress(FileNotFoundError):
                segments.append(marker.read_text())
        runs = [str(self.root / "runs" / r["file"]) for r in self._manifest()["runs"]]
        return [f for f in segments + runs if os.path.exists(f)]

    def lookup(self, keys: Sequence[str]) -> list[Hit]:
        """Every (version, table, row) that holds one of `keys`, current or not."""
        files = self.files()
        if not files or not keys:
            return []
        source = f"read_parquet([{', '.join(_literal(f) for f in files)}])"
        hits: set[Hit] = set()
        with duckdb.connect() as con:
            for key in dict.fromkeys(keys):
                rows = con.execute(
                    f"SELECT key, asset, partition, version, table_name, row FROM {source} "
                    "WHERE key = ?",
                    [key],
                ).fetchall()
                hits.update(Hit(*row) for row in rows)
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
                    files = [str(self.root / "runs" / r["file"]) for r in runs]
                    self._merge(files, [r["file"] for r in runs], level=level + 1)
                level += 1
            self._sweep_retired()
            return True

    def _merge(self, files: list[str], replaces: list[str], level: int) -> None:
        """One sorted run out of `files`, then a manifest that lists it instead of `replaces`."""
        name = f"L{level}-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        if files:
            with _duckdb(self.root) as con:
                source = f"read_parquet([{', '.join(_literal(f) for f in files)}])"
                tmp = self.root / "runs" / f".{name}"
                con.execute(
                    f"COPY (SELECT DISTINCT * FROM {source} ORDER BY key) TO {_literal(str(tmp))} "
                    f"(FORMAT parquet, ROW_GROUP_SIZE {ROW_GROUP_ROWS}, COMPRESSION zstd)"
                )
                tmp.rename(self.root / "runs" / name)
        manifest = self._manifest()
        now = time.time()
        manifest["runs"] = [r for r in manifest["runs"] if r["file"] not in replaces]
        if files:
            manifest["runs"].append({"file": name, "level": level})
        manifest["retired"] += [{"file": f, "at": now} for f in replaces]
        self._write_manifest(manifest)

    def _sweep_retired(self) -> None:
        manifest = self._manifest()
        keep = []
        for entry in manifest["retired"]:
            if time.time() - entry["at"] > RETIRED_GRACE_S:
                (self.root / "runs" / entry["file"]).unlink(missing_ok=True)
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


@contextlib.contextmanager
def _duckdb(spill: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB with a bounded memory limit that spills beside the index."""
    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = '{SORT_MEMORY}'")
        con.execute(f"SET temp_directory = {_literal(str(spill / '.duckdb_tmp'))}")
        con.execute("SET preserve_insertion_order = false")
        yield con
    finally:
        con.close()


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
