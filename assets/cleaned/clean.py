"""The per-document decisions of the cleaned stage, in FineWeb's order, each one explained.

Unicode repair -> language identification -> Gopher repetition -> Gopher quality -> C4 ->
FineWeb quality -> toxicity (annotated, filtered only above a threshold) -> PII redaction. A
document either comes out (possibly with lines removed by C4 and PII replaced) or leaves a `Drop`
naming the rule, the measured value and the threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import ftfy

from assets.cleaned.filters import FilterConfig, apply_filters
from assets.cleaned.pii import PiiPolicy, redact
from assets.cleaned.toxicity import score_toxicity
from assets.documents import Drop, content_hash

STAGE = "cleaned"


@dataclass(frozen=True)
class CleaningPolicy:
    min_language_score: float = 0.65  # FineWeb's fastText threshold
    languages: tuple[str, ...] | None = None  # None keeps every language
    filters: FilterConfig = field(default_factory=FilterConfig)
    pii: PiiPolicy = field(default_factory=PiiPolicy)
    max_toxicity: float | None = None  # None annotates only


@dataclass(frozen=True, slots=True)
class Cleaned:
    row: dict
    signals: dict[str, float]


def clean_document(
    doc: dict, identify: Callable[[str], tuple[str, float]], policy: CleaningPolicy
) -> Cleaned | Drop:
    """Judge one raw document; `doc` carries at least doc_id, shard, url, text, source_offset."""
    text = ftfy.fix_text(doc["text"])
    language, score = identify(text)
    if score < policy.min_language_score:
        return _drop(doc, "language:low_confidence", score, policy.min_language_score, language)
    if policy.languages is not None and language not in policy.languages:
        return _drop(doc, "language:not_selected", score, None, language)
    verdict = apply_filters(text, language, policy.filters)
    if not verdict.kept:
        return _drop(doc, verdict.rule or "filter", verdict.value, verdict.threshold, language)
    toxicity = score_toxicity(verdict.text)
    if policy.max_toxicity is not None and toxicity.mean > policy.max_toxicity:
        return _drop(doc, "toxicity:above_threshold", toxicity.mean, policy.max_toxicity, language)
    redaction = redact(verdict.text, policy.pii)
    text = redaction.text
    row = {
        "doc_id": doc["doc_id"],
        "shard": doc["shard"],
        "url": doc["url"],
        "language": language,
        "language_score": score,
        "text": text,
        "content_hash": content_hash(text),
        "n_chars": len(text),
        "source_offset": doc["source_offset"],
        "toxicity": toxicity.mean,
        "pii_emails": redaction.emails,
        "pii_phones": redaction.phones,
        "pii_ips": redaction.ips,
    }
    signals = {"language_score": score, "toxicity_max": toxicity.max, **verdict.signals}
    return Cleaned(row, signals)


def _drop(
    doc: dict, rule: str, value: float | None, threshold: float | None, language: str
) -> Drop:
    return Drop(
        doc_id=doc["doc_id"],
        stage=STAGE,
        rule=rule,
        value=value,
        threshold=threshold,
        detail=f"language={language}",
        url=doc["url"],
    )
