"""Cross-shard deduplication, incremental: exact hashes plus MinHash LSH near duplicates.

Each run reuses the signatures and confirmed pairs of shards whose cleaned version has not
changed, and only signs and searches the new or changed shards (against everything). Pairs are
then grouped into clusters (union-find) and the keep policy picks one document per cluster; every
other member is recorded as dropped with the similarity that tied it to its cluster.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import polars as pl
import pyarrow as pa

from assets.cleaned.minhash import (
    BandIndex,
    MinHashConfig,
    MinHasher,
    candidate_pairs,
    verify_pairs,
)
from assets.documents import DROPPED_SCHEMA
from assets.measures import heuristic_signals
from resources.lake import Lake, VersionWriter

DEDUP_CODE_VERSION = "dedup-3"  # 3: datatrove's shingles, SHA-1 and permutations
KeepPolicy = Literal["earliest", "longest", "best_quality"]
KEEP_POLICIES = get_args(KeepPolicy)
PREFILTER_MARGIN = 0.2  # candidates whose estimate is this far below the threshold are skipped

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


def signature_schema(num_hashes: int) -> pa.Schema:
    return pa.schema(
        [
            ("doc_id", pa.string()),
            ("shard", pa.string()),
            ("shard_version", pa.string()),
            ("config", pa.string()),
            ("signature", pa.list_(pa.uint64(), num_hashes)),
        ]
    )


@dataclass(frozen=True)
class DedupPolicy:
    minhash: MinHashConfig = field(default_factory=MinHashConfig)
    near_duplicates: bool = True
    keep: KeepPolicy = "earliest"

    def key(self) -> str:
        m = self.minhash
        return f"w{m.ngram}-b{m.bands}x{m.rows}-s{m.seed}-t{m.threshold}-{m.confirm}-sha1"


@dataclass
class DedupResult:
    rows_in: int = 0
    kept: int = 0
    duplicates: int = 0
    clusters: int = 0
    shards_signed: list[str] = field(default_factory=list)
    shards_reused: list[str] = field(default_factory=list)
    near_pairs: int = 0
    exact_pairs: int = 0
    seconds: float = 0.0


@dataclass
class Deduplication:
    """The tables of a new duplicate_clusters version, and what it took to make them."""

    result: DedupResult
    clusters: pl.DataFrame
    drops: pl.DataFrame
    pairs: pl.DataFrame
    signatures: pl.DataFrame
    metadata: dict

    def write(self, out: VersionWriter, policy: DedupPolicy) -> None:
        out.write("documents", self.clusters, CLUSTER_SCHEMA)
        out.write("dropped", self.drops, DROPPED_SCHEMA)
        out.write("pairs", self.pairs, PAIRS_SCHEMA)
        out.write("signatures", self.signatures, signature_schema(policy.minhash.num_hashes))


def find_duplicates(lake: Lake, policy: DedupPolicy) -> Deduplication:
    started = time.perf_counter()
    result = DedupResult()
    shards = {f.partition: f.version for f in lake.files("cleaned_documents")}
    old_sigs, old_pairs = _previous_state(lake, policy, shards)
    result.shards_reused = sorted(set(old_sigs["shard"].unique()) if old_sigs.height else set())
    result.shards_signed = sorted(set(shards) - set(result.shards_reused))
    docs = lake.scan("cleaned_documents").select(
        "doc_id", "shard", "source_offset", "content_hash", "n_chars"
    )
    docs = docs.collect().sort("shard", "source_offset", "doc_id")
    result.rows_in = docs.height
    hasher = MinHasher(policy.minhash)
    new_sigs = _sign(lake, hasher, result.shards_signed, shards, policy.key())
    near = _near_pairs(lake, hasher, policy, old_sigs, new_sigs) if policy.near_duplicates else []
    pairs = pl.concat([old_pairs, _pairs_frame(near, "minhash")])
    exact = exact_pairs(docs)
    result.near_pairs, result.exact_pairs = pairs.height, exact.height
    members = cluster_members(docs, pl.concat([pairs, exact]))
    clusters = choose_kept(members, docs, policy.keep, lambda ids: _quality(lake, ids))
    drops = duplicate_drops(clusters, policy.minhash.threshold)
    signatures = pl.concat([old_sigs, new_sigs]) if old_sigs.height else new_sigs
    meta = {"upstream": lake.versions_of(["cleaned_documents"]), "policy": policy.key()}
    result.duplicates = drops.height
    result.kept = result.rows_in - drops.height
    result.clusters = clusters.filter(pl.col("is_kept")).height
    result.seconds = time.perf_counter() - started
    return Deduplication(result, clusters, drops, pairs, signatures, meta)


def publish_duplicates(lake: Lake, policy: DedupPolicy, run_id: str | None) -> DedupResult:
    """Find and publish at once, without the asset's checks (benchmarks and tests)."""
    found = find_duplicates(lake, policy)
    with lake.publish(
        "duplicate_clusters",
        run_id=run_id,
        code_version=DEDUP_CODE_VERSION,
        metadata=found.metadata,
    ) as out:
        found.write(out, policy)
    return found.result


def _previous_state(
    lake: Lake, policy: DedupPolicy, shards: dict[str, str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Signatures and pairs of shards whose cleaned version is unchanged since the last run."""
    empty_pairs = pl.from_arrow(PAIRS_SCHEMA.empty_table())
    if not lake.has("duplicate_clusters", "signatures"):
        return pl.DataFrame(), empty_pairs
    sigs = lake.scan("duplicate_clusters", "signatures").collect()
    current = pl.DataFrame(
        {"shard": list(shards), "shard_version": list(shards.values())},
        schema={"shard": pl.String, "shard_version": pl.String},
    )
    sigs = sigs.filter(pl.col("config") == policy.key()).join(
        current, on=["shard", "shard_version"], how="semi"
    )
    reused = set(sigs["doc_id"])
    pairs = lake.scan("duplicate_clusters", "pairs").collect()
    pairs = pairs.filter(
        pl.col("a").is_in(list(reused))
        & pl.col("b").is_in(list(reused))
        & (pl.col("method") == "minhash")
    )
    return sigs, pairs


def _sign(
    lake: Lake, hasher: MinHasher, shards: list[str], versions: dict[str, str], key: str
) -> pl.DataFrame:
    """Signatures of every document of the shards, as one (documents x hashes) uint64 matrix;
    documents too short to shingle get none, as in datatrove."""
    ids: list[str] = []
    shard_of: list[str] = []
    rows: list[np.ndarray] = []
    for shard in shards:
        for doc in lake.iter_rows(
            "cleaned_documents", partitions=[shard], columns=["doc_id", "text"]
        ):
            signature = hasher.signature(doc["text"])
            if signature is not None:
                ids.append(doc["doc_id"])
                shard_of.append(shard)
                rows.append(signature)
    width = hasher.config.num_hashes
    matrix = np.vstack(rows) if rows else np.empty((0, width), dtype=np.uint64)
    signatures = pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), width)
    table = pa.Table.from_arrays(
        [
            pa.array(ids, pa.string()),
            pa.array(shard_of, pa.string()),
            pa.array([versions[s] for s in shard_of], pa.string()),
            pa.array([key] * len(ids), pa.string()),
            signatures,
        ],
        schema=signature_schema(width),
    )
    return pl.from_arrow(table)


def _near_pairs(
    lake: Lake, hasher: MinHasher, policy: DedupPolicy, old: pl.DataFrame, new: pl.DataFrame
) -> list[tuple[str, str, float]]:
    """New documents against every indexed document (old and new), confirmed as configured."""
    index = BandIndex(hasher)
    for doc_id, sig in _signatures(old):
        index.add(doc_id, sig)
    if policy.minhash.confirm == "none":
        return candidate_pairs(_signatures(new), index, 0.0)
    margin = policy.minhash.threshold - PREFILTER_MARGIN
    candidates = candidate_pairs(_signatures(new), index, margin)
    ids = {d for a, b, _ in candidates for d in (a, b)}
    if not ids:
        return []
    texts = (
        lake.scan("cleaned_documents")
        .select("doc_id", "text")
        .filter(pl.col("doc_id").is_in(list(ids)))
        .collect()
    )
    return verify_pairs(candidates, dict(texts.iter_rows()), policy.minhash)


def _signatures(frame: pl.DataFrame) -> Iterator[tuple[str, np.ndarray]]:
    if not frame.height:
        return
    ordered = frame.sort("shard", "doc_id")
    matrix = np.asarray(ordered["signature"].to_numpy(), dtype=np.uint64)
    matrix = matrix.reshape(ordered.height, -1)
    yield from zip(ordered["doc_id"].to_list(), matrix, strict=True)


def _pairs_frame(pairs: list[tuple[str, str, float]], method: str) -> pl.DataFrame:
    return pl.DataFrame(
        [(a, b, s, method) for a, b, s in pairs],
        schema={"a": pl.String, "b": pl.String, "similarity": pl.Float64, "method": pl.String},
        orient="row",
    )


def exact_pairs(docs: pl.DataFrame) -> pl.DataFrame:
    """Every document with the same content hash as an earlier one, paired with the first copy."""
    firsts = docs.group_by("content_hash", maintain_order=True).agg(pl.col("doc_id").first())
    return (
        docs.join(firsts.rename({"doc_id": "a"}), on="content_hash")
        .filter(pl.col("doc_id") != pl.col("a"))
        .select(
            "a",
            pl.col("doc_id").alias("b"),
            pl.lit(1.0).alias("similarity"),
            pl.lit("exact").alias("method"),
        )
    )


def cluster_members(docs: pl.DataFrame, pairs: pl.DataFrame) -> pl.DataFrame:
    """Union-find over confirmed pairs: (doc_id, cluster_id, similarity, method) per member."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    best: dict[str, tuple[float, str]] = {}
    for a, b, similarity, method in pairs.iter_rows():
        parent[find(b)] = find(a)
        for doc in (a, b):
            if similarity > best.get(doc, (-1.0, ""))[0]:
                best[doc] = (similarity, method)
    rows = [(d, find(d), *best[d]) for d in best]
    schema = {"doc_id": pl.String, "root": pl.String, "similarity": pl.Float64, "method": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row").join(
        docs.select("doc_id", "shard", "source_offset", "n_chars"), on="doc_id"
    )


def choose_kept(members: pl.DataFrame, docs: pl.DataFrame, keep: str, quality) -> pl.DataFrame:
    """One kept document per cluster, by the configured policy; ties go to the earliest copy."""
    if keep not in KEEP_POLICIES:
        raise ValueError(f"keep policy {keep!r} is not one of {KEEP_POLICIES}")
    if members.is_empty():
        return pl.from_arrow(CLUSTER_SCHEMA.empty_table())
    order = ["shard", "source_offset", "doc_id"]
    if keep == "longest":
        members = members.sort(["n_chars", *order], descending=[True, False, False, False])
    elif keep == "best_quality":
        scores = quality(members["doc_id"].to_list())
        members = members.with_columns(pl.col("doc_id").replace_strict(scores).alias("q"))
        members = members.sort(["q", *order], descending=[True, False, False, False])
    else:
        members = members.sort(order)
    kept = members.group_by("root", maintain_order=True).agg(pl.col("doc_id").first())
    return members.join(kept.rename({"doc_id": "kept_doc_id"}), on="root").select(
        "doc_id",
        pl.col("kept_doc_id").alias("cluster_id"),
        "kept_doc_id",
        "similarity",
        "method",
        (pl.col("doc_id") == pl.col("kept_doc_id")).alias("is_kept"),
    )


def _quality(lake: Lake, doc_ids: list[str]) -> dict[str, float]:
    """A cheap quality proxy for the keep policy: distinct-word share times punctuated lines."""
    texts = (
        lake.scan("cleaned_documents")
        .select("doc_id", "text")
        .filter(pl.col("doc_id").is_in(doc_ids))
        .collect()
    )
    out = {}
    for doc_id, text in texts.iter_rows():
        s = heuristic_signals(text)
        out[doc_id] = s["unique_word_ratio"] * s["line_punct_ratio"]
    return out


def duplicate_drops(clusters: pl.DataFrame, threshold: float) -> pl.DataFrame:
    removed = clusters.filter(~pl.col("is_kept"))
    return removed.select(
        "doc_id",
        pl.lit("cleaned").alias("stage"),
        (pl.lit("dedup:") + pl.col("method")).alias("rule"),
        pl.col("similarity").alias("value"),
        pl.when(pl.col("method") == "exact")
        .then(pl.lit(1.0))
        .otherwise(pl.lit(threshold))
        .alias("threshold"),
        (pl.lit("duplicate of ") + pl.col("kept_doc_id")).alias("detail"),
    )
