"""Rewrite selected documents and sort the outputs into accepted, rejected and quarantined.

The rewriter is passed in as a plain object, so this logic is tested without Dagster; a
document is never rewritten twice for the same style version, prompt and model.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from assets.documents import Drop, derived_doc_id
from assets.rephrased.quality import (
    QualityPolicy,
    cut_to_last_sentence,
    defang_chat_markup,
    judge_rewrite,
    strip_preamble,
)
from assets.rephrased.styles import Style
from resources.openai_client import RequestFailure
from resources.rewriter import ChatMessages, Generation

STAGE = "rephrased"


@dataclass(frozen=True)
class ChunkLimits:
    max_source_tokens: int = 1024  # longer documents are cut here (recorded as source_truncated)
    chunk_tokens: int = 320  # tokens of source per request


class Rewriter(Protocol):
    max_model_len: int
    max_tokens: int

    def model_id(self) -> str: ...
    def sampling(self) -> dict: ...
    def truncate(self, text: str, max_tokens: int) -> str: ...
    def count_tokens(self, text: str) -> int: ...
    def chat(self, conversations: list[ChatMessages]) -> list[Generation]: ...
    def chat_stream(
        self, requests: Iterable[tuple[Hashable, ChatMessages]]
    ) -> Iterator[tuple[Hashable, Generation | RequestFailure]]: ...


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


def chunk_text(text: str, count: Callable[[str], int], chunk_tokens: int) -> list[str]:
    """Split on line boundaries into pieces of at most `chunk_tokens`, as WRAP rephrased
    passages of a few hundred tokens; a single overlong line becomes its own piece."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.splitlines():
        tokens = count(line)
        if current and size + tokens > chunk_tokens:
            chunks.append("\n".join(current))
            current, size = [], 0
        current.append(line)
        size += tokens
    if current:
        chunks.append("\n".join(current))
    return [c for c in chunks if c.strip()]


REQUEST_FAILED = "rewrite:request_failed"  # quarantined for this run; retried by the next one


def rewrite_documents(
    work: Iterable[tuple[Style, dict]],
    rewriter: Rewriter,
    language_of: Callable[[str], tuple[str, float]],
    policy: QualityPolicy,
    limits: ChunkLimits,
    batch_size: int,
) -> Iterator[dict | Drop]:
    """An output row or a Drop per (style, source document).

    Over HTTP every chunk of every document streams through the rewriter's continuous
    in-flight window and documents come back in the order they finish; a document whose
    request failed for good is a Drop with rule `REQUEST_FAILED` and the reason. In process,
    `batch_size` documents of one style go to the engine per call, in input order."""
    if getattr(rewriter, "backend", "engine") == "http":
        yield from _rewrite_stream(work, rewriter, language_of, policy, limits)
        return
    for style, pairs in itertools.groupby(work, key=lambda pair: pair[0]):
        for batch in batched((doc for _, doc in pairs), batch_size):
            yield from rewrite_batch(batch, style, rewriter, language_of, policy, limits)


def rewrite_batch(
    sources: list[dict],
    style: Style,
    rewriter: Rewriter,
    language_of: Callable[[str], tuple[str, float]],
    policy: QualityPolicy,
    limits: ChunkLimits,
) -> Iterator[dict | Drop]:
    """Yield an output row per accepted rewrite and a Drop per rejected one, in input order.

    Every chunk of every document goes to the model in one batched call; each document's
    chunk rewrites are joined back in order before quality control. A row records the seed only
    when it was sent with the requests, and `determinism` says what fixed the text (greedy
    decoding, a per-request seed, or the engine's seed and the batch it ran in).

    The answer must be in the language the style asks for, else the source's: `doc["language"]`
    where the caller has it (the cleaned stage's), else `language_of` the source text."""
    prepared = [_Pending(style, doc, *_prepare(doc, style, rewriter, limits)) for doc in sources]
    flat = [style.messages(defang_chat_markup(chunk)) for p in prepared for chunk in p.chunks]
    generations = iter(rewriter.chat(flat))
    for pending in prepared:
        pending.parts = [next(generations) for _ in pending.chunks]
        yield _outcome(pending, rewriter, language_of, policy)


@dataclass
class _Pending:
    """A document on its way through the rewriter: its chunks and the answers so far."""

    style: Style
    doc: dict
    text: str  # the source as sent (cut to the token limit)
    chunks: list[str]
    parts: list = field(default_factory=list)
    remaining: int = 0


def _prepare(doc: dict, style: Style, rewriter: Rewriter, limits: ChunkLimits):
    text = rewriter.truncate(doc["text"], limits.max_source_tokens)
    return text, chunk_text(text, rewriter.count_tokens, limits.chunk_tokens)


def _rewrite_stream(
    work: Iterable[tuple[Style, dict]],
    rewriter: Rewriter,
    language_of: Callable[[str], tuple[str, float]],
    policy: QualityPolicy,
    limits: ChunkLimits,
) -> Iterator[dict | Drop]:
    """Documents in the order their last chunk finishes; only those in flight are held."""
    pending: dict[int, _Pending] = {}
    ready: deque[_Pending] = deque()  # documents with no chunk to send

    def requests() -> Iterator[tuple[tuple[int, int], ChatMessages]]:
        for n, (style, doc) in enumerate(work):
            item = _Pending(style, doc, *_prepare(doc, style, rewriter, limits))
            if not item.chunks:
                ready.append(item)
                continue
            item.parts, item.remaining = [None] * len(item.chunks), len(item.chunks)
            pending[n] = item
            for i, chunk in enumerate(item.chunks):
                yield (n, i), style.messages(defang_chat_markup(chunk))

    for (n, i), generation in rewriter.chat_stream(requests()):
        item = pending[n]
        item.parts[i] = generation
        item.remaining -= 1
        if item.remaining == 0:
            del pending[n]
            yield _outcome(item, rewriter, language_of, policy)
        while ready:
            yield _outcome(ready.popleft(), rewriter, language_of, policy)
    while ready:
        yield _outcome(ready.popleft(), rewriter, language_of, policy)


def _outcome(
    item: _Pending,
    rewriter: Rewriter,
    language_of: Callable[[str], tuple[str, float]],
    policy: QualityPolicy,
) -> dict | Drop:
    """The output row of one document's joined chunk rewrites, or the Drop that says why not."""
    style, doc, text, parts = item.style, item.doc, item.text, item.parts
    key = RewriteKey(style.style_id, style.version, style.prompt_hash, rewriter.model_id())
    rewrite_id = key.rewrite_id(doc["doc_id"])
    detail = f"source={doc['doc_id']} style={style.style_id}"
    failures = [p for p in parts if isinstance(p, RequestFailure)]
    if failures:
        return Drop(
            doc_id=rewrite_id,
            stage=STAGE,
            rule=REQUEST_FAILED,
            value=float(len(failures)),
            detail=f"{detail} {failures[0].reason}",
        )
    gen = _joined(parts)
    truncated = sum(p.finish_reason == "length" for p in parts) / max(len(parts), 1)
    source_language = doc.get("language") or language_of(text)[0]
    detected = language_of(gen.text)
    rejection = judge_rewrite(
        text,
        gen.text,
        truncated,
        policy,
        last_chunk_truncated=bool(parts) and parts[-1].finish_reason == "length",
        expected_language=style.answer_language(source_language),
        detected_language=detected,
    )
    if rejection is not None:
        return Drop(
            doc_id=rewrite_id,
            stage=STAGE,
            rule=rejection.rule,
            value=rejection.value,
            threshold=rejection.threshold,
            detail=f"{detail} {rejection.detail}".strip(),
        )
    seed, determinism = _determinism(parts)
    return {
        "doc_id": rewrite_id,
        "source_doc_id": doc["doc_id"],
        "style_id": style.style_id,
        "style_version": style.version,
        "prompt_hash": style.prompt_hash,
        "model": key.model,
        "sampling": json.dumps({**rewriter.sampling(), "seed": seed}, sort_keys=True),
        "seed": seed,
        "determinism": determinism,
        "prompt_tokens": gen.prompt_tokens,
        "completion_tokens": gen.completion_tokens,
        "finish_reason": gen.finish_reason,
        "source_truncated": text != doc["text"],
        "chunks": len(item.chunks),
        "language": detected[0],
        "text": gen.text,
    }


def _determinism(parts: list[Generation]) -> tuple[int | None, str]:
    """The seed every chunk was sampled with (None unless all were seeded alike) and what fixed
    the document's text, from the generations' own records."""
    seeds = {p.seed for p in parts}
    notes = sorted({p.determinism for p in parts if p.determinism})
    seed = seeds.pop() if len(seeds) == 1 else None
    return seed, "; ".join(notes) or "unrecorded"


def _joined(parts: list[Generation]) -> Generation:
    """One document's rewrite from its chunks; truncated if any chunk hit the token limit."""
    truncated = any(p.finish_reason == "length" for p in parts)
    texts = [
        cut_to_last_sentence(strip_preamble(p.text))
        if p.finish_reason == "length"
        else strip_preamble(p.text)
        for p in parts
    ]
    return Generation(
        text="\n\n".join(texts).strip(),
        prompt_tokens=sum(p.prompt_tokens for p in parts),
        completion_tokens=sum(p.completion_tokens for p in parts),
        finish_reason="length" if truncated else (parts[0].finish_reason if parts else "stop"),
    )


def batched(items: Iterable[dict], size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
