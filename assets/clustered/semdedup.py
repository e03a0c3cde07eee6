"""SemDeDup inside each cluster, in fixed-size blocks, over vectors spilled to disk.

While documents are assigned shard by shard, each one's vector, distance and id is appended to
its cluster's spill files. Afterwards each cluster is compared block against block (tiles of
`block` x `block` cosines), so memory holds two blocks and a flag per member, never the
(N/k)^2 matrix, and near-copies in different shards or blocks still meet. The rule is NeMo
Curator's default, applied exactly as the one-matrix greedy would: members ordered hardest
first (farthest from the centroid); each member still present removes every later member at or
above the threshold.

Cost: the comparisons of one cluster grow with the square of its size (as in SemDeDup itself);
the vectors are read from the spill through a memory map, so the pages held are bounded by the
largest cluster's vectors (dimension x 4 bytes per member), which the kernel may evict.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

Removal = tuple[str, str, float]  # (removed doc_id, kept doc_id, cosine)


class ClusterSpill:
    """Per-cluster append-only files: float32 vectors, float32 distances, one id per line."""

    def __init__(self, folder: Path, dimension: int) -> None:
        self.folder, self.dimension = folder, dimension
        folder.mkdir(parents=True, exist_ok=True)
        self.sizes: dict[int, int] = {}

    def append(
        self, doc_ids: list[str], labels: np.ndarray, distances: np.ndarray, vectors: np.ndarray
    ) -> None:
        for cluster_id in np.unique(labels):
            rows = np.flatnonzero(labels == cluster_id)
            c = int(cluster_id)
            with open(self._path(c, "vec"), "ab") as f:
                np.ascontiguousarray(vectors[rows], dtype=np.float32).tofile(f)
            with open(self._path(c, "dist"), "ab") as f:
                np.asarray(distances[rows], dtype=np.float32).tofile(f)
            with open(self._path(c, "ids"), "a", encoding="utf-8") as f:
                f.write("".join(f"{doc_ids[i]}\n" for i in rows))
            self.sizes[c] = self.sizes.get(c, 0) + len(rows)

    def clusters(self) -> list[int]:
        return sorted(self.sizes)

    def vectors(self, cluster_id: int) -> np.ndarray:
        n = self.sizes[cluster_id]
        path = self._path(cluster_id, "vec")
        return np.memmap(path, dtype=np.float32, mode="r", shape=(n, self.dimension))

    def distances(self, cluster_id: int) -> np.ndarray:
        return np.fromfile(self._path(cluster_id, "dist"), dtype=np.float32)

    def doc_ids(self, cluster_id: int) -> list[str]:
        return self._path(cluster_id, "ids").read_text(encoding="utf-8").splitlines()

    def _path(self, cluster_id: int, kind: str) -> Path:
        return self.folder / f"{cluster_id}.{kind}"


def semdedup_spill(spill: ClusterSpill, threshold: float, block: int) -> Iterator[Removal]:
    """Every cluster of the spill, one after another."""
    for cluster_id in spill.clusters():
        found = blockwise_duplicates(
            spill.vectors(cluster_id), spill.distances(cluster_id), threshold, block
        )
        if found:
            ids = spill.doc_ids(cluster_id)
            yield from ((ids[r], ids[k], s) for r, k, s in found)


def blockwise_duplicates(
    vectors: np.ndarray, distances: np.ndarray, threshold: float, block: int
) -> list[tuple[int, int, float]]:
    """(removed row, kept row, cosine) within one cluster, comparing `block`-sized tiles.

    Rows are visited hardest first; a row of block I that survived every earlier block and its
    own block removes the later rows it is close to, the first such survivor naming itself."""
    order = np.argsort(-np.asarray(distances), kind="stable")
    n = len(order)
    gone = np.zeros(n, dtype=bool)  # by position in `order`
    removed: list[tuple[int, int, float]] = []
    starts = range(0, n, block)
    for start in starts:
        stop = min(start + block, n)
        rows = _gather(vectors, order[start:stop])
        _within_block(rows, start, order, gone, threshold, removed)
        alive = np.flatnonzero(~gone[start:stop])
        if len(alive) == 0:
            continue
        for later in range(stop, n, block):
            end = min(later + block, n)
            positions = np.arange(later, end)
            open_ = positions[~gone[later:end]]
            if len(open_) == 0:
                continue
            others = _gather(vectors, order[open_])
            sims = rows[alive] @ others.T
            hit = sims >= threshold
            columns = np.flatnonzero(hit.any(axis=0))
            first = hit[:, columns].argmax(axis=0)
            for column, i in zip(columns, first, strict=True):
                j = open_[column]
                gone[j] = True
                kept = start + alive[i]
                removed.append((int(order[j]), int(order[kept]), float(sims[i, column])))
    return removed


def _gather(vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """vectors[rows] in the given order, read from the memory map in ascending row order."""
    ascending = np.argsort(rows, kind="stable")
    data = np.asarray(vectors[rows[ascending]], dtype=np.float32)
    out = np.empty_like(data)
    out[ascending] = data
    return out


def _within_block(
    rows: np.ndarray,
    start: int,
    order: np.ndarray,
    gone: np.ndarray,
    threshold: float,
    removed: list[tuple[int, int, float]],
) -> None:
    sims = rows @ rows.T
    for i in range(len(rows)):
        if gone[start + i]:
            continue
        for j in np.flatnonzero(sims[i, i + 1 :] >= threshold) + i + 1:
            if not gone[start + j]:
                gone[start + j] = True
                removed.append((int(order[start + j]), int(order[start + i]), float(sims[i, j])))
