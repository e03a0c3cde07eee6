"""A version that fails a blocking check never becomes current: not for later runs, not for the
sensor or the nightly schedules, and not for the stages downstream."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from orchestration.runner import ensure_instance, register_shards, run_corpus, run_shard
from resources.lake import Lake
from tests.conftest import SAMPLE_CRAWL

SHARD = "site.warc.gz"
ENGLISH_ONLY = {
    "ops": {"cleaned_documents": {"config": {"languages": ["en"], "max_drop_share": 0.8}}}
}


@pytest.fixture
def crawl(tmp_path: Path, foundry_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "crawl"
    folder.mkdir()
    monkeypatch.setenv("FOUNDRY_CRAWL_DIR", str(folder))
    return folder


def test_a_shard_the_filters_drop_entirely_fails_and_the_last_good_version_stays(
    crawl: Path, foundry_home: Path
) -> None:
    lake = Lake(home=str(foundry_home))
    (crawl / SHARD).write_bytes((SAMPLE_CRAWL / "debian-faq-en.warc.gz").read_bytes())
    register_shards(ensure_instance())
    assert run_shard(SHARD, ENGLISH_ONLY)
    [good] = lake.files("cleaned_documents", partitions=[SHARD])
    assert good.row_count > 0

    # The same shard, re-crawled: now German and French pages, which an English-only run drops
    # (but for the few English pages among them). gzip members concatenate into one WARC.
    pages = [(SAMPLE_CRAWL / f"debian-faq-{lang}.warc.gz").read_bytes() for lang in ("de", "fr")]
    (crawl / SHARD).write_bytes(b"".join(pages))
    assert not run_shard(SHARD, ENGLISH_ONLY), "the blocking contract stops the run"

    [current] = lake.files("cleaned_documents", partitions=[SHARD])
    assert current.version == good.version, "the failed version did not become current"
    history = lake.catalog.history("cleaned_documents")
    [rejected] = {h["version"]: h for h in history if not h["is_current"]}.values()
    reasons = json.loads(rejected["metadata"])["rejected"]
    assert "drop_share" in reasons["contract"]["failed_expectations"]
    assert Path(rejected["path"]).exists(), "kept on disk for the audit"
    report = json.loads((Path(rejected["path"]).parent / "checks.json").read_text())
    assert report["checks"]["contract"]["passed"] is False
    assert all(r["success"] for r in report["great_expectations"]), "only the drop share failed"
    assert {r["table"] for r in report["great_expectations"]} == {"documents", "dropped"}

    check = ensure_instance().get_latest_asset_check_evaluation_record(
        dg.AssetCheckKey(dg.AssetKey("cleaned_documents"), "contract")
    )
    assert check is not None and check.evaluation is not None
    assert not check.evaluation.passed
    failures = check.evaluation.metadata["failures"].data
    assert (
        failures[0]["expectation"].startswith("drop_share 0.")
        and "> 0.8" in failures[0]["expectation"]
    )
    assert failures[0]["unexpected_count"] >= 20, "how many rows were dropped"

    # Downstream reads the last good version, never the rejected one.
    assert run_corpus(assets=["duplicate_clusters"])
    dedup = ensure_instance().get_latest_materialization_event(dg.AssetKey("duplicate_clusters"))
    assert dedup.asset_materialization.metadata["rows_in"].value == good.row_count
