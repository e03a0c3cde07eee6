"""Ids, the shared measures and the data contracts every stage is checked with."""

from __future__ import annotations

import polars as pl

from assets.contracts import Contract, contract_check, drop_share_failures, validate
from assets.documents import content_hash, make_doc_id
from assets.measures import heuristic_signals


def test_doc_ids_are_stable_and_depend_on_origin_and_content() -> None:
    a = make_doc_id("http://x/a|rec1", "text")
    assert a == make_doc_id("http://x/a|rec1", "text")
    assert a != make_doc_id("http://x/b|rec1", "text")
    assert a != make_doc_id("http://x/a|rec1", "text!")
    assert content_hash("Hello   World\n") == content_hash("hello world")


def test_contract_catches_duplicate_ids_nulls_and_ranges() -> None:
    frame = pl.LazyFrame(
        {"doc_id": ["a", "a", None], "score": [0.5, 2.0, 0.1], "text": ["x", None, "y"]}
    )
    failures = validate(
        frame,
        Contract(
            columns=("doc_id", "score", "text"),
            not_null=("doc_id", "text"),
            ranges={"score": (0, 1)},
        ),
    )
    joined = " ".join(f.line() for f in failures)
    assert "unique(documents.doc_id, 2 unexpected)" in joined
    assert "not_be_null(documents.doc_id" in joined and "not_be_null(documents.text" in joined
    assert "between(documents.score, 1 unexpected)" in joined
    out_of_range = next(f for f in failures if "between" in f.expectation)
    assert out_of_range.examples == ("2.0",), "the auditor sees the offending value"
    [missing] = validate(frame, Contract(columns=("missing",)))
    assert missing.line() == "missing columns ['missing'](documents)"


def test_drop_share_fails_a_stage_that_drops_almost_everything() -> None:
    contract = Contract(columns=("doc_id",))
    assert drop_share_failures(contract, rows_in=100, dropped=95) == []
    [failure] = drop_share_failures(contract, rows_in=100, dropped=96)
    assert failure.expectation == "drop_share 0.96 > 0.95"
    assert drop_share_failures(contract, rows_in=10, dropped=10) == [], "too small to judge"
    assert drop_share_failures(Contract(("doc_id",), max_drop_share=None), 100, 100) == []


def test_signals_measure_what_they_name() -> None:
    s = heuristic_signals("The cat sat.\nThe cat sat.\nA dog ran")
    assert s["n_words"] == 9
    assert abs(s["dup_line_ratio"] - 1 / 3) < 1e-9
    assert abs(s["line_punct_ratio"] - 2 / 3) < 1e-9


def test_contract_checks_a_large_table_in_batches_and_ids_across_them(
    tmp_path, monkeypatch
) -> None:
    """Batches bound the memory GX needs; a duplicate id split over two files and two batches is
    still caught (out of core, in DuckDB), and counts and examples add up over batches."""
    import assets.contracts as contracts

    monkeypatch.setattr(contracts, "BATCH_ROWS", 100)
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    ids = [f"d{i}" for i in range(250)]
    pl.DataFrame({"doc_id": ids, "score": [0.5] * 249 + [3.0]}).write_parquet(first)
    pl.DataFrame({"doc_id": ["d7", "e1"], "score": [-1.0, 0.2]}).write_parquet(second)
    paths = [str(first), str(second)]
    contract = Contract(columns=("doc_id", "score"), ranges={"score": (0, 1)})
    record: list[dict] = []
    scan = pl.scan_parquet(paths)
    failures = {f.expectation: f for f in validate(scan, contract, record=record, paths=paths)}
    unique = failures["expect_column_values_to_be_unique"]
    assert unique.unexpected_count == 2 and unique.examples == ("d7",)
    between = failures["expect_column_values_to_be_between"]
    assert between.unexpected_count == 2 and set(between.examples) == {"3.0", "-1.0"}
    assert max(r["result"].get("batches", 1) for r in record) == 3
    clean = pl.scan_parquet(str(first)).head(200)
    assert validate(clean, contract) == []


def test_a_dropped_row_without_a_rule_fails_the_contract(tmp_path) -> None:
    """The dropped table is checked as well: a drop without its reason is not an audit trail."""
    documents, dropped = tmp_path / "documents.parquet", tmp_path / "dropped.parquet"
    pl.DataFrame({"doc_id": ["a", "b"]}).write_parquet(documents)
    reasons = {"doc_id": ["c", "d"], "stage": ["cleaned", "cleaned"], "rule": ["c4", None]}
    extra = {"value": [1.0, 2.0], "threshold": [0.0, 0.0], "detail": [None, None]}
    pl.DataFrame({**reasons, **extra}).write_parquet(dropped)
    check = contract_check(
        "cleaned_documents", [str(documents)], Contract(columns=("doc_id",)), [str(dropped)]
    )
    assert not check.passed
    [failure] = check.metadata["failures"].data
    assert failure["table"] == "dropped" and failure["column"] == "rule"
    assert failure["unexpected_count"] == 1
    pl.DataFrame({**reasons, "rule": ["c4", "gopher"], **extra}).write_parquet(dropped)
    assert contract_check(
        "cleaned_documents", [str(documents)], Contract(columns=("doc_id",)), [str(dropped)]
    ).passed
