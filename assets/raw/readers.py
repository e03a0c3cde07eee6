"""Stream raw crawl shards (WARC, WET, JSONL, Parquet) into `RawRecord`s, in bounded memory.

Contract, shared by all formats:

* Every document-bearing record yields exactly one `RawRecord` or one `Quarantined`. Records
  that are not documents (WARC warcinfo/request/metadata/revisit, and wget's bookkeeping
  `resource` records under `metadata://`) are skipped silently.
* Bad *data* never raises: a corrupt or truncated archive yields one `Quarantined` for the rest of
  the file ("corrupt_archive" / "malformed_record") and the file ends there; a bad JSON line is
  quarantined and reading goes on. I/O failures (missing file, network errors) do raise, so the
  orchestrator can retry instead of recording a transient fault as bad data.
* A zero-byte file, or one with no document records at all (a gzip of nothing, blank lines, a
  WARC of warcinfo records only), yields one `Quarantined("empty")`: a raw shard is never
  legitimately empty, so it almost always means a failed download and should show up in the
  quarantine counts.
* Payloads are read with a cap, so one huge record costs at most `max_payload_bytes` of memory.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from warcio.archiveiterator import ArchiveIterator
from warcio.recordloader import ArcWarcRecord

from assets.raw.records import (
    CORRUPT_ARCHIVE,
    EMPTY,
    HTTP_ERROR,
    HTTP_REDIRECT,
    MALFORMED_RECORD,
    NON_HTML,
    TOO_LARGE,
    UNDECODABLE,
    UNSUPPORTED_FORMAT,
    Quarantined,
    RawRecord,
    short_detail,
)

DEFAULT_MAX_PAYLOAD_BYTES = 10_000_000
HTML_MIME_TYPES = frozenset({"text/html", "application/xhtml+xml"})
READ_CHUNK_BYTES = 1 << 16
PARQUET_BATCH_ROWS = 256  # web pages average ~50 KB of HTML: a batch stays in the tens of MB
JSONL_ESCAPE_FACTOR = 6  # JSON escaping grows text up to 6x ("\u0001"); lines get that headroom
JSONL_METADATA_SLACK = 1 << 16

RecordItem = RawRecord | Quarantined
ShardReader = Callable[[IO[bytes], str, int], Iterator[RecordItem]]


def read_shard(
    path_or_url: str, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> Iterator[RecordItem]:
    """Yield one `RawRecord` or `Quarantined` per document-bearing record of a shard."""
    reader = _reader_for(path_or_url)
    if reader is None:
        detail = "no reader for this file name (expected .warc[.gz], .wet[.gz], .jsonl[.gz], "
        detail += ".json.gz or .parquet)"
        yield Quarantined(path_or_url, 0, None, UNSUPPORTED_FORMAT, detail)
        return
    opened = fsspec.open(path_or_url, "rb")
    if opened.fs.size(opened.path) == 0:
        yield Quarantined(path_or_url, 0, None, EMPTY, "file is empty (0 bytes)")
        return
    with opened as fh:
        produced = False
        for item in reader(fh, path_or_url, max_payload_bytes):
            produced = True
            yield item
    if not produced:  # e.g. a gzip of nothing, blank lines, a WARC of warcinfo records only
        yield Quarantined(path_or_url, 0, None, EMPTY, "no document records in the file")


def shard_format(path_or_url: str) -> str | None:
    """Format name from the file name ("warc", "jsonl", "parquet"), or None if unsupported."""
    name = _file_name(path_or_url)
    for suffix, fmt in _SUFFIX_FORMATS:
        if name.endswith(suffix):
            return fmt
    return None


OFFSET_UNITS = {"warc": "byte", "jsonl": "line", "parquet": "row"}


def offset_unit(path_or_url: str) -> str | None:
    """What `source_offset` counts for a file: compressed bytes (WARC and WET, where a reader
    can seek to the record), 0-based lines (JSONL) or rows (Parquet)."""
    fmt = shard_format(path_or_url)
    return OFFSET_UNITS.get(fmt) if fmt else None


def _file_name(path_or_url: str) -> str:
    """Lower-case name without an HTTP query string or fragment, for suffix checks."""
    name = path_or_url.lower()
    if name.startswith(("http://", "https://")):
        name = name.split("#", 1)[0].split("?", 1)[0]
    return name


def _reader_for(path_or_url: str) -> ShardReader | None:
    fmt = shard_format(path_or_url)
    return _READERS[fmt] if fmt else None


def _is_io_failure(exc: BaseException) -> bool:
    """OSErrors are I/O faults to retry, except gzip's own "bad file" error, which is bad data."""
    return isinstance(exc, OSError) and not isinstance(exc, gzip.BadGzipFile)


def _corrupt_reason(exc: BaseException) -> str:
    """Decompression failures mean the bytes are damaged; anything else is a bad record layout."""
    if isinstance(exc, zlib.error | EOFError | gzip.BadGzipFile):
        return CORRUPT_ARCHIVE
    return MALFORMED_RECORD


# --------------------------------------------------------------------------------------- WARC


class _CheckedArchiveIterator(ArchiveIterator):
    """warcio ends quietly on a truncated gzip member; remember it so the loss is reported."""

    truncated_gzip = False

    def close(self) -> None:
        decompressor = self.reader.decompressor if self.reader else None
        if decompressor is not None and not getattr(decompressor, "eof", True):
            self.truncated_gzip = True
        super().close()


class _MissingLengthError(ValueError):
    """Without Content-Length the next record cannot be found, so the rest of the file is lost."""


class _NotWarcError(ValueError):
    """warcio falls back to ARC parsing for any header it cannot read as WARC: for a `.warc`
    file that is a wrong file (JSON lines, HTML, ...), not a record to keep reading past."""


@dataclass(frozen=True, slots=True)
class _Payload:
    body: bytes | str
    kind: str
    mime: str | None
    charset: str | None
    status: int | None


@dataclass(frozen=True, slots=True)
class _Reject:
    reason: str
    detail: str


def _read_warc(fh: IO[bytes], source: str, max_bytes: int) -> Iterator[RecordItem]:
    """WARC and WET: responses/resources carry HTML, WET conversion records carry text."""
    records = _CheckedArchiveIterator(fh)
    while True:
        try:
            record = next(records)
            if record.format != "warc":
                raise _NotWarcError(f"not a WARC record (readable only as {record.format})")
            if record.length is None:
                raise _MissingLengthError("WARC header without Content-Length (truncated?)")
            outcome = _inspect(record, max_bytes)
            complete = _drain(record)
            offset = records.get_record_offset()
        except StopIteration:
            break
        except Exception as exc:
            if _is_io_failure(exc):
                raise
            reason = CORRUPT_ARCHIVE if _exhausted(records) else _corrupt_reason(exc)
            detail = short_detail(f"{type(exc).__name__}: {exc}")
            yield Quarantined(source, records.offset, None, reason, detail)
            return
        url = record.rec_headers.get_header("WARC-Target-URI")
        if not complete:
            detail = "archive ends inside this record (truncated or corrupt file)"
            yield Quarantined(source, offset, url, CORRUPT_ARCHIVE, detail)
            return
        if isinstance(outcome, _Reject):
            yield Quarantined(source, offset, url, outcome.reason, outcome.detail)
        elif outcome is not None:
            yield _warc_raw_record(record, source, offset, url, outcome)
    if records.truncated_gzip or records.offset < records.fh.tell():
        # warcio treats a header cut short by end-of-file as a clean end; it is not.
        detail = "file ends inside a record header or gzip member (truncated file)"
        yield Quarantined(source, records.offset, None, CORRUPT_ARCHIVE, detail)


def _exhausted(records: _CheckedArchiveIterator) -> bool:
    """A header that fails to parse with nothing left to read was cut short: truncation."""
    reader = records.reader
    if reader is None or not reader.empty() or reader.rem_length():
        return False
    try:
        return not records.fh.read(1)
    except (OSError, ValueError):  # the file is abandoned anyway; this only picks the reason
        return False


def _inspect(record: ArcWarcRecord, max_bytes: int) -> _Payload | _Reject | None:
    """Decide what a record is; read its payload only when it is a document we keep."""
    rec_type = record.rec_type
    if rec_type == "conversion":
        return _conversion_payload(record, max_bytes)
    if rec_type not in ("response", "resource") or _is_crawler_bookkeeping(record):
        return None
    status = _http_status(record)
    if status is not None and status >= 400:
        return _Reject(HTTP_ERROR, f"HTTP status {status}")
    if status is not None and 300 <= status < 400:
        return _Reject(HTTP_REDIRECT, f"HTTP status {status}")
    mime, charset = _record_content_type(record)
    if mime not in HTML_MIME_TYPES:
        return _Reject(NON_HTML, f"content type {mime or 'missing'}")
    body = _read_capped(record.content_stream(), max_bytes)
    if isinstance(body, _Reject):
        return body
    return _Payload(body, "html", mime, charset, status)


def _conversion_payload(record: ArcWarcRecord, max_bytes: int) -> _Payload | _Reject:
    """WET text is UTF-8 by specification; a record that is not is damaged, not re-guessable."""
    mime, charset = parse_content_type(record.rec_headers.get_header("Content-Type"))
    body = _read_capped(record.content_stream(), max_bytes)
    if isinstance(body, _Reject):
        return body
    try:
        text = body.decode(charset or "utf-8")
    except (UnicodeDecodeError, LookupError) as exc:
        return _Reject(UNDECODABLE, short_detail(exc))
    return _Payload(text, "text", mime or "text/plain", charset, None)


def _is_crawler_bookkeeping(record: ArcWarcRecord) -> bool:
    """wget stores its log and arguments as resource records under metadata:// URIs."""
    uri = record.rec_headers.get_header("WARC-Target-URI") or ""
    return record.rec_type == "resource" and uri.startswith("metadata://")


def _http_status(record: ArcWarcRecord) -> int | None:
    if record.rec_type != "response" or record.http_headers is None:
        return None
    try:
        return int(record.http_headers.get_statuscode())
    except (TypeError, ValueError):
        return None


def _record_content_type(record: ArcWarcRecord) -> tuple[str | None, str | None]:
    """The server's Content-Type, else Common Crawl's detected payload type, else the WARC one."""
    if record.rec_type == "response" and record.http_headers is not None:
        value = record.http_headers.get_header("Content-Type")
        value = value or record.rec_headers.get_header("WARC-Identified-Payload-Type")
    else:
        value = record.rec_headers.get_header("Content-Type")
    return parse_content_type(value)


def _read_capped(stream: Any, max_bytes: int) -> bytes | _Reject:
    """Read a whole payload, but stop holding it as soon as it exceeds the cap."""
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(READ_CHUNK_BYTES):
        size += len(chunk)
        if size > max_bytes:
            return _Reject(TOO_LARGE, f"payload over {max_bytes} bytes")
        chunks.append(chunk)
    if size == 0:
        return _Reject(EMPTY, "empty payload")
    return b"".join(chunks)


def _drain(record: ArcWarcRecord) -> bool:
    """Consume the record block; False if the file ended before its declared Content-Length."""
    raw = record.raw_stream
    while raw.read(READ_CHUNK_BYTES):
        pass
    return getattr(raw, "limit", 0) <= 0


def _warc_raw_record(
    record: ArcWarcRecord, source: str, offset: int, url: str | None, payload: _Payload
) -> RawRecord:
    return RawRecord(
        source_file=source,
        source_offset=offset,
        record_id=record.rec_headers.get_header("WARC-Record-ID"),
        url=url,
        fetch_time=parse_time(record.rec_headers.get_header("WARC-Date")),
        content_type=payload.mime,
        http_status=payload.status,
        payload=payload.body,
        payload_kind=payload.kind,
        charset=payload.charset,
    )


# -------------------------------------------------------------------------------------- JSONL


def _read_jsonl(fh: IO[bytes], source: str, max_bytes: int) -> Iterator[RecordItem]:
    """One JSON object per line; a bad line is quarantined and the next one is read."""
    # fsspec's remote files (s3, http) have no readline(limit); BufferedReader adds it.
    compressed = _file_name(source).endswith(".gz")
    stream = gzip.GzipFile(fileobj=fh, mode="rb") if compressed else io.BufferedReader(fh)
    line_limit = JSONL_ESCAPE_FACTOR * max_bytes + JSONL_METADATA_SLACK
    with stream:
        for index, line in _bounded_lines(stream, line_limit, source):
            if isinstance(line, Quarantined):
                yield line
                if line.reason != TOO_LARGE:
                    return
            elif line.strip():
                yield _json_line_record(line, source, index, max_bytes)


def _bounded_lines(
    stream: io.BufferedIOBase, limit: int, source: str
) -> Iterator[tuple[int, bytes | Quarantined]]:
    """Lines with their 0-based number; over-long lines are skipped, never held in memory."""
    index = 0
    while True:
        try:
            line = stream.readline(limit)
            too_long = len(line) == limit and not line.endswith(b"\n")
            if too_long:
                _skip_rest_of_line(stream, limit)
        except Exception as exc:
            if _is_io_failure(exc):
                raise
            yield index, Quarantined(source, index, None, CORRUPT_ARCHIVE, short_detail(exc))
            return
        if not line:
            return
        if too_long:
            yield index, Quarantined(source, index, None, TOO_LARGE, f"line over {limit} bytes")
        else:
            yield index, line
        index += 1


def _skip_rest_of_line(stream: io.BufferedIOBase, limit: int) -> None:
    while (part := stream.readline(limit)) and not part.endswith(b"\n"):
        pass


def _json_line_record(line: bytes, source: str, index: int, max_bytes: int) -> RecordItem:
    try:
        obj = json.loads(line)
    except UnicodeDecodeError as exc:  # JSON text is UTF-8 (RFC 8259); these bytes are not
        return Quarantined(source, index, None, UNDECODABLE, short_detail(exc))
    except ValueError as exc:
        return Quarantined(source, index, None, MALFORMED_RECORD, short_detail(exc))
    if not isinstance(obj, dict):
        detail = f"expected a JSON object, got {type(obj).__name__}"
        return Quarantined(source, index, None, MALFORMED_RECORD, detail)
    return mapping_record(obj, source, index, max_bytes)


def mapping_record(obj: dict[str, Any], source: str, index: int, max_bytes: int) -> RecordItem:
    """A JSONL object or Parquet row: `text` (or `html` when there is no text) plus metadata."""
    url = _optional_str(obj.get("url"))
    text, html = obj.get("text"), obj.get("html")
    if isinstance(text, str) and (text or not isinstance(html, str)):
        payload, kind = text, "text"
    elif isinstance(html, str):
        payload, kind = html, "html"
    else:
        detail = "no string 'text' (or 'html') field"
        return Quarantined(source, index, url, MALFORMED_RECORD, detail)
    if not payload:
        return Quarantined(source, index, url, EMPTY, f"empty '{kind}' field")
    if _utf8_size_exceeds(payload, max_bytes):
        return Quarantined(source, index, url, TOO_LARGE, f"payload over {max_bytes} bytes")
    mime, charset = parse_content_type(_optional_str(obj.get("content_type")))
    return RawRecord(
        source_file=source,
        source_offset=index,
        record_id=_optional_str(obj.get("id")),
        url=url,
        fetch_time=parse_time(_first_present(obj, "date", "fetch_time")),
        content_type=mime or ("text/html" if kind == "html" else "text/plain"),
        http_status=_optional_int(obj.get("http_status")),
        payload=payload,
        payload_kind=kind,
        charset=charset,
    )


# ------------------------------------------------------------------------------------ Parquet

PARQUET_COLUMNS = ("id", "url", "date", "fetch_time", "content_type", "http_status", "text", "html")


def _read_parquet(fh: IO[bytes], source: str, max_bytes: int) -> Iterator[RecordItem]:
    """Batches of rows from the needed columns only, so memory follows the batch, not the file."""
    index = 0
    tracked = _TrackedFile(fh)
    try:
        parquet = pq.ParquetFile(tracked)
        columns = [name for name in PARQUET_COLUMNS if name in parquet.schema_arrow.names]
        if "text" not in columns and "html" not in columns:
            detail = "no 'text' or 'html' column"
            yield Quarantined(source, 0, None, MALFORMED_RECORD, detail)
            return
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
            for row in batch.to_pylist():
                yield mapping_record(row, source, index, max_bytes)
                index += 1
    except (pa.ArrowException, OSError, ValueError) as exc:
        # Arrow reports damaged bytes as plain OSError ("Couldn't deserialize thrift"); only a
        # failure of the file object itself is an I/O fault to retry.
        if tracked.failure is not None:
            raise
        yield Quarantined(source, index, None, CORRUPT_ARCHIVE, short_detail(exc))


class _TrackedFile:
    """A file proxy that remembers whether the file itself failed, as opposed to Arrow
    failing on the bytes it read."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self.failure: BaseException | None = None

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._fh, name)
        if not callable(attr):
            return attr

        def tracked(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            except Exception as exc:
                self.failure = exc
                raise

        return tracked


# ------------------------------------------------------------------------------------ helpers


def parse_content_type(value: str | None) -> tuple[str | None, str | None]:
    """("text/html", "utf-8") from "Text/HTML; charset=UTF-8"; (None, None) when absent."""
    if not value:
        return None, None
    mime, *params = value.split(";")
    charset = None
    for param in params:
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset":
            charset = val.strip().strip("\"'").lower() or None
    return mime.strip().lower() or None, charset


def parse_time(value: object) -> datetime | None:
    """Timezone-aware UTC datetime from ISO 8601 text, epoch seconds or a datetime."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    else:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _first_present(obj: dict[str, Any], *keys: str) -> Any:
    return next((obj[key] for key in keys if obj.get(key) is not None), None)


def _optional_str(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _optional_int(value: object) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


def _utf8_size_exceeds(text: str, max_bytes: int) -> bool:
    """Checks the UTF-8 size without encoding in the common, clearly-small case."""
    if len(text) * 4 <= max_bytes:
        return False
    return len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes


_SUFFIX_FORMATS = (
    (".warc.gz", "warc"),
    (".warc", "warc"),
    (".wet.gz", "warc"),
    (".wet", "warc"),
    (".jsonl.gz", "jsonl"),
    (".json.gz", "jsonl"),
    (".jsonl", "jsonl"),
    (".parquet", "parquet"),
)
_READERS: dict[str, ShardReader] = {
    "warc": _read_warc,
    "jsonl": _read_jsonl,
    "parquet": _read_parquet,
}
