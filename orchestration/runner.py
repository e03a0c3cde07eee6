"""Materialize the pipeline outside the UI: every shard's ingest, then the corpus-wide stages.

This is what `foundry run` does; it uses the same jobs, instance and run history as the UI, so
runs started here show up in `dagster dev` and vice versa.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import dagster as dg

from resources.crawl import CrawlSource
from resources.settings import dagster_home

INSTANCE_YAML = """\
telemetry:
  enabled: false
# GPU steps share one pool; `dagster instance concurrency set gpu N` sets how many run at once.
"""


@dataclass(frozen=True)
class RunSummary:
    shards: list[str]
    failed: list[str]
    corpus_ok: bool


def ensure_instance() -> dg.DagsterInstance:
    """A persistent Dagster instance inside FOUNDRY_HOME, shared with `dagster dev`."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def ingest_job() -> dg.JobDefinition:
    from orchestration.definitions import defs

    return defs.resolve_job_def("ingest_shard")


def corpus_job() -> dg.JobDefinition:
    from orchestration.definitions import defs

    return defs.resolve_job_def("build_corpus")


def register_shards(instance: dg.DagsterInstance) -> list[str]:
    shards = CrawlSource().list_shards()
    if not shards:
        raise RuntimeError(f"No crawl shards found in {CrawlSource().location}")
    known = set(instance.get_dynamic_partitions("crawl_shards"))
    new = [s for s in shards if s not in known]
    if new:
        instance.add_dynamic_partitions("crawl_shards", new)
    return shards


def run_shard(shard: str, run_config: dict | None = None) -> bool:
    instance = ensure_instance()
    result = dg.execute_job(
        dg.reconstructable(ingest_job),
        instance,
        run_config=run_config,
        tags={"dagster/partition": shard, "foundry/launched_by": "foundry run"},
    )
    return result.success


def run_corpus(run_config: dict | None = None, assets: list[str] | None = None) -> bool:
    """One run of the corpus job: every corpus asset, or only ``assets``."""
    instance = ensure_instance()
    result = dg.execute_job(
        dg.reconstructable(corpus_job),
        instance,
        run_config=run_config,
        tags={"foundry/launched_by": "foundry run"},
        asset_selection=[dg.AssetKey(name) for name in assets] if assets else None,
    )
    return result.success


def run_pipeline(
    parallel: int = 2, shard_config: dict | None = None, corpus_config: dict | None = None
) -> RunSummary:
    """Shards in parallel runs (each its own process), then one corpus run if all succeeded."""
    instance = ensure_instance()
    shards = register_shards(instance)
    with ProcessPoolExecutor(max_workers=max(parallel, 1), mp_context=get_context("spawn")) as pool:
        results = list(pool.map(run_shard, shards, [shard_config] * len(shards)))
    failed = [s for s, ok in zip(shards, results, strict=True) if not ok]
    corpus_ok = not failed and run_corpus(corpus_config)
    return RunSummary(shards, failed, corpus_ok)


def home_paths() -> dict[str, Path]:
    from resources.settings import foundry_home

    home = foundry_home()
    return {
        "home": home,
        "lake": home / "lake",
        "catalog": home / "catalog.duckdb",
        "dagster": dagster_home(),
    }
