"""Main-text extraction: raw HTML bytes to clean text, or a quarantine reason.

The default extractor is trafilatura with datatrove's FineWeb settings (favour precision, no
comments, no images), because boilerplate that slips through costs more than a paragraph lost.
That setting must never lose a page, though: when it returns nothing, or far less than
trafilatura's default balance would (it kept the wrong block), the default extraction is used
instead, and the document's `extractor` label says which one produced it. resiliparse's
main-content extractor is the faster choice per run (`ExtractionSettings(extractor="resiliparse")`).
FineWeb's `deduplicate=True` is replaced by a shard-scoped removal of repeated boilerplate lines
that never takes a page's own text (`assets.raw.boilerplate`).

Every extractor's text goes through the same normalization (`assets.raw.normalize`), and a first
line that only repeats the recorded title is dropped from the text.

Extraction is bounded by the CPU time of this process and by the size of the parsed tree, never
by wall-clock time, so a shard gives the same documents on an idle and on a loaded machine.
"""

from __future__ import annotations

import codecs
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from importlib.metadata import version
from itertools import islice
from typing import Literal

import trafilatura
from charset_normalizer import from_bytes
from lxml import etree
from lxml.html import HtmlElement
from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.html import HTMLTree
from trafilatura.settings import MANUALLY_CLEANED

from assets.raw.boilerplate import BoilerplateLines
from assets.raw.normalize import drop_title_line, normalize_text
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
# `extractor` labels: which extraction produced a document's text
TRAFILATURA_PRECISION = f"{TRAFILATURA_EXTRACTOR}:precision"  # the configured (FineWeb) settings
TRAFILATURA_DEFAULT = f"{TRAFILATURA_EXTRACTOR}:default"  # the fallback: trafilatura's balance
RESILIPARSE_EXTRACTOR = f"resiliparse-{version('resiliparse')}:main-content"
PLAIN_EXTRACTOR = "plain"
EXTRACTORS = ("trafilatura", "resiliparse")
_CLEANED_TAGS = tuple(sorted(set(MANUALLY_CLEANED) - {"head"}))

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
    extractor: str  # e.g. "trafilatura-2.3.1:precision", "trafilatura-2.3.1:default" or "plain"


@dataclass(frozen=True, slots=True)
class ExtractionSettings:
    """Which extractor, its options and its bounds; the trafilatura options are datatrove's
    (FineWeb's) choices."""

    extractor: Literal["trafilatura", "resiliparse"] = "trafilatura"
    favor_precision: bool = True
    include_comments: bool = False
    include_tables: bool = True
    include_images: bool = False
    # Lines repeated on more than two other pages of the shard are removed, never a page's
    # own text (assets.raw.boilerplate): FineWeb's `deduplicate=True`, made safe.
    deduplicate: bool = True
    # The precise extraction is replaced by trafilatura's default one when it is empty or
    # shorter than this fraction of it (an order of magnitude: it kept the wrong block).
    fallback_ratio: float = 0.1
    # Bounds that do not depend on other processes. CPU seconds of this process per document
    # (parse, extraction and fallback; main thread only, as it uses SIGPROF): CPython's 700 KB
    # stdtypes.html takes about 1.5 s. Elements of the parsed tree: that page has 17,000.
    max_cpu_s: float | None = 10.0
    max_tree_elements: int | None = 200_000

    def __post_init__(self) -> None:
        if self.extractor not in EXTRACTORS:
            raise ValueError(f"extractor must be one of {EXTRACTORS}, not {self.extractor!r}")


DEFAULT_SETTINGS = ExtractionSettings()


def extract_text(
    record: RawRecord,
    *,
    settings: ExtractionSettings = DEFAULT_SETTINGS,
    dedup_cache: BoilerplateLines | None = None,
) -> ExtractedText | Quarantined:
    """Main text of a record, or why there is none. Never raises on bad content.

    `dedup_cache` holds the lines of the shard's earlier pages for boilerplate removal
    (`new_dedup_cache`); without one nothing is removed, so results never depend on what the
    process extracted before.
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
    cache = new_dedup_cache(settings)
    for item in read_shard(path_or_url, max_payload_bytes=max_payload_bytes):
        if isinstance(item, Quarantined):
            yield item
            continue
        result = extract_text(item, settings=settings, dedup_cache=cache)
        yield result if isinstance(result, Quarantined) else (item, result)


def new_dedup_cache(settings: ExtractionSettings = DEFAULT_SETTINGS) -> BoilerplateLines | None:
    """The repeated-line index for one shard (None when the settings do not deduplicate)."""
    return BoilerplateLines() if settings.deduplicate else None


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
    text = normalize_text(payload)
    if not text:
        return _quarantine(record, EMPTY, "text is empty or whitespace only")
    return ExtractedText(text=text, title=None, extractor=PLAIN_EXTRACTOR)


# ------------------------------------------------------------------------------------- html


class _OverBudget(BaseException):
    """Extraction passed a bound. BaseException, so trafilatura's broad `except Exception`
    blocks cannot swallow it."""


def _html_text(
    record: RawRecord, settings: ExtractionSettings, dedup_cache: BoilerplateLines | None
) -> ExtractedText | Quarantined:
    html = _html_string(record)
    if isinstance(html, Quarantined):
        return html
    try:
        with _cpu_budget(settings.max_cpu_s):
            if settings.extractor == "resiliparse":
                result = _resiliparse_text(html, settings)
            else:
                result = _trafilatura_text(html, record.url, settings)
    except _OverBudget as exc:
        detail = str(exc) or f"over {settings.max_cpu_s}s of CPU time"
        return _quarantine(record, EXTRACTION_TIMEOUT, detail)
    except Exception as exc:  # pathological markup is quarantined, not fatal
        return _quarantine(record, EXTRACTION_ERROR, f"{type(exc).__name__}: {exc}")
    if isinstance(result, str):
        return _quarantine(record, NO_TEXT_EXTRACTED, result)
    text, title, extractor = result
    text = drop_title_line(text, title)
    if dedup_cache is not None:
        text = dedup_cache.apply(text).text
    return ExtractedText(text=text, title=title, extractor=extractor)


def _trafilatura_text(
    html: str, url: str | None, settings: ExtractionSettings
) -> tuple[str, str | None, str] | str:
    """(normalized text, title, extractor label), or why there is no text."""
    tree = _parse(html, settings)
    if tree is None:
        return "not parseable as an HTML document"
    title = _title(tree)
    if not settings.favor_precision:
        text = _run_trafilatura(tree, url, settings, precise=False)
        return (text, title, TRAFILATURA_DEFAULT) if text else "trafilatura found no main text"
    # The default extraction keeps (nearly) only text outside the elements it cleans away
    # first, so a precise text at least `fallback_ratio` as long as that needs no comparison.
    # Where it is shorter, trafilatura's fast mode (no second-opinion algorithms, half the
    # cost) is a first estimate of the default text, and only then the full default runs.
    page_chars = _text_chars(tree)
    text = _run_trafilatura(tree, url, settings, precise=True)
    ratio = settings.fallback_ratio
    if text and len(text) >= ratio * page_chars:
        return text, title, TRAFILATURA_PRECISION
    if text and len(text) >= ratio * len(_run_trafilatura(tree, url, settings, fast=True)):
        return text, title, TRAFILATURA_PRECISION
    default = _run_trafilatura(tree, url, settings, precise=False)
    if default and (not text or len(text) < settings.fallback_ratio * len(default)):
        return default, title, TRAFILATURA_DEFAULT
    if text:
        return text, title, TRAFILATURA_PRECISION
    return "trafilatura found no main text, with its precise or its default settings"


def _run_trafilatura(
    tree: HtmlElement,
    url: str | None,
    settings: ExtractionSettings,
    *,
    precise: bool = False,
    fast: bool = False,
) -> str:
    """Normalized text of one trafilatura run (it works on its own copy of the tree)."""
    text = trafilatura.extract(
        tree,
        url=url,
        fast=fast,
        favor_precision=precise,
        include_comments=settings.include_comments,
        include_tables=settings.include_tables,
        include_images=settings.include_images,
        deduplicate=False,  # see assets.raw.boilerplate
        output_format="txt",
    )
    return normalize_text(text or "")


def _parse(html: str, settings: ExtractionSettings) -> HtmlElement | None:
    tree = trafilatura.load_html(html)
    limit = settings.max_tree_elements
    if tree is not None and limit and next(islice(tree.iter(), limit, None), None) is not None:
        raise _OverBudget(f"over {limit} elements in the parsed tree")
    return tree


def _text_chars(tree: HtmlElement) -> int:
    """Characters of text in the page's body outside the elements trafilatura removes before
    extracting (scripts, styles, navigation, forms, footers, asides, ...)."""
    body = tree.find("body")
    root = body if body is not None else tree
    chars = len(_text_of(root))
    for element in root.iter(*_CLEANED_TAGS):
        parent = element.getparent()
        while parent is not None and parent.tag not in _CLEANED_TAGS:
            parent = parent.getparent()
        if parent is None:  # an outermost cleaned element: its text is subtracted once
            chars -= len(_text_of(element))
    return chars


def _text_of(element: HtmlElement) -> str:
    return etree.tostring(element, method="text", encoding="unicode", with_tail=False)


def _title(tree: HtmlElement) -> str | None:
    """<title>, else og:title: cheaper than trafilatura's full metadata pass (htmldate etc.)."""
    node = tree.find(".//title")
    title = node.text_content() if node is not None else ""
    if not title.strip():
        og = tree.xpath("//meta[@property='og:title']/@content")
        title = str(og[0]) if og else ""
    title = " ".join(title.split())
    return title or None


def _resiliparse_text(html: str, settings: ExtractionSettings) -> tuple[str, str | None, str] | str:
    """resiliparse's main-content text; trafilatura's default extraction if it finds none."""
    tree = HTMLTree.parse(html)
    text = normalize_text(
        extract_plain_text(
            tree,
            main_content=True,
            alt_texts=settings.include_images,
            comments=settings.include_comments,
        )
    )
    if text:
        title = " ".join((tree.title or "").split())
        if not title and tree.head is not None:
            og = tree.head.query_selector("meta[property='og:title']")
            title = " ".join((og.getattr("content") or "").split()) if og is not None else ""
        return text, title or None, RESILIPARSE_EXTRACTOR
    fallback = replace(settings, extractor="trafilatura", favor_precision=False)
    found = _trafilatura_text(html, None, fallback)
    return found if not isinstance(found, str) else "resiliparse and trafilatura found no text"


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


# ---------------------------------------------------------------------------- CPU budget


def _on_budget(signum: int, frame: object) -> None:
    raise _OverBudget


@contextmanager
def _cpu_budget(seconds: float | None) -> Iterator[None]:
    """Interrupt extraction after `seconds` of CPU time of this process (ITIMER_PROF, SIGPROF).

    CPU time, unlike wall-clock time, does not grow when other processes compete for the cores,
    so whether a page passes does not depend on the machine's load. A no-op off the main thread,
    without setitimer, or while something else (a sampling profiler) owns ITIMER_PROF; the
    element bound still holds there. Wall-clock timers (pytest-timeout, watchdogs) are untouched.
    """
    usable = seconds and hasattr(signal, "setitimer")
    if not usable or threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getitimer(signal.ITIMER_PROF)[0]:
        yield
        return
    previous = signal.signal(signal.SIGPROF, _on_budget)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_PROF, 0)
        finally:
            signal.signal(signal.SIGPROF, previous)


def _quarantine(record: RawRecord, reason: str, detail: str) -> Quarantined:
    return Quarantined(
        record.source_file, record.source_offset, record.url, reason, short_detail(detail)
    )
