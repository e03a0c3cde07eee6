"""Heuristic quality signals in the style of RedPajama-V2, cheap enough for every document.

The cleaned stage's filters keep every value they measured (Gopher quality and repetition, C4,
FineWeb); `redpajama_signals` renames and combines those into RedPajama-V2's signals, so no text
is measured twice. Only what no filter measures (unique words, unigram entropy, curly brackets)
is computed here. Rewrites never went through the cleaned stage: `filter_measurements` runs its
filter chain on them, for the same values.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import polars as pl

WORD = re.compile(r"\w+", re.UNICODE)


# RedPajama-V2 signal <- what the cleaned stage measured (its signal names, "<filter>.<value>").
_RENAMED = {
    "rps_doc_word_count": "gopher_quality.n_words",
    "rps_doc_mean_word_length": "gopher_quality.avg_word_length",
    "rps_doc_frac_lines_end_with_ellipsis": "gopher_quality.ellipsis_lines_ratio",
    "rps_lines_start_with_bulletpoint": "gopher_quality.bullet_lines_ratio",
    "rps_doc_frac_chars_top_2gram": "gopher_repetition.top_2_gram",
    "rps_doc_frac_chars_top_3gram": "gopher_repetition.top_3_gram",
    "rps_doc_frac_chars_top_4gram": "gopher_repetition.top_4_gram",
    "rps_doc_frac_chars_dupe_5grams": "gopher_repetition.dup_5_grams",
    "rps_doc_frac_chars_dupe_10grams": "gopher_repetition.dup_10_grams",
    "rps_doc_frac_chars_dupe_lines": "gopher_repetition.dup_line_char_frac",
    "rps_lines_ending_with_terminal_punctution_mark": "fineweb_quality.line_punct_ratio",
    "rps_lines_short_fraction": "fineweb_quality.short_line_ratio",
    "rps_doc_num_sentences": "c4.sentences",
    "ccnet_language_score": "language_score",
    "toxicity_max": "toxicity_max",
}
_DERIVED_FROM = (
    "gopher_quality.alpha_words_ratio",
    "gopher_quality.stop_words",
    "gopher_quality.hash_ratio",
    "gopher_quality.ellipsis_ratio",
    "c4.lines_kept",
    "c4.lines_removed",
)
TEXT_SIGNALS = ("rps_doc_frac_unique_words", "rps_doc_unigram_entropy", "rps_doc_curly_bracket")
REDPAJAMA_SIGNALS = (
    *_RENAMED,
    "rps_doc_frac_no_alph_words",
    "rps_doc_stop_word_fraction",
    "rps_doc_symbol_to_word_ratio",
    "c4_lines_removed_fraction",
    *TEXT_SIGNALS,
)


def redpajama_signals(measured: pl.DataFrame) -> pl.DataFrame:
    """`measured`: doc_id plus one column per cleaned-stage signal (wide); missing ones (a
    disabled filter, a check that stopped early) become nulls rather than guesses."""
    frame = measured.with_columns(
        pl.lit(None, dtype=pl.Float64).alias(name)
        for name in {*_RENAMED.values(), *_DERIVED_FROM} - set(measured.columns)
    )
    n_words = pl.col("gopher_quality.n_words")
    c4_lines = pl.col("c4.lines_kept") + pl.col("c4.lines_removed")
    return frame.select(
        "doc_id",
        *(pl.col(src).cast(pl.Float64).alias(name) for name, src in _RENAMED.items()),
        (1.0 - pl.col("gopher_quality.alpha_words_ratio")).alias("rps_doc_frac_no_alph_words"),
        (pl.col("gopher_quality.stop_words") / n_words).alias("rps_doc_stop_word_fraction"),
        (pl.col("gopher_quality.hash_ratio") + pl.col("gopher_quality.ellipsis_ratio")).alias(
            "rps_doc_symbol_to_word_ratio"
        ),
        (pl.col("c4.lines_removed") / c4_lines).alias("c4_lines_removed_fraction"),
    )


def text_signals(text: str) -> dict[str, float]:
    """The RedPajama-V2 signals no cleaned-stage filter measures. Words are runs of word
    characters, as in RedPajama-V2's own implementation; the cleaned stage's splitters would
    cost a spaCy / SudachiPy / jieba load per process for two ratios."""
    words = WORD.findall(text.lower())
    counts = Counter(words)
    n = len(words)
    entropy = -sum(c / n * math.log(c / n) for c in counts.values()) if n else 0.0
    return {
        "rps_doc_frac_unique_words": len(counts) / n if n else 0.0,
        "rps_doc_unigram_entropy": entropy,
        "rps_doc_curly_bracket": (text.count("{") + text.count("}")) / max(len(text), 1),
    }


def filter_measurements(text: str, language: str) -> dict[str, float]:
    """The cleaned stage's measurements for a text it never saw (a rewrite): its filter chain
    with the published defaults, whose signals are kept whatever the verdict."""
    from assets.cleaned.filters import FilterConfig, apply_filters
    from assets.cleaned.toxicity import score_toxicity

    verdict = apply_filters(text, language, FilterConfig())
    return {**verdict.signals, "toxicity_max": score_toxicity(text).max}
