"""Checkpoints go once a committed version holds their rows, and only then."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from assets.documents import DROPPED_SCHEMA
from assets.rephrased.checkpoints import (
    ASSET,
    FOLDED,
    FOLDED_SCHEMA,
    finished_work,
    prune_folded,
)
from assets.rephrased.schema import REPHRASED_SCHEMA
from resources.lake import Lake

EMPTY = {"documents": REPHRASED_SCHEMA.empty_table(), "dropped": DROPPED_SCHEMA.empty_table()}


def _version(lake: Lake, folded: list[str], *, commit: bool) -> None:
    with lake.stage(ASSET) as out:
        out.table("documents", REPHRASED_SCHEMA)
        out.table("dropped", DROPPED_SCHEMA)
        out.write(FOLDED, pa.table({"checkpoint": folded}, schema=FOLDED_SCHEMA), FOLDED_SCHEMA)
    if commit:
        lake.commit(out.staged)
    else:
        lake.reject(out.staged, {"contract": "failed"})


def test_only_checkpoints_a_committed_version_holds_are_deleted(tmp_path: Path) -> None:
    lake = Lake(home=str(tmp_path / "foundry"))
    assert prune_folded(lake) == 0, "nothing published yet: nothing to prune"
    for key in ("b1", "b2", "b3"):
        lake.write_checkpoint(ASSET, key, EMPTY)
    _version(lake, ["b1", "b2"], commit=True)
    _version(lake, ["b1", "b2", "b3"], commit=False)  # a version that failed its checks
    assert prune_folded(lake) == 2
    assert lake.checkpoint_keys(ASSET) == ["b3"], "the rejected version's batch stays"
    assert finished_work(lake).fresh == ("b3",)
    assert prune_folded(lake) == 0
