"""End-to-end throughput on the sample crawl, and how much wall time is not stage compute.

Each asset reports `compute_s`, the time spent in its stage functions (including streaming its
rows to staging files). Everything else - process start-up, Dagster orchestration, catalog
transactions, checks - is overhead. Shards run one at a time here so the two add up to wall time.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import dagster as dg

from orchestration.jobs import STAGE_ASSET_NAMES
from resources.settings import SAMPLE_CRAWL_DIR

CORPUS_CONFIG = {"ops": {"rephrased_documents": {"config": {"max_new_documents": 4}}}}


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "foundry"
        os.environ.update(
            FOUNDRY_HOME=str(home),
            DAGSTER_HOME=str(home / "dagster"),
            FOUNDRY_CRAWL_DIR=os.environ.get("FOUNDRY_CRAWL_DIR", str(SAMPLE_CRAWL_DIR)),
        )
        from orchestration.runner import ensure_instance, run_pipeline

        started = time.perf_counter()
        summary = run_pipeline(parallel=1, corpus_config=CORPUS_CONFIG)
        wall = time.perf_counter() - started
        if summary.failed or not summary.corpus_ok:
            raise RuntimeError(f"pipeline failed: {summary}")
        compute, records = _stage_compute(ensure_instance())
    return {
        "crawl": os.environ["FOUNDRY_CRAWL_DIR"],
        "shards": len(summary.shards),
        "records": records,
        "wall_s": round(wall, 1),
        "docs_per_s": round(records / wall, 2),
        "stage_compute_s": {k: round(v, 1) for k, v in compute.items()},
        "outside_stage_compute_share": round(1 - sum(compute.values()) / wall, 3),
    }


def _stage_compute(instance: dg.DagsterInstance) -> tuple[dict[str, float], int]:
    compute: dict[str, float] = {}
    records = 0
    for name in STAGE_ASSET_NAMES:
        result = instance.fetch_materializations(dg.AssetKey(name), limit=1000)
        for record in result.records:
            meta = record.asset_materialization.metadata
            compute[name] = compute.get(name, 0.0) + float(meta["compute_s"].value)
            if name == "raw_documents":
                records += int(meta["rows_in"].value)
    return compute, records
