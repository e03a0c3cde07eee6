"""A token n-gram language model with interpolated Kneser-Ney smoothing, in numpy.

It is the default proxy of the mixture search and the default ladder of PreSelect's predictive
strength: cheap enough to train on every candidate's sample in well under a second, yet a real
language model whose held-out perplexity responds to what it was trained on (vocabulary,
phrasing, topics), as a small trained LM would.

N-grams are packed into one int64 key (`ctx * base + token`), so counting is `np.unique` and
lookup is `np.searchsorted`; each document is padded with `order - 1` boundary tokens so no
n-gram spans two documents.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_ORDER = 4  # base ** 4 must fit in int64 for vocabularies up to ~50k tokens
FALLBACK_DISCOUNT = 0.75


@dataclass(frozen=True)
class _Order:
    """Counts of one order: n-gram keys with (continuation) counts, and their contexts."""

    keys: np.ndarray
    counts: np.ndarray
    discount: float
    ctx_keys: np.ndarray
    ctx_totals: np.ndarray
    ctx_types: np.ndarray


class KneserNeyLM:
    """Interpolated Kneser-Ney n-gram LM over integer token ids in [0, vocab_size)."""

    def __init__(self, order: int, vocab_size: int) -> None:
        if not 1 <= order <= MAX_ORDER:
            raise ValueError(f"order must be in 1..{MAX_ORDER}, got {order}")
        self.order = order
        self.vocab_size = vocab_size
        self.boundary = vocab_size  # padding id, never predicted
        self.base = vocab_size + 1
        if float(self.base) ** order >= 2**63:
            raise ValueError(f"vocabulary of {vocab_size} too large for order {order}")
        self.orders: list[_Order] = []

    def fit(self, docs: Sequence[np.ndarray]) -> "KneserNeyLM":
        seq, targets = self._pad(docs)
        raw = [np.unique(self._keys(seq, targets, k), return_counts=True) for k in self._ks()]
        self.orders = []
        for k in self._ks():
            keys, counts = raw[k - 1]
            if k < self.order:  # lower orders count distinct left extensions (continuations)
                suffix = raw[k][0] % self.base**k
                keys, counts = np.unique(suffix, return_counts=True)
            self.orders.append(_order_table(keys, counts, self.base))
        return self

    def perplexity(self, docs: Sequence[np.ndarray]) -> float:
        seq, targets = self._pad(docs)
        if not targets.size:
            raise ValueError("no tokens to score")
        return float(np.exp(-np.mean(np.log(self._probabilities(seq, targets)))))

    def document_losses(self, docs: Sequence[np.ndarray]) -> np.ndarray:
        """Mean negative log-probability per token of each document (NaN for an empty one)."""
        seq, targets = self._pad(docs)
        losses = np.full(len(docs), np.nan)
        if not targets.size:
            return losses
        nll = -np.log(self._probabilities(seq, targets))
        lengths = np.array([len(d) for d in docs])
        present = np.flatnonzero(lengths)
        sums = np.add.reduceat(nll, np.concatenate([[0], np.cumsum(lengths[present])[:-1]]))
        losses[present] = sums / lengths[present]
        return losses

    def _probabilities(self, seq: np.ndarray, targets: np.ndarray) -> np.ndarray:
        if not self.orders:
            raise RuntimeError("fit the model first")
        prob = np.full(targets.size, 1.0 / self.vocab_size)
        for k, table in zip(self._ks(), self.orders, strict=True):
            keys = self._keys(seq, targets, k)
            count = _lookup(table.keys, table.counts, keys)
            ctx = keys // self.base
            total = _lookup(table.ctx_keys, table.ctx_totals, ctx)
            types = _lookup(table.ctx_keys, table.ctx_types, ctx)
            seen = total > 0
            safe = np.where(seen, total, 1)
            mixed = (np.maximum(count - table.discount, 0) + table.discount * types * prob) / safe
            prob = np.where(seen, mixed, prob)
        return prob

    def _ks(self) -> range:
        return range(1, self.order + 1)

    def _pad(self, docs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Concatenate documents behind boundary padding; return positions of real tokens."""
        pad = np.full(self.order - 1, self.boundary, dtype=np.int64)
        parts = [np.concatenate([pad, np.asarray(d, dtype=np.int64)]) for d in docs if len(d)]
        if not parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        seq = np.concatenate(parts)
        return seq, np.flatnonzero(seq != self.boundary)

    def _keys(self, seq: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
        """Key of the k-gram ending at each target position."""
        keys = np.zeros(targets.size, dtype=np.int64)
        for offset in range(k - 1, -1, -1):
            keys = keys * self.base + seq[targets - offset]
        return keys


def _order_table(keys: np.ndarray, counts: np.ndarray, base: int) -> _Order:
    ctx = keys // base  # keys are sorted, so their contexts are too
    ctx_keys, starts, types = np.unique(ctx, return_index=True, return_counts=True)
    totals = np.add.reduceat(counts, starts) if counts.size else counts
    return _Order(keys, counts, _discount(counts), ctx_keys, totals, types)


def _discount(counts: np.ndarray) -> float:
    """Ney's estimate D = n1 / (n1 + 2 n2) from the counts of counts."""
    n1, n2 = np.count_nonzero(counts == 1), np.count_nonzero(counts == 2)
    return n1 / (n1 + 2 * n2) if n1 and n2 else FALLBACK_DISCOUNT


def _lookup(sorted_keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """values[key] for each query, 0 where the key is absent."""
    if not sorted_keys.size:
        return np.zeros(queries.size, dtype=np.float64)
    pos = np.minimum(np.searchsorted(sorted_keys, queries), sorted_keys.size - 1)
    return np.where(sorted_keys[pos] == queries, values[pos], 0).astype(np.float64)
