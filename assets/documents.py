"""Document identity and the record every stage leaves when a document goes no further.

The ids and the `dropped` schema are shared by all stages, so that lineage queries can follow a
document through the whole pipeline with one join key and one table of reasons.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass

import pyarrow as pa

ID_HEX_CHARS = 24  # 96 bits: collision-free at web scale (billions of documents)


def make_doc_id(origin: str, text: str) -> str:
    """A stable id from where a document came from and what it says, never from row order."""
    digest = hashlib.blake2b(digest_size=ID_HEX_CHARS // 2)
    digest.update(origin.encode("utf-8", "surrogatepass"))
    digest.update(b"\x00")
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def derived_doc_id(parent_id: str, *parts: str) -> str:
    """Ids of derived documents (rewrites) name their parent and how they were made."""
    return make_doc_id(parent_id, "\x1f".join(parts))


_SPACE = re.compile(r"\s+")


def content_hash(text: str) -> str:
    """Hash of whitespace- and case-normalised text: the key of exact deduplication."""
    normalised = _SPACE.sub(" ", text).strip().lower()
    return hashlib.blake2b(normalised.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class Drop:
    """Why a record left the pipeline: stage, rule, the measured value and the threshold."""

    doc_id: str
    stage: str
    rule: str
    value: float | None = None
    threshold: float | None = None
    detail: str | None = None
    url: str | None = None
    source_file: str | None = None
    source_offset: int | None = None

    def row(self) -> dict:
        return asdict(self)


DROPPED_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("stage", pa.string()),
        ("rule", pa.string()),
        ("value", pa.float64()),
        ("threshold", pa.float64()),
        ("detail", pa.string()),
        ("url", pa.string()),
        ("source_file", pa.string()),
        ("source_offset", pa.int64()),
    ]
)
