"""Decisions of our filters against datatrove's (the oracle) on two real crawls, filter by filter.

datatrove is a test dependency only; the implementation never imports it.
"""

from __future__ import annotations

import pytest

from assets.cleaned.filters import (
    C4Config,
    FilterConfig,
    FineWebQualityConfig,
    GopherQualityConfig,
    GopherRepetitionConfig,
    apply_filters,
    c4_quality,
    filters_for,
    fineweb_quality,
    gopher_quality,
    gopher_repetition,
)
from assets.cleaned.words import count_sentences, split_words
from benchmarks.bench_filters import datatrove_language, load_texts
from tests.conftest import SAMPLE_CRAWL, SECOND_CRAWL

datatrove = pytest.importorskip("datatrove")
pytestmark = pytest.mark.oracle


def tokenizable(texts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pages whose language datatrove can split offline: for a few languages it loads
    stanza, which is not installed here (a directory listing can read as Northern Sami)."""
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    usable = {}
    for language in {lang for _, lang in texts}:
        try:
            load_word_tokenizer(datatrove_language(language)).word_tokenize("probe")
            usable[language] = True
        except ImportError:
            usable[language] = False
    kept = [(t, lang) for t, lang in texts if usable[lang]]
    assert len(texts) - len(kept) <= 2, "only a stray page may be out of the oracle's reach"
    return kept


def _pairs(language: str):
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    return {
        "gopher_repetition": (
            GopherRepetitionFilter(language=language),
            lambda t: gopher_repetition(t, split_words(t, language), GopherRepetitionConfig()),
        ),
        "gopher_quality": (
            GopherQualityFilter(language=language),
            lambda t: gopher_quality(t, split_words(t, language), GopherQualityConfig()),
        ),
        "c4": (
            C4QualityFilter(filter_no_terminal_punct=False, language=language),
            lambda t: c4_quality(t, language, C4Config()),
        ),
        "fineweb_quality": (
            FineWebQualityFilter(language=language),
            lambda t: fineweb_quality(t, split_words(t, language), FineWebQualityConfig()),
        ),
    }


@pytest.mark.parametrize("crawl", [SAMPLE_CRAWL, SECOND_CRAWL], ids=["sample", "second"])
def test_each_filter_agrees_with_datatrove_on_99_percent(crawl) -> None:
    from datatrove.data import Document

    texts = tokenizable(load_texts([crawl]))
    agree: dict[str, list[bool]] = {}
    for text, language in texts:
        for name, (theirs, ours) in _pairs(language).items():
            doc = Document(text=text, id="x")
            result = theirs.filter(doc)
            kept = result if isinstance(result, bool) else result[0]
            verdict = ours(text)
            same = verdict.kept == kept and (not kept or name != "c4" or verdict.text == doc.text)
            agree.setdefault(name, []).append(same)
    assert len(texts) >= 100
    rates = {name: sum(v) / len(v) for name, v in agree.items()}
    assert all(rate >= 0.99 for rate in rates.values()), rates


@pytest.mark.parametrize("crawl", [SAMPLE_CRAWL, SECOND_CRAWL], ids=["sample", "second"])
def test_words_and_sentences_are_datatrove_s_token_for_token(crawl) -> None:
    """Every page's words, and the sentence counts of its first lines, as datatrove's
    tokenizer for the language gives them (what all four filters count on)."""
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    texts = tokenizable(load_texts([crawl]))
    for text, language in texts:
        theirs = load_word_tokenizer(datatrove_language(language))
        assert split_words(text, language) == theirs.word_tokenize(text), text[:80]
        for line in filter(None, map(str.strip, text.splitlines()[:10])):
            assert count_sentences(line, language) == len(theirs.sent_tokenize(line)), line


def datatrove_chain(text: str, language: str) -> tuple[bool, str]:
    """datatrove's four filters in FineWeb's order; C4 edits the text the next one sees."""
    from datatrove.data import Document

    doc = Document(text=text, id="x")
    for theirs, _ in _pairs(language).values():
        result = theirs.filter(doc)
        if not (result if isinstance(result, bool) else result[0]):
            return False, doc.text
    return True, doc.text


@pytest.mark.parametrize(
    ("mode", "languages"),
    [("datatrove", None), ("per_language", {"en"})],
    ids=["datatrove-mode-all-pages", "shipped-default-english-pages"],
)
def test_the_named_setting_agrees_with_datatrove_s_chain(mode, languages) -> None:
    """The figure the README quotes belongs to a named setting: `parity: datatrove` on every
    page, and the shipped per-language default on English pages (where the two coincide)."""
    config = filters_for(mode)
    texts = [
        (t, lang) for t, lang in load_texts([SAMPLE_CRAWL]) if not languages or lang in languages
    ]
    same = []
    for text, language in texts:
        kept, edited = datatrove_chain(text, language)
        verdict = apply_filters(text, language, config)
        same.append(verdict.kept == kept and (not kept or verdict.text == edited))
    assert len(texts) >= 30
    assert sum(same) / len(same) >= 0.99, (mode, sum(same), len(same))


def test_the_shipped_default_differs_from_datatrove_off_english() -> None:
    """Why the parity figure names its setting: per-language rules keep German pages that
    datatrove's English stop words drop."""
    german = [(t, lang) for t, lang in load_texts([SAMPLE_CRAWL]) if lang == "de"]
    differ = sum(
        apply_filters(t, lang, filters_for("per_language")).kept != datatrove_chain(t, lang)[0]
        for t, lang in german
    )
    assert differ > 0


def test_chain_records_the_failing_rule_value_and_threshold() -> None:
    text = "Buy now!\n" * 40
    verdict = apply_filters(
        text, "en", __import__("assets.cleaned.filters").cleaned.filters.FilterConfig()
    )
    assert not verdict.kept
    assert verdict.rule.startswith("gopher_repetition:")
    assert verdict.value > verdict.threshold


def test_gopher_word_count_boundary_and_c4_document_rules() -> None:
    sentence = "The cat sat on the mat and looked at the bird with care. "
    words = lambda t: split_words(t, "en")  # noqa: E731
    at_limit = sentence * 3 + "Then it slept in the warm sun for most of day."  # 39 + 11 words
    below = sentence * 3 + "Then it slept in the warm sun for most day."  # 39 + 10 words
    assert gopher_quality(at_limit, words(at_limit), GopherQualityConfig()).kept
    verdict = gopher_quality(below, words(below), GopherQualityConfig())
    assert verdict.rule == "gopher_quality:min_doc_words" and verdict.value == 49
    lorem = "\n".join([sentence] * 6 + ["Lorem ipsum dolor sit amet, consectetur."])
    assert c4_quality(lorem, "en", C4Config()).rule == "c4:lorem_ipsum"
    lines = "\n".join([sentence] * 6 + ["Enable JavaScript to view this page now."])
    edited = c4_quality(lines, "en", C4Config())
    assert edited.kept and "JavaScript" not in edited.text


def test_german_pages_are_judged_with_german_stop_words() -> None:
    text = ("Der Paketmanager installiert die Pakete und prüft in den Quellen von Debian, "
            "ob das System zu aktualisieren ist. ") * 8  # fmt: skip
    words = split_words(text, "de")
    german = FilterConfig().for_language("de").gopher_quality
    assert gopher_quality(text, words, german).kept
    english = FilterConfig(per_language={}).for_language("de").gopher_quality
    assert gopher_quality(text, words, english).rule == "gopher_quality:stop_words"
