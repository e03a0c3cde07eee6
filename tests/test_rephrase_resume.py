"""A rewrite run killed mid-way keeps its finished batches; the re-run does only the rest.

The rewriter here is a stand-in that fails on its second call: the subject under test is the
checkpointing around the model, which real-vLLM tests cover separately.
"""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest

from assets.cleaned import assets as cleaned_assets
from assets.raw.assets import raw_documents
from assets.rephrased.assets import rephrased_documents
from assets.rephrased.checkpoints import finished_work
from assets.rephrased.rewrite import REQUEST_FAILED
from assets.stages import stage_of
from resources.crawl import CrawlSource
from resources.lake import Lake
from resources.langid import LanguageIdentifier
from resources.rewriter import Generation, VLLMRewriter
from tests.chat_stub import ChatStub, completion, refusal
from tests.conftest import SAMPLE_CRAWL

SHARD = "debian-faq-en.warc.gz"


REQUESTS: list[list[str]] = []  # chunks sent per chat call, across resource re-instantiations


class ScriptedRewriter(VLLMRewriter):
    """Answers with a faithful echo of each chunk; raises on the call number `fail_on`."""

    fail_on: int = 0

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def truncate(self, text: str, max_tokens: int) -> str:
        return " ".join(text.split(" ")[:max_tokens])

    def chat(self, conversations) -> list[Generation]:
        REQUESTS.append([c[-1]["content"] for c in conversations])
        if len(REQUESTS) == self.fail_on:
            raise RuntimeError("engine died mid-run")
        return [
            Generation(c[-1]["content"].split("\n\n", 1)[-1], 10, 10, "stop") for c in conversations
        ]


def _run(
    lake: Lake,
    instance,
    rewriter: ScriptedRewriter,
    expect_success: bool,
    budget: int,
    styles: tuple[str, ...] = ("wrap_wikipedia",),
):
    settings = {"max_new_documents": budget, "batch_size": 2, "styles": list(styles)}
    config = {"ops": {"rephrased_documents": {"config": settings}}}
    return _materialize(lake, instance, rewriter, config, expect_success)


def _materialize(lake: Lake, instance, rewriter: VLLMRewriter, config: dict, expect_success: bool):
    result = dg.materialize(
        [rephrased_documents],
        instance=instance,
        resources={"lake": lake, "rewriter": rewriter, "language_identifier": LanguageIdentifier()},
        run_config=config,
        raise_on_error=False,
    )
    assert result.success is expect_success
    return result


def _metadata(result) -> dict:
    (materialization,) = result.asset_materializations_for_node("rephrased_documents")
    return {k: v.value for k, v in materialization.metadata.items()}


def _ingest_one_shard(foundry_home) -> tuple[Lake, dg.DagsterInstance]:
    lake = Lake(home=str(foundry_home))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("crawl_shards", [SHARD])
    resources = {
        "lake": lake,
        "crawl": CrawlSource(location=str(SAMPLE_CRAWL)),
        "language_identifier": LanguageIdentifier(),
    }
    # the cleaned stage's per-shard assets, as the stage table lists them
    per_shard = [getattr(cleaned_assets, name) for name in stage_of("cleaned_documents").per_shard]
    dg.materialize([raw_documents, *per_shard], instance=instance, partition_key=SHARD,
                   resources=resources)  # fmt: skip
    dg.materialize([cleaned_assets.duplicate_clusters], instance=instance, resources={"lake": lake})
    return lake, instance


@pytest.mark.slow
def test_killed_run_loses_only_the_batch_in_flight(foundry_home) -> None:
    lake, instance = _ingest_one_shard(foundry_home)
    REQUESTS.clear()
    _run(lake, instance, ScriptedRewriter(fail_on=2), expect_success=False, budget=6)
    assert not lake.has("rephrased_documents"), "nothing is published by a failed run"
    first_batch = lake.read_checkpoints("rephrased_documents", "documents")
    assert first_batch is not None and first_batch.height == 2
    finished_chunks = set(REQUESTS[0])

    assert len(finished_work(lake).fresh) == 1, "one checkpoint awaits publishing"

    REQUESTS.clear()
    # the budget is per run: the re-run finishes the 4 documents the crash left undone
    result = _run(lake, instance, ScriptedRewriter(), expect_success=True, budget=4)
    assert _metadata(result)["checkpoints_read"] == 1
    published = lake.scan("rephrased_documents").collect()
    assert published.height == 6
    assert set(first_batch["doc_id"]) <= set(published["doc_id"])
    resent = {chunk for call in REQUESTS for chunk in call}
    assert finished_chunks.isdisjoint(resent), "finished rewrites were requested again"
    assert published["source_doc_id"].n_unique() == 6

    # the version lists the checkpoints it holds and they are deleted: their rows are in it
    folded = lake.scan("rephrased_documents", "checkpoints").collect()["checkpoint"]
    assert len(folded) == 3 and lake.checkpoint_keys("rephrased_documents") == []
    assert finished_work(lake).fresh == () and not list(foundry_home.rglob("_checkpoints/*"))
    result = _run(lake, instance, ScriptedRewriter(), expect_success=True, budget=2)
    assert _metadata(result)["checkpoints_read"] == 0
    again = lake.scan("rephrased_documents").collect()
    assert again.height == 8 and set(published["doc_id"]) <= set(again["doc_id"])


@pytest.mark.slow
def test_one_run_rewrites_in_several_styles_and_a_rerun_adds_nothing(foundry_home) -> None:
    lake, instance = _ingest_one_shard(foundry_home)
    styles = ("wrap_qa", "nemotron_distill", "rewire_guided")
    _run(lake, instance, ScriptedRewriter(), expect_success=True, budget=2, styles=styles)
    published = lake.scan("rephrased_documents").collect()
    assert published.group_by("style_id").len().sort("style_id").rows() == [
        (style, 2) for style in sorted(styles)
    ]
    assert published["doc_id"].n_unique() == 6, "one rewrite id per (source, style)"
    # the stand-in sends no seed and says nothing of what fixed its text: no row claims a seed
    assert published["seed"].is_null().all(), "a seed is recorded only when it was sent"
    assert set(published["determinism"]) == {"unrecorded"}
    REQUESTS.clear()
    _run(lake, instance, ScriptedRewriter(), expect_success=True, budget=2, styles=styles[:1])
    assert REQUESTS, "a fresh budget of wrap_qa rewrites is requested"
    again = lake.scan("rephrased_documents").collect()
    assert again.filter(pl.col("style_id") == "wrap_qa").height == 4
    assert set(published["doc_id"]) <= set(again["doc_id"]), "earlier styles stay published"


class EchoServer(ChatStub):
    """`vllm serve` on loopback answering each rewrite with its passage, or refusing (400)."""

    def __init__(self) -> None:
        self.refuse = True
        super().__init__(self._reply)

    def _reply(self, body: dict) -> tuple[int, dict]:
        if self.refuse:
            return refusal(400, "prompt too long for this model")
        return completion(body["messages"][-1]["content"].split("\n\n", 1)[-1])


class HttpEchoRewriter(VLLMRewriter):
    """The HTTP backend (continuous in-flight stream) with a whitespace tokenizer."""

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def truncate(self, text: str, max_tokens: int) -> str:
        return " ".join(text.split(" ")[:max_tokens])


@pytest.mark.slow
def test_requests_that_fail_are_quarantined_for_one_run_and_retried_by_the_next(
    foundry_home,
) -> None:
    lake, instance = _ingest_one_shard(foundry_home)
    server = EchoServer()
    try:
        rewriter = HttpEchoRewriter(
            backend="http", endpoints=[server.url], served_model_name="m", max_retries=1
        )
        config = {"ops": {"rephrased_documents": {"config": {"max_new_documents": 3}}}}
        result = _materialize(lake, instance, rewriter, config, expect_success=True)
        assert _metadata(result)["quarantined_this_run"] == 3
        dropped = lake.scan("rephrased_documents", "dropped").collect()
        assert dropped["rule"].to_list() == [REQUEST_FAILED] * 3
        assert all("HTTP 400" in d and "prompt too long" in d for d in dropped["detail"])
        assert lake.scan("rephrased_documents").collect().is_empty()
        assert lake.checkpoint_keys("rephrased_documents") == [], "a failure is not finished"

        server.refuse = False
        result = _materialize(lake, instance, rewriter, config, expect_success=True)
        published = lake.scan("rephrased_documents").collect()
        sources = [d.split("source=")[1].split()[0] for d in dropped["detail"]]
        assert sorted(published["source_doc_id"]) == sorted(sources), "the same three, retried"
        assert lake.scan("rephrased_documents", "dropped").collect().is_empty()
        peak = _metadata(result)["in_flight_peak"]
        chunks = published["chunks"].sum()
        assert chunks > 3 and peak == {server.url: chunks}, "every chunk of the three went at once"
    finally:
        server.close()


@pytest.mark.slow
def test_all_walks_every_shard_and_near_miss_takes_dropped_pages(foundry_home) -> None:
    lake, instance = _ingest_one_shard(foundry_home)
    near = {"selection": "near_miss", "near_miss_margin": 10.0, "max_new_documents": 50}
    _materialize(lake, instance, ScriptedRewriter(), _config(near), expect_success=True)
    first = pl.concat(
        [
            lake.scan("rephrased_documents").select("source_doc_id").collect(),
            _dropped_sources(lake),
        ]
    )
    dropped_by_cleaning = set(lake.scan("cleaned_documents", "dropped").collect()["doc_id"])
    assert first.height > 0 and set(first["source_doc_id"]) <= dropped_by_cleaning

    everything = {"selection": "all", "styles": ["wrap_qa"], "batch_size": 4}
    _materialize(lake, instance, ScriptedRewriter(), _config(everything), expect_success=True)
    removed = lake.scan("duplicate_clusters", "dropped").select("doc_id")
    organic = lake.scan("cleaned_documents").join(removed, on="doc_id", how="anti")
    organic = organic.filter(pl.col("language") == "en").collect()
    qa = pl.concat(
        [
            lake.scan("rephrased_documents")
            .filter(pl.col("style_id") == "wrap_qa")
            .select("source_doc_id")
            .collect(),
            _dropped_sources(lake, "wrap_qa"),
        ]
    )
    assert sorted(qa["source_doc_id"]) == sorted(organic["doc_id"]), "each once, none left"


def _config(settings: dict) -> dict:
    return {"ops": {"rephrased_documents": {"config": settings}}}


def _dropped_sources(lake: Lake, style: str = "") -> pl.DataFrame:
    dropped = lake.scan("rephrased_documents", "dropped").collect()
    dropped = dropped.filter(pl.col("detail").str.contains(f"style={style}"))
    return dropped.select(pl.col("detail").str.extract(r"source=(\S+)").alias("source_doc_id"))
