"""The four heuristic filters, ours against datatrove's, on the same texts in one run.

Both sides run the filters as FineWeb chains them (Gopher repetition -> Gopher quality -> C4 ->
FineWeb quality), stopping at the first failure, with C4's edited text passed on, with the same
parameters (datatrove's defaults, C4 without the terminal-punctuation rule). Texts are extracted
once beforehand, so only filtering is timed. Before timing, both sides load their tokenizers for
every language on one short warm-up text (loading spaCy, jieba and SudachiPy takes seconds and
happens once per process in a real run). Chinese goes to datatrove as "zh_Hani", the code under
which it segments with jieba as we do (its bare "zh" does not segment).

Speed is docs per CPU second of this process (one core; datatrove's filters keep no state
between documents). "Cold": every memo of ours (words per chunk, word properties) is emptied
before the pass, so each distinct chunk is tokenized once, as at the start of a shard; "warm":
the same texts again with the memos filled, as deep into a shard, where most chunks have been
seen. The passes are interleaved `repeats` times and the fastest of each kind is reported, so
that other load on the machine (it is shared) inflates neither side more than the other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assets.cleaned.filters import FilterConfig, apply_filters, clear_word_memos
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


@dataclass(frozen=True)
class Timing:
    cpu_s: float  # CPU seconds of this process: one core's work
    wall_s: float
    result: Any


def timed(fn: Callable[[], Any]) -> Timing:
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return Timing(time.process_time() - cpu, time.perf_counter() - wall, result)


def fastest(timings: list[Timing]) -> Timing:
    return min(timings, key=lambda t: t.cpu_s)


def speed_figures(docs: int, cold: list[Timing], warm: list[Timing], theirs: list[Timing]) -> dict:
    """Docs per CPU second of the fastest pass of each kind, and our speed-ups over the peer."""
    ours, ours_warm, peer = fastest(cold), fastest(warm), fastest(theirs)
    return {
        "ours_docs_per_cpu_s": round(docs / ours.cpu_s, 1),
        "ours_warm_docs_per_cpu_s": round(docs / ours_warm.cpu_s, 1),
        "datatrove_docs_per_cpu_s": round(docs / peer.cpu_s, 1),
        "speedup": round(peer.cpu_s / ours.cpu_s, 2),
        "speedup_warm": round(peer.cpu_s / ours_warm.cpu_s, 2),
        "speedup_wall": round(min(t.wall_s for t in theirs) / min(t.wall_s for t in cold), 2),
    }


def _clear_memos(languages: set[str]) -> None:
    """Empty every memo of ours, so that a pass starts as a new shard would."""
    clear_word_memos()
    for language in languages:
        clear = getattr(splitter_for(language), "clear_cache", None)
        if clear is not None:
            clear()


def _warm_up(languages: set[str]) -> dict[str, list]:
    """Load every tokenizer both sides need; return datatrove's warmed filter chains."""
    chains: dict[str, list] = {}
    for language in sorted(languages):
        run_ours([(WARM_UP, language)])
        run_datatrove([(WARM_UP, language)], chains)
    return chains


def run(repeats: int = 3) -> dict:
    texts = load_texts()
    languages = {language for _, language in texts}
    chains = _warm_up(languages)
    cold, warm, theirs = [], [], []
    for _ in range(repeats):
        _clear_memos(languages)
        cold.append(timed(lambda: run_ours(texts)))
        warm.append(timed(lambda: run_ours(texts)))
        theirs.append(timed(lambda: run_datatrove(texts, chains)))
    ours, dt = fastest(cold), fastest(theirs)
    agree = sum(a == b for a, b in zip(ours.result, dt.result, strict=True)) / len(texts)
    return {
        "docs": len(texts),
        "repeats": repeats,
        **speed_figures(len(texts), cold, warm, theirs),
        "decision_agreement": round(agree, 4),
        "warm_same_decisions": all(t.result == ours.result for t in cold + warm),
    }
