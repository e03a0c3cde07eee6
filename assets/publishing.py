"""How every asset publishes a version: timed, staged, checked, and only then made current.

An asset writes its tables inside `Publication.write()`; the version lands on storage but no
reader sees it. `Publication.results()` then runs the great-expectations contract and the books
balance on the staged files and commits the version only if both pass. A version that fails stays
on disk and in the catalog's history with its check results, is never current, and so never feeds
a later run, a sensor or a nightly schedule; the blocking checks stop the rest of this run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
import polars as pl

from assets.contracts import Contract, balance_check, contract_check
from assets.documents import DROPPED_SCHEMA
from assets.usage import Usage
from resources.catalog import TableVersion
from resources.lake import Lake, StagedVersion, VersionWriter

CHECK_REPORT = "checks.json"


class Publication:
    """One materialization of one asset (one partition of it, for per-shard assets).

    Made first thing in an asset: from then on the lake refuses reads of assets not in its deps."""

    def __init__(
        self,
        context: dg.AssetExecutionContext,
        lake: Lake,
        contract: Contract,
        code_version: str,
        partition: str | None = None,
    ) -> None:
        self.started = time.perf_counter()
        self.usage = Usage()
        self.asset = context.asset_key.to_user_string()
        self.run_id = context.run.run_id
        self.lake, self.contract, self.code_version = lake, contract, code_version
        self.partition = partition
        self.log = context.log
        self.staged: StagedVersion | None = None
        spec = context.assets_def.specs_by_key[context.asset_key]
        lake.declare_reads(self.asset, [dep.asset_key.to_user_string() for dep in spec.deps])

    @contextmanager
    def write(self, metadata: dict[str, Any] | None = None) -> Iterator[VersionWriter]:
        """Stage a new version; a stage that dropped nothing still gets its (empty) `dropped`."""
        with self.lake.stage(
            self.asset,
            self.partition,
            run_id=self.run_id,
            code_version=self.code_version,
            metadata=metadata,
        ) as out:
            yield out
            out.table("dropped", DROPPED_SCHEMA)
        self.staged = out.staged

    @property
    def folder(self) -> str:
        """Folder of the version this materialization reports: the staged one, else current."""
        return self._table("documents").path.rsplit("/", 1)[0]

    def scan(self, table: str = "documents") -> pl.LazyFrame:
        """A table of the staged version (or of the current one when nothing was staged)."""
        return pl.scan_parquet(self._table(table).path, glob=False)

    def results(
        self,
        rows_in: int,
        metadata: dict[str, Any] | None = None,
        *,
        kept: int | None = None,
        data_version: dg.DataVersion | None = None,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """The materialization and both checks; commits the staged version if they pass.

        `kept` defaults to the rows of the `documents` table; assets whose documents table is not
        one row per kept input (samples with repeats, cluster members) pass their own count."""
        documents, dropped = self._table("documents"), self._table("dropped")
        kept = documents.row_count if kept is None else kept
        expectations: list[dict] = []
        contract = contract_check(
            self.asset,
            [documents.path],
            self.contract,
            [dropped.path],
            rows_in=rows_in,
            dropped=dropped.row_count,
            record=expectations,
        )
        balance = balance_check(self.asset, rows_in, kept, dropped.row_count)
        report = self._write_check_report(expectations, contract, balance)
        self._decide(contract, balance)
        seconds = time.perf_counter() - self.started
        where = f" {self.partition}" if self.partition else ""
        self.log.info(
            f"{self.asset}{where}: kept {kept}, dropped {dropped.row_count} of {rows_in} "
            f"in {seconds:.1f}s"
        )
        yield dg.MaterializeResult(
            metadata={
                "rows_in": rows_in,
                "kept": kept,
                "dropped": dropped.row_count,
                "compute_s": round(seconds, 3),
                **self.usage.figures(),
                "version_committed": self.staged is not None and contract.passed and balance.passed,
                "check_results": dg.MetadataValue.path(report) if report else "reused version",
                **(metadata or {}),
            },
            data_version=data_version,
        )
        yield contract
        yield balance

    def _write_check_report(
        self, expectations: list[dict], *checks: dg.AssetCheckResult
    ) -> str | None:
        """great-expectations' result of every expectation and both checks, kept in the version's
        own folder: the audit trail of why this version was (not) published."""
        if self.staged is None:
            return None
        report = {
            "asset": self.asset,
            "partition": self.partition,
            "version": self.staged.tables[0].version,
            "checks": {
                c.check_name: {"passed": c.passed, **{k: _plain(v) for k, v in c.metadata.items()}}
                for c in checks
            },
            "great_expectations": expectations,
        }
        path = f"{self.staged.folder}/{CHECK_REPORT}"
        self.lake.filesystem.pipe_file(path, json.dumps(report, indent=2, default=str).encode())
        return path

    def _decide(self, contract: dg.AssetCheckResult, balance: dg.AssetCheckResult) -> None:
        if self.staged is None:
            return
        if contract.passed and balance.passed:
            self.lake.commit(self.staged)
            return
        reasons = {
            check.check_name: {k: _plain(v) for k, v in check.metadata.items()}
            for check in (contract, balance)
            if not check.passed
        }
        self.lake.reject(self.staged, reasons)
        self.log.error(f"{self.asset}: version not published, failed checks {sorted(reasons)}")

    def _table(self, name: str) -> TableVersion:
        if self.staged is not None:
            table = self.staged.table(name)
            if table is None:
                raise KeyError(f"{self.asset} staged no {name!r} table")
            return table
        partitions = [self.partition] if self.partition else None
        files = self.lake.files(self.asset, name, partitions)
        if len(files) != 1:
            raise RuntimeError(f"{self.asset}/{name}: expected one current file, not {len(files)}")
        return files[0]


def _plain(value: Any) -> Any:
    """Check metadata as JSON-ready values for the catalog."""
    return getattr(value, "value", getattr(value, "data", value))
