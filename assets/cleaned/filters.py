"""The canonical heuristic filters with their published defaults, at parity with datatrove.

Gopher quality and repetition (Rae et al. 2021, "Scaling Language Models", appendix A), C4
(Raffel et al. 2020) and FineWeb's own quality filter (Penedo et al. 2024), each following the
order and the comparisons of datatrove's implementation, which is the oracle in the tests. Each
filter returns a `Verdict` naming the first failed check with its measured value and threshold,
and every value it measured along the way, which the scored stage reuses.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace

from assets.cleaned.punctuation import PUNCTUATION, TERMINAL
from assets.cleaned.words import count_sentences, split_words


@dataclass(frozen=True, slots=True)
class Verdict:
    kept: bool
    rule: str | None
    value: float | None
    threshold: float | None
    text: str
    signals: dict[str, float]


@dataclass(frozen=True)
class GopherQualityConfig:
    min_doc_words: int = 50
    max_doc_words: int = 100_000
    min_avg_word_length: float = 3
    max_avg_word_length: float = 10
    max_symbol_word_ratio: float = 0.1
    max_bullet_lines_ratio: float = 0.9
    max_ellipsis_lines_ratio: float = 0.3
    max_non_alpha_words_ratio: float = 0.8
    min_stop_words: int = 2
    stop_words: tuple[str, ...] = ("the", "be", "to", "of", "and", "that", "have", "with")


@dataclass(frozen=True)
class GopherRepetitionConfig:
    dup_line_frac: float = 0.3
    dup_para_frac: float = 0.3
    dup_line_char_frac: float = 0.2
    dup_para_char_frac: float = 0.2
    top_n_grams: tuple[tuple[int, float], ...] = ((2, 0.2), (3, 0.18), (4, 0.16))
    dup_n_grams: tuple[tuple[int, float], ...] = (
        (5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10),
    )  # fmt: skip


@dataclass(frozen=True)
class C4Config:
    """datatrove's C4QualityFilter as FineWeb ran it: lines without terminal punctuation stay."""

    split_paragraph: bool = True
    remove_citations: bool = True
    filter_no_terminal_punct: bool = False
    min_num_sentences: int = 5
    min_words_per_line: int = 3
    max_word_length: int = 1000
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True


@dataclass(frozen=True)
class FineWebQualityConfig:
    line_punct_thr: float = 0.12
    line_punct_exclude_zero: bool = False
    short_line_thr: float = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float = 0.01
    new_line_ratio: float = 0.3


@dataclass(frozen=True)
class FilterConfig:
    """None disables a filter; `per_language` replaces the whole config for one language."""

    gopher_repetition: GopherRepetitionConfig | None = field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig | None = field(default_factory=GopherQualityConfig)
    c4: C4Config | None = field(default_factory=C4Config)
    fineweb_quality: FineWebQualityConfig | None = field(default_factory=FineWebQualityConfig)
    per_language: dict[str, FilterConfig] | None = None  # None = default_per_language()

    def for_language(self, language: str) -> FilterConfig:
        table = default_per_language(self) if self.per_language is None else self.per_language
        return table.get(language, self)


# Gopher's stop-word rule names eight frequent English function words; applied to German or
# French pages it drops them for being German or French. FineWeb2 adapts such rules per language;
# we keep the rule and give each language its eight most frequent function words.
STOP_WORDS_BY_LANGUAGE = {
    "de": ("der", "die", "und", "in", "den", "von", "zu", "das"),
    "fr": ("de", "la", "le", "et", "les", "des", "en", "un"),
    "es": ("de", "la", "que", "el", "en", "y", "los", "del"),
    "it": ("di", "e", "il", "la", "che", "in", "per", "un"),
    "pt": ("de", "a", "o", "que", "e", "do", "da", "em"),
    "nl": ("de", "en", "van", "het", "een", "in", "is", "dat"),
    "ru": ("и", "в", "не", "на", "что", "с", "по", "это"),
}
# Words of scripts written without spaces are one or two characters long by nature, and their
# tokenizers return every 、。「」 as a word, so fewer "words" carry a letter (0.59-0.80 on the
# sample's Japanese and Chinese manuals, against Gopher's 0.8 floor for English).
UNSPACED_LANGUAGES = ("ja", "zh", "th")


def default_per_language(base: FilterConfig) -> dict[str, FilterConfig]:
    if base.gopher_quality is None:
        return {}
    table = {
        lang: replace(
            base, per_language={}, gopher_quality=replace(base.gopher_quality, stop_words=words)
        )
        for lang, words in STOP_WORDS_BY_LANGUAGE.items()
    }
    for lang in UNSPACED_LANGUAGES:
        quality = replace(
            base.gopher_quality,
            min_avg_word_length=1,
            min_stop_words=0,
            max_non_alpha_words_ratio=0.5,
        )
        table[lang] = replace(base, per_language={}, gopher_quality=quality)
    return table


def _fail(rule: str, value: float, threshold: float, text: str, signals: dict) -> Verdict:
    return Verdict(False, rule, float(value), float(threshold), text, signals)


def _pass(text: str, signals: dict) -> Verdict:
    return Verdict(True, None, None, None, text, signals)


# ---------------------------------------------------------------- Gopher quality


def gopher_quality(text: str, words: list[str], cfg: GopherQualityConfig) -> Verdict:
    s: dict[str, float] = {}
    content = [w for w in words if any(ch not in PUNCTUATION for ch in w)]
    s["gopher_quality.n_words"] = n = len(content)
    if cfg.min_doc_words and n < cfg.min_doc_words:
        return _fail("gopher_quality:min_doc_words", n, cfg.min_doc_words, text, s)
    if cfg.max_doc_words and n > cfg.max_doc_words:
        return _fail("gopher_quality:max_doc_words", n, cfg.max_doc_words, text, s)
    s["gopher_quality.avg_word_length"] = avg = sum(map(len, content)) / n
    if cfg.min_avg_word_length and avg < cfg.min_avg_word_length:
        return _fail("gopher_quality:min_avg_word_length", avg, cfg.min_avg_word_length, text, s)
    if cfg.max_avg_word_length and avg > cfg.max_avg_word_length:
        return _fail("gopher_quality:max_avg_word_length", avg, cfg.max_avg_word_length, text, s)
    n_all = len(words)
    s["gopher_quality.hash_ratio"] = hashes = text.count("#") / n_all
    if cfg.max_symbol_word_ratio and hashes > cfg.max_symbol_word_ratio:
        return _fail("gopher_quality:hash_ratio", hashes, cfg.max_symbol_word_ratio, text, s)
    ellipses = (text.count("...") + text.count("…")) / n_all
    s["gopher_quality.ellipsis_ratio"] = ellipses
    if cfg.max_symbol_word_ratio and ellipses > cfg.max_symbol_word_ratio:
        return _fail("gopher_quality:ellipsis_ratio", ellipses, cfg.max_symbol_word_ratio, text, s)
    return _gopher_lines_and_words(text, words, cfg, s)


def _gopher_lines_and_words(
    text: str, words: list[str], cfg: GopherQualityConfig, s: dict[str, float]
) -> Verdict:
    lines = text.splitlines()
    bullets = sum(ln.lstrip().startswith(("•", "-")) for ln in lines) / len(lines)
    s["gopher_quality.bullet_lines_ratio"] = bullets
    if cfg.max_bullet_lines_ratio and bullets > cfg.max_bullet_lines_ratio:
        return _fail("gopher_quality:bullet_lines", bullets, cfg.max_bullet_lines_ratio, text, s)
    ends = sum(ln.rstrip().endswith(("...", "…")) for ln in lines) / len(lines)
    s["gopher_quality.ellipsis_lines_ratio"] = ends
    if cfg.max_ellipsis_lines_ratio and ends > cfg.max_ellipsis_lines_ratio:
        return _fail("gopher_quality:ellipsis_lines", ends, cfg.max_ellipsis_lines_ratio, text, s)
    alpha = sum(any(c.isalpha() for c in w) for w in words) / len(words)
    s["gopher_quality.alpha_words_ratio"] = alpha
    if cfg.max_non_alpha_words_ratio and alpha < cfg.max_non_alpha_words_ratio:
        return _fail("gopher_quality:alpha_words", alpha, cfg.max_non_alpha_words_ratio, text, s)
    # distinct stop words present, as datatrove counts them (a set intersection)
    s["gopher_quality.stop_words"] = n_stop = len(frozenset(cfg.stop_words).intersection(words))
    if cfg.min_stop_words and n_stop < cfg.min_stop_words:
        return _fail("gopher_quality:stop_words", n_stop, cfg.min_stop_words, text, s)
    return _pass(text, s)


# ---------------------------------------------------------------- Gopher repetition

_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile(r"\n+")


def _duplicates(items: list[str]) -> tuple[int, int]:
    """(duplicate elements, characters in duplicates), counting every repeat after the first."""
    seen: set[str] = set()
    elements = chars = 0
    for item in items:
        if item in seen:
            elements += 1
            chars += len(item)
        else:
            seen.add(item)
    return elements, chars


def _top_ngram_chars(words: list[str], n: int) -> int:
    grams = Counter(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
    if not grams:
        return 0
    gram, count = grams.most_common(1)[0]
    return len(gram) * count


def _duplicated_ngram_chars(words: list[str], n: int) -> int:
    """Characters in n-grams seen before, skipping past each repeat (Gopher's definition)."""
    seen: set[str] = set()
    chars = i = 0
    while i < len(words) - n + 1:
        gram = "".join(words[i : i + n])
        if gram in seen:
            chars += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


def gopher_repetition(text: str, words: list[str], cfg: GopherRepetitionConfig) -> Verdict:
    s: dict[str, float] = {}
    paragraphs = _PARAGRAPHS.split(text.strip())
    dup, chars = _duplicates(paragraphs)
    s["gopher_repetition.dup_para_frac"] = frac = dup / len(paragraphs)
    if cfg.dup_para_frac and frac > cfg.dup_para_frac:
        return _fail("gopher_repetition:dup_para_frac", frac, cfg.dup_para_frac, text, s)
    s["gopher_repetition.dup_para_char_frac"] = frac = chars / len(text)
    if cfg.dup_para_char_frac and frac > cfg.dup_para_char_frac:
        return _fail("gopher_repetition:dup_para_char_frac", frac, cfg.dup_para_char_frac, text, s)
    lines = _LINES.split(text)
    dup, chars = _duplicates(lines)
    s["gopher_repetition.dup_line_frac"] = frac = dup / len(lines)
    if cfg.dup_line_frac and frac > cfg.dup_line_frac:
        return _fail("gopher_repetition:dup_line_frac", frac, cfg.dup_line_frac, text, s)
    s["gopher_repetition.dup_line_char_frac"] = frac = chars / len(text)
    if cfg.dup_line_char_frac and frac > cfg.dup_line_char_frac:
        return _fail("gopher_repetition:dup_line_char_frac", frac, cfg.dup_line_char_frac, text, s)
    for n, limit in cfg.top_n_grams:
        if len(words) < n:
            continue
        s[f"gopher_repetition.top_{n}_gram"] = frac = _top_ngram_chars(words, n) / len(text)
        if frac > limit:
            return _fail(f"gopher_repetition:top_{n}_gram", frac, limit, text, s)
    for n, limit in cfg.dup_n_grams:
        s[f"gopher_repetition.dup_{n}_grams"] = frac = _duplicated_ngram_chars(words, n) / len(text)
        if frac > limit:
            return _fail(f"gopher_repetition:dup_{n}_grams", frac, limit, text, s)
    return _pass(text, s)


# ---------------------------------------------------------------- C4

CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
END_PUNCTUATION = (".", "?", "!", '"', "'")
POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)


def c4_quality(text: str, language: str, cfg: C4Config) -> Verdict:
    """Line-level removals, then document rules; returns the text with removed lines gone."""
    s: dict[str, float] = {}
    lines = text.splitlines() if cfg.split_paragraph else [text]
    kept: list[str] = []
    sentences = removed = 0
    for raw in lines:
        line = raw.strip()
        words = line.split()
        if cfg.max_word_length != -1 and any(len(w) > cfg.max_word_length for w in words):
            removed += 1
            continue
        if cfg.remove_citations:
            line = CITATION.sub("", line)
        if cfg.filter_no_terminal_punct and (
            not line.endswith(END_PUNCTUATION) or line.endswith("...")
        ):
            removed += 1
            continue
        if len(words) < cfg.min_words_per_line:
            removed += 1
            continue
        lowered = line.lower()
        if cfg.filter_lorem_ipsum and "lorem ipsum" in lowered:
            return _fail("c4:lorem_ipsum", 1, 0, text, s)
        if cfg.filter_javascript and "javascript" in lowered:
            removed += 1
            continue
        if cfg.filter_curly_bracket and "{" in line:
            return _fail("c4:curly_bracket", 1, 0, text, s)
        if cfg.filter_policy and any(p in lowered for p in POLICY_SUBSTRINGS):
            removed += 1
            continue
        if cfg.min_num_sentences != -1:
            sentences += count_sentences(line, language) if cfg.split_paragraph else 1
        kept.append(line)
    s["c4.lines_removed"] = removed
    s["c4.sentences"] = sentences
    if sentences < cfg.min_num_sentences:
        return _fail("c4:min_sentences", sentences, cfg.min_num_sentences, text, s)
    return _pass(("\n" if cfg.split_paragraph else " ").join(kept).strip(), s)


# ---------------------------------------------------------------- FineWeb quality


def fineweb_quality(text: str, words: list[str], cfg: FineWebQualityConfig) -> Verdict:
    s: dict[str, float] = {}
    lines = [ln for ln in text.split("\n") if ln.strip() != ""]
    if not lines:
        return _fail("fineweb_quality:empty", 0, 1, text, s)
    ratio = sum(ln.endswith(tuple(TERMINAL)) for ln in lines) / len(lines)
    s["fineweb_quality.line_punct_ratio"] = ratio
    if ratio < cfg.line_punct_thr and not (ratio == 0 and cfg.line_punct_exclude_zero):
        return _fail("fineweb_quality:line_punct_ratio", ratio, cfg.line_punct_thr, text, s)
    ratio = sum(len(ln) <= cfg.short_line_length for ln in lines) / len(lines)
    s["fineweb_quality.short_line_ratio"] = ratio
    if ratio > cfg.short_line_thr:
        return _fail("fineweb_quality:short_line_ratio", ratio, cfg.short_line_thr, text, s)
    ratio = _duplicates(lines)[1] / len(text.replace("\n", ""))
    s["fineweb_quality.char_dup_ratio"] = ratio
    if ratio > cfg.char_duplicates_ratio:
        return _fail("fineweb_quality:char_dup_ratio", ratio, cfg.char_duplicates_ratio, text, s)
    ratio = text.count("\n") / len(words)
    s["fineweb_quality.newline_ratio"] = ratio
    if ratio > cfg.new_line_ratio:
        return _fail("fineweb_quality:list_ratio", ratio, cfg.new_line_ratio, text, s)
    return _pass(text, s)


# ---------------------------------------------------------------- all of them


def apply_filters(text: str, language: str, cfg: FilterConfig) -> Verdict:
    """FineWeb's order; stops at the first failure; C4's edited text feeds FineWeb quality."""
    cfg = cfg.for_language(language)
    signals: dict[str, float] = {}
    if not text.strip():
        return _fail("empty_text", 0, 1, text, signals)
    words = split_words(text, language)
    if not words:
        return _fail("no_words", 0, 1, text, signals)
    steps = (
        (cfg.gopher_repetition, lambda t, w: gopher_repetition(t, w, cfg.gopher_repetition)),
        (cfg.gopher_quality, lambda t, w: gopher_quality(t, w, cfg.gopher_quality)),
        (cfg.c4, lambda t, w: c4_quality(t, language, cfg.c4)),
        (cfg.fineweb_quality, lambda t, w: fineweb_quality(t, w, cfg.fineweb_quality)),
    )
    for enabled, judge in steps:
        if enabled is None:
            continue
        verdict = judge(text, words)
        signals.update(verdict.signals)
        if not verdict.kept:
            return Verdict(False, verdict.rule, verdict.value, verdict.threshold, text, signals)
        if verdict.text != text:
            text = verdict.text
            words = split_words(text, language)
            if not words:
                return _fail("no_words", 0, 1, text, signals)
    return _pass(text, signals)
