"""A rewrite run killed mid-way keeps its finished batches; the re-run does only the rest.

The rewriter here is a stand-in that fails on its second call: the subject under test is the
checkpointing around the model, which real-vLLM tests cover separately.
"""

from __future__ import annotations

import dagster as dg
import pytest

from assets.cleaned.assets import cleaned_documents, duplicate_clusters
from assets.raw.assets import raw_documents
from assets.rephrased.assets import rephrased_documents
from resources.crawl import CrawlSource
from resources.lake import Lake
from resources.langid import LanguageIdentifier
from resources.rewriter import Generation, VLLMRewriter
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


def _run(lake: Lake, instance, rewriter: ScriptedRewriter, expect_success: bool, budget: int):
    config = {
        "ops": {"rephrased_documents": {"config": {"max_new_documents": budget, "batch_size": 2}}}
    }
    result = dg.materialize(
        [rephrased_documents],
        instance=instance,
        resources={"lake": lake, "rewriter": rewriter, "language_identifier": LanguageIdentifier()},
        run_config=config,
        raise_on_error=False,
    )
    assert result.success is expect_success


@pytest.mark.slow
def test_killed_run_loses_only_the_batch_in_flight(foundry_home) -> None:
    lake = Lake(home=str(foundry_home))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("crawl_shards", [SHARD])
    resources = {
        "lake": lake,
        "crawl": CrawlSource(location=str(SAMPLE_CRAWL)),
        "language_identifier": LanguageIdentifier(),
    }
    dg.materialize([raw_documents, cleaned_documents], instance=instance, partition_key=SHARD,
                   resources=resources)  # fmt: skip
    dg.materialize([duplicate_clusters], instance=instance, resources={"lake": lake})

    REQUESTS.clear()
    _run(lake, instance, ScriptedRewriter(fail_on=2), expect_success=False, budget=6)
    assert not lake.has("rephrased_documents"), "nothing is published by a failed run"
    first_batch = lake.read_checkpoints("rephrased_documents", "documents")
    assert first_batch is not None and first_batch.height == 2
    finished_chunks = set(REQUESTS[0])

    REQUESTS.clear()
    # the budget is per run: the re-run finishes the 4 documents the crash left undone
    _run(lake, instance, ScriptedRewriter(), expect_success=True, budget=4)
    published = lake.scan("rephrased_documents").collect()
    assert published.height == 6
    assert set(first_batch["doc_id"]) <= set(published["doc_id"])
    resent = {chunk for call in REQUESTS for chunk in call}
    assert finished_chunks.isdisjoint(resent), "finished rewrites were requested again"
    assert published["source_doc_id"].n_unique() == 6
