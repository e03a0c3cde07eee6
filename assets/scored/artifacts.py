"""Trained scorers as versioned lake artifacts, reused while what they were trained on is unchanged.

A trained asset stores its model file beside its tables and a `metrics` table whose rows carry
the fingerprint of its inputs (training ids and texts' ids, configuration, code version). When a
re-run computes the same fingerprint, the stored version stays current and nothing is retrained.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import polars as pl

from resources.lake import Lake


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts (ids are sorted by the caller where order is
    irrelevant)."""
    encoded = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(encoded.encode(), digest_size=16).hexdigest()


def ids_digest(ids: Iterable[str]) -> str:
    """One hash for a set of document ids, independent of their order."""
    digest = hashlib.blake2b(digest_size=16)
    for doc_id in sorted(ids):
        digest.update(doc_id.encode())
        digest.update(b"\x00")
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredArtifact:
    """The current version of a trained asset: its metrics rows and its folder."""

    fingerprint: str
    metrics: pl.DataFrame
    folder: str


def current_artifact(lake: Lake, asset: str) -> StoredArtifact | None:
    if not lake.has(asset, "metrics"):
        return None
    files = lake.files(asset, "metrics")
    metrics = lake.scan(asset, "metrics").collect()
    if metrics.is_empty():
        return None
    return StoredArtifact(metrics["fingerprint"][0], metrics, posixpath.dirname(files[0].path))


def reusable(stored: StoredArtifact | None, wanted: str, lake: Lake, filename: str) -> bool:
    """The stored version was trained on exactly these inputs and its model file is there."""
    return (
        stored is not None
        and stored.fingerprint == wanted
        and lake.filesystem.exists(posixpath.join(stored.folder, filename))
    )


def save_model(model: Any, path: Path) -> None:
    joblib.dump(model, path, compress=3)


def load_model(lake: Lake, folder: str, filename: str) -> Any:
    """Only files this pipeline wrote into its own lake are loaded (joblib unpickles)."""
    with lake.filesystem.open(posixpath.join(folder, filename), "rb") as fh:
        return joblib.load(io.BytesIO(fh.read()))


def sample_keys(ids: Iterable[str], seed: int) -> np.ndarray:
    """A seeded 64-bit hash per id: the order every sample of this stage draws in."""
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(f"{seed}:{d}".encode(), digest_size=8).digest(), "big")
            for d in ids
        ),
        dtype=np.uint64,
    )


def stable_sample(ids: Iterable[str], k: int, seed: int) -> list[str]:
    """Bottom-k by a seeded hash: the same ids on every run, and adding documents changes the
    sample only where a newcomer hashes lower, so trained artifacts stay reusable."""
    ids = list(ids)
    order = np.lexsort((np.array(ids, dtype=object), sample_keys(ids, seed))) if ids else []
    return [ids[i] for i in order[: max(k, 0)]]


class BottomK:
    """The `k` rows with the lowest seeded hash of their doc_id (per `by` group if given), kept
    while frames stream past: the same rows as `stable_sample` over everything offered, in
    memory bounded by k (times the number of groups), whatever the corpus size."""

    KEY = "_sample_key"

    def __init__(self, k: int, seed: int, by: str | None = None) -> None:
        self.k, self.seed, self.by = max(k, 0), seed, by
        self._kept: pl.DataFrame | None = None

    def offer(self, frame: pl.DataFrame) -> None:
        if frame.is_empty() or self.k == 0:
            return
        keyed = frame.with_columns(pl.Series(self.KEY, sample_keys(frame["doc_id"], self.seed)))
        if self.by is None and self._kept is not None and self._kept.height >= self.k:
            keyed = keyed.filter(pl.col(self.KEY) <= self._kept[self.KEY].max())
            if keyed.is_empty():
                return
        merged = keyed if self._kept is None else pl.concat([self._kept, keyed], how="diagonal")
        merged = merged.sort(self.KEY, "doc_id")
        rank = pl.int_range(pl.len()).over(self.by) if self.by else pl.int_range(pl.len())
        self._kept = merged.filter(rank < self.k)

    @property
    def frame(self) -> pl.DataFrame | None:
        """The sample so far in hash order, without its key column (None: nothing offered)."""
        return None if self._kept is None else self._kept.drop(self.KEY)
