"""Benchmark decontamination: remove documents that share a word n-gram with an evaluation set.

GPT-3 (Brown et al., 2020, appendix C) removed training documents that share a 13-gram with a
benchmark; dolma and DCLM ship the same step. Text is normalized the usual way (Unicode NFKC,
lower case, punctuation dropped: a word is a run of letters and digits), an n-gram is n
consecutive words, and 13 is the default n.

The eval side becomes an index built once per eval-set version (the files' content, n, and this
module's normalization): a Parquet table of (hash, eval_set, item_id, ngram) sorted by hash and a
memory-mapped array of the distinct hashes, both on disk, so a worker's memory does not grow with
the eval sets. A document is hashed n-gram by n-gram (one 64-bit hash per word, combined by a
rolling polynomial in numpy); hashes found in the index are confirmed on the n-gram's words, so
a hash collision never removes a document.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from assets.corpus import removed_ids
from assets.documents import DROPPED_SCHEMA
from assets.workers import ordered_map, worker_count
from resources.lake import Lake, VersionWriter

DECONTAM_CODE_VERSION = "decontam-1"
EVAL_DIR_ENV = "FOUNDRY_EVAL_DIR"
NORMALIZATION = "nfkc-lower-words-1"  # part of every index's fingerprint
DEFAULT_NGRAM = 13
_WORD = re.compile(r"[^\W_]+")  # letters and digits; punctuation and underscores split words
_BASE = np.uint64(0x100000001B3)  # the rolling polynomial's base (FNV's 64-bit prime)
INDEX_SCHEMA = pa.schema(
    [
        ("hash", pa.uint64()),
        ("eval_set", pa.string()),
        ("item_id", pa.string()),
        ("ngram", pa.string()),
    ]
)


class EvalSetError(ValueError):
    """An eval set cannot be read as configured."""


@dataclass(frozen=True)
class EvalSet:
    """A local JSONL or Parquet file of evaluation items (prompts and answers)."""

    name: str
    path: str
    id_field: str = "id"
    text_fields: tuple[str, ...] = ("prompt", "answer")


@dataclass(frozen=True)
class DecontamPolicy:
    eval_sets: tuple[EvalSet, ...] = ()
    ngram: int = DEFAULT_NGRAM
    workers: int = 0  # processes for the map over shards; 0 = one per CPU
    batch_items: int = 10_000  # eval items hashed per batch while the index is built


def eval_sets_in(folder: Path) -> list[EvalSet]:
    """Every .jsonl and .parquet file of a folder, as a set named after the file."""
    if not folder.is_dir():
        raise EvalSetError(f"{EVAL_DIR_ENV}: {folder} is not a folder of eval sets")
    files = sorted(p for p in folder.iterdir() if p.suffix in (".jsonl", ".parquet"))
    return [EvalSet(p.stem, str(p)) for p in files]


def words(text: str) -> list[str]:
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def ngram_hashes(tokens: Sequence[str], n: int) -> np.ndarray:
    """One 64-bit hash per n-gram of `tokens`, in order (empty when there are fewer than n)."""
    m = len(tokens) - n + 1
    if m <= 0:
        return np.empty(0, dtype=np.uint64)
    hashed = (xxhash.xxh64_intdigest(t.encode()) for t in tokens)
    per_word = np.fromiter(hashed, np.uint64, len(tokens))
    hashes = per_word[:m].copy()
    for j in range(1, n):
        hashes *= _BASE
        hashes += per_word[j : j + m]
    return hashes


# ------------------------------------------------------------------------------ the index


@dataclass(frozen=True)
class IndexSummary:
    items: int
    ngrams: int
    too_short: dict[str, int] = field(default_factory=dict)  # items with fewer than n words


@dataclass(frozen=True)
class EvalIndex:
    folder: Path
    fingerprint: str
    summary: IndexSummary

    @property
    def table(self) -> Path:
        return self.folder / "ngrams.parquet"

    def hashes(self) -> np.ndarray:
        """The distinct hashes, sorted, memory-mapped (an empty index has none)."""
        path = self.folder / "hashes.npy"
        return np.load(path, mmap_mode="r") if path.stat().st_size > 128 else np.empty(0, np.uint64)


def index_fingerprint(policy: DecontamPolicy) -> str:
    """What the index depends on: n, the normalization, and each set's name, fields and bytes."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps([NORMALIZATION, policy.ngram]).encode())
    for eval_set in policy.eval_sets:
        digest.update(json.dumps([eval_set.name, eval_set.id_field, eval_set.text_fields]).encode())
        with open(_existing(eval_set), "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def build_index(policy: DecontamPolicy, root: Path) -> EvalIndex:
    """The index of these eval sets under `root`, built unless this version is there already
    (written in a temporary folder and renamed into place, so a crash leaves no half index)."""
    fingerprint = index_fingerprint(policy)
    folder = root / fingerprint
    if not (folder / "summary.json").exists():
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="building-", dir=root) as tmp:
            summary = _write_index(policy, Path(tmp))
            (Path(tmp) / "summary.json").write_text(json.dumps(summary.__dict__))
            with contextlib.suppress(OSError):  # another process renamed the same content
                os.rename(tmp, folder)
            Path(tmp).mkdir(exist_ok=True)  # TemporaryDirectory cleans up what is (not) there
    summary = IndexSummary(**json.loads((folder / "summary.json").read_text()))
    return EvalIndex(folder, fingerprint, summary)


def _write_index(policy: DecontamPolicy, folder: Path) -> IndexSummary:
    parts, items, ngrams, too_short = [], 0, 0, {}
    for eval_set in policy.eval_sets:
        too_short[eval_set.name] = 0
        for batch in _batches(_items(eval_set), policy.batch_items):
            rows: dict[str, list] = {name: [] for name in INDEX_SCHEMA.names}
            for item_id, text in batch:
                tokens = words(text)
                hashes = ngram_hashes(tokens, policy.ngram)
                items += 1
                if not hashes.size:
                    too_short[eval_set.name] += 1
                    continue
                rows["hash"].extend(hashes.tolist())
                rows["eval_set"].extend([eval_set.name] * hashes.size)
                rows["item_id"].extend([item_id] * hashes.size)
                rows["ngram"].extend(_joined_ngrams(tokens, policy.ngram))
            if rows["hash"]:
                parts.append(folder / f"part-{len(parts):05d}.parquet")
                pq.write_table(pa.table(rows, schema=INDEX_SCHEMA), parts[-1])
                ngrams += len(rows["hash"])
    _sort_into(parts, folder)
    return IndexSummary(items, ngrams, too_short)


def _sort_into(parts: list[Path], folder: Path) -> None:
    """One table sorted by hash and the distinct hashes as .npy, out of core in DuckDB."""
    table, distinct = folder / "ngrams.parquet", folder / "hashes.npy"
    if not parts:
        pq.write_table(INDEX_SCHEMA.empty_table(), table)
        np.save(distinct, np.empty(0, np.uint64))
        return
    con = duckdb.connect()
    con.execute("SET memory_limit='256MB'")
    con.execute(f"SET temp_directory='{folder / 'spill'}'")
    sources = [str(p) for p in parts]
    con.execute(
        "COPY (SELECT * FROM read_parquet($1) ORDER BY hash, eval_set, item_id) "
        "TO $2 (FORMAT parquet, ROW_GROUP_SIZE 100000)",
        [sources, str(table)],
    ).fetchall()
    count = con.execute("SELECT count(DISTINCT hash) FROM read_parquet($1)", [sources]).fetchall()[
        0
    ]
    out = np.lib.format.open_memmap(distinct, mode="w+", dtype=np.uint64, shape=(count[0],))
    quoted = str(table).replace("'", "''")
    reader = con.cursor().sql(f"SELECT DISTINCT hash FROM read_parquet('{quoted}') ORDER BY hash")
    at = 0
    for batch in reader.to_arrow_reader(1_000_000):
        values = batch.column(0).to_numpy()
        out[at : at + len(values)] = values
        at += len(values)
    out.flush()
    del out
    con.close()
    for part in parts:
        part.unlink()
    shutil.rmtree(folder / "spill", ignore_errors=True)


def _items(eval_set: EvalSet) -> Iterator[tuple[str, str]]:
    """(item id, its text fields joined) of every item; a missing id is the item's position."""
    path = _existing(eval_set)
    rows = _parquet_rows(path) if path.suffix == ".parquet" else _jsonl_rows(path, eval_set.name)
    for position, row in enumerate(rows):
        present = [f for f in eval_set.text_fields if row.get(f) is not None]
        if not present:
            raise EvalSetError(
                f"eval set {eval_set.name!r} item {position} has none of the text fields "
                f"{list(eval_set.text_fields)}; set text_fields to the fields it has: "
                f"{sorted(row)}"
            )
        item_id = row.get(eval_set.id_field)
        yield (
            (str(position) if item_id is None else str(item_id)),
            "\n".join(_text(row[f]) for f in present),
        )


def _text(value: object) -> str:
    """A field's text; lists (multiple-choice options) contribute each element."""
    if isinstance(value, list | tuple):
        return "\n".join(map(_text, value))
    return str(value)


def _jsonl_rows(path: Path, name: str) -> Iterator[dict]:
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as error:
                message = f"eval set {name!r}: {path}:{number} is not JSON ({error})"
                raise EvalSetError(message) from error


def _parquet_rows(path: Path) -> Iterator[dict]:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
        yield from batch.to_pylist()


def _existing(eval_set: EvalSet) -> Path:
    path = Path(eval_set.path).expanduser()
    if not path.is_file():
        raise EvalSetError(f"eval set {eval_set.name!r}: no file at {path}")
    if path.suffix not in (".jsonl", ".parquet"):
        raise EvalSetError(f"eval set {eval_set.name!r}: {path} is not .jsonl or .parquet")
    return path


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _joined_ngrams(tokens: Sequence[str], n: int) -> list[str]:
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


# ------------------------------------------------------------------------------ matching


@dataclass(frozen=True)
class Match:
    doc_id: str
    eval_set: str
    item_id: str
    ngram: str
    position: int  # word offset of the n-gram in the normalized document


def candidate_hits(
    docs: Iterable[tuple[str, str]], hashes: np.ndarray, n: int
) -> Iterator[tuple[str, int, int, str]]:
    """(doc_id, word position, hash, n-gram) of every n-gram whose hash is in the index."""
    if not hashes.size:
        return
    last = hashes.size - 1
    for doc_id, text in docs:
        tokens = words(text)
        mine = ngram_hashes(tokens, n)
        if not mine.size:
            continue
        found = hashes[np.minimum(np.searchsorted(hashes, mine), last)] == mine
        for position in np.flatnonzero(found).tolist():
            yield doc_id, position, int(mine[position]), " ".join(tokens[position : position + n])


def confirm(hits: list[tuple[str, int, int, str]], index: EvalIndex) -> list[Match]:
    """Hits whose n-gram's words equal an eval n-gram's; per document the first in the text
    (then the eval set and item id that sort first)."""
    if not hits:
        return []
    frame = pl.DataFrame(
        hits,
        schema={"doc_id": pl.String, "position": pl.Int64, "hash": pl.UInt64, "ngram": pl.String},
        orient="row",
    )
    con = duckdb.connect()
    con.execute("SET memory_limit='256MB'")
    con.register("hits", frame.to_arrow())
    rows = con.execute(
        "SELECT h.doc_id, i.eval_set, i.item_id, h.ngram, h.position "
        "FROM hits h JOIN read_parquet($1) i ON i.hash = h.hash AND i.ngram = h.ngram "
        "QUALIFY row_number() OVER (PARTITION BY h.doc_id ORDER BY h.position, i.eval_set, "
        "i.item_id) = 1 ORDER BY h.doc_id",
        [str(index.table)],
    ).fetchall()
    con.close()
    return [Match(*row) for row in rows]


def find_contaminated(docs: Iterable[tuple[str, str]], index: EvalIndex, n: int) -> list[Match]:
    """The documents among `docs` (doc_id, text) that share an n-gram with the index."""
    return confirm(list(candidate_hits(docs, index.hashes(), n)), index)


# ------------------------------------------------------------------------------ the map


CHECKED_SCHEMA = pa.schema([("doc_id", pa.string()), ("shard", pa.string())])


@dataclass(frozen=True)
class ShardCheck:
    checked: pl.DataFrame  # doc_id, shard of the documents that share no n-gram (kept)
    removed: pl.DataFrame  # their dropped rows, DROPPED_SCHEMA


def check_shard(lake: Lake, shard: str, index: EvalIndex, n: int) -> ShardCheck:
    """One shard's organic documents (after deduplication) against the index."""
    docs = lake.scan("cleaned_documents", partitions=[shard]).select(
        "doc_id", "shard", "url", "source_offset", "text"
    )
    if (removed := removed_ids(lake, before="decontamination")) is not None:
        docs = docs.join(removed, on="doc_id", how="anti")
    if not index.summary.ngrams:  # nothing to match: no text to read
        checked = docs.select("doc_id", "shard").collect()
        return ShardCheck(checked, pl.from_arrow(DROPPED_SCHEMA.empty_table()))
    frame = docs.collect()
    matches = find_contaminated(frame.select("doc_id", "text").iter_rows(), index, n)
    found = pl.DataFrame(
        [
            {
                "doc_id": m.doc_id,
                "rule": f"decontam:{m.eval_set}",
                "detail": json.dumps({"item_id": m.item_id, "ngram": m.ngram, "word": m.position}),
            }
            for m in matches
        ],
        schema={"doc_id": pl.String, "rule": pl.String, "detail": pl.String},
    )
    dropped = frame.join(found, on="doc_id").select(
        "doc_id",
        pl.lit("cleaned").alias("stage"),
        "rule",
        pl.lit(float(n)).alias("value"),
        pl.lit(float(n)).alias("threshold"),
        "detail",
        "url",
        pl.col("shard").alias("source_file"),
        "source_offset",
    )
    kept = frame.join(found, on="doc_id", how="anti").select("doc_id", "shard")
    return ShardCheck(kept, dropped)


@dataclass
class DecontamResult:
    index: EvalIndex
    checked: int = 0
    removed: dict[str, int] = field(default_factory=dict)  # per eval set


def decontaminate(
    lake: Lake, policy: DecontamPolicy, root: Path, out: VersionWriter
) -> DecontamResult:
    """Build (or reuse) the index, then check shard after shard, spread over workers."""
    index = build_index(policy, root)
    shards = sorted({f.partition for f in lake.files("cleaned_documents")})
    workers = worker_count(policy.workers, len(shards)) if index.summary.ngrams else 1
    jobs = [(shard, policy.ngram) for shard in shards]
    result = DecontamResult(index)
    kept, dropped = out.table("documents", CHECKED_SCHEMA), out.table("dropped", DROPPED_SCHEMA)
    for check in ordered_map(_check_in_worker, jobs, workers, _open, (lake.for_worker(), index)):
        kept.write(check.checked)
        dropped.write(check.removed)
        result.checked += check.checked.height + check.removed.height
        for rule, count in check.removed["rule"].value_counts().iter_rows():
            name = rule.removeprefix("decontam:")
            result.removed[name] = result.removed.get(name, 0) + count
    return result


_WORKER: dict[str, object] = {}


def _open(handoff: tuple, index: EvalIndex) -> None:
    _WORKER.update(lake=Lake.in_worker(handoff), index=index)


def _check_in_worker(job: tuple[str, int]) -> ShardCheck:
    shard, n = job
    return check_shard(_WORKER["lake"], shard, _WORKER["index"], n)  # type: ignore[arg-type]
