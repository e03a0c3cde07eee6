"""Data contracts checked on every stage: great-expectations suites plus the books-balance rule.

Checks run inside each asset (per partition) rather than as separate unpartitioned checks, which
would load every partition at once. GX has no polars engine, so only the columns a suite needs
(never `text`) are handed to it as pandas.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Contract:
    """What downstream stages may rely on: columns, ids and value ranges."""

    columns: tuple[str, ...]
    unique: tuple[str, ...] = ("doc_id",)
    not_null: tuple[str, ...] = ("doc_id",)
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    allowed: dict[str, tuple[str, ...]] = field(default_factory=dict)


def check_specs(asset: str) -> list[AssetCheckSpec]:
    """Both checks block: a bad stage must not feed the next one."""
    return [
        AssetCheckSpec(
            "contract",
            asset=asset,
            blocking=True,
            description="great-expectations suite: schema, non-null unique ids, value ranges",
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


def contract_check(asset: str, paths: Sequence[str], contract: Contract) -> AssetCheckResult:
    failures = validate(pl.scan_parquet(list(paths), glob=False), contract)
    return AssetCheckResult(
        check_name="contract",
        asset_key=asset,
        passed=not failures,
        severity=AssetCheckSeverity.ERROR,
        metadata={"failed_expectations": "; ".join(failures) or "none"},
    )


def validate(frame: pl.LazyFrame, contract: Contract) -> list[str]:
    """Run the contract as a GX suite; returns the failed expectations, empty when all pass."""
    present = frame.collect_schema().names()
    missing = [c for c in contract.columns if c not in present]
    if missing:
        return [f"missing columns {missing}"]
    wanted = sorted({*contract.unique, *contract.not_null, *contract.ranges, *contract.allowed})
    # Long text never goes to pandas: its length keeps the nulls a suite checks for.
    columns = [pl.col(c).str.len_chars() if c == "text" else pl.col(c) for c in wanted]
    df = frame.select(columns).collect().to_pandas()
    return _run_suite(df, contract)


def _run_suite(df, contract: Contract) -> list[str]:
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
        if not result.success:
            failures.append(f"{expectation.expectation_type}({_column(expectation)})")
    return failures


def _column(expectation) -> str:
    return str(getattr(expectation, "column", ""))
