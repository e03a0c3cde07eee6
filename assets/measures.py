"""Measures every stage may use, kept below the stages (as datatrove keeps its `utils/`): cheap
text signals, and the arithmetic that turns many signals into one score.

`heuristic_signals` is the light, text-only quality view that deduplication (which copy to keep)
and rewrite selection use before anything is scored; the scored stage builds its own, richer
signals but standardises and buckets them with the same functions.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

N_BUCKETS = 5
# Heavy-tailed counts are compared on a log scale.
LOG_SCALED = frozenset({"n_chars", "n_words", "rps_doc_word_count", "rps_doc_num_sentences"})

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
HEURISTIC_WEIGHTS = {
    "n_words": 0.5,
    "unique_word_ratio": 0.5,
    "line_punct_ratio": 1.0,
    "stop_word_ratio": 0.5,
    "dup_line_ratio": -1.0,
    "symbol_ratio": -0.5,
    "top_bigram_char_share": -0.5,
}


def heuristic_scores(signals: pl.DataFrame, weights: Mapping[str, float]) -> pl.DataFrame:
    """Weighted sum of standardised signals, then percentile buckets 0 (worst) .. 4 (best)."""
    total = weighted(standardise(signals, list(weights), None, 1), weights)
    return signals.with_columns(
        pl.Series("quality_score", total), pl.Series("quality_bucket", buckets(total))
    )


def standardise(
    frame: pl.DataFrame, columns: Sequence[str], by: str | None, min_group: int
) -> pl.DataFrame:
    """z-scores per column (nulls -> 0), within `by` groups of at least `min_group` rows."""
    exprs = []
    for name in columns:
        x = pl.col(name).cast(pl.Float64).fill_nan(None)
        x = x.log1p() if name in LOG_SCALED else x
        x = x.fill_null(x.median())
        overall = _z(x, x.mean(), x.std())
        if by is not None:
            mean, std = x.mean().over(by), x.std().over(by)
            # spread decided exactly: equal values can give a windowed std of ~1e-17, whose
            # z-scores would be float noise blown up
            spread = x.max().over(by) > x.min().over(by)
            usable = (pl.len().over(by) >= min_group) & spread & (std > 0)
            overall = pl.when(usable).then(_z(x, mean, std)).otherwise(overall)
        exprs.append(overall.fill_null(0.0).alias(name))
    return frame.select(exprs)


def _z(x: pl.Expr, mean: pl.Expr, std: pl.Expr) -> pl.Expr:
    return pl.when(std > 0).then((x - mean) / std).otherwise(0.0)


def weighted(z: pl.DataFrame, weights: Mapping[str, float]) -> np.ndarray:
    total = np.zeros(z.height)
    for name, weight in weights.items():
        total += weight * z[name].to_numpy()
    return total


def buckets(scores: np.ndarray, n_buckets: int = N_BUCKETS) -> np.ndarray:
    """Percentile buckets: 0 holds the lowest fifth, n_buckets - 1 the highest."""
    ranks = pl.Series(scores).rank("ordinal").to_numpy() - 1
    return (ranks * n_buckets // max(len(scores), 1)).astype(np.int32)
