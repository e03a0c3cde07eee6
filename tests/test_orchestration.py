"""The Definitions load, and the crawl sensor turns new files into partitions and runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg

from orchestration.definitions import defs
from orchestration.sensors import new_crawl_shards
from resources.crawl import CrawlSource
from tests.conftest import SAMPLE_CRAWL


def test_definitions_load_with_six_stage_groups() -> None:
    dg.Definitions.validate_loadable(defs)
    groups = {spec.group_name for spec in defs.resolve_all_asset_specs()}
    assert groups == {"raw", "cleaned", "rephrased", "clustered", "scored", "mixed"}
    rephrase = defs.resolve_assets_def("rephrased_documents")
    assert rephrase.op.pool == "gpu"
    assert defs.resolve_schedule_def("nightly_rebuild").cron_schedule == "0 2 * * *"


def test_sensor_adds_a_partition_per_new_shard(tmp_path: Path) -> None:
    crawl = tmp_path / "crawl"
    crawl.mkdir()
    shutil.copy(SAMPLE_CRAWL / "debian-faq-en.warc.gz", crawl)
    (crawl / "notes.txt").write_text("not a shard")
    instance = dg.DagsterInstance.ephemeral()
    resources = {"crawl": CrawlSource(location=str(crawl))}
    context = dg.build_sensor_context(instance=instance, resources=resources)
    result = new_crawl_shards(context)
    assert [r.partition_key for r in result.run_requests] == ["debian-faq-en.warc.gz"]
    instance.add_dynamic_partitions("crawl_shards", ["debian-faq-en.warc.gz"])
    shutil.copy(SAMPLE_CRAWL / "debian-faq-de.warc.gz", crawl)
    context = dg.build_sensor_context(instance=instance, resources=resources)
    result = new_crawl_shards(context)
    assert [r.partition_key for r in result.run_requests] == ["debian-faq-de.warc.gz"]
    assert result.dynamic_partitions_requests[0].partition_keys == ["debian-faq-de.warc.gz"]


def test_workspace_yaml_loads_the_one_code_location(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Validation successful for code location orchestration.definitions" in (
        result.stdout + result.stderr
    )
