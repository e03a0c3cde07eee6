"""A version that fails a blocking check never becomes current: not for later runs, not for the
sensor or the nightly schedules, and not for the stages downstream."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from orchestration.runner import (
    ensure_instance,
    plan_run,
    register_shards,
    run_corpus,
    run_shard,
)
from resources.crawl import CrawlSource
from resources.lake import Lake, TableSink
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

    # Nothing downstream is stale for a version that never became current: the nightly plan
    # neither re-runs the shard's later steps on the same good version nor retries the shard.
    plan = plan_run(ensure_instance(), ENGLISH_ONLY)
    assert SHARD not in plan.shards and plan.current_shards == [SHARD], plan.shards

    # Downstream reads the last good version, never the rejected one.
    assert run_corpus(assets=["duplicate_clusters"])
    dedup = ensure_instance().get_latest_materialization_event(dg.AssetKey("duplicate_clusters"))
    assert dedup.asset_materialization.metadata["rows_in"].value == good.row_count


# Each per-shard step and the upstream table it reads; the step's rows in are the catalog's row
# count of that table, so a document the step loses unbalances its books.
SHARD_STEPS = [
    ("raw_documents", None),  # its rows in: the records read; the loss: a row never written
    ("cleaned_documents", "raw_documents"),
    ("minhash_signatures", "cleaned_documents"),
    ("document_embeddings", "cleaned_documents"),
    ("token_counts", "cleaned_documents"),
]


def test_a_shard_step_that_loses_a_document_fails_its_books_balance(
    crawl: Path, foundry_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """books_balance compares the step's output with its upstream version's row count in the
    catalog, not with a count the step keeps itself: a silently lost document fails the check
    and the step's last good version stays current."""
    from orchestration.definitions import defs

    lake = Lake(home=str(foundry_home))
    (crawl / SHARD).write_bytes((SAMPLE_CRAWL / "debian-faq-en.warc.gz").read_bytes())
    register_shards(ensure_instance())
    assert run_shard(SHARD)
    for asset, upstream in SHARD_STEPS:
        [good] = lake.files(asset, partitions=[SHARD])
        with monkeypatch.context() as patch:
            if upstream is None:
                _lose_first_row_written(patch)
            else:
                _lose_first_document_of(patch, upstream)
            result = dg.materialize(
                [defs.get_assets_def(asset)],
                partition_key=SHARD,
                instance=ensure_instance(),
                # defs read FOUNDRY_HOME and FOUNDRY_CRAWL_DIR at import
                resources={
                    **defs.resources,
                    "lake": lake,
                    "crawl": CrawlSource(location=str(crawl)),
                },
                raise_on_error=False,
            )
        [balance] = [
            c for c in result.get_asset_check_evaluations() if c.check_name == "books_balance"
        ]
        books = {k: v.value for k, v in balance.metadata.items()}
        assert not balance.passed, asset
        assert books["rows_in"] == books["kept"] + books["dropped"] + 1, (asset, books)
        assert lake.files(asset, partitions=[SHARD]) == [good], f"{asset}: good version stays"


def _lose_first_document_of(patch: pytest.MonkeyPatch, upstream: str) -> None:
    """A stage bug, simulated: every read of `upstream` misses its first document."""
    iter_rows, scan = Lake.iter_rows, Lake.scan

    def losing_rows(self: Lake, asset: str, *args, **kwargs):
        rows = iter_rows(self, asset, *args, **kwargs)
        if asset == upstream:
            next(rows, None)
        yield from rows

    def losing_scan(self: Lake, asset: str, *args, **kwargs):
        frame = scan(self, asset, *args, **kwargs)
        return frame.slice(1) if asset == upstream else frame

    patch.setattr(Lake, "iter_rows", losing_rows)
    patch.setattr(Lake, "scan", losing_scan)


def _lose_first_row_written(patch: pytest.MonkeyPatch) -> None:
    """A stage bug, simulated: the first document row the step appends is never written."""
    append, lost = TableSink.append, []

    def losing_append(self: TableSink, row: dict) -> None:
        if not lost and "doc_id" in row and "extractor" in row:
            lost.append(row)
            return
        append(self, row)

    patch.setattr(TableSink, "append", losing_append)
