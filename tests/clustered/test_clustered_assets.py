"""The clustered stage's two assets on real Debian FAQ pages (three shards) in a private lake,
with the fast embedder: per-shard embeddings, a fit on a bounded sample, every corpus document
assigned exactly once, a planted cross-shard near copy removed by SemDeDup, rewrites embedded
inside `clusters` and reused on the next run."""

from __future__ import annotations

import dagster as dg
import numpy as np
import polars as pl
import pyarrow as pa
import pytest

import assets.clustered.assets as clustered_assets
from assets.cleaned.clean import Cleaned, CleaningPolicy, clean_document
from assets.cleaned.schema import CLEANED_DOCUMENTS_SCHEMA
from assets.clustered.assets import clusters, document_embeddings
from assets.documents import DROPPED_SCHEMA, make_doc_id
from assets.raw.extract import iter_documents
from assets.rephrased.schema import REPHRASED_SCHEMA
from resources.embedder import Embedder
from resources.hashing_svd import FAST_MODEL
from resources.lake import Lake
from resources.langid import LanguageIdentifier
from tests.conftest import SAMPLE_CRAWL

SHARDS = ["debian-faq-en", "debian-faq-de", "debian-faq-fr"]
SAMPLE = 24


def _cleaned_rows(shard: str) -> list[dict]:
    identify = LanguageIdentifier().identify
    rows = []
    for i, item in enumerate(iter_documents(str(SAMPLE_CRAWL / f"{shard}.warc.gz"))):
        if isinstance(item, tuple):
            text = item[1].text
            doc = {"doc_id": make_doc_id(shard, text), "shard": shard, "url": f"u{i}"}
            result = clean_document(
                {**doc, "text": text, "source_offset": i}, identify, CleaningPolicy()
            )
            if isinstance(result, Cleaned):
                rows.append(result.row)
    return rows


@pytest.fixture(scope="module")
def pages() -> dict[str, list[dict]]:
    return {shard: _cleaned_rows(shard) for shard in SHARDS}


@pytest.fixture
def lake(foundry_home, pages) -> tuple[Lake, dict]:
    """Three cleaned shards; the English shard's longest page planted again in the French
    shard with one word changed; one page removed as a duplicate; two rewrites."""
    lake = Lake(home=str(foundry_home))
    en = sorted(pages["debian-faq-en"], key=lambda r: -len(r["text"]))
    copy_text = en[0]["text"].replace("Debian", "Debian GNU/Linux", 1)
    planted = {**en[0], "doc_id": make_doc_id("planted", copy_text), "text": copy_text}
    shards = {**pages, "debian-faq-fr": [*pages["debian-faq-fr"], planted]}
    for shard, rows in shards.items():
        with lake.publish("cleaned_documents", shard) as out:
            out.write("documents", pl.DataFrame(rows), CLEANED_DOCUMENTS_SCHEMA)
    duplicate = pages["debian-faq-de"][0]["doc_id"]
    with lake.publish("duplicate_clusters") as out:
        dropped = [{"doc_id": duplicate, "stage": "cleaned", "rule": "dedup:exact"}]
        out.write("dropped", pa.Table.from_pylist(dropped, DROPPED_SCHEMA), DROPPED_SCHEMA)
    rewrites = [
        {
            "doc_id": make_doc_id("rewrite", f"In short: {row['text'][:1200]}"),
            "source_doc_id": row["doc_id"],
            "language": "en",
            "text": f"In short: {row['text'][:1200]}",
        }
        for row in en[1:3]
    ]
    with lake.publish("rephrased_documents") as out:
        out.write("documents", pa.Table.from_pylist(rewrites, REPHRASED_SCHEMA), REPHRASED_SCHEMA)
    corpus = {r["doc_id"] for rows in shards.values() for r in rows} - {duplicate}
    ids = {"corpus": corpus | {r["doc_id"] for r in rewrites}, "planted": planted["doc_id"]}
    return lake, {**ids, "original": en[0]["doc_id"], "duplicate": duplicate}


def _run(lake: Lake, instance: dg.DagsterInstance) -> dict:
    resources = {"lake": lake, "embedder": Embedder(model=FAST_MODEL)}
    for shard in SHARDS:
        result = dg.materialize(
            [document_embeddings], partition_key=shard, resources=resources, instance=instance
        )
        assert result.success
    config = {"sample_size": SAMPLE, "semdedup_block": 8, "n_clusters": 3}
    result = dg.materialize(
        [clusters],
        resources=resources,
        instance=instance,
        run_config={"ops": {"clusters": {"config": config}}},
    )
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())
    [event] = result.get_asset_materialization_events()
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def test_clusters_fit_on_a_sample_and_assign_every_document_once(lake, monkeypatch) -> None:
    lake, ids = lake
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("crawl_shards", SHARDS)
    fitted_rows: list[int] = []
    real_fit = clustered_assets.fit_or_assign

    def spy(doc_ids, vectors, previous, policy):
        fitted_rows.append(len(vectors))
        return real_fit(doc_ids, vectors, previous, policy)

    monkeypatch.setattr(clustered_assets, "fit_or_assign", spy)
    first = _run(lake, instance)

    embedded = lake.scan("document_embeddings").collect()
    assert (
        embedded["doc_id"].is_unique().all()
        and embedded["model_id"].str.starts_with(FAST_MODEL).all()
    )
    assert len(lake.files("document_embeddings")) == len(SHARDS), "one partition per shard"

    assert fitted_rows == [SAMPLE] and first["fit_sample"] == SAMPLE < len(ids["corpus"])
    assert lake.scan("clusters", "fitted_documents").collect().height == SAMPLE
    assigned = lake.scan("clusters").collect()
    assert assigned["doc_id"].is_unique().all()
    assert set(assigned["doc_id"]) == ids["corpus"], "every corpus document, exactly once"
    assert ids["duplicate"] not in set(assigned["doc_id"])
    assert assigned.filter(pl.col("origin") == "synthetic").height == 2

    dropped = lake.scan("clusters", "dropped").collect()
    semdedup = dropped.filter(pl.col("rule") == "semdedup:cosine")
    assert ids["planted"] in set(semdedup["doc_id"]) or ids["original"] in set(semdedup["doc_id"])
    assert first["kept"] + first["dropped"] == first["rows_in"] == len(ids["corpus"])
    summary = lake.scan("clusters", "summary").collect()
    assert summary["size"].sum() == assigned.height and summary["label"].str.len_chars().min() > 0
    assert first["synthetic_embedded"] == 2 and first["synthetic_reused"] == 0

    synthetic = lake.scan("clusters", "synthetic_embeddings").collect()
    second = _run(lake, instance)
    assert second["synthetic_embedded"] == 0 and second["synthetic_reused"] == 2
    assert second["refitted"] is False, "nothing new: the fit is kept"
    again = lake.scan("clusters", "synthetic_embeddings").collect()
    np.testing.assert_array_equal(
        np.asarray(again.sort("doc_id")["embedding"].to_list()),
        np.asarray(synthetic.sort("doc_id")["embedding"].to_list()),
    )
