"""The house rules: stages import only what comes before them, assets read only what they
declare, and one stage table drives the jobs, the report and the card."""

from __future__ import annotations

import ast
from pathlib import Path

import dagster as dg
import pytest

from assets.contracts import Contract
from assets.publishing import Publication
from assets.stages import ASSET_NAMES, CORPUS_ASSET_NAMES, SHARD_ASSET_NAMES, STAGE_NAMES, STAGES
from orchestration.definitions import defs
from orchestration.jobs import build_corpus_job, ingest_shard_job
from resources.lake import Lake, UndeclaredReadError

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, also inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def stage_imports(path: Path) -> set[str]:
    """The stages (packages under assets/) a file imports."""
    return {
        module.split(".")[1]
        for module in imported_modules(path)
        if module.startswith("assets.") and module.split(".")[1] in STAGE_NAMES
    }


def violations(files: list[Path], allowed: set[str]) -> list[str]:
    return [f"{f} imports stage {s}" for f in files for s in sorted(stage_imports(f) - allowed)]


def test_no_stage_imports_a_later_stage() -> None:
    found = []
    for position, stage in enumerate(STAGES):
        files = sorted((ROOT / "assets" / stage.name).glob("*.py"))
        assert files, f"no package assets/{stage.name}/"
        found += violations(files, set(STAGE_NAMES[: position + 1]))
    assert not found, "a stage imports a later one:\n" + "\n".join(found)


def test_shared_modules_and_resources_sit_below_every_stage() -> None:
    shared = [p for p in (ROOT / "assets").glob("*.py")] + list((ROOT / "resources").glob("*.py"))
    found = violations(shared, set())
    assert not found, "shared code imports a stage:\n" + "\n".join(found)


def test_the_import_check_catches_a_backward_import(tmp_path: Path) -> None:
    module = tmp_path / "dedup.py"
    module.write_text("def f():\n    from assets.scored.signals import heuristic_signals\n")
    assert violations([module], {"raw", "cleaned"}) == [f"{module} imports stage scored"]


def test_the_stage_table_is_the_graph() -> None:
    specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
    assert set(specs) == set(ASSET_NAMES)
    for stage in STAGES:
        for asset in stage.assets:
            assert specs[asset].group_name == stage.name
    for asset, spec in specs.items():
        for dep in spec.deps:
            upstream = dep.asset_key.to_user_string()
            assert ASSET_NAMES.index(upstream) < ASSET_NAMES.index(asset), (asset, upstream)
    shard_job = set(ingest_shard_job.selection.resolve(defs.resolve_asset_graph()))
    corpus_job = set(build_corpus_job.selection.resolve(defs.resolve_asset_graph()))
    assert shard_job == {dg.AssetKey(a) for a in SHARD_ASSET_NAMES}
    assert corpus_job == {dg.AssetKey(a) for a in CORPUS_ASSET_NAMES}


def test_every_stage_has_its_own_tests() -> None:
    for stage in STAGE_NAMES:
        assert list((ROOT / "tests" / stage).glob("test_*.py")), f"no tests/{stage}/"


def _reader(name: str, deps: list[str], reads: str):
    @dg.asset(name=name, deps=deps)
    def reader(context, lake: Lake) -> dg.MaterializeResult:
        Publication(context, lake, Contract(columns=("doc_id",)), "test-1")
        lake.has(reads)
        return dg.MaterializeResult()

    return reader


@dg.asset(name="upstream_table")
def _upstream() -> None:
    return None


def test_reading_an_undeclared_asset_fails_the_step(tmp_path: Path) -> None:
    lake = Lake(home=str(tmp_path))
    declared = _reader("declares_it", ["upstream_table"], reads="upstream_table")
    undeclared = _reader("reads_behind_its_back", [], reads="upstream_table")
    assert dg.materialize([declared], resources={"lake": lake}, selection=[declared]).success
    with pytest.raises(UndeclaredReadError, match="add 'upstream_table' to the deps"):
        dg.materialize([undeclared], resources={"lake": lake})
