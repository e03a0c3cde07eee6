"""The whole graph materialized on real crawls, in a temporary FOUNDRY_HOME, with real models."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from warcio.archiveiterator import ArchiveIterator

from assets.clustered.assets import ClusterConfig
from assets.scored.dataman import CRITERION_COLUMNS
from orchestration.jobs import STAGE_ASSET_NAMES
from orchestration.lineage import trace_document
from orchestration.runner import (
    ensure_instance,
    plan_run,
    register_shards,
    run_corpus,
    run_pipeline,
    run_shard,
)
from resources.lake import Lake
from tests.conftest import SAMPLE_CRAWL, SECOND_CRAWL

pytestmark = pytest.mark.slow

STAGE_ASSETS = STAGE_ASSET_NAMES
BUDGET = 60_000
EVAL_DIR = Path(__file__).parents[1] / "data" / "evals"
QUOTED = "including the Apple Macintosh PowerMac models, and the CHRP and PReP open architecture"
LATE_SHARD = "developers-reference-en.warc.gz"


def corpus_config(
    new_rewrites: int, clusters: dict | None = None, ratings: dict | None = None
) -> dict:
    """Sources cut to one 320-token request each keep the CPU rewrites short."""
    rephrase = {"max_new_documents": new_rewrites, "max_source_tokens": 320}
    return {
        "ops": {
            "rephrased_documents": {"config": rephrase},
            "clusters": {"config": clusters or {}},
            "llm_ratings": {"config": ratings or {}},
            "dataman_ratings": {"config": ratings or {}},
            "training_mixture": {"config": {"token_budget": BUDGET}},
        }
    }


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    home = tmp_path_factory.mktemp("e2e") / "foundry"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FOUNDRY_HOME", str(home))
        mp.setenv("DAGSTER_HOME", str(home / "dagster"))
        mp.setenv("FOUNDRY_CRAWL_DIR", str(SAMPLE_CRAWL))
        mp.setenv("FOUNDRY_EVAL_DIR", str(EVAL_DIR))  # as `make run` does
        summary = run_pipeline(parallel=2, corpus_config=corpus_config(4))
    assert summary.failed == [] and summary.corpus_ok
    assert len(summary.shards) == len(list(SAMPLE_CRAWL.glob("*.warc.gz")))
    return Lake(home=str(home))


def test_every_stage_has_a_current_version_with_rows(sample_run: Lake) -> None:
    for asset in STAGE_ASSETS:
        # the sample's only exact copies are index pages the quality filters drop first
        table = "band_stats" if asset == "duplicate_clusters" else "documents"
        rows = sum(f.row_count for f in sample_run.files(asset, table))
        assert rows > 0, asset
    shards = {f.partition for f in sample_run.files("raw_documents")}
    assert len(shards) == 6


def test_books_balance_from_raw_to_cleaned(sample_run: Lake) -> None:
    raw = sample_run.scan("raw_documents").select("doc_id").collect()
    cleaned = sample_run.scan("cleaned_documents").select("doc_id").collect()
    dropped = sample_run.scan("cleaned_documents", "dropped").select("doc_id", "rule").collect()
    assert raw.height == cleaned.height + dropped.height
    assert set(raw["doc_id"]) == set(cleaned["doc_id"]) | set(dropped["doc_id"])
    assert dropped["rule"].null_count() == 0
    languages = set(sample_run.scan("cleaned_documents").select("language").collect()["language"])
    assert {"en", "de", "fr", "ja"} <= languages


def test_rewrites_are_real_and_name_their_source(sample_run: Lake) -> None:
    rewrites = sample_run.scan("rephrased_documents").collect()
    rejected = sample_run.scan("rephrased_documents", "dropped").collect()
    assert rewrites.height + rejected.height == 4
    assert all(rule.startswith("qc:") for rule in rejected["rule"]), "every reject names its rule"
    assert (
        rewrites.filter(pl.col("seed").is_not_null())["determinism"]
        .str.starts_with("per-request seed")
        .all()
    ), "a recorded seed is one that was sent"
    organic = set(sample_run.scan("cleaned_documents").select("doc_id").collect()["doc_id"])
    assert set(rewrites["source_doc_id"]) <= organic
    assert (rewrites["completion_tokens"] > 0).all()
    assert set(rewrites["model"]) <= {"SmolLM2-135M-Instruct"}


def test_clusters_have_labels_and_cover_the_corpus(sample_run: Lake) -> None:
    summary = sample_run.scan("clusters", "summary").collect()
    assert summary.height >= 2
    assert all(label and not label.startswith("cluster ") for label in summary["label"])
    assigned = sample_run.scan("clusters").collect()
    scored = sample_run.scan("quality_scores").collect()
    assert set(assigned["doc_id"]) == set(scored["doc_id"])


def test_mixture_meets_its_budget_and_ships_shards(sample_run: Lake) -> None:
    mixture = sample_run.scan("training_mixture").collect()
    tokens = mixture["tokens"].sum()
    assert abs(tokens - BUDGET) / BUDGET < 0.01
    assert mixture.group_by("doc_id").len()["len"].max() <= 4
    version_dir = Path(sample_run.files("training_mixture")[0].path).parent
    assert (version_dir / "manifest.json").exists()
    shard = pl.read_parquet(next((version_dir / "shards").glob("*.parquet")))
    assert set(shard.columns) == {"id", "text", "metadata"}
    assert list((version_dir / "shards").glob("*.jsonl.gz"))


def test_a_mixture_document_traces_back_to_its_warc_record(sample_run: Lake) -> None:
    mixture = sample_run.scan("training_mixture").collect()
    organic = set(sample_run.scan("cleaned_documents").select("doc_id").collect()["doc_id"])
    synthetic = mixture.filter(~pl.col("doc_id").is_in(list(organic)))
    for sample_id in [mixture["sample_id"][0], *synthetic["sample_id"].head(1)]:
        trace = trace_document(sample_run.catalog, sample_id)
        titles = [t for t, _ in trace.steps]
        assert "mixture samples" in titles and "cluster" in titles and "scores" in titles
        raw = dict(trace.steps)["raw record"][0]
        with open(raw["source_file"], "rb") as fh:
            fh.seek(raw["source_offset"])
            record = next(iter(ArchiveIterator(fh)))
        assert record.rec_headers.get_header("WARC-Target-URI") == raw["url"]


@pytest.mark.timeout(2400)
def test_another_crawl_folder_and_a_shard_that_arrives_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second real crawl, built in two steps: the late shard is deduplicated against the
    stored signatures and assigned to the existing centroids; the drift it causes is recorded
    and the default policy refits on the next run."""
    crawl = tmp_path / "crawl"
    crawl.mkdir()
    late = SECOND_CRAWL / LATE_SHARD
    early = [shard for shard in SECOND_CRAWL.glob("*.warc.gz") if shard != late]
    for shard in early:
        shutil.copy(shard, crawl)
    monkeypatch.setenv("FOUNDRY_HOME", str(tmp_path / "foundry"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "foundry" / "dagster"))
    monkeypatch.setenv("FOUNDRY_CRAWL_DIR", str(crawl))
    no_ratings = {"sample_size": 0}  # this test is about dedup and clusters: no rater engine
    summary = run_pipeline(parallel=2, corpus_config=corpus_config(0, ratings=no_ratings))
    assert summary.corpus_ok and not summary.failed
    lake = Lake(home=str(tmp_path / "foundry"))
    centroids = lake.scan("clusters", "centroids").collect()

    shutil.copy(late, crawl)
    register_shards(ensure_instance())
    between_refits = corpus_config(0, clusters={"refit": "never"}, ratings=no_ratings)
    assert run_shard(late.name) and run_corpus(between_refits)
    new_docs = lake.scan("cleaned_documents").filter(pl.col("shard") == late.name)
    new_ids = set(new_docs.select("doc_id").collect()["doc_id"])
    assigned = set(lake.scan("clusters").collect()["doc_id"])
    removed = set(lake.scan("duplicate_clusters", "dropped").collect()["doc_id"])
    assert new_ids and new_ids - removed <= assigned
    assert lake.scan("clusters", "centroids").collect().equals(centroids), "assigned, not refit"
    assigned_only = _latest_metadata("clusters")
    assert assigned_only["refitted"] is False and assigned_only["k"] == centroids.height
    # a new manual is a new topic: the drift the assignment recorded is past the nightly bound,
    # so the default policy refits on the next run
    assert assigned_only["drift"] > ClusterConfig().max_drift
    assert lake.scan("training_mixture").collect().height > 0
    assert run_corpus({"ops": {"clusters": {"config": {}}}}, assets=["clusters"])
    assert _latest_metadata("clusters")["refitted"] is True
    assert not lake.scan("clusters", "centroids").collect().equals(centroids)
    clusters = lake.scan("duplicate_clusters").collect()
    assert clusters.height > 0, "apt-doc serves each guide as both dir/ and dir/index.html"


def _latest_metadata(asset: str) -> dict:
    event = ensure_instance().get_latest_materialization_event(dg.AssetKey(asset))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_a_page_quoted_by_an_eval_set_is_removed_and_explained(sample_run: Lake) -> None:
    """The bundled quiz quotes a sentence of the Debian FAQ: every page holding it leaves the
    corpus with rule decontam:debian-faq-quiz, the item and the 13-gram; nothing else does."""
    from orchestration.lineage import explain

    cleaned = sample_run.scan("cleaned_documents").select("doc_id", "text", "url")
    dropped = sample_run.scan("decontamination", "dropped").collect()
    assert set(dropped["rule"]) == {"decontam:debian-faq-quiz"}
    quoting = cleaned.filter(pl.col("text").str.contains(QUOTED, literal=True)).collect()
    removed_as_duplicate = sample_run.scan("duplicate_clusters", "dropped").collect()["doc_id"]
    expected = set(quoting["doc_id"]) - set(removed_as_duplicate)
    assert expected and set(dropped["doc_id"]) == expected
    detail = json.loads(dropped["detail"][0])
    assert detail["item_id"] == "debian-quiz-1" and len(detail["ngram"].split()) == 13
    assert not set(dropped["doc_id"]) & set(sample_run.scan("quality_scores").collect()["doc_id"])
    url = quoting.filter(pl.col("doc_id").is_in(list(expected)))["url"][0]
    (answer,) = explain(sample_run.catalog, url)
    assert "NOT in the mixture" in answer and "decontam:debian-faq-quiz" in answer


def test_dataman_and_preselect_reach_every_document_and_the_card(sample_run: Lake) -> None:
    """The real rater annotates the sample with DataMan's 14 criteria and a domain; the heads'
    held-out skill is recorded; every document gets the dm_* columns and PreSelect's score; the
    dataset card lists them, the domains and the decontamination count."""
    answers = sample_run.scan("dataman_ratings", "ratings").collect()
    sampled = sample_run.scan("dataman_ratings").collect()
    assert answers.height == sampled.height * 15 and sampled.height > 0
    parsed = answers.filter(pl.col("parse_error").is_null())
    assert parsed.height > answers.height / 2, answers["answer"].head(10).to_list()
    assert (
        answers["parse_error"].is_null()
        == (answers["score"].is_not_null() | answers["label"].is_not_null())
    ).all()
    metrics = sample_run.scan("dataman_heads", "metrics").collect()
    assert set(metrics["dimension"]) == {*CRITERION_COLUMNS, "dm_domain"}
    domain = metrics.filter(pl.col("dimension") == "dm_domain").row(0, named=True)
    assert domain["accuracy"] is not None or domain["spearman_reason"]
    scores = sample_run.scan("quality_scores").collect()
    assert scores["dm_overall_score"].null_count() == 0
    assert scores["preselect_score"].null_count() == 0
    version_dir = Path(sample_run.files("training_mixture")[0].path).parent
    card = (version_dir / "DATASET_CARD.md").read_text()
    for name in ("dm_overall_score", "dm_semantic_density", "preselect_score", "DataMan domains"):
        assert name in card, name
    removed = sample_run.scan("decontamination", "dropped").collect().height
    assert f"| decontam:debian-faq-quiz | {removed} |" in card


def test_why_explains_what_is_in_and_what_is_not(sample_run: Lake) -> None:
    from orchestration.lineage import explain

    dropped = sample_run.scan("cleaned_documents", "dropped").collect().row(0, named=True)
    raw = sample_run.scan("raw_documents").filter(pl.col("doc_id") == dropped["doc_id"]).collect()
    (answer,) = explain(sample_run.catalog, raw["url"][0])
    assert "NOT in the mixture" in answer and dropped["rule"] in answer
    kept = sample_run.scan("training_mixture").collect()["doc_id"][0]
    assert "IN the mixture" in explain(sample_run.catalog, kept)[0]
    quarantined = sample_run.scan("raw_documents", "dropped").collect().row(0, named=True)
    assert quarantined["rule"] in explain(sample_run.catalog, quarantined["doc_id"])[0]


def test_a_second_run_with_nothing_changed_does_nothing(
    sample_run: Lake, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`foundry run` uses the nightly schedules' staleness: nothing changed, nothing runs; a new
    config for one corpus asset rebuilds that asset and what depends on it."""
    home = Path(sample_run.home)
    monkeypatch.setenv("FOUNDRY_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.setenv("FOUNDRY_CRAWL_DIR", str(SAMPLE_CRAWL))
    monkeypatch.setenv("FOUNDRY_EVAL_DIR", str(EVAL_DIR))
    instance = ensure_instance()
    unchanged = plan_run(instance, None, corpus_config(4))
    assert unchanged.shards == {} and unchanged.corpus == []
    assert len(unchanged.current_shards) == 6
    budget = corpus_config(4)
    budget["ops"]["training_mixture"]["config"]["token_budget"] = BUDGET // 2
    assert plan_run(instance, None, budget).corpus == ["training_mixture"]
    clusters = corpus_config(4, clusters={"seed": 7})
    rebuilt = plan_run(instance, None, clusters).corpus
    assert rebuilt[0] == "clusters" and "training_mixture" in rebuilt
    assert "duplicate_clusters" not in rebuilt
    assert plan_run(instance, force=True).shards.keys() == set(unchanged.current_shards)
    edited = tmp_path / "evals"  # one more eval item: decontamination and what follows it
    shutil.copytree(EVAL_DIR, edited)
    with open(edited / "debian-faq-quiz.jsonl", "a") as quiz:
        quiz.write('{"id": "debian-quiz-4", "prompt": "What is apt?", "answer": "a tool"}\n')
    monkeypatch.setenv("FOUNDRY_EVAL_DIR", str(edited))
    assert plan_run(instance, None, corpus_config(4)).corpus[0] == "decontamination"
    monkeypatch.setenv("FOUNDRY_EVAL_DIR", str(EVAL_DIR))

    started = time.perf_counter()
    summary = run_pipeline(parallel=2, corpus_config=corpus_config(4))
    assert summary.corpus_ok and summary.corpus_rebuilt == []
    assert summary.current_shards == summary.shards
    assert time.perf_counter() - started < 60


CORPUS_STEPS = {"decontamination": {"workers": 1}, "clusters": {}, "quality_scores": {"workers": 1}}


def test_a_corpus_step_that_loses_a_document_fails_its_books_balance(
    sample_run: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As tests/test_gating.py does for the shard steps: every read of the cleaned corpus
    misses a document (workers in this process, so the simulated bug reaches them). Rows in
    come from the catalog, so the check fails and the last good version stays current."""
    from orchestration.definitions import defs
    from tests.test_gating import _lose_first_document_of

    home = Path(sample_run.home)
    monkeypatch.setenv("FOUNDRY_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.setenv("FOUNDRY_EVAL_DIR", str(EVAL_DIR))
    for asset, config in CORPUS_STEPS.items():
        good = sample_run.files(asset)
        with monkeypatch.context() as patch:
            _lose_first_document_of(patch, "cleaned_documents")
            result = dg.materialize(
                [defs.get_assets_def(asset)],
                instance=ensure_instance(),
                resources={**defs.resources, "lake": sample_run},
                run_config={"ops": {asset: {"config": config}}},
                raise_on_error=False,
            )
        [balance] = [
            c for c in result.get_asset_check_evaluations() if c.check_name == "books_balance"
        ]
        books = {k: v.value for k, v in balance.metadata.items()}
        assert not balance.passed, (asset, books)
        assert books["rows_in"] > books["kept"] + books["dropped"], (asset, books)
        assert sample_run.files(asset) == good, f"{asset}: the last good version stays"
