"""The heuristic filters check by check (values on both sides of each threshold), the chain and
the word splitter. Parity with datatrove on the real crawls is in ``test_filters_parity.py``."""

from __future__ import annotations

import importlib.util
import random
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from assets.cleaned.filters import (
    C4Config,
    FilterConfig,
    FineWebQualityConfig,
    GopherQualityConfig,
    GopherRepetitionConfig,
    Verdict,
    WordNgrams,
    apply_filters,
    c4_quality,
    duplicated_ngram_chars,
    fineweb_quality,
    gopher_quality,
    gopher_repetition,
    top_ngram_chars,
)
from assets.cleaned.words import count_sentences, make_room, split_words, splitter_for

EN = "en"
# Only the check under test is on: 0 disables a Gopher repetition check, as in datatrove.
NO_REPETITION = GopherRepetitionConfig(
    dup_line_frac=0,
    dup_para_frac=0,
    dup_line_char_frac=0,
    dup_para_char_frac=0,
    top_n_grams=(),
    dup_n_grams=(),
)


def _quality(text: str, **overrides) -> Verdict:
    return gopher_quality(text, split_words(text, EN), GopherQualityConfig(**overrides))


def _repetition(text: str, **overrides) -> Verdict:
    return gopher_repetition(text, split_words(text, EN), replace(NO_REPETITION, **overrides))


def _fineweb(text: str, **overrides) -> Verdict:
    return fineweb_quality(text, split_words(text, EN), FineWebQualityConfig(**overrides))


def _words(n: int, word: str = "word") -> str:
    """n distinct-enough words with the two stop words Gopher wants first."""
    return " ".join(["the", "and", *[word] * (n - 2)])


def _assert_drop(verdict: Verdict, rule: str, value: float, threshold: float) -> None:
    assert not verdict.kept
    assert verdict.rule == rule
    assert verdict.value == pytest.approx(value)
    assert verdict.threshold == pytest.approx(threshold)


# --- Gopher quality ----------------------------------------------------------------------------


def test_gopher_min_and_max_words_count_only_words_with_a_non_symbol() -> None:
    assert _quality(_words(50) + " . , ;").kept  # symbols are not words here
    _assert_drop(_quality(_words(49) + " . , ;"), "gopher_quality:min_doc_words", 49, 50)
    assert _quality(_words(60), max_doc_words=60).kept
    _assert_drop(_quality(_words(61), max_doc_words=60), "gopher_quality:max_doc_words", 61, 60)


def test_gopher_mean_word_length_bounds() -> None:
    assert _quality(" ".join(["abc"] * 50), min_stop_words=0).kept  # mean 3.0 is allowed
    short = " ".join(["abc"] * 49 + ["ab"])
    _assert_drop(
        _quality(short, min_stop_words=0), "gopher_quality:min_avg_word_length", 149 / 50, 3
    )
    assert _quality(" ".join(["a" * 10] * 50), min_stop_words=0).kept
    long = " ".join(["a" * 10] * 49 + ["a" * 11])
    _assert_drop(
        _quality(long, min_stop_words=0), "gopher_quality:max_avg_word_length", 501 / 50, 10
    )


def test_gopher_hash_and_ellipsis_ratios_are_over_all_words() -> None:
    assert _quality(_words(50) + " #" * 5).kept  # 5 / 55
    _assert_drop(_quality(_words(50) + " #" * 6), "gopher_quality:hash_ratio", 6 / 56, 0.1)
    assert _quality(_words(25) + " ..." * 5 + " " + _words(25)).kept
    text = _words(25) + " ..." * 6 + " " + _words(25)
    _assert_drop(_quality(text), "gopher_quality:ellipsis_ratio", 6 / 56, 0.1)


def test_gopher_bullet_and_ellipsis_lines() -> None:
    line = "the and word word word word"
    bullets = lambda k: "\n".join([f"- {line}"] * k + [line] * (10 - k))  # noqa: E731
    assert _quality(bullets(9)).kept  # 0.9 is allowed
    _assert_drop(_quality(bullets(10)), "gopher_quality:bullet_lines", 1.0, 0.9)
    trailing = lambda k: "\n".join([f"{line} ..."] * k + [line] * (10 - k))  # noqa: E731
    assert _quality(trailing(3)).kept
    _assert_drop(_quality(trailing(4)), "gopher_quality:ellipsis_lines", 0.4, 0.3)


def test_gopher_alphabetic_words_share() -> None:
    assert _quality(_words(50) + " 123" * 12).kept  # 50 / 62 >= 0.8
    _assert_drop(_quality(_words(50) + " 123" * 13), "gopher_quality:alpha_words", 50 / 63, 0.8)


def test_gopher_stop_words_are_distinct_and_case_sensitive() -> None:
    assert _quality(_words(50)).kept
    _assert_drop(_quality(" ".join(["the"] * 50)), "gopher_quality:stop_words", 1, 2)
    _assert_drop(_quality(" ".join(["The", "And"] * 25)), "gopher_quality:stop_words", 0, 2)


def test_gopher_quality_signals_are_recorded_for_kept_documents() -> None:
    signals = _quality(_words(50)).signals
    assert signals["gopher_quality.n_words"] == 50
    assert signals["gopher_quality.stop_words"] == 2
    assert {"gopher_quality.avg_word_length", "gopher_quality.alpha_words_ratio"} <= set(signals)


# --- Gopher repetition -------------------------------------------------------------------------


def test_duplicate_paragraph_share() -> None:
    paras = lambda k: "\n\n".join([f"paragraph {i}" for i in range(10 - k)] + ["same"] * k)  # noqa: E731
    assert _repetition(paras(4), dup_para_frac=0.3).kept  # 3 repeats of "same" in 10
    verdict = _repetition(paras(5), dup_para_frac=0.3)
    _assert_drop(verdict, "gopher_repetition:dup_para_frac", 0.4, 0.3)


def test_duplicate_paragraph_characters_are_over_the_whole_text() -> None:
    text = lambda filler: "\n\n".join(["x" * 20, "x" * 20, "y" * filler])  # noqa: E731
    assert _repetition(text(56), dup_para_char_frac=0.2).kept  # 20 / 100
    verdict = _repetition(text(55), dup_para_char_frac=0.2)
    _assert_drop(verdict, "gopher_repetition:dup_para_char_frac", 20 / 99, 0.2)


def test_duplicate_lines_split_on_runs_of_newlines() -> None:
    text = "a line\n\n\na line\nother\nmore\nlast"  # "\n+" splits: 1 repeat in 5 lines
    assert _repetition(text, dup_line_frac=0.2).kept
    _assert_drop(
        _repetition(text, dup_line_frac=0.19), "gopher_repetition:dup_line_frac", 0.2, 0.19
    )
    chars = _repetition(text, dup_line_char_frac=0.2).signals
    assert chars["gopher_repetition.dup_line_char_frac"] == pytest.approx(6 / len(text))


def test_top_bigram_share() -> None:
    text = lambda filler: "ab cd " * 4 + "z" * filler  # noqa: E731 - "ab cd" 4 times = 20 chars
    assert _repetition(text(76), top_n_grams=((2, 0.2),)).kept
    verdict = _repetition(text(75), top_n_grams=((2, 0.2),))
    _assert_drop(verdict, "gopher_repetition:top_2_gram", 20 / 99, 0.2)


def test_top_ngram_ties_go_to_the_first_seen() -> None:
    # "a b" and "bb cc" both occur twice; Counter.most_common(1) returns the first seen
    assert top_ngram_chars(["a", "b", "x", "a", "b", "y", "bb", "cc", "z", "bb", "cc"], 2) == 6
    assert top_ngram_chars(["a"], 2) is None


def test_duplicated_ngrams_jump_past_repeats_and_key_on_concatenation() -> None:
    assert duplicated_ngram_chars(list("abcde") * 3, 5) == 10  # two repeats of "abcde"
    # ("ab", "c", ...) and ("a", "bc", ...) are the same key "abcdef", as in datatrove
    assert duplicated_ngram_chars(["ab", "c", "d", "e", "f", "a", "bc", "d", "e", "f"], 5) == 6
    text = lambda filler: " ".join([*"abcde" * 3, "q" * filler])  # noqa: E731
    assert _repetition(text(37), dup_n_grams=((5, 0.15),)).kept  # 10 / 67
    verdict = _repetition(text(36), dup_n_grams=((5, 0.15),))
    _assert_drop(verdict, "gopher_repetition:dup_5_grams", 10 / 66, 0.15)


def test_repetition_defaults_drop_a_repeated_page() -> None:
    verdict = gopher_repetition("Buy now!\n" * 40, [], GopherRepetitionConfig())
    assert verdict.rule == "gopher_repetition:dup_para_char_frac" or not verdict.kept


# --- C4 ----------------------------------------------------------------------------------------

SENTENCE = "The cat sat on the mat."


def test_c4_counts_sentences_of_kept_lines_only() -> None:
    five = "\n".join([SENTENCE + " It purred."] * 2 + [SENTENCE, "Too short", "Nope."])
    verdict = c4_quality(five, EN, C4Config())
    assert verdict.kept and verdict.signals["c4.sentences"] == 5
    assert verdict.text == "\n".join([SENTENCE + " It purred."] * 2 + [SENTENCE])
    four = "\n".join([SENTENCE + " It purred.", SENTENCE, SENTENCE, "Too short"])
    _assert_drop(c4_quality(four, EN, C4Config()), "c4:min_sentences", 4, 5)


def test_c4_removes_javascript_policy_long_word_and_citation() -> None:
    lines = [
        SENTENCE,
        "Please enable JavaScript to continue.",
        "This site uses cookies for analytics.",
        "A " + "w" * 1001 + " word.",
        "A " + "w" * 1000 + " word.",
        "Cited claim here[1] and there[edit].",
        SENTENCE,
        SENTENCE,
    ]
    verdict = c4_quality("\n".join(lines), EN, C4Config())
    assert verdict.kept
    assert "JavaScript" not in verdict.text and "cookies" not in verdict.text
    assert "w" * 1001 not in verdict.text and "w" * 1000 in verdict.text
    assert "Cited claim here and there." in verdict.text
    assert verdict.signals["c4.lines_removed"] == 3


def test_c4_document_rules_only_look_at_lines_that_survive() -> None:
    body = "\n".join([SENTENCE] * 5)
    # two-word lines go before the document rules are checked, as in datatrove
    assert c4_quality(body + "\nLorem ipsum\n{ }", EN, C4Config()).kept
    lorem = c4_quality(body + "\nLorem ipsum dolor sit amet.", EN, C4Config())
    _assert_drop(lorem, "c4:lorem_ipsum", 1, 0)
    curly = c4_quality(body + "\nfunction f() { return 1; }", EN, C4Config())
    _assert_drop(curly, "c4:curly_bracket", 1, 0)


def test_c4_terminal_punctuation_rule_is_off_as_in_fineweb() -> None:
    text = "\n".join([SENTENCE] * 5 + ["A line without an end"])
    assert "without" in c4_quality(text, EN, C4Config()).text
    strict = c4_quality(text, EN, C4Config(filter_no_terminal_punct=True))
    assert "without" not in strict.text


# --- FineWeb quality ---------------------------------------------------------------------------


def _lines(n: int, end: str = "", start: int = 0) -> list[str]:
    return [f"This is a long enough line number {i:03d}{end}" for i in range(start, start + n)]


def test_fineweb_line_punctuation_share() -> None:
    kept = "\n".join(_lines(3, ".") + _lines(22, start=3))  # 3 / 25 = 0.12
    assert _fineweb(kept).kept
    dropped = "\n".join(_lines(2, ".") + _lines(23, start=2))
    _assert_drop(_fineweb(dropped), "fineweb_quality:line_punct_ratio", 0.08, 0.12)


def test_fineweb_short_line_share() -> None:
    short = lambda k: [f"Short line {i}." for i in range(k)]  # noqa: E731
    assert _fineweb("\n".join(short(67) + _lines(33, "."))).kept
    text = "\n".join(short(68) + _lines(32, "."))
    _assert_drop(_fineweb(text), "fineweb_quality:short_line_ratio", 0.68, 0.67)


def test_fineweb_duplicated_line_characters() -> None:
    def text(total: int) -> str:
        lines = ["d" * 19 + ".", "d" * 19 + ".", *_lines(20, ".")]
        filler = total - sum(map(len, lines))
        return "\n".join([*lines, "f" * (filler - 1) + "."])

    assert _fineweb(text(2000)).kept  # 20 duplicated characters of 2000
    _assert_drop(_fineweb(text(1999)), "fineweb_quality:char_dup_ratio", 20 / 1999, 0.01)


def test_fineweb_newlines_per_word() -> None:
    line = lambda i: f"Alphaxxxxxxxxxxxxxxxx{i:02d} betaxxxxxxxxxxxx."  # noqa: E731 - 3 tokens
    assert _fineweb("\n".join(map(line, range(10)))).kept  # 9 / 30
    _assert_drop(
        _fineweb("\n".join(map(line, range(11)))), "fineweb_quality:list_ratio", 10 / 33, 0.3
    )


def test_fineweb_empty_text_is_dropped() -> None:
    assert _fineweb("\n \n").rule == "fineweb_quality:empty"


# --- the chain ---------------------------------------------------------------------------------


def test_chain_stops_at_the_first_failure_in_fineweb_order() -> None:
    verdict = apply_filters("spam\n" * 30, EN, FilterConfig())  # fails repetition and quality
    assert verdict.rule.startswith("gopher_repetition:")
    assert not any(key.startswith("gopher_quality.") for key in verdict.signals)


def test_chain_passes_c4_edits_on_and_merges_signals() -> None:
    body = [
        "The quick brown fox jumps over the lazy dog near the river bank.",
        "A small team of engineers built the new bridge with care and skill.",
        "Every morning the baker opens his shop before the sun comes up.",
        "Children played in the park while their parents talked about work.",
        "The museum will host an exhibition of old maps from the harbour.",
        "Heavy rain flooded several streets, and the council closed the school.",
    ]
    menu = [f"Menu{i}" for i in range(20)]  # one-word lines: FineWeb's short-line rule hates them
    text = "\n".join(body + menu)
    assert not _fineweb(text).kept
    verdict = apply_filters(text, EN, FilterConfig())
    assert verdict.kept and verdict.text == "\n".join(body)
    prefixes = {key.split(".")[0] for key in verdict.signals}
    assert prefixes == {"gopher_repetition", "gopher_quality", "c4", "fineweb_quality"}


def test_disabled_filters_and_per_language_overrides() -> None:
    lax = FilterConfig(gopher_quality=None, per_language={})
    strict = FilterConfig(per_language={"de": lax})
    text = "\n".join(
        [
            "Gestern regnete es in der ganzen Stadt stundenlang ohne Pause.",
            "Viele Leute blieben deshalb zu Hause und lasen ein gutes Buch.",
            "Am Abend öffnete das kleine Kino am Markt wieder seine Türen.",
            "Kinder spielten im Hof, während die Eltern das Essen kochten.",
            "Morgen soll endlich die Sonne scheinen, sagt der Wetterbericht.",
            "Dann wollen wir mit dem Fahrrad an den nahen See hinausfahren.",
        ]
    )
    assert strict.for_language("de_Latn") is lax
    assert apply_filters(text, "de", strict).kept
    assert apply_filters(text, "en", strict).rule == "gopher_quality:stop_words"
    assert apply_filters("   ", EN, FilterConfig()).rule == "empty_text"


# --- words -------------------------------------------------------------------------------------


def test_words_follow_spacy_rules_across_chunks() -> None:
    assert split_words("I don't know.", EN) == ["I", "do", "n't", "know", "."]
    # ":" then "p." looks like the emoticon ":p" to spaCy's matcher, which changes "p."
    assert split_words("try: p.Parse(doc)", EN) == ["try", ":", "p", ".", "Parse(doc", ")"]
    assert split_words("Los EE. UU. son", "es") == ["Los", "EE. UU.", "son"]


def test_sentence_counts_follow_spacy_sentencizer() -> None:
    assert count_sentences("One. Two! Three?", EN) == 3
    assert count_sentences("Version 1.2 is out.", EN) == 1
    assert count_sentences("Wait...  then go", EN) == 1  # "..." is not a sentence mark
    assert count_sentences("Wait.  then go", EN) == 2  # the second space is a token
    assert count_sentences("Hello (world). yes", EN) == 2


def test_affix_loop_splits_as_spacy_does() -> None:
    """Chunks are split by spaCy's own affix loop run without spaCy: exactly as spaCy, or not
    at all (None) where a special case is involved."""
    chunks = "word, (word) word. don't dont Mr. e.g., etc. l'été aujourd'hui U.S. «mot» (a a)"
    chunks = [*chunks.split(), "“quote”", "vs.", "km²", "Straße:", "-word", "word-", "12.1,"]
    chunks += ["version):", "Allez-y.", "(=12).", "REMOVED:)", "GNU/Linux", "non-Linux-based"]
    chunks += ["sections),", "https://www.debian.org/ports/", "100%", "$10.00", "...so!!", ":p"]
    split = 0
    for language in ("en", "fr", "de", "nl", "ru"):
        splitter = splitter_for(language)
        for chunk in chunks:
            tokens = splitter._affix_tokens(chunk)
            assert tokens is None or tokens == splitter._tokenize_chunk(chunk), (language, chunk)
            split += tokens is not None
    assert split >= 0.6 * 5 * len(chunks)  # the loop, not spaCy, splits most of them


def _reference_dup_chars(words: list[str], n: int) -> int:
    """datatrove's ``find_all_duplicate``, verbatim in behaviour."""
    unique, repeated, idx = set(), 0, 0
    while idx < len(words) - n + 1:
        gram = "".join(words[idx : idx + n])
        if gram in unique:
            repeated, idx = repeated + len(gram), idx + n
        else:
            unique.add(gram)
            idx += 1
    return repeated


def _reference_top_chars(words: list[str], n: int) -> int | None:
    grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return None
    gram, freq = Counter(grams).most_common(1)[0]
    return len(gram) * freq


def test_ngram_counts_match_datatrove_s_string_keys_on_random_words(monkeypatch) -> None:
    rng = random.Random(3)
    vocabulary = ["a", "b", "ab", "ba", "c", "bc", "abc", "é", "x"]  # concatenations collide
    texts = [
        [rng.choice(vocabulary[: 2 + k % 8]) for _ in range(rng.randint(0, 80))] for k in range(300)
    ]
    for words in texts:
        ngrams = WordNgrams(words)
        for n in range(5, 11):
            assert ngrams.duplicated_chars(n) == _reference_dup_chars(words, n)
        for n in (2, 3, 4):
            assert ngrams.top_chars(n) == _reference_top_chars(words, n)
    # A hash collision (here: every n-gram hashes alike) is caught and falls back to strings.
    monkeypatch.setattr(WordNgrams, "_prefix_hash", property(_constant_hash))
    for words in texts[:50]:
        assert WordNgrams(words).duplicated_chars(5) == _reference_dup_chars(words, 5)


def _constant_hash(ngrams: WordNgrams) -> tuple[np.ndarray, np.ndarray]:
    size = len(ngrams.offsets) and int(ngrams.offsets[-1]) + 1
    return np.zeros(size, dtype=np.uint64), np.ones(size, dtype=np.uint64)


def test_memos_forget_their_older_half_when_full() -> None:
    memo = {f"w{i}": i for i in range(10)}
    make_room(memo, 1, 10)
    assert list(memo) == [f"w{i}" for i in range(5, 10)]
    make_room(memo, 3, 10)
    assert len(memo) == 5


@pytest.mark.skipif(importlib.util.find_spec("jieba") is None, reason="jieba not installed")
def test_chinese_is_segmented_with_jieba() -> None:
    assert split_words("我们今天去公园玩。", "zh") == ["我们", "今天", "去", "公园", "玩", "。"]


@pytest.mark.skipif(importlib.util.find_spec("sudachipy") is None, reason="no sudachipy")
def test_japanese_is_segmented_with_sudachi() -> None:
    assert split_words("今日は良い天気です。", "ja") == ["今日", "は", "良い", "天気", "です", "。"]
    assert count_sentences("今日は晴れ。明日は雨。", "ja") == 2
