"""A corpus of broken crawl shards, made from a real sample WARC, with what each must become.

Shared by the bad-input tests and the reliability figures in docs/RELIABILITY.md.
"""

from __future__ import annotations

import gzip
import io
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

REPO = Path(__file__).resolve().parents[2]
SAMPLE_WARC = REPO / "data" / "sample_crawl" / "debian-faq-en.warc.gz"
HUGE_PAGE_BYTES = 50_000_000
GOOD_TEXT = (
    "The lighthouse keeper logged every passing ship in a leather-bound journal. Storms came "
    "often in the autumn, and the lamp had to be trimmed twice a night so that fishing boats "
    "could find the harbour entrance between the rocks. In winter the supply boat arrived only "
    "once a month, bringing oil, flour, letters and the occasional newspaper."
)
GOOD_HTML = (
    f"<html><head><title>Keeping the Light</title></head><body><article><p>{GOOD_TEXT}</p>"
    f"<p>{GOOD_TEXT.replace('lighthouse', 'harbour')}</p></article></body></html>"
).encode()
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 16
EXTRACTION_OUTCOMES = {"no_text_extracted", "extraction_error", "extraction_timeout"}


@dataclass(frozen=True)
class BrokenShard:
    """One bad input: how to make it, the quarantine reasons that fit it (at least one must
    show up), and how many good records in it must still come through as documents."""

    name: str
    what: str
    build: Callable[[Path], bytes]
    reasons: frozenset[str]
    good_documents: int = 0


def sample_bytes() -> bytes:
    return SAMPLE_WARC.read_bytes()


def _response(writer: WARCWriter, url: str, body: bytes, ctype: str = "text/html") -> None:
    http = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
    record = writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http)
    writer.write_record(record)


def _warc(pages: list[tuple[str, bytes, str]], compress: bool) -> bytes:
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=compress)
    for url, body, ctype in pages:
        _response(writer, url, body, ctype)
    return out.getvalue()


def _good(i: int) -> tuple[str, bytes, str]:
    return _page(f"https://good.example/{i}", GOOD_HTML.replace(b"Light<", f"Light {i}<".encode()))


def _page(url: str, body: bytes, ctype: str = "text/html; charset=utf-8") -> tuple:
    return (url, body, ctype)


def truncated_gzip(_: Path) -> bytes:
    data = sample_bytes()
    return data[: int(len(data) * 0.6)]


def malformed_header(_: Path) -> bytes:
    """The 12th record's `WARC/1.x` version line replaced by garbage."""
    raw = gzip.decompress(sample_bytes())
    at = -1
    for _ in range(12):
        at = raw.index(b"WARC/1.", at + 1)
    return raw[:at] + b"GARBAGE\r\n" + raw[at + 8 :]


def missing_content_length(_: Path) -> bytes:
    raw = _warc([_good(0), _good(1)], compress=False)
    second = raw.index(b"WARC/1.", 1)
    head, tail = raw[:second], raw[second:]
    start = tail.index(b"Content-Length:")
    return head + tail[:start] + tail[tail.index(b"\r\n", start) + 2 :]


def overlong_content_length(_: Path) -> bytes:
    raw = _warc([_good(0), _good(1)], compress=False)
    second = raw.index(b"WARC/1.", 1)
    start = raw.index(b"Content-Length: ", second) + len(b"Content-Length: ")
    end = raw.index(b"\r\n", start)
    return raw[:start] + str(int(raw[start:end]) + 5000).encode() + raw[end:]


def undecodable_wet(_: Path) -> bytes:
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True)
    for url, body in (("https://wet/ok", GOOD_TEXT.encode()), ("https://wet/bad", b"caf\xe9 \xff")):
        record = writer.create_warc_record(
            url, "conversion", payload=io.BytesIO(body), warc_content_type="text/plain"
        )
        writer.write_record(record)
    return out.getvalue()


def undecodable_jsonl(_: Path) -> bytes:
    good = json.dumps({"id": "ok", "url": "https://j/ok", "text": GOOD_TEXT}).encode()
    return good + b'\n{"id": "bad", "text": "caf\xe9 \xff\xfe"}\n'


def binary_as_html(_: Path) -> bytes:
    noise = random.Random(9).randbytes(20_000)
    pages = [
        _page("https://bin/logo", PNG),
        _page("https://bin/noise", noise),
        _page("https://bin/pdf", b"%PDF-1.7\n" + noise),
        _good(0),
    ]
    return _warc(pages, compress=True)


def huge_page(_: Path) -> bytes:
    """A 50 MB page of varied words (compresses like real text), then a normal page."""
    rng = random.Random(0)
    words = ["".join(rng.choices("etaoinshrdlu", k=rng.randint(2, 9))) for _ in range(3000)]
    block = ("<p>" + " ".join(rng.choices(words, k=100_000)) + "</p>\n").encode()
    body = b"<html><body>" + block * (HUGE_PAGE_BYTES // len(block) + 1) + b"</body></html>"
    return _warc([_page("https://huge/page", body), _good(0)], compress=False)


def decompression_bomb(_: Path) -> bytes:
    """50 MB of markup that gzip squeezes to ~70 KB."""
    body = b"<html><body>" + b"<p>a</p>" * (HUGE_PAGE_BYTES // 8) + b"</body></html>"
    return _warc([_page("https://bomb/page", body), _good(0)], compress=True)


def nested_html(_: Path) -> bytes:
    depth = 200_000
    body = b"<div>" * depth + f"<p>{GOOD_TEXT}</p>".encode() + b"</div>" * depth
    page = b"<html><head><title>Deep</title></head><body>" + body + b"</body></html>"
    return _warc([_page("https://deep/page", page), _good(0)], compress=True)


def empty(_: Path) -> bytes:
    return b""


def png_named_warc(_: Path) -> bytes:
    return PNG


def jsonl_named_warc(_: Path) -> bytes:
    return undecodable_jsonl(_)


def warc_named_parquet(_: Path) -> bytes:
    return sample_bytes()


def parquet_named_jsonl_gz(tmp: Path) -> bytes:
    return _parquet(tmp)


def truncated_parquet(tmp: Path) -> bytes:
    return _parquet(tmp)[:-40]


def _parquet(tmp: Path) -> bytes:
    path = tmp / "_made.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": [GOOD_TEXT, GOOD_TEXT + " 2"]}), path)
    return path.read_bytes()


def html_file(_: Path) -> bytes:
    return GOOD_HTML


SHARDS: tuple[BrokenShard, ...] = (
    BrokenShard(
        "truncated.warc.gz",
        "sample WARC cut at 60%",
        truncated_gzip,
        frozenset({"corrupt_archive"}),
    ),
    BrokenShard(
        "bad-header.warc",
        "sample WARC, 12th version line garbled",
        malformed_header,
        frozenset({"malformed_record"}),
    ),
    BrokenShard(
        "no-length.warc",
        "record without Content-Length",
        missing_content_length,
        frozenset({"malformed_record"}),
        1,
    ),
    BrokenShard(
        "long-length.warc",
        "Content-Length past the end of file",
        overlong_content_length,
        frozenset({"corrupt_archive"}),
        1,
    ),
    BrokenShard(
        "latin1.warc.wet.gz",
        "WET text that is not UTF-8",
        undecodable_wet,
        frozenset({"undecodable"}),
        1,
    ),
    BrokenShard(
        "latin1.jsonl",
        "JSONL line that is not UTF-8",
        undecodable_jsonl,
        frozenset({"undecodable"}),
        1,
    ),
    BrokenShard(
        "binary.warc.gz",
        "PNG, PDF and random bytes served as text/html",
        binary_as_html,
        frozenset({"binary_payload"}),
        1,
    ),
    BrokenShard("huge.warc", "one 50 MB page", huge_page, frozenset({"too_large"}), 1),
    BrokenShard(
        "bomb.warc.gz",
        "50 MB page gzipped to 70 KB",
        decompression_bomb,
        frozenset({"too_large"}),
        1,
    ),
    BrokenShard(
        "nested.warc.gz",
        "200,000 nested <div>s",
        nested_html,
        frozenset(EXTRACTION_OUTCOMES),
        1,
    ),
    BrokenShard("empty.warc.gz", "0-byte WARC", empty, frozenset({"empty"})),
    BrokenShard("empty.jsonl", "0-byte JSONL", empty, frozenset({"empty"})),
    BrokenShard(
        "png.warc.gz", "a PNG named .warc.gz", png_named_warc, frozenset({"malformed_record"})
    ),
    BrokenShard(
        "jsonl.warc", "JSON lines named .warc", jsonl_named_warc, frozenset({"malformed_record"})
    ),
    BrokenShard(
        "warc.parquet", "a WARC named .parquet", warc_named_parquet, frozenset({"corrupt_archive"})
    ),
    BrokenShard(
        "parquet.jsonl.gz",
        "Parquet named .jsonl.gz",
        parquet_named_jsonl_gz,
        frozenset({"corrupt_archive"}),
    ),
    BrokenShard(
        "cut.parquet",
        "Parquet without its footer",
        truncated_parquet,
        frozenset({"corrupt_archive"}),
    ),
    BrokenShard(
        "page.html", "an HTML file in the crawl", html_file, frozenset({"unsupported_format"})
    ),
)


def build(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for shard in SHARDS:
        path = folder / shard.name
        path.write_bytes(shard.build(folder))
        made[shard.name] = path
    (folder / "_made.parquet").unlink(missing_ok=True)
    return made
