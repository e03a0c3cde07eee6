"""The fast CPU embedder: hashed word 1-2-grams projected by a TruncatedSVD (LSA).

Words, not character n-grams: scikit-learn tokenizes words with one compiled regex, but builds
character n-grams in a Python loop, five times slower on full pages. Scripts written without
spaces (Chinese, Japanese, Korean) are tokenized per character, so their bigrams stand in for
words there.

scikit-learn's HashingVectorizer keeps no vocabulary, so a document's sparse vector depends on
its text alone; the projection (TF-IDF weights and SVD components) is fitted once, seeded, on a
fixed reference: the passages of the bundled sample crawl. Every process that loads the same
parameters and the same reference gets the same projection, and the model id names both, so
vectors of two different fits never meet in one clustering. The fitted projection is cached
under FOUNDRY_HOME/models (written once, atomically); a fit takes a few CPU seconds.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer

from resources.settings import SAMPLE_CRAWL_DIR, foundry_home

FAST_MODEL = "hashing-svd"
FIT_RECIPE = "r3"  # how the reference is read and cut: a new recipe is a new model id
PASSAGE_CHARS = 1000  # reference pages are cut into passages: more rows, a richer projection
# one token per CJK character (kana, CJK ideographs, hangul), else words of two or more chars
TOKEN_PATTERN = r"(?u)[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|\b\w\w+\b"
_FITTED: dict[str, HashingSVD] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class HashingSVDSpec:
    n_features: int = 2**16
    dimension: int = 256
    ngram_min: int = 1
    ngram_max: int = 2
    max_chars: int = 8192  # the same cut the MiniLM path makes (256 tokens x 32 chars)
    seed: int = 0
    reference: str = str(SAMPLE_CRAWL_DIR)

    def model_id(self) -> str:
        return (
            f"{FAST_MODEL}-{FIT_RECIPE}:f{self.n_features}-d{self.dimension}"
            f"-w{self.ngram_min}{self.ngram_max}-m{self.max_chars}-s{self.seed}-ref{reference_hash(self.reference)}"
        )

    def vectorizer(self) -> HashingVectorizer:
        return HashingVectorizer(
            analyzer="word",
            token_pattern=TOKEN_PATTERN,
            ngram_range=(self.ngram_min, self.ngram_max),
            n_features=self.n_features,
            alternate_sign=False,
            norm=None,
            lowercase=True,
        )


class HashingSVD:
    """A fitted projection: sparse hashed counts -> sublinear TF-IDF -> SVD -> unit vectors."""

    def __init__(self, spec: HashingSVDSpec, idf: np.ndarray, components: np.ndarray) -> None:
        self.spec, self.idf, self.components = spec, idf, components
        self._vectorizer = spec.vectorizer()

    @classmethod
    def fit(cls, spec: HashingSVDSpec, passages: list[str]) -> HashingSVD:
        counts = spec.vectorizer().transform([p[: spec.max_chars] for p in passages])
        tfidf = TfidfTransformer(sublinear_tf=True).fit(counts)
        weighted = tfidf.transform(counts)
        dimension = min(spec.dimension, weighted.shape[0] - 1)
        svd = TruncatedSVD(dimension, algorithm="randomized", n_iter=7, random_state=spec.seed)
        svd.fit(weighted)
        return cls(spec, tfidf.idf_.astype(np.float32), svd.components_.astype(np.float32))

    def encode(self, texts: list[str]) -> np.ndarray:
        counts = self._vectorizer.transform([t[: self.spec.max_chars] for t in texts])
        counts.data = 1.0 + np.log(counts.data)  # sublinear tf, as fitted
        weighted = counts @ sparse.diags(self.idf)
        norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1))).ravel()
        weighted = sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ weighted
        vectors = np.asarray(weighted @ self.components.T, dtype=np.float32)
        lengths = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(lengths, 1e-12)

    @property
    def dimension(self) -> int:
        return int(self.components.shape[0])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        np.savez(temporary, idf=self.idf, components=self.components)
        temporary.replace(path)  # atomic: readers see a whole file or none


def load_fitted(spec: HashingSVDSpec, cache_dir: Path | None = None) -> HashingSVD:
    """The projection for `spec`: memoised per process, cached on disk, fitted when missing."""
    model_id = spec.model_id()
    with _LOCK:
        if model_id in _FITTED:
            return _FITTED[model_id]
        path = (cache_dir or foundry_home() / "models") / f"{_file_key(model_id)}.npz"
        if path.exists():
            with np.load(path) as stored:
                model = HashingSVD(spec, stored["idf"], stored["components"])
        else:
            model = HashingSVD.fit(spec, reference_passages(spec.reference))
            model.save(path)
        _FITTED[model_id] = model
        return model


def reference_hash(reference: str) -> str:
    """Digest of the reference crawl's files (names and bytes): a new sample, a new model id."""
    digest = hashlib.sha256()
    for path in sorted(Path(reference).glob("*.warc.gz")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def reference_passages(reference: str) -> list[str]:
    """The reference pages' main text (resiliparse, read with fastwarc) cut at paragraph ends
    into passages of about PASSAGE_CHARS."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    from resiliparse.extract.html2text import extract_plain_text

    passages: list[str] = []
    for path in sorted(Path(reference).glob("*.warc.gz")):
        with open(path, "rb") as stream:
            for record in ArchiveIterator(stream, record_types=WarcRecordType.response):
                if "html" not in (record.http_content_type or ""):
                    continue
                html = record.reader.read().decode("utf-8", errors="replace")
                passages.extend(split_passages(extract_plain_text(html, main_content=True)))
    if len(passages) < 2:
        raise RuntimeError(f"the embedder's reference {reference} holds fewer than two passages")
    return passages


def split_passages(text: str, size: int = PASSAGE_CHARS) -> list[str]:
    out, current = [], ""
    for paragraph in text.split("\n"):
        current = f"{current}\n{paragraph}" if current else paragraph
        if len(current) >= size:
            out.append(current)
            current = ""
    if current.strip():
        out.append(current)
    return out


def _file_key(model_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id)
