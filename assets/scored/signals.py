"""Heuristic quality signals in the style of RedPajama-V2, cheap enough for every document."""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import polars as pl

WORD = re.compile(r"\w+", re.UNICODE)
TERMINAL = (".", "!", "?", '"', "。", "！", "？", "」")
STOP_WORDS = frozenset(
    {
        "the", "be", "to", "of", "and", "that", "have", "with", "a", "in", "is", "it",
        "for", "on", "as", "was", "are", "this", "by", "not", "or", "at", "from",
    }
)  # fmt: skip

SIGNAL_NAMES = (
    "n_chars",
    "n_words",
    "mean_word_length",
    "unique_word_ratio",
    "stop_word_ratio",
    "symbol_ratio",
    "line_punct_ratio",
    "dup_line_ratio",
    "top_bigram_char_share",
)


def heuristic_signals(text: str) -> dict[str, float]:
    words = WORD.findall(text.lower())
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    n_words = len(words)
    return {
        "n_chars": float(len(text)),
        "n_words": float(n_words),
        "mean_word_length": sum(map(len, words)) / n_words if n_words else 0.0,
        "unique_word_ratio": len(set(words)) / n_words if n_words else 0.0,
        "stop_word_ratio": sum(w in STOP_WORDS for w in words) / n_words if n_words else 0.0,
        "symbol_ratio": (text.count("#") + text.count("...") + text.count("…")) / max(n_words, 1),
        "line_punct_ratio": sum(line.endswith(TERMINAL) for line in lines) / len(lines)
        if lines
        else 0.0,
        "dup_line_ratio": 1.0 - len(set(lines)) / len(lines) if lines else 0.0,
        "top_bigram_char_share": _top_ngram_share(words, 2),
    }


def _top_ngram_share(words: list[str], n: int) -> float:
    """Share of characters covered by the most frequent word n-gram (Gopher's repetition signal)."""
    if len(words) < n + 1:
        return 0.0
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    gram, count = grams.most_common(1)[0]
    total = sum(map(len, words))
    return min(1.0, count * sum(map(len, gram)) / max(total, 1))


# Meta-rater style weights over standardised signals: + favours, - penalises.
DEFAULT_WEIGHTS = {
    "n_words": 0.5,
    "unique_word_ratio": 0.5,
    "line_punct_ratio": 1.0,
    "stop_word_ratio": 0.5,
    "dup_line_ratio": -1.0,
    "symbol_ratio": -0.5,
    "top_bigram_char_share": -0.5,
}


def log_scaled(name: str, value: float) -> float:
    """Length signals are heavy-tailed; compare them on a log scale."""
    return math.log1p(value) if name in {"n_chars", "n_words"} else value


N_BUCKETS = 5


def combine(signals: pl.DataFrame, weights: dict[str, float]) -> pl.DataFrame:
    """Weighted sum of standardised signals, then percentile buckets 0 (worst) .. 4 (best)."""
    total = np.zeros(signals.height)
    for name, weight in weights.items():
        values = np.array([log_scaled(name, v) for v in signals[name].to_list()], dtype=float)
        spread = values.std() or 1.0
        total += weight * (values - values.mean()) / spread
    ranks = pl.Series(total).rank("ordinal").to_numpy() - 1
    buckets = (ranks * N_BUCKETS // max(signals.height, 1)).astype(np.int32)
    return signals.with_columns(
        pl.Series("quality_score", total), pl.Series("quality_bucket", buckets)
    )
