"""Rewrite selected documents in one style and sort the outputs into accepted and rejected.

The rewriter is passed in as a plain object, so this logic is tested without Dagster; a
document is never rewritten twice for the same style version, prompt and model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from assets.documents import Drop, derived_doc_id
from assets.rephrased.quality import QualityPolicy, judge_rewrite, strip_preamble
from assets.rephrased.styles import Style
from resources.rewriter import ChatMessages, Generation

STAGE = "rephrased"
PROMPT_OVERHEAD_TOKENS = 128


class Rewriter(Protocol):
    max_model_len: int
    max_tokens: int
    seed: int

    def model_id(self) -> str: ...
    def sampling(self) -> dict: ...
    def truncate(self, text: str, max_tokens: int) -> str: ...
    def chat(self, conversations: list[ChatMessages]) -> list[Generation]: ...


@dataclass(frozen=True)
class RewriteKey:
    """What makes two rewrites the same piece of work."""

    style_id: str
    style_version: int
    prompt_hash: str
    model: str

    def rewrite_id(self, source_doc_id: str) -> str:
        parts = (self.style_id, str(self.style_version), self.prompt_hash, self.model)
        return derived_doc_id(source_doc_id, *parts)


def rewrite_batch(
    sources: list[dict],
    style: Style,
    rewriter: Rewriter,
    language_of: callable,
    policy: QualityPolicy,
) -> Iterator[dict | Drop]:
    """Yield an output row per accepted rewrite and a Drop per rejected one, in input order."""
    key = RewriteKey(style.style_id, style.version, style.prompt_hash, rewriter.model_id())
    budget = rewriter.max_model_len - rewriter.max_tokens - PROMPT_OVERHEAD_TOKENS
    inputs = [rewriter.truncate(doc["text"], budget) for doc in sources]
    generations = rewriter.chat([style.messages(text) for text in inputs])
    for doc, text, gen in zip(sources, inputs, generations, strict=True):
        rewrite_id = key.rewrite_id(doc["doc_id"])
        output = strip_preamble(gen.text)
        rejection = judge_rewrite(text, output, gen.finish_reason, policy)
        if rejection is not None:
            yield Drop(
                doc_id=rewrite_id,
                stage=STAGE,
                rule=rejection.rule,
                value=rejection.value,
                threshold=rejection.threshold,
                detail=f"source={doc['doc_id']} style={style.style_id}",
            )
            continue
        yield {
            "doc_id": rewrite_id,
            "source_doc_id": doc["doc_id"],
            "style_id": style.style_id,
            "style_version": style.version,
            "prompt_hash": style.prompt_hash,
            "model": key.model,
            "sampling": json.dumps(rewriter.sampling(), sort_keys=True),
            "seed": rewriter.seed,
            "prompt_tokens": gen.prompt_tokens,
            "completion_tokens": gen.completion_tokens,
            "finish_reason": gen.finish_reason,
            "source_truncated": text != doc["text"],
            "language": language_of(output)[0],
            "text": output,
        }


def batched(items: Iterable[dict], size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
