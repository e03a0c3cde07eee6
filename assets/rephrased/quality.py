"""Quality control of rewrites: a bad rewrite is recorded with its reason, never passed on.

Small models in particular answer with chat preambles, refusals, loops or text unrelated to the
source; each check below catches one of those and names the value it measured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREAMBLE = re.compile(
    r"^\s*(sure|certainly|of course|okay|here(?:'s| is| are)|below is)\b[^\n]{0,160}[:.!]\s*\n",
    re.IGNORECASE,
)
REFUSAL = re.compile(
    r"\b(i'?m sorry|i am sorry|i cannot|i can'?t (help|assist|do)|as an ai\b|i'?m unable to)",
    re.IGNORECASE,
)
WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class QualityPolicy:
    min_words: int = 20
    max_length_ratio: float = 3.0
    min_distinct_4gram_ratio: float = 0.5
    min_source_overlap: float = 0.2
    max_truncated_share: float = 0.5  # of a document's chunks that hit the output token limit


@dataclass(frozen=True, slots=True)
class Rejection:
    rule: str
    value: float | None
    threshold: float | None


def strip_preamble(text: str) -> str:
    return PREAMBLE.sub("", text, count=1).strip()


SENTENCE_END = re.compile(r"[.!?。！？](?=\s|$)")


def cut_to_last_sentence(text: str) -> str:
    """A rewrite that ran into the token limit keeps its complete sentences only."""
    ends = [m.end() for m in SENTENCE_END.finditer(text)]
    return text[: ends[-1]] if ends else text


def judge_rewrite(
    source: str, rewrite: str, truncated_share: float, policy: QualityPolicy
) -> Rejection | None:
    """None when the rewrite may enter the corpus, else the first rule it breaks."""
    words = WORD.findall(rewrite.lower())
    if truncated_share > policy.max_truncated_share:
        return Rejection("qc:truncated_output", truncated_share, policy.max_truncated_share)
    if len(words) < policy.min_words:
        return Rejection("qc:too_short", len(words), policy.min_words)
    if REFUSAL.search(rewrite[:300]):
        return Rejection("qc:refusal", None, None)
    ratio = len(rewrite) / max(len(source), 1)
    if ratio > policy.max_length_ratio:
        return Rejection("qc:runaway_length", ratio, policy.max_length_ratio)
    distinct = distinct_ngram_ratio(words, 4)
    if distinct < policy.min_distinct_4gram_ratio:
        return Rejection("qc:repetition", distinct, policy.min_distinct_4gram_ratio)
    overlap = source_overlap(source, words)
    if overlap < policy.min_source_overlap:
        return Rejection("qc:unfaithful", overlap, policy.min_source_overlap)
    return None


def distinct_ngram_ratio(words: list[str], n: int) -> float:
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


def source_overlap(source: str, rewrite_words: list[str]) -> float:
    """Share of the rewrite's longer words that occur in the source: low means it drifted away."""
    content = [w for w in rewrite_words if len(w) > 3]
    if not content:
        return 0.0
    vocabulary = set(WORD.findall(source.lower()))
    return sum(w in vocabulary for w in content) / len(content)
