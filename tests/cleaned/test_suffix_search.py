"""The dispatched suffix search finds exactly what spaCy's suffix regex finds."""

from __future__ import annotations

import re
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assets.cleaned.suffix_search import (
    SuffixSearch,
    fast_suffix_search,
    last_chars,
    top_level_alternatives,
)
from benchmarks.bench_filters import load_texts
from tests.conftest import SAMPLE_CRAWL

LANGUAGES = ("en", "fr", "de", "ru", "es", "it", "nl", "pl", "pt", "xx")


@cache
def _spacy_suffix(language: str) -> re.Pattern:
    import spacy

    return spacy.blank(language).tokenizer.suffix_search.__self__


def _span(match: re.Match | None) -> tuple[int, int] | None:
    return None if match is None else match.span()


def test_top_level_alternatives_respect_groups_classes_and_escapes() -> None:
    pattern = r"a$|(?:b|c)$|[|\]]$|\|$|[]x]$|[^|]y$"
    assert top_level_alternatives(pattern) == [
        "a$",
        "(?:b|c)$",
        r"[|\]]$",
        r"\|$",
        "[]x]$",
        "[^|]y$",
    ]


def test_last_characters_of_a_pattern() -> None:
    assert last_chars(r"(?<=[0-9])(?:km|m|g)$", 0) == [(ord("m"), ord("m"))] * 2 + [(103, 103)]
    assert last_chars(r"\.\.+$", 0) == [(46, 46)]
    assert last_chars(r"[a-c]$", 0) == [(97, 99)]
    assert last_chars(r"[^a]$", 0) is None  # a negated class: unknown
    assert last_chars(r"x?$", 0) is None  # can match the empty string


@pytest.fixture(scope="module")
def sample_chunks() -> list[str]:
    chunks = {chunk for text, _ in load_texts([SAMPLE_CRAWL]) for chunk in text.split()}
    chunks |= {"1.5km", "10$", "U.S.", "dogs'", "end...", "(a)", "won't", "°C.", "ok.»", ""}
    return sorted(chunks)


@pytest.mark.parametrize("language", LANGUAGES)
def test_same_matches_as_spacy_on_every_chunk_of_the_sample(language, sample_chunks) -> None:
    compiled = _spacy_suffix(language)
    fast = fast_suffix_search(compiled.search)
    assert isinstance(fast, SuffixSearch) and fast._pieces is not None  # dispatch is in use
    for chunk in sample_chunks:
        assert _span(fast(chunk)) == _span(compiled.search(chunk)), chunk


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("aZ09.,;:!?'\"’)(]-–—…$€%°²/sSmkgé»«。"), max_size=12))
def test_same_matches_as_spacy_on_random_chunks(chunk) -> None:
    for language in ("en", "fr", "ru"):
        compiled = _spacy_suffix(language)
        assert _span(_fast(language)(chunk)) == _span(compiled.search(chunk))


@cache
def _fast(language: str) -> SuffixSearch:
    return SuffixSearch(_spacy_suffix(language))


def test_a_regex_that_is_not_an_alternation_of_end_anchored_patterns_is_used_as_is() -> None:
    compiled = re.compile(r"ab|c$")
    fast = SuffixSearch(compiled)
    assert fast._pieces is None
    assert _span(fast("abx")) == (0, 2)
