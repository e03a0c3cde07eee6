"""Data contracts checked on every stage: great-expectations suites plus the books-balance rule.

Checks run inside each asset (per partition) rather than as separate unpartitioned checks, which
would load every partition at once. GX has no polars engine, so only the columns a suite needs
(never `text`) are handed to it as pandas.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import polars as pl
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, MetadataValue

log = logging.getLogger(__name__)


DEFAULT_MAX_DROP_SHARE = 0.95
MIN_ROWS_FOR_DROP_SHARE = 20  # below this an input is too small for a share to mean much


@dataclass(frozen=True)
class Contract:
    """What downstream stages may rely on: columns, ids, value ranges, and a bound on how much of
    its input a stage may drop (a filter that drops everything is broken, not strict)."""

    columns: tuple[str, ...]
    unique: tuple[str, ...] = ("doc_id",)
    not_null: tuple[str, ...] = ("doc_id",)
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    allowed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    max_drop_share: float | None = DEFAULT_MAX_DROP_SHARE  # None: dropping is the point


DROPPED_CONTRACT = Contract(
    columns=("doc_id", "stage", "rule", "value", "threshold", "detail"),
    unique=(),
    not_null=("doc_id", "stage", "rule"),
)


@dataclass(frozen=True)
class Failure:
    """One failed expectation, with what an auditor needs to find the bad rows."""

    table: str
    expectation: str
    column: str = ""
    unexpected_count: int | None = None
    examples: tuple = ()

    def line(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        count = f", {self.unexpected_count} unexpected" if self.unexpected_count else ""
        return f"{self.expectation}({where}{count})"


def check_specs(asset: str) -> list[AssetCheckSpec]:
    """Both checks block: a bad stage must not feed the next one."""
    return [
        AssetCheckSpec(
            "contract",
            asset=asset,
            blocking=True,
            description="great-expectations suite on the documents and dropped tables: schema, "
            "non-null unique ids, value ranges, drop share",
        ),
        AssetCheckSpec(
            "books_balance",
            asset=asset,
            blocking=True,
            description="rows in = rows kept + rows dropped (nothing leaves without a reason)",
        ),
    ]


def balance_check(asset: str, rows_in: int, kept: int, dropped: int) -> AssetCheckResult:
    return AssetCheckResult(
        check_name="books_balance",
        asset_key=asset,
        passed=rows_in == kept + dropped,
        metadata={"rows_in": rows_in, "kept": kept, "dropped": dropped},
    )


def contract_check(
    asset: str,
    paths: Sequence[str],
    contract: Contract,
    dropped_paths: Sequence[str] = (),
    rows_in: int | None = None,
    dropped: int | None = None,
    record: list[dict] | None = None,
) -> AssetCheckResult:
    """`record`, when given, receives great-expectations' own result of every expectation."""
    failures = validate(pl.scan_parquet(list(paths), glob=False), contract, record=record)
    if dropped_paths:
        scan = pl.scan_parquet(list(dropped_paths), glob=False)
        failures += validate(scan, DROPPED_CONTRACT, table="dropped", record=record)
    failures += drop_share_failures(contract, rows_in, dropped)
    return AssetCheckResult(
        check_name="contract",
        asset_key=asset,
        passed=not failures,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "failed_expectations": "; ".join(f.line() for f in failures) or "none",
            "failures": MetadataValue.json([asdict(f) for f in failures]),
        },
    )


def drop_share_failures(contract: Contract, rows_in: int | None, dropped: int | None) -> list:
    if contract.max_drop_share is None or rows_in is None or dropped is None:
        return []
    if rows_in < MIN_ROWS_FOR_DROP_SHARE or dropped <= contract.max_drop_share * rows_in:
        return []
    share = round(dropped / rows_in, 4)
    return [Failure("dropped", f"drop_share {share} > {contract.max_drop_share}", "", dropped)]


def validate(
    frame: pl.LazyFrame,
    contract: Contract,
    table: str = "documents",
    record: list[dict] | None = None,
) -> list[Failure]:
    """Run the contract as a GX suite; returns the failed expectations, empty when all pass."""
    present = frame.collect_schema().names()
    missing = [c for c in contract.columns if c not in present]
    if missing:
        return [Failure(table, f"missing columns {missing}")]
    wanted = sorted({*contract.unique, *contract.not_null, *contract.ranges, *contract.allowed})
    # Long text never goes to pandas: its length keeps the nulls a suite checks for.
    columns = [pl.col(c).str.len_chars() if c == "text" else pl.col(c) for c in wanted]
    df = frame.select(columns).collect().to_pandas()
    return _run_suite(df, contract, table, record)


def _run_suite(df, contract: Contract, table: str, record: list[dict] | None) -> list[Failure]:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    import great_expectations.expectations as gxe

    expectations: list = []
    expectations += [gxe.ExpectColumnValuesToBeUnique(column=c) for c in contract.unique]
    expectations += [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in contract.not_null]
    for col, (low, high) in contract.ranges.items():
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(column=col, min_value=low, max_value=high)
        )
    for col, values in contract.allowed.items():
        expectations.append(gxe.ExpectColumnValuesToBeInSet(column=col, value_set=list(values)))
    if df.empty:
        return []
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    batch = (
        context.data_sources.add_pandas("foundry")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": df})
    )
    failures = []
    for expectation in expectations:
        result = batch.validate(expectation)
        if record is not None:
            record.append({"table": table, **result.to_json_dict()})
        if not result.success:
            details = result.result or {}
            examples = tuple(str(v)[:80] for v in details.get("partial_unexpected_list", [])[:5])
            failures.append(
                Failure(
                    table,
                    expectation.expectation_type,
                    str(getattr(expectation, "column", "")),
                    details.get("unexpected_count"),
                    examples,
                )
            )
    return failures
