"""The four heuristic filters, ours against datatrove's, on the same texts in one run.

Both sides run the filters as FineWeb chains them (Gopher repetition -> Gopher quality -> C4 ->
FineWeb quality), stopping at the first failure, with C4's edited text passed on. Texts are
extracted once beforehand, so only filtering is timed; both start with cold tokenizers.
"""

from __future__ import annotations

import time
from pathlib import Path

from assets.cleaned.filters import FilterConfig, apply_filters
from assets.raw.extract import iter_documents
from resources.langid import LanguageIdentifier
from resources.settings import REPO_ROOT

CRAWLS = [REPO_ROOT / "data" / "sample_crawl", REPO_ROOT / "tests" / "data" / "second_crawl"]


def load_texts(crawls: list[Path] = CRAWLS) -> list[tuple[str, str]]:
    identify = LanguageIdentifier().identify
    texts = []
    for crawl in crawls:
        for path in sorted(crawl.glob("*.warc.gz")):
            for item in iter_documents(str(path)):
                if isinstance(item, tuple):
                    texts.append((item[1].text, identify(item[1].text)[0]))
    return texts


def _datatrove_chain(language: str) -> list:
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    return [
        GopherRepetitionFilter(language=language),
        GopherQualityFilter(language=language),
        C4QualityFilter(filter_no_terminal_punct=False, language=language),
        FineWebQualityFilter(language=language),
    ]


def run_datatrove(texts: list[tuple[str, str]]) -> list[bool]:
    from datatrove.data import Document

    chains: dict[str, list] = {}
    kept = []
    for i, (text, language) in enumerate(texts):
        chain = chains.setdefault(language, _datatrove_chain(language))
        doc = Document(text=text, id=str(i))
        ok = True
        for step in chain:
            result = step.filter(doc)
            if not (result if isinstance(result, bool) else result[0]):
                ok = False
                break
        kept.append(ok)
    return kept


def run_ours(texts: list[tuple[str, str]]) -> list[bool]:
    config = FilterConfig(per_language={})  # datatrove's English defaults for every language
    return [apply_filters(text, language, config).kept for text, language in texts]


def run() -> dict:
    texts = load_texts()
    started = time.perf_counter()
    ours = run_ours(texts)
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    theirs = run_datatrove(texts)
    theirs_s = time.perf_counter() - started
    agree = sum(a == b for a, b in zip(ours, theirs, strict=True)) / len(texts)
    return {
        "docs": len(texts),
        "ours_docs_per_s": round(len(texts) / ours_s, 1),
        "datatrove_docs_per_s": round(len(texts) / theirs_s, 1),
        "speedup": round(theirs_s / ours_s, 2),
        "decision_agreement": round(agree, 4),
    }
