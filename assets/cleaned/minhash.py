"""MinHash signatures and LSH banding for near-duplicate detection, with FineWeb's defaults.

FineWeb (datatrove's ``MinhashDedupSignature``) simplifies the text (lower case, numbers to
"0", punctuation to spaces, whitespace collapsed, accents stripped), splits it into words with
spaCy's English tokenizer, hashes each word 5-gram with the first 8 bytes of its SHA-1, and
keeps the minimum of 112 permutations ``(a*x + b) mod 2^61-1`` whose a, b come from
``np.random.RandomState(seed)``; the 112 minima form 14 bands of 8 rows, and two documents
become candidates when any band matches (a pair at Jaccard 0.8 with about 92% probability).
We compute the same signatures bit for bit, so the same documents collide as in datatrove,
but with spaCy's words memoised per chunk (``words.py``), SHA-1 driven from C iterators and
the permutations as one numpy product per block of shingles. Candidates can then be confirmed
on the exact Jaccard of the shingle sets (``confirm="exact"``), on the signatures' estimate
(``"estimate"``), or not (``"none"``, FineWeb). Signing and banding run per shard
(``signatures.py``); bucketing and clustering run out of core over the stored bands (``dedup.py``).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from operator import methodcaller
from typing import Literal

import numpy as np
import xxhash

from assets.cleaned.punctuation import SYMBOLS
from assets.cleaned.words import splitter_for

MERSENNE_61 = np.uint64((1 << 61) - 1)
_NUMBERS = re.compile(r"\d+(?:[.,،٫⎖⎗⎘]\d+)?")  # re's str \d is Unicode Nd, as regex's \p{Nd}
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_GAPS = re.compile(f"[{re.escape(SYMBOLS)}\\s]+")  # symbols become spaces, spaces collapse
_BLOCK = 1024  # shingles permuted at once: a (hashes x shingles) array of 0.9 MiB
_SHIFT_61 = np.uint64(61)
_DIGEST = methodcaller("digest")


@dataclass(frozen=True)
class MinHashConfig:
    ngram: int = 5
    bands: int = 14
    rows: int = 8
    threshold: float = 0.8
    seed: int = 1
    # "exact": a band collision must reach `threshold` in exact Jaccard (NeMo Curator's
    # false-positive check); "estimate": in the signatures' estimated Jaccard (no text read);
    # "none": every band collision is a duplicate, as datatrove/FineWeb do.
    confirm: Literal["exact", "estimate", "none"] = "exact"

    @property
    def num_hashes(self) -> int:
        return self.bands * self.rows

    def signing_key(self) -> str:
        """What decides a signature and its bands: signatures with equal keys are comparable."""
        return f"w{self.ngram}-b{self.bands}x{self.rows}-s{self.seed}-sha1"


_MARKLESS: dict[str, str] = {}  # non-ASCII run -> its NFD without Mn marks (runs repeat)


def _strip_marks(run: re.Match) -> str:
    text = run.group()
    out = _MARKLESS.get(text)
    if out is None:
        if len(_MARKLESS) >= 100_000:
            _MARKLESS.clear()
        nfd = unicodedata.normalize("NFD", text)
        out = _MARKLESS[text] = "".join(c for c in nfd if unicodedata.category(c) != "Mn")
    return out


def clear_memos() -> None:
    """Forget memoised text pieces and words (benchmarks start from cold memos)."""
    _MARKLESS.clear()
    splitter = splitter_for("en")
    if hasattr(splitter, "clear_cache"):
        splitter.clear_cache()


def simplify(text: str) -> str:
    """datatrove's ``simplify_text`` with its default ``TextNormConfig``: lower case, numbers to
    "0", symbols to spaces, whitespace collapsed, accents stripped (NFD without Mn marks).
    Symbols and whitespace go in one pass, and only the non-ASCII runs are decomposed, each
    distinct run once (NFD is local: canonical reordering only moves combining marks, which
    are not ASCII)."""
    text = _GAPS.sub(" ", _NUMBERS.sub("0", text.lower())).strip()
    if not text.isascii():
        text = _NON_ASCII.sub(_strip_marks, text).strip()
    return text


def shingle_words(text: str) -> list[str]:
    """The words datatrove shingles: spaCy's English tokens of the simplified text."""
    return splitter_for("en").words(simplify(text))


def _ngrams(words: list[str], n: int) -> Iterable[str]:
    return map(" ".join, zip(*(islice(words, i, None) for i in range(n)), strict=False))


def shingles(text: str, n: int) -> set[str]:
    """Distinct word n-grams joined by spaces; none when the text has fewer than n words
    (datatrove then writes no signature, so such a text is never a near duplicate)."""
    return set(_ngrams(shingle_words(text), n))


def shingle_hashes(text: str, n: int) -> np.ndarray:
    """datatrove's ``sha1_hash64`` of every word n-gram in order, repeats included (cheaper to
    hash than to deduplicate). When the words are the space-separated pieces of an ASCII text,
    as for most pages, each n-gram is a slice of the encoded text and is hashed in place."""
    simple = simplify(text)
    words = splitter_for("en").words(simple)
    if len(words) < n:
        return np.empty(0, dtype=np.uint64)
    if not simple.isascii() or words != simple.split(" "):
        return _sha1_64(map(str.encode, _ngrams(words, n)))
    lengths = np.fromiter(map(len, words), np.int64, len(words))
    ends = np.cumsum(lengths + 1) - 1
    starts = (ends - lengths)[: len(words) - n + 1]
    slices = map(slice, starts.tolist(), ends[n - 1 :].tolist())
    return _sha1_64(map(memoryview(simple.encode()).__getitem__, slices))


def _sha1_64(data: Iterable[bytes | memoryview]) -> np.ndarray:
    """The first 8 bytes of each SHA-1, little-endian: datatrove's ``sha1_hash64``."""
    digests = b"".join(map(_DIGEST, map(hashlib.sha1, data)))
    return np.frombuffer(digests, dtype=np.uint8).reshape(-1, 20)[:, :8].copy().view("<u8")[:, 0]


class MinHasher:
    """datatrove's permutations: a, b drawn by ``np.random.RandomState(seed)`` in [1, 2^61-1)
    and [0, 2^61-1); ``a*x + b`` wraps modulo 2^64 before the Mersenne modulus, as there."""

    def __init__(self, config: MinHashConfig) -> None:
        self.config = config
        gen = np.random.RandomState(config.seed)
        size = config.num_hashes
        self._a = gen.randint(1, MERSENNE_61, dtype=np.uint64, size=size)
        self._b = gen.randint(0, MERSENNE_61, dtype=np.uint64, size=size)

    def signature(self, text: str) -> np.ndarray | None:
        """The 112 minima, or None for a text with fewer than ``ngram`` words (no shingle)."""
        hashed = shingle_hashes(text, self.config.ngram)
        if not hashed.size:
            return None
        blocks = range(0, hashed.size, _BLOCK)
        return np.minimum.reduce([self._min_hashes(hashed[i : i + _BLOCK]) for i in blocks])

    def _min_hashes(self, hashed: np.ndarray) -> np.ndarray:
        """Per permutation, the minimum of ``(a*x + b) mod p`` over a block of shingle hashes.
        ``mod p`` (p = 2^61-1) without a division: r = (y & p) + (y >> 61) is y mod p or that
        plus p; ``min(r, r - p)`` takes r - p exactly when r >= p (else r - p wraps above r)."""
        y = self._a[:, None] * hashed
        y += self._b[:, None]
        r = y & MERSENNE_61
        y >>= _SHIFT_61
        r += y
        np.minimum(r, r - MERSENNE_61, out=r)
        return r.min(axis=1)

    def band_keys(self, signature: np.ndarray) -> list[int]:
        """One bucket key per band; equal keys make two documents candidates."""
        rows = self.config.rows
        return [
            xxhash.xxh64_intdigest(signature[i * rows : (i + 1) * rows].tobytes(), seed=i)
            for i in range(self.config.bands)
        ]

    def band_matrix(self, signatures: np.ndarray) -> np.ndarray:
        """Band keys of a (documents x hashes) matrix, as a (documents x bands) uint64 matrix."""
        keys = [self.band_keys(np.ascontiguousarray(row)) for row in signatures]
        return np.array(keys, dtype=np.uint64).reshape(len(keys), self.config.bands)


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))


def estimated_jaccards(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise share of equal minima of two (pairs x hashes) signature matrices."""
    return (a == b).mean(axis=1)


def exact_jaccard(a: str, b: str, n: int = 5) -> float:
    sa, sb = shingles(a, n), shingles(b, n)
    return len(sa & sb) / len(sa | sb) if sa or sb else 1.0
