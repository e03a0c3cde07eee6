"""The four heuristic filters, ours against datatrove's, on the same texts in one run.

Both sides run the filters as FineWeb chains them (Gopher repetition -> Gopher quality -> C4 ->
FineWeb quality), stopping at the first failure, with C4's edited text passed on, with the same
parameters (datatrove's defaults, C4 without the terminal-punctuation rule). Texts are extracted
once beforehand, so only filtering is timed. Before timing, both sides load their tokenizers for
every language on one short warm-up text (loading spaCy, jieba and SudachiPy takes seconds and
happens once per process in a real run); our per-chunk word cache is emptied after the warm-up,
so it starts as cold as datatrove's for the timed texts (a second pass of ours, reported apart,
shows the speed with the cache warm, as deep into a long run). Chinese goes to datatrove as
"zh_Hani", the code under which it segments with jieba as we do (its bare "zh" does not segment).
"""

from __future__ import annotations

import time
from pathlib import Path

from assets.cleaned.filters import FilterConfig, apply_filters
from assets.cleaned.words import splitter_for
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


def datatrove_language(language: str) -> str:
    """The datatrove code that tokenizes as we do: bare "zh" gets no segmenter there."""
    return {"zh": "zh_Hani"}.get(language, language)


def run_datatrove(
    texts: list[tuple[str, str]], chains: dict[str, list] | None = None
) -> list[bool]:
    from datatrove.data import Document

    chains = {} if chains is None else chains
    kept = []
    for i, (text, language) in enumerate(texts):
        chain = chains.setdefault(language, _datatrove_chain(datatrove_language(language)))
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


WARM_UP = "The cat sat on the mat. 猫がいる。我们去公园。" * 3


def _warm_up(languages: set[str]) -> dict[str, list]:
    """Load every tokenizer both sides need; return datatrove's warmed filter chains."""
    chains: dict[str, list] = {}
    for language in sorted(languages):
        run_ours([(WARM_UP, language)])
        run_datatrove([(WARM_UP, language)], chains)
    for language in languages:
        clear = getattr(splitter_for(language), "clear_cache", None)
        if clear is not None:
            clear()
    return chains


def run() -> dict:
    texts = load_texts()
    chains = _warm_up({language for _, language in texts})
    started = time.perf_counter()
    ours = run_ours(texts)
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    theirs = run_datatrove(texts, chains)
    theirs_s = time.perf_counter() - started
    started = time.perf_counter()
    run_ours(texts)  # again, with the word cache warm, as deep into a long run
    warm_s = time.perf_counter() - started
    agree = sum(a == b for a, b in zip(ours, theirs, strict=True)) / len(texts)
    return {
        "docs": len(texts),
        "ours_docs_per_s": round(len(texts) / ours_s, 1),
        "datatrove_docs_per_s": round(len(texts) / theirs_s, 1),
        "speedup": round(theirs_s / ours_s, 2),
        "ours_warm_cache_docs_per_s": round(len(texts) / warm_s, 1),
        "speedup_warm_cache": round(theirs_s / warm_s, 2),
        "decision_agreement": round(agree, 4),
    }
