"""MinHash signatures and LSH banding for near-duplicate detection, with FineWeb's defaults.

FineWeb (datatrove) hashes word 5-grams of simplified text into 112 min-hashes split into 14
bands of 8 rows: two documents become candidates when any band matches, which catches a pair at
Jaccard 0.8 with about 92% probability. Candidates are then confirmed on the estimated Jaccard
(the share of equal min-hashes), so the threshold is explicit and recorded.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import xxhash

MERSENNE_61 = np.uint64((1 << 61) - 1)
_PUNCT = re.compile(r"[^\w\s]+", re.UNICODE)
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class MinHashConfig:
    ngram: int = 5
    bands: int = 14
    rows: int = 8
    threshold: float = 0.8
    seed: int = 1
    # "exact": a band collision must reach `threshold` in exact Jaccard (NeMo Curator's
    # false-positive check); "none": every band collision is a duplicate, as datatrove/FineWeb do.
    confirm: str = "exact"

    @property
    def num_hashes(self) -> int:
        return self.bands * self.rows


def simplify(text: str) -> str:
    """Lower-case, strip punctuation and accents' compatibility forms, collapse whitespace."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()


def shingles(text: str, n: int) -> set[str]:
    words = simplify(text).split(" ")
    if len(words) < n:
        return {" ".join(words)}
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


class MinHasher:
    """Permutations (a*x + b) mod 2^61-1 over 32-bit shingle hashes, as datatrove and datasketch do.

    a and b are 61-bit; the product wraps modulo 2^64 before the Mersenne modulus, which is what
    mixes the bits (with small a the minima of all permutations would pick the same shingles).
    """

    def __init__(self, config: MinHashConfig) -> None:
        self.config = config
        rng = np.random.default_rng(config.seed)
        self._a = rng.integers(1, MERSENNE_61, size=config.num_hashes, dtype=np.uint64)
        self._b = rng.integers(0, MERSENNE_61, size=config.num_hashes, dtype=np.uint64)

    def signature(self, text: str) -> np.ndarray:
        grams = shingles(text, self.config.ngram)
        hashed = np.fromiter(
            (xxhash.xxh32_intdigest(g.encode("utf-8", "surrogatepass")) for g in grams),
            np.uint64,
            len(grams),
        )
        values = (hashed[:, None] * self._a[None, :] + self._b[None, :]) % MERSENNE_61
        return values.min(axis=0)

    def band_keys(self, signature: np.ndarray) -> list[int]:
        """One bucket key per band; equal keys make two documents candidates."""
        rows = self.config.rows
        return [
            xxhash.xxh64_intdigest(signature[i * rows : (i + 1) * rows].tobytes(), seed=i)
            for i in range(self.config.bands)
        ]


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))


def exact_jaccard(a: str, b: str, n: int = 5) -> float:
    sa, sb = shingles(a, n), shingles(b, n)
    return len(sa & sb) / len(sa | sb) if sa or sb else 1.0


class BandIndex:
    """Band buckets of every document seen so far, persisted between runs as (band, key, doc)."""

    def __init__(self, hasher: MinHasher, max_bucket: int = 64) -> None:
        self.hasher = hasher
        self.max_bucket = max_bucket  # a bucket this full is boilerplate; more members add nothing
        self.buckets: list[dict[int, list[str]]] = [{} for _ in range(hasher.config.bands)]
        self.signatures: dict[str, np.ndarray] = {}

    def add(self, doc_id: str, signature: np.ndarray) -> None:
        self.signatures[doc_id] = signature
        for band, key in enumerate(self.hasher.band_keys(signature)):
            members = self.buckets[band].setdefault(key, [])
            if len(members) < self.max_bucket:
                members.append(doc_id)

    def candidates(self, signature: np.ndarray, min_estimate: float) -> list[tuple[str, float]]:
        """Indexed documents sharing a band, with their estimated Jaccard above a prefilter."""
        found = {
            member
            for band, key in enumerate(self.hasher.band_keys(signature))
            for member in self.buckets[band].get(key, ())
        }
        scored = [(c, estimated_jaccard(signature, self.signatures[c])) for c in found]
        return [(c, e) for c, e in scored if e >= min_estimate]


def candidate_pairs(
    docs: Iterable[tuple[str, np.ndarray]], index: BandIndex, min_estimate: float
) -> list[tuple[str, str, float]]:
    """(earlier doc, later doc, estimate) for each doc against everything indexed before it."""
    pairs = []
    for doc_id, signature in docs:
        pairs += [(c, doc_id, e) for c, e in index.candidates(signature, min_estimate)]
        index.add(doc_id, signature)
    return pairs


def verify_pairs(
    pairs: Iterable[tuple[str, str, float]], text_of: Mapping[str, str], config: MinHashConfig
) -> list[tuple[str, str, float]]:
    """Keep candidate pairs whose exact shingle Jaccard reaches the threshold (NeMo Curator's
    false-positive check): LSH finds pairs cheaply, the exact measure decides."""
    confirmed = []
    for a, b, _ in pairs:
        similarity = exact_jaccard(text_of[a], text_of[b], config.ngram)
        if similarity >= config.threshold:
            confirmed.append((a, b, similarity))
    return confirmed
