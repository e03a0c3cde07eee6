"""token_counts: one shard's SmolLM2 counts, equal to a direct tokenizer call."""

from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from tokenizers import Tokenizer

from assets.mixed.assets import token_counts
from resources.lake import Lake
from resources.models import prepare_smollm2
from resources.tokenizer import TokenCounter

SHARDS = ("en", "de")


@pytest.fixture
def lake(faq_docs: pl.DataFrame, foundry_home: Path) -> Lake:
    lake = Lake(home=str(foundry_home))
    for shard in SHARDS:
        docs = faq_docs.filter(pl.col("doc_id").str.starts_with(shard))
        with lake.publish("cleaned_documents", shard, run_id="fixture") as out:
            frame = docs.select("doc_id", "text", "language")
            out.write("documents", frame, frame.to_arrow().schema)
    return lake


def direct_counts(texts: list[str]) -> list[int]:
    tok = Tokenizer.from_file(str(prepare_smollm2() / "tokenizer.json"))
    return [len(tok.encode(t, add_special_tokens=False).ids) for t in texts]


def test_counts_equal_a_direct_tokenizer_call_per_shard(lake: Lake, faq_docs: pl.DataFrame) -> None:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("crawl_shards", list(SHARDS))
    counter = TokenCounter(chunk_docs=7)  # several chunks per shard, one short last chunk
    for shard in SHARDS:
        result = dg.materialize(
            [token_counts],
            partition_key=shard,
            instance=instance,
            resources={"lake": lake, "tokens": counter},
        )
        assert result.success
        assert all(c.passed for c in result.get_asset_check_evaluations())
    counts = lake.scan("token_counts").collect()
    assert set(counts.columns) == {"doc_id", "tokens"}
    cleaned = lake.scan("cleaned_documents").select("doc_id", "text").collect()
    assert counts.height == cleaned.height and counts["doc_id"].is_unique().all()
    sample = cleaned.sort("doc_id").gather_every(9)
    expected = dict(zip(sample["doc_id"], direct_counts(sample["text"].to_list()), strict=True))
    got = dict(counts.filter(pl.col("doc_id").is_in(sample["doc_id"].implode())).iter_rows())
    assert got == expected and min(expected.values()) > 0
    assert {f.partition for f in lake.files("token_counts")} == set(SHARDS)


def test_chunked_counts_equal_unchunked_counts(faq_docs: pl.DataFrame) -> None:
    texts = faq_docs["text"].head(40).to_list()
    assert TokenCounter(chunk_docs=3).count(texts) == direct_counts(texts)
