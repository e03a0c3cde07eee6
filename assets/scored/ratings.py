"""LLM ratings of documents on named quality dimensions, parsed strictly, failures kept.

The dimensions follow QuRating (writing style, required expertise, facts and trivia, educational
value), FineWeb-Edu (educational value, 0-5) and Meta-rater (cleanliness). Each request is a short
few-shot chat: two worked examples teach the "Score: N" answer format, which even a 135M model
then follows; the examples are the same for every dimension and the document comes before the
question, so the requests of one document share a prefix that vLLM's prefix cache computes once.

An answer is accepted only when it names one integer from 0 to 5; anything else is recorded with
its raw text and the reason it was not accepted, and never turned into a guessed score.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

ChatMessages = list[dict[str, str]]

MIN_SCORE, MAX_SCORE = 0, 5
DIMENSIONS: dict[str, str] = {
    "educational_value": "educational value (how much a student would learn from it)",
    "writing_style": "writing style (how clear, fluent and polished the prose is)",
    "required_expertise": "required expertise (how much expert knowledge it takes to follow)",
    "facts_and_trivia": "facts and trivia (how many specific, checkable facts it states)",
    "cleanliness": "cleanliness (free of menus, boilerplate and garbled text)",
}
EXAMPLES: tuple[tuple[str, str, int], ...] = (
    (
        "Photosynthesis is how green plants make their food. Using the energy of sunlight, "
        "leaves turn water and carbon dioxide into sugar and release oxygen into the air.",
        "educational_value",
        4,
    ),
    (
        "Home | Login | Cart (0) | BUY NOW!!! best deals best deals click here subscribe",
        "writing_style",
        0,
    ),
)


def question(dimension: str) -> str:
    return f"Rate its {DIMENSIONS[dimension]} from {MIN_SCORE} (lowest) to {MAX_SCORE} (highest)."


def conversation(text: str, dimension: str) -> ChatMessages:
    messages: ChatMessages = []
    for example, dim, score in EXAMPLES:
        messages.append({"role": "user", "content": f"Text: {example}\n\n{question(dim)}"})
        messages.append({"role": "assistant", "content": f"Score: {score}"})
    messages.append({"role": "user", "content": f"Text: {text}\n\n{question(dimension)}"})
    return messages


def prompt_hash() -> str:
    """Changes whenever the wording, the examples or the dimensions change."""
    probe = [conversation("{text}", d) for d in DIMENSIONS]
    return hashlib.blake2b(repr(probe).encode(), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class ParsedRating:
    score: int | None
    error: str | None  # why no score was accepted


_SCORE = re.compile(r"score\W{0,3}(\d[\d.,]*)", re.IGNORECASE)
_NUMBER = re.compile(r"\d[\d.,]*")
_OUT_OF = re.compile(r"(\d[\d.,]*)\s*(?:/|out of)\s*5\b", re.IGNORECASE)


def parse_rating(answer: str, low: int = MIN_SCORE, high: int = MAX_SCORE) -> ParsedRating:
    """'Score: N' first, then 'N/5' or 'N out of 5', then a single number standing alone; N
    must be an integer from `low` to `high`."""
    if not answer.strip():
        return ParsedRating(None, "empty answer")
    for pattern in (_SCORE, _OUT_OF):
        if match := pattern.search(answer):
            return _checked(match.group(1), low, high)
    numbers = sorted({n.rstrip(".,") for n in _NUMBER.findall(answer)})
    if not numbers:
        return ParsedRating(None, "no number in the answer")
    if len(numbers) > 1:
        return ParsedRating(None, f"ambiguous: several numbers {numbers[:4]}")
    return _checked(numbers[0], low, high)


def _checked(token: str, low: int, high: int) -> ParsedRating:
    token = token.rstrip(".,")
    if not token.isdigit():
        return ParsedRating(None, f"not an integer: {token!r}")
    value = int(token)
    if not low <= value <= high:
        return ParsedRating(None, f"out of range {low}-{high}: {value}")
    return ParsedRating(value, None)


def rate(
    docs: Sequence[dict[str, Any]],
    dimensions: Sequence[str],
    chat: Callable[[list[ChatMessages]], list[Any]],
    truncate: Callable[[str], str],
) -> list[dict[str, Any]]:
    """One row per (document, dimension): the raw answer, and its score or why there is none.

    `chat` is the rewriter's batched chat (returns objects with text, token counts and finish
    reason); `truncate` cuts a document to the rater's text budget."""
    unknown = set(dimensions) - set(DIMENSIONS)
    if unknown:
        raise ValueError(f"unknown rating dimensions {sorted(unknown)}; known: {list(DIMENSIONS)}")
    keys = [(doc["doc_id"], dim) for doc in docs for dim in dimensions]
    texts = {doc["doc_id"]: truncate(doc["text"]) for doc in docs}
    generations = chat([conversation(texts[doc_id], dim) for doc_id, dim in keys])
    rows = []
    for (doc_id, dim), gen in zip(keys, generations, strict=True):
        parsed = parse_rating(gen.text)
        rows.append(
            {
                "doc_id": doc_id,
                "dimension": dim,
                "score": parsed.score,
                "parse_error": parsed.error,
                "answer": gen.text,
                "prompt_tokens": gen.prompt_tokens,
                "completion_tokens": gen.completion_tokens,
                "finish_reason": gen.finish_reason,
            }
        )
    return rows
