"""Main-text extraction: raw HTML bytes to clean text with trafilatura, or a quarantine reason.

Settings follow datatrove's `Trafilatura` extractor as used for FineWeb (favour precision, no
comments, no images, deduplicate), because precision matters more than recall for pretraining
text: boilerplate that slips through costs more than a paragraph lost.
"""

from __future__ import annotations

import codecs
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import trafilatura
from charset_normalizer import from_bytes
from lxml.html import HtmlElement
from trafilatura.deduplication import LRUCache
from trafilatura.settings import LRU_SIZE

from assets.raw.readers import DEFAULT_MAX_PAYLOAD_BYTES, read_shard
from assets.raw.records import (
    BINARY_PAYLOAD,
    EMPTY,
    EXTRACTION_ERROR,
    EXTRACTION_TIMEOUT,
    MALFORMED_RECORD,
    NO_TEXT_EXTRACTED,
    UNDECODABLE,
    Quarantined,
    RawRecord,
    short_detail,
)

TRAFILATURA_EXTRACTOR = f"trafilatura-{trafilatura.__version__}"
PLAIN_EXTRACTOR = "plain"

SNIFF_BYTES = 8192  # binary and charset checks look at the head of the payload only
META_CHARSET_BYTES = 4096
DETECTION_SAMPLE_BYTES = 65536
MAX_CONTROL_RATIO = 0.05  # HTML has ~0 control characters; random binary has ~11%
MAX_REPLACEMENT_RATIO = 0.05
WIDE_ENCODINGS = frozenset({"utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"})
BINARY_SIGNATURES = {
    b"%PDF-": "PDF",
    b"\x89PNG": "PNG",
    b"GIF8": "GIF",
    b"\xff\xd8\xff": "JPEG",
    b"PK\x03\x04": "ZIP",
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ": "xz",
    b"7z\xbc\xaf": "7z",
    b"RIFF": "RIFF",
    b"OggS": "Ogg",
    b"\x7fELF": "ELF",
    b"wOFF": "WOFF",
    b"wOF2": "WOFF2",
}
# Control characters that never occur in text; \t \n \f \r and ESC (ISO-2022-JP) are allowed.
_CONTROL_BYTES = frozenset(set(range(32)) - {9, 10, 12, 13, 27} | {127})
_CONTROL_DELETE = bytes(_CONTROL_BYTES)
_CONTROL_CHARS = re.compile("[" + "".join(f"\\x{b:02x}" for b in sorted(_CONTROL_BYTES)) + "]")
_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE
)
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# WHATWG: these labels mean windows-1252 on the web; cp1252 also rejects undefined bytes.
_WEB_ALIASES = {"ascii": "cp1252", "iso8859-1": "cp1252"}
_FORBIDDEN_ENCODINGS = frozenset({"utf-7"})


@dataclass(frozen=True, slots=True)
class ExtractedText:
    text: str
    title: str | None
    extractor: str  # e.g. "trafilatura-2.3.1" or "plain"


@dataclass(frozen=True, slots=True)
class ExtractionSettings:
    """trafilatura options; the defaults are datatrove's (FineWeb's) choices."""

    favor_precision: bool = True
    include_comments: bool = False
    include_tables: bool = True
    include_images: bool = False
    deduplicate: bool = True
    timeout_s: float | None = 1.0  # per document, as datatrove; needs the main thread (SIGALRM)


DEFAULT_SETTINGS = ExtractionSettings()


def extract_text(
    record: RawRecord,
    *,
    settings: ExtractionSettings = DEFAULT_SETTINGS,
    dedup_cache: LRUCache | None = None,
) -> ExtractedText | Quarantined:
    """Main text of a record, or why there is none. Never raises on bad content.

    `dedup_cache` scopes trafilatura's repeated-paragraph removal; without one each document
    gets a fresh cache, so results never depend on what the process extracted before.
    """
    if record.payload_kind == "text":
        return _plain_text(record)
    if record.payload_kind == "html":
        return _html_text(record, settings, dedup_cache)
    return _quarantine(record, MALFORMED_RECORD, f"unknown payload_kind {record.payload_kind!r}")


def iter_documents(
    path_or_url: str,
    *,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    settings: ExtractionSettings = DEFAULT_SETTINGS,
) -> Iterator[tuple[RawRecord, ExtractedText] | Quarantined]:
    """Read and extract one shard, streaming; deduplication is scoped to the shard so a re-run
    of the same shard gives the same text regardless of what ran before it in the process."""
    cache = LRUCache(maxsize=LRU_SIZE) if settings.deduplicate else None
    for item in read_shard(path_or_url, max_payload_bytes=max_payload_bytes):
        if isinstance(item, Quarantined):
            yield item
            continue
        result = extract_text(item, settings=settings, dedup_cache=cache)
        yield result if isinstance(result, Quarantined) else (item, result)


# ------------------------------------------------------------------------------------- text


def _plain_text(record: RawRecord) -> ExtractedText | Quarantined:
    payload = record.payload
    if isinstance(payload, bytes):
        try:
            payload = payload.decode(record.charset or "utf-8")
        except (UnicodeDecodeError, LookupError) as exc:
            return _quarantine(record, UNDECODABLE, short_detail(exc))
    if binary := _binary_text(payload[:SNIFF_BYTES]):
        return _quarantine(record, BINARY_PAYLOAD, binary)
    text = payload.strip()
    if not text:
        return _quarantine(record, EMPTY, "text is empty or whitespace only")
    return ExtractedText(text=text, title=None, extractor=PLAIN_EXTRACTOR)


# ------------------------------------------------------------------------------------- html


def _html_text(
    record: RawRecord, settings: ExtractionSettings, dedup_cache: LRUCache | None
) -> ExtractedText | Quarantined:
    html = _html_string(record)
    if isinstance(html, Quarantined):
        return html
    try:
        tree = trafilatura.load_html(html)
        if tree is None:
            return _quarantine(record, NO_TEXT_EXTRACTED, "not parseable as an HTML document")
        title = _title(tree)
        text = _run_trafilatura(tree, record.url, settings, dedup_cache)
    except _ExtractionTimeout:
        return _quarantine(record, EXTRACTION_TIMEOUT, f"over {settings.timeout_s}s")
    except Exception as exc:  # pathological markup is quarantined, not fatal
        return _quarantine(record, EXTRACTION_ERROR, f"{type(exc).__name__}: {exc}")
    text = (text or "").strip()
    if not text:
        detail = "trafilatura found no main text (or the page repeats earlier ones in the shard)"
        return _quarantine(record, NO_TEXT_EXTRACTED, detail)
    return ExtractedText(text=text, title=title, extractor=TRAFILATURA_EXTRACTOR)


def _html_string(record: RawRecord) -> str | Quarantined:
    """Decoded HTML, or a quarantine when the payload is binary or not text in any charset."""
    payload = record.payload
    if isinstance(payload, bytes):
        if binary := _binary_bytes(payload[:SNIFF_BYTES], record.charset):
            return _quarantine(record, BINARY_PAYLOAD, binary)
        payload = decode_html(payload, record.charset)
        if payload is None:
            return _quarantine(record, UNDECODABLE, "no charset decodes it as text")
    if binary := _binary_text(payload[:SNIFF_BYTES]):
        return _quarantine(record, BINARY_PAYLOAD, binary)
    return payload


def _run_trafilatura(
    tree: HtmlElement, url: str | None, settings: ExtractionSettings, cache: LRUCache | None
) -> str | None:
    dedup: bool | LRUCache = False
    if settings.deduplicate:
        dedup = cache if cache is not None else LRUCache(maxsize=LRU_SIZE)
    with _deadline(settings.timeout_s):
        return trafilatura.extract(
            tree,
            url=url,
            favor_precision=settings.favor_precision,
            include_comments=settings.include_comments,
            include_tables=settings.include_tables,
            include_images=settings.include_images,
            deduplicate=dedup,
            output_format="txt",
        )


def _title(tree: HtmlElement) -> str | None:
    """<title>, else og:title: cheaper than trafilatura's full metadata pass (htmldate etc.)."""
    node = tree.find(".//title")
    title = node.text_content() if node is not None else ""
    if not title.strip():
        og = tree.xpath("//meta[@property='og:title']/@content")
        title = str(og[0]) if og else ""
    title = " ".join(title.split())
    return title or None


# ------------------------------------------------------------------------------ decoding


def decode_html(payload: bytes, declared: str | None) -> str | None:
    """BOM, then strict UTF-8, then the declared charsets, then detection; None if not text.

    UTF-8 goes before the declared charset because valid UTF-8 is almost never another encoding
    by accident, while header charsets are often wrong (UTF-8 pages served as ISO-8859-1).
    """
    for encoding in _candidate_encodings(payload, declared):
        try:
            return payload.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    guess = from_bytes(payload[:DETECTION_SAMPLE_BYTES]).best()
    if guess is not None and _canonical(guess.encoding):
        try:
            return payload.decode(guess.encoding)
        except (UnicodeDecodeError, LookupError):
            pass
    text = payload.decode("utf-8", errors="replace")
    if text.count("\ufffd") > MAX_REPLACEMENT_RATIO * len(text):
        return None
    return text


def _candidate_encodings(payload: bytes, declared: str | None) -> list[str]:
    if bom := _bom_encoding(payload):
        return [bom]  # a byte-order mark overrides any declaration
    header = _canonical(declared)
    meta = _canonical(_meta_charset(payload[:META_CHARSET_BYTES]))
    if meta in WIDE_ENCODINGS:
        meta = None  # a <meta> readable as ASCII cannot truly be UTF-16 (WHATWG rule)
    ordered = [header] if header in WIDE_ENCODINGS else []
    ordered += ["utf-8", header, meta]
    return list(dict.fromkeys(enc for enc in ordered if enc))


def _bom_encoding(payload: bytes) -> str | None:
    return next((encoding for bom, encoding in _BOMS if payload.startswith(bom)), None)


def _meta_charset(head: bytes) -> str | None:
    match = _META_CHARSET.search(head)
    return match.group(1).decode("ascii", "ignore") if match else None


def _canonical(name: str | None) -> str | None:
    if not name:
        return None
    try:
        canonical = codecs.lookup(name.strip().lower()).name
    except LookupError:
        return None
    if canonical in _FORBIDDEN_ENCODINGS:
        return None
    return _WEB_ALIASES.get(canonical, canonical)


def _binary_bytes(head: bytes, declared: str | None) -> str | None:
    """Why the head of a payload is binary (a file signature, NULs, control bytes), or None."""
    for signature, kind in BINARY_SIGNATURES.items():
        if head.startswith(signature):
            return f"{kind} signature"
    wide = _canonical(declared) in WIDE_ENCODINGS or _bom_encoding(head) in WIDE_ENCODINGS
    if wide or not head:
        return None  # UTF-16/32 text is full of NULs; it is checked after decoding instead
    if b"\x00" in head:
        return "NUL bytes"
    controls = len(head) - len(head.translate(None, _CONTROL_DELETE))
    return _control_verdict(controls, len(head))


def _binary_text(head: str) -> str | None:
    if not head:
        return None
    return _control_verdict(len(_CONTROL_CHARS.findall(head)), len(head))


def _control_verdict(controls: int, size: int) -> str | None:
    ratio = controls / size
    return f"{ratio:.0%} control characters" if ratio > MAX_CONTROL_RATIO else None


# ------------------------------------------------------------------------------- timeout


class _ExtractionTimeout(BaseException):
    """BaseException, so trafilatura's broad `except Exception` blocks cannot swallow it."""


def _on_alarm(signum: int, frame: object) -> None:
    raise _ExtractionTimeout


@contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """Interrupt runaway extraction with SIGALRM (a no-op off the main thread or without
    setitimer). An outer timer (pytest-timeout, a job watchdog) is suspended and re-armed with
    its remaining time, or left alone when it would fire first anyway."""
    if not seconds or not hasattr(signal, "setitimer"):
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    outer_left, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    if outer_left and outer_left <= seconds:
        yield
        return
    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            signal.signal(signal.SIGALRM, previous)
            if outer_left:
                left = max(outer_left - (time.monotonic() - started), 0.001)
                signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


def _quarantine(record: RawRecord, reason: str, detail: str) -> Quarantined:
    return Quarantined(
        record.source_file, record.source_offset, record.url, reason, short_detail(detail)
    )
