"""The rewriter's LLM as a rater of a stable sample (llm_ratings, dataman_ratings): greedy
answers, and answers given earlier under the same model, prompts, text budget and sampling
reused, so an unchanged sample loads no engine at all."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import dagster as dg
import polars as pl
import pyarrow as pa
from pydantic import Field

from assets.partitions import GPU_POOL, GPU_TAG
from assets.scored.schema import frame
from resources.lake import Lake
from resources.rewriter import VLLMRewriter

# Both raters read the same corpus and run on the GPU pool.
RATER_ASSET: dict[str, Any] = {
    "group_name": "scored",
    "deps": ["cleaned_documents", "duplicate_clusters", "decontamination", "rephrased_documents"],
    "kinds": {"parquet", "vllm"},
    "pool": GPU_POOL,
    "op_tags": GPU_TAG,
}


class RaterConfig(dg.Config):
    """What both raters share: one stable sample (DataMan annotates the documents llm_ratings
    rates), each document cut to the same number of tokens."""

    sample_size: int = Field(24, ge=0, description="Documents the LLM rates (a stable sample).")
    languages: list[str] | None = Field(["en"], description="Languages the rater reads.")
    max_text_tokens: int = Field(160, description="Each document is cut to this many tokens.")
    seed: int = 0


# ask(documents, chat, truncate) -> one row per (document, question) with its parsed answer
Ask = Callable[[list[dict[str, Any]], Callable, Callable[[str], str]], list[dict[str, Any]]]


def greedy_rater(rewriter: VLLMRewriter, max_answer_tokens: int) -> VLLMRewriter:
    return rewriter.model_copy(
        update={"temperature": 0.0, "top_p": 1.0, "max_tokens": max_answer_tokens}
    )


def answer_key(rater: VLLMRewriter, prompt_hash: str, max_text_tokens: int) -> dict[str, Any]:
    """What an earlier answer must share to be reused; stored with every answer."""
    return {
        "model": rater.model_id(),
        "prompt_hash": prompt_hash,
        "max_text_tokens": max_text_tokens,
        "sampling": json.dumps(rater.sampling(), sort_keys=True),
    }


def answers_for(
    context: dg.AssetExecutionContext,
    lake: Lake,
    sample: pl.DataFrame,
    rater: VLLMRewriter,
    key: dict[str, Any],
    questions: Sequence[str],
    ask: Ask,
    schema: pa.Schema,
) -> tuple[pl.DataFrame, int]:
    """Every sampled document's answers to every question (earlier ones reused, the rest asked
    now), and how many documents were asked now."""
    asset = context.asset_key.to_user_string()
    earlier = earlier_ratings(lake, key, sample["doc_id"], questions, asset)
    earlier = frame([], schema) if earlier is None else earlier
    done = earlier.group_by("doc_id").len().filter(pl.col("len") == len(questions))
    todo = sample.join(done, on="doc_id", how="anti")
    new = frame([], schema)
    if todo.height:
        context.log.info(f"{asset}: asking {todo.height} documents {len(questions)} questions")
        truncate = key["max_text_tokens"]
        try:
            rows = ask(todo.to_dicts(), rater.chat, lambda text: rater.truncate(text, truncate))
        finally:
            rater.teardown_after_execution(context)
        new = frame([{**r, **key} for r in rows], schema)
    kept = earlier.join(todo.select("doc_id"), on="doc_id", how="anti")
    answers = pl.concat([kept, new], how="vertical_relaxed").sort("doc_id", "dimension")
    return answers, todo.height


def earlier_ratings(
    lake: Lake,
    key: dict[str, str | int],
    ids: pl.Series,
    dimensions: Sequence[str],
    asset: str,
) -> pl.DataFrame | None:
    """Ratings already made for these documents with the same model, prompt, text budget and
    sampling (`asset`'s `ratings` table)."""
    if not lake.has(asset, "ratings"):
        return None
    stored = lake.scan(asset, "ratings")
    if not set(key) <= set(stored.collect_schema().names()):
        return None  # written before the key had all its parts: nothing is known to match
    same = [pl.col(name) == value for name, value in key.items()]
    wanted = [pl.col("doc_id").is_in(ids.implode()), pl.col("dimension").is_in(list(dimensions))]
    return stored.filter(*same, *wanted).collect()
