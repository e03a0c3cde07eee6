"""What the raw-crawl readers hand to extraction: a record, or the reason one was set aside.

Every document-bearing record of a shard becomes exactly one `RawRecord` or one `Quarantined`, so
counts reconcile and every loss is explainable by (source_file, source_offset, reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

# Stable quarantine reason codes; dashboards and the `dropped` table group by them.
NON_HTML: Final = "non_html"
HTTP_ERROR: Final = "http_error"
HTTP_REDIRECT: Final = "http_redirect"
EMPTY: Final = "empty"
CORRUPT_ARCHIVE: Final = "corrupt_archive"
MALFORMED_RECORD: Final = "malformed_record"
UNDECODABLE: Final = "undecodable"
BINARY_PAYLOAD: Final = "binary_payload"
TOO_LARGE: Final = "too_large"
NO_TEXT_EXTRACTED: Final = "no_text_extracted"
EXTRACTION_ERROR: Final = "extraction_error"
EXTRACTION_TIMEOUT: Final = "extraction_timeout"
UNSUPPORTED_FORMAT: Final = "unsupported_format"

DETAIL_MAX_CHARS: Final = 200


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One candidate document as stored in the crawl, before any text extraction."""

    source_file: str  # path or fsspec URL of the shard, as given
    source_offset: int  # compressed byte offset (WARC), 0-based line (JSONL) or row (Parquet)
    record_id: str | None  # WARC-Record-ID, or the "id" field of JSONL/Parquet
    url: str | None
    fetch_time: datetime | None  # timezone-aware UTC
    content_type: str | None  # mime type only, lower-case
    http_status: int | None
    payload: bytes | str  # bytes: de-chunked, decompressed HTTP body; str: text or HTML
    payload_kind: str  # "html" or "text"
    charset: str | None = None  # from the Content-Type header, if given


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A record (or the rest of a file) that produced no document, with a stable reason code."""

    source_file: str
    source_offset: int
    url: str | None
    reason: str
    detail: str


def short_detail(detail: object) -> str:
    """Details land in a table row per record, so keep them one short line."""
    text = " ".join(str(detail).split())
    if len(text) <= DETAIL_MAX_CHARS:
        return text
    return text[: DETAIL_MAX_CHARS - 1] + "…"
