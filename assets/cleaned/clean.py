"""The per-document decisions of the cleaned stage, in FineWeb's order, each one explained.

Unicode repair -> language identification -> Gopher repetition -> Gopher quality -> C4 ->
FineWeb quality -> toxicity (annotated, filtered only above a threshold) -> PII redaction. A
document either comes out (possibly with lines removed by C4 and PII replaced) or leaves a `Drop`
naming the rule, the measured value and the threshold.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

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


@dataclass
class ShardReport:
    """What one shard's cleaning did, for the materialization's metadata."""

    rows_in: int = 0
    rules: Counter[str] = field(default_factory=Counter)
    languages: Counter[str] = field(default_factory=Counter)
    pii: Counter[str] = field(default_factory=Counter)
    toxicity_bins: Counter[str] = field(default_factory=Counter)


class RowSink(Protocol):
    def append(self, row: dict) -> None: ...


def clean_shard(
    docs: Iterable[dict],
    identify: Callable[[str], tuple[str, float]],
    policy: CleaningPolicy,
    kept: RowSink,
    dropped: RowSink,
    signals: RowSink,
) -> ShardReport:
    """Stream one shard's raw documents through `clean_document` into the three tables."""
    report = ShardReport()
    for doc in docs:
        report.rows_in += 1
        result = clean_document(doc, identify, policy)
        if isinstance(result, Drop):
            dropped.append(result.row())
            report.rules[result.rule] += 1
            continue
        kept.append(result.row)
        report.languages[result.row["language"]] += 1
        for kind in ("emails", "phones", "ips"):
            report.pii[kind] += result.row[f"pii_{kind}"]
        report.toxicity_bins[toxicity_bin(result.row["toxicity"])] += 1
        for name, value in result.signals.items():
            signals.append({"doc_id": doc["doc_id"], "signal": name, "value": value})
    return report


def toxicity_bin(value: float, width: float = 0.1) -> str:
    low = min(int(value / width), int(1 / width) - 1) * width
    return f"{low:.1f}-{low + width:.1f}"


def toxicity_histogram(bins: Counter[str]) -> str:
    rows = [f"| {b} | {n} | {'#' * min(n, 60)} |" for b, n in sorted(bins.items())]
    return "\n".join(["| toxicity | documents | |", "| --- | ---: | --- |", *rows])


def with_overrides(filters: FilterConfig, overrides: dict[str, float]) -> FilterConfig:
    """`{"gopher_quality.min_doc_words": 30}`: one published parameter changed, type kept."""
    for key, value in overrides.items():
        group, _, param = key.partition(".")
        section = getattr(filters, group, None)
        if section is None or not hasattr(section, param):
            raise ValueError(f"Unknown filter parameter {key!r} in filter_overrides")
        kind = type(getattr(section, param))
        filters = dataclasses.replace(
            filters, **{group: dataclasses.replace(section, **{param: kind(value)})}
        )
    return filters
