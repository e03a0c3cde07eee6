"""Data contracts checked on every stage: great-expectations suites plus the books-balance rule.

Checks run inside each asset (per partition) rather than as separate unpartitioned checks, which
would load every partition at once. GX has no polars engine, so only the columns a suite needs
(never `text`) are handed to it as pandas, in batches of at most `BATCH_ROWS` rows, so a corpus-wide
table is checked in bounded memory. Uniqueness spans batches, so it is one out-of-core DuckDB
GROUP BY over the table's files (spilling past `DUCKDB_MEMORY`), reported in GX's result form.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import polars as pl
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, MetadataValue

log = logging.getLogger(__name__)


# The size of a crawl shard: a corpus-wide table is checked with the memory of one shard's check
# (measured on the 200k-document scale corpus: 496 MB peak at 20,000 rows, 589 MB at 200,000;
# 3 s more CPU per 200,000 rows for the extra batches).
BATCH_ROWS = 20_000
DUCKDB_MEMORY = "256MB"
EXAMPLES = 5
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
    scan = pl.scan_parquet(list(paths), glob=False)
    failures = validate(scan, contract, record=record, paths=paths)
    if dropped_paths:
        scan = pl.scan_parquet(list(dropped_paths), glob=False)
        failures += validate(scan, DROPPED_CONTRACT, "dropped", record, dropped_paths)
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
    paths: Sequence[str] | None = None,
) -> list[Failure]:
    """Run the contract as a GX suite; returns the failed expectations, empty when all pass.

    `paths`: the Parquet files behind `frame`, which lets uniqueness run out of core."""
    present = frame.collect_schema().names()
    missing = [c for c in contract.columns if c not in present]
    if missing:
        return [Failure(table, f"missing columns {missing}")]
    failures = [_unique(frame, column, table, record, paths) for column in contract.unique]
    wanted = sorted({*contract.not_null, *contract.ranges, *contract.allowed})
    # Long text never goes to pandas: its length keeps the nulls a suite checks for.
    columns = [pl.col(c).str.len_chars() if c == "text" else pl.col(c) for c in wanted]
    per_batch: list[list[dict]] = []
    if wanted:
        for batch in frame.select(columns).collect_batches(chunk_size=BATCH_ROWS):
            if batch.height:
                per_batch.append(_run_suite(batch.to_pandas(), contract, table))
    merged = _merge(per_batch)
    if record is not None:
        record.extend(merged)
    return [f for f in failures if f is not None] + [
        _failure(table, result) for result in merged if not result["success"]
    ]


def _unique(
    frame: pl.LazyFrame,
    column: str,
    table: str,
    record: list[dict] | None,
    paths: Sequence[str] | None,
) -> Failure | None:
    """Values of `column` seen more than once, across the whole table, counted out of core."""
    query = (
        f"SELECT {column} AS value, count(*) AS n FROM {{source}} "
        f"WHERE {column} IS NOT NULL GROUP BY ALL HAVING count(*) > 1 ORDER BY n DESC"
    )
    if paths and not any("://" in p for p in paths):
        import duckdb

        con = duckdb.connect()
        con.execute(f"SET memory_limit = '{DUCKDB_MEMORY}'")
        files = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
        repeated = pl.from_arrow(
            con.sql(query.format(source=f"read_parquet([{files}])")).to_arrow_table()
        )
        con.close()
    else:
        counts = frame.group_by(column).agg(pl.len().alias("n"))
        repeated = counts.filter(pl.col(column).is_not_null() & (pl.col("n") > 1)).collect()
        repeated = repeated.rename({column: "value"}).sort("n", descending=True)
    unexpected = int(repeated["n"].sum()) if repeated.height else 0
    result = {
        "table": table,
        "success": unexpected == 0,
        "expectation_config": {
            "type": "expect_column_values_to_be_unique",
            "kwargs": {"column": column},
        },
        "result": {
            "unexpected_count": unexpected,
            "partial_unexpected_list": [str(v) for v in repeated["value"].head(EXAMPLES)],
        },
    }
    if record is not None:
        record.append(result)
    return None if result["success"] else _failure(table, result)


def _merge(per_batch: list[list[dict]]) -> list[dict]:
    """One result per expectation over all batches: failed if any batch failed, counts added."""
    merged: list[dict] = []
    for results in zip(*per_batch, strict=True):
        first = results[0]
        unexpected = sum((r.get("result") or {}).get("unexpected_count") or 0 for r in results)
        examples = [
            v for r in results for v in (r.get("result") or {}).get("partial_unexpected_list", [])
        ]
        merged.append(
            {
                **first,
                "success": all(r["success"] for r in results),
                "result": {
                    **(first.get("result") or {}),
                    "unexpected_count": unexpected,
                    "partial_unexpected_list": examples[:20],
                    "batches": len(results),
                },
            }
        )
    return merged


def _failure(table: str, result: dict) -> Failure:
    config = result.get("expectation_config") or {}
    details = result.get("result") or {}
    examples = tuple(str(v)[:80] for v in details.get("partial_unexpected_list", [])[:EXAMPLES])
    return Failure(
        table,
        config.get("type", "expectation"),
        str((config.get("kwargs") or {}).get("column", "")),
        details.get("unexpected_count"),
        examples,
    )


def _run_suite(df, contract: Contract, table: str) -> list[dict]:
    """great-expectations' result (as JSON) of every non-uniqueness expectation on one batch."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    import great_expectations.expectations as gxe

    expectations: list = []
    expectations += [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in contract.not_null]
    for col, (low, high) in contract.ranges.items():
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(column=col, min_value=low, max_value=high)
        )
    for col, values in contract.allowed.items():
        expectations.append(gxe.ExpectColumnValuesToBeInSet(column=col, value_set=list(values)))
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    batch = (
        context.data_sources.add_pandas("foundry")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": df})
    )
    return [{"table": table, **batch.validate(e).to_json_dict()} for e in expectations]
