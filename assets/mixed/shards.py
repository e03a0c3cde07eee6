"""Mixture shards in two formats training stacks read: Parquet and JSONL.gz (text, id, metadata)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl

SHARD_ROWS = 10_000


def write_shards(samples: pl.DataFrame, out_dir: Path, seed: int) -> pl.DataFrame:
    """Shuffle once (seeded) so each shard is a fair slice of the mixture; return (id, shard)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shuffled = samples.sample(fraction=1.0, shuffle=True, seed=seed)
    placed = []
    for index, start in enumerate(range(0, max(shuffled.height, 1), SHARD_ROWS)):
        part = shuffled.slice(start, SHARD_ROWS)
        name = f"mixture-{index:05d}"
        part.select("id", "text", "metadata").write_parquet(out_dir / f"{name}.parquet")
        with gzip.open(out_dir / f"{name}.jsonl.gz", "wt", encoding="utf-8") as fh:
            for row in part.select("id", "text", "metadata").iter_rows(named=True):
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        placed.append(part.select("id", pl.lit(name).alias("shard")))
    return pl.concat(placed)
