"""A trace reads the versions a mixture was built from, not whatever is current today."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from assets.documents import DROPPED_SCHEMA
from orchestration.lineage import UnknownMixtureError, trace_document
from resources.lake import Lake


def publish(lake: Lake, asset: str, tables: dict[str, pl.DataFrame], meta: dict | None = None):
    with lake.publish(asset, run_id="test", metadata=meta) as out:
        for name, frame in tables.items():
            out.write(name, frame, DROPPED_SCHEMA if name == "dropped" else frame.to_arrow().schema)
    return lake.files(asset, next(iter(tables)))[0].version


def cleaned(text: str) -> dict[str, pl.DataFrame]:
    return {"documents": pl.DataFrame({"doc_id": ["doc-a"], "text": [text], "language": ["en"]})}


def mixture(upstream: dict[str, list[str]], domain: str) -> tuple[dict, dict]:
    samples = pl.DataFrame({"sample_id": ["doc-a-0"], "doc_id": ["doc-a"], "domain": [domain]})
    return {"documents": samples}, {"upstream_versions": upstream}


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(home=str(tmp_path))


def test_a_trace_reads_the_upstream_versions_its_mixture_pins(lake: Lake) -> None:
    first = publish(lake, "cleaned_documents", cleaned("first cleaning"))
    old_mixture = publish(lake, "training_mixture", *mixture({"cleaned_documents": [first]}, "c0"))
    second = publish(lake, "cleaned_documents", cleaned("second cleaning"))

    trace = trace_document(lake.catalog, "doc-a-0")  # the current mixture still pins `first`
    assert dict(trace.steps)["cleaned"][0]["language"] == "en"
    assert trace.versions["cleaned_documents"] == [first]

    new_mixture = publish(lake, "training_mixture", *mixture({"cleaned_documents": [second]}, "c1"))
    assert trace_document(lake.catalog, "doc-a-0").versions["cleaned_documents"] == [second]
    old = trace_document(lake.catalog, "doc-a-0", mixture=old_mixture)
    assert old.versions == {"training_mixture": [old_mixture], "cleaned_documents": [first]}
    assert dict(old.steps)["mixture samples"][0]["domain"] == "c0"
    assert new_mixture != old_mixture


def test_an_unknown_mixture_version_is_a_clear_error(lake: Lake) -> None:
    publish(lake, "training_mixture", *mixture({}, "c0"))
    with pytest.raises(UnknownMixtureError, match="no training_mixture version 'nope'"):
        trace_document(lake.catalog, "doc-a-0", mixture="nope")


def test_views_of_tables_a_version_no_longer_writes_are_dropped(lake: Lake) -> None:
    rounds = pl.DataFrame({"round": [1]})
    publish(lake, "training_mixture", {**mixture({}, "c0")[0], "search_rounds": rounds})
    publish(lake, "training_mixture", mixture({}, "c1")[0])
    with lake.catalog.connect(read_only=True) as con:
        views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    assert "training_mixture" in views and "training_mixture__search_rounds" not in views
