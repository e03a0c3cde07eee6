"""DataMan-style annotation: 14 quality criteria rated 1-5 and one of 15 domains per document.

DataMan (Peng et al. 2025) fine-tunes a model to answer all 14 ratings and the domain at once.
A small local rater cannot keep such a long answer format, so here each criterion, and the
domain, is one short few-shot question, as in `ratings.py`: the document comes first, so the
requests of one document share a prefix that vLLM's prefix cache computes once.

The prompts live in `dataman.toml` (data, versioned like the rewrite styles). An answer is
accepted only when it names one integer on the scale, or exactly one of the known domains;
anything else is kept with its raw text and the reason, never turned into a guess.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from assets.scored.ratings import ChatMessages, parse_rating

PROMPTS_FILE = Path(__file__).with_name("dataman.toml")
DOMAIN = "domain"  # the question (`dimension` in the answers table) that asks for the domain
COLUMN_PREFIX = "dm_"  # quality_scores' columns: dm_<criterion>, dm_domain


@dataclass(frozen=True)
class Example:
    text: str
    criterion: str
    score: int
    domain: str


@dataclass(frozen=True)
class DatamanPrompts:
    version: int
    low: int
    high: int
    criteria: dict[str, str]  # name -> what it measures (the question's wording)
    domains: tuple[str, ...]
    domain_question: str
    examples: tuple[Example, ...]

    def question(self, criterion: str) -> str:
        if criterion == DOMAIN:
            return self.domain_question.format(names=", ".join(self.domains))
        what = self.criteria[criterion]
        return f"Rate its {what} from {self.low} (lowest) to {self.high} (highest)."

    def conversation(self, text: str, question: str) -> ChatMessages:
        messages: ChatMessages = []
        for example in self.examples:
            for asked, answer in (
                (example.criterion, f"Score: {example.score}"),
                (DOMAIN, f"Domain: {example.domain}"),
            ):
                messages.append({"role": "user", "content": self._turn(example.text, asked)})
                messages.append({"role": "assistant", "content": answer})
        messages.append({"role": "user", "content": self._turn(text, question)})
        return messages

    def _turn(self, text: str, question: str) -> str:
        return f"Text: {text}\n\n{self.question(question)}"

    @property
    def prompt_hash(self) -> str:
        """Names the wording, examples, scale and domain list exactly (and the version)."""
        probe = [self.conversation("{text}", q) for q in (*self.criteria, DOMAIN)]
        return hashlib.blake2b(repr((self.version, probe)).encode(), digest_size=8).hexdigest()


@cache
def load_prompts(path: Path = PROMPTS_FILE) -> DatamanPrompts:
    with path.open("rb") as fh:
        raw = tomllib.load(fh)
    low, high = (int(v) for v in raw["scale"])
    domains = tuple(raw["domain"]["names"])
    criteria = dict(raw["criteria"])
    examples = tuple(Example(**e) for e in raw.get("examples", []))
    for example in examples:
        if example.criterion not in criteria or example.domain not in domains:
            raise ValueError(f"{path}: example names an unknown criterion or domain: {example}")
        if not low <= example.score <= high:
            raise ValueError(f"{path}: example score {example.score} is off the scale")
    return DatamanPrompts(
        int(raw["version"]), low, high, criteria, domains, raw["domain"]["question"], examples
    )


CRITERIA: tuple[str, ...] = tuple(load_prompts().criteria)
DOMAINS: tuple[str, ...] = load_prompts().domains
CRITERION_COLUMNS: tuple[str, ...] = tuple(f"{COLUMN_PREFIX}{c}" for c in CRITERIA)
DOMAIN_COLUMN = f"{COLUMN_PREFIX}{DOMAIN}"


@dataclass(frozen=True, slots=True)
class ParsedDomain:
    domain: str | None
    error: str | None


_DOMAIN_LINE = re.compile(r"domain\s*[:\-]\s*([^\n.;,]+)", re.IGNORECASE)


def parse_domain(answer: str, domains: Sequence[str]) -> ParsedDomain:
    """'Domain: X' naming a known domain; else exactly one known domain named anywhere."""
    if not answer.strip():
        return ParsedDomain(None, "empty answer")
    by_name = {d.lower(): d for d in domains}
    if (match := _DOMAIN_LINE.search(answer)) and (
        found := by_name.get(match.group(1).strip().lower())
    ):
        return ParsedDomain(found, None)
    named = sorted({d for d in domains if re.search(rf"\b{re.escape(d)}\b", answer, re.IGNORECASE)})
    if len(named) == 1:
        return ParsedDomain(named[0], None)
    if named:
        return ParsedDomain(None, f"ambiguous: several domains {named[:4]}")
    return ParsedDomain(None, "names none of the known domains")


def annotate(
    docs: Sequence[dict[str, Any]],
    criteria: Sequence[str],
    chat: Callable[[list[ChatMessages]], list[Any]],
    truncate: Callable[[str], str],
    prompts: DatamanPrompts | None = None,
) -> list[dict[str, Any]]:
    """One row per (document, question): every criterion, then the domain. `score` or `label`
    holds the accepted answer, `parse_error` why there is none."""
    prompts = prompts or load_prompts()
    if unknown := set(criteria) - set(prompts.criteria):
        raise ValueError(f"unknown DataMan criteria {sorted(unknown)}; known: {CRITERIA}")
    questions = [*criteria, DOMAIN]
    keys = [(doc["doc_id"], q) for doc in docs for q in questions]
    texts = {doc["doc_id"]: truncate(doc["text"]) for doc in docs}
    generations = chat([prompts.conversation(texts[doc_id], q) for doc_id, q in keys])
    rows = []
    for (doc_id, question), gen in zip(keys, generations, strict=True):
        if question == DOMAIN:
            domain = parse_domain(gen.text, prompts.domains)
            score, label, error = None, domain.domain, domain.error
        else:
            rating = parse_rating(gen.text, prompts.low, prompts.high)
            score, label, error = rating.score, None, rating.error
        rows.append(
            {
                "doc_id": doc_id,
                "dimension": question,
                "score": score,
                "label": label,
                "parse_error": error,
                "answer": gen.text,
                "prompt_tokens": gen.prompt_tokens,
                "completion_tokens": gen.completion_tokens,
                "finish_reason": gen.finish_reason,
            }
        )
    return rows
