"""Property-based fuzzing of the raw readers with hypothesis, on a bounded budget.

Whatever the bytes, reading a shard never raises (only I/O faults may), every outcome is a
record or a quarantine with a known reason, damage ends the file with one quarantine row, and
records that lie wholly before the first damaged byte come out exactly as from the intact file.
In CI (CI=true) the examples are derandomized, so a failure reproduces; locally each run
explores new inputs. FUZZ_EXAMPLES raises the budget for a longer local session.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

import assets.raw.records as records
from assets.raw.extract import ExtractedText, extract_text, iter_documents
from assets.raw.readers import read_shard
from assets.raw.records import Quarantined, RawRecord

REASONS = {v for k, v in vars(records).items() if k.isupper() and isinstance(v, str)}
END_OF_FILE_REASONS = {"corrupt_archive", "malformed_record"}
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # shared CI cores: time is bounded by the example budget instead
    derandomize=os.environ.get("CI") == "true",
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HTML = (
    b"<html><head><title>T</title></head><body><article>"
    + b"<p>Words of a page that trafilatura keeps as the main text of this article.</p>" * 4
    + b"</article></body></html>"
)


def _warc(compress: bool) -> bytes:
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=compress)
    writer.write_record(writer.create_warcinfo_record("f.warc", {"software": "fuzz"}))
    for i, (body, ctype) in enumerate(
        [(HTML, "text/html; charset=utf-8"), (b"body{}", "text/css"), (HTML, "text/html")]
    ):
        http = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
        record = writer.create_warc_record(
            f"https://f.example/{i}", "response", payload=io.BytesIO(body), http_headers=http
        )
        writer.write_record(record)
    conversion = writer.create_warc_record(
        "https://f.example/wet",
        "conversion",
        payload=io.BytesIO("Plain text é".encode()),
        warc_content_type="text/plain",
    )
    writer.write_record(conversion)
    return out.getvalue()


WARCS = {".warc": _warc(False), ".warc.gz": _warc(True)}


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> tuple[bytes, int]:
    """The bytes with flips, insertions or a cut, and the offset of the first changed byte."""
    kind = draw(st.sampled_from(["flip", "insert", "cut", "splice"]))
    at = draw(st.integers(0, len(data) - 1))
    if kind == "cut":
        return data[:at], at
    if kind == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:], at
    if kind == "splice":  # a run of a few hundred bytes overwritten
        junk = draw(st.binary(min_size=1, max_size=400))
        return data[:at] + junk + data[at + len(junk) :], at
    flips = draw(
        st.lists(
            st.tuples(st.integers(at, len(data) - 1), st.integers(0, 255)), min_size=1, max_size=8
        )
    )
    mutable = bytearray(data)
    for position, value in flips:
        mutable[position] = value
    changed = [p for p, v in flips if data[p] != v]
    return bytes(mutable), min(changed, default=len(data))


def _read(tmp: Path, name: str, data: bytes) -> list[RawRecord | Quarantined]:
    path = tmp / name
    path.write_bytes(data)
    return list(read_shard(str(path)))


def _check_contract(items: list[RawRecord | Quarantined]) -> None:
    """Outcomes only, known reasons with details, and damage to the file ends the file: in a
    WARC any unreadable record (the next one cannot be found), in JSONL and Parquet a corrupt
    stream; a bad JSON line or Parquet row is one record, and reading goes on."""
    for index, item in enumerate(items):
        assert isinstance(item, RawRecord | Quarantined)
        if not isinstance(item, Quarantined):
            continue
        assert item.reason in REASONS and item.detail
        warc = ".warc" in item.source_file or ".wet" in item.source_file
        ends_file = END_OF_FILE_REASONS if warc else {"corrupt_archive"}
        if item.reason in ends_file:
            assert index == len(items) - 1, item


def _record_ends(items: list[RawRecord | Quarantined], size: int) -> dict[int, int]:
    """Where each intact record ends: the next record's offset (or the end of the file)."""
    offsets = [item.source_offset for item in items] + [size]
    return dict(pairwise(offsets))


@pytest.mark.parametrize("suffix", sorted(WARCS))
@FUZZ
@given(data=st.data())
def test_damaged_warc_never_raises_and_keeps_the_intact_prefix(
    tmp_path_factory: pytest.TempPathFactory, suffix: str, data: st.DataObject
) -> None:
    original = WARCS[suffix]
    tmp = tmp_path_factory.mktemp("warc")
    intact = _read(tmp, f"intact{suffix}", original)
    blob, first_change = data.draw(damaged(original))
    items = _read(tmp, f"fuzz{suffix}", blob)
    _check_contract(items)

    ends = _record_ends(intact, len(original))
    before = [i for i in intact if ends[i.source_offset] <= first_change]
    got = {i.source_offset: i for i in items}
    for record in before:
        assert got.get(record.source_offset) == _renamed(record, items), record.source_offset


def _renamed(record: RawRecord | Quarantined, items: list) -> RawRecord | Quarantined:
    return replace(record, source_file=items[0].source_file) if items else record


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
DOCUMENT = st.fixed_dictionaries(
    {"text": st.text(max_size=200)},
    optional={"id": JSON_VALUES, "url": JSON_VALUES, "date": JSON_VALUES, "html": st.text()},
)
LINE = st.one_of(
    DOCUMENT.map(lambda d: json.dumps(d).encode()),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=120).map(lambda b: b.replace(b"\n", b" ")),
)


@pytest.mark.parametrize("compress", [False, True], ids=["jsonl", "jsonl.gz"])
@FUZZ
@given(lines=st.lists(LINE, max_size=25))
def test_every_jsonl_line_is_one_outcome(
    tmp_path_factory: pytest.TempPathFactory, compress: bool, lines: list[bytes]
) -> None:
    raw = b"\n".join(lines)
    name = "f.jsonl.gz" if compress else "f.jsonl"
    items = _read(tmp_path_factory.mktemp("jsonl"), name, gzip.compress(raw) if compress else raw)
    _check_contract(items)
    expected = [n for n, line in enumerate(raw.split(b"\n")) if line.strip()]
    if not expected:  # nothing but blank lines: the shard itself is reported empty
        assert [(i.source_offset, i.reason) for i in items] == [(0, "empty")]
        return
    assert [item.source_offset for item in items] == expected, "one outcome per non-blank line"


def _parquet() -> bytes:
    sink = io.BytesIO()
    table = pa.table({"id": [f"d{i}" for i in range(30)], "text": [f"text {i}" for i in range(30)]})
    pq.write_table(table, sink, row_group_size=10)
    return sink.getvalue()


PARQUET = _parquet()


@FUZZ
@given(data=st.data())
def test_damaged_parquet_reads_rows_or_quarantines(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    blob, _ = data.draw(damaged(PARQUET))
    items = _read(tmp_path_factory.mktemp("parquet"), "f.parquet", blob)
    _check_contract(items)
    assert items, "a damaged file still leaves a row saying so"
    rows = [i for i in items if isinstance(i, RawRecord)]
    assert [r.source_offset for r in rows] == list(range(len(rows)))


@FUZZ
@given(
    payload=st.one_of(
        st.binary(max_size=3000),
        st.text(max_size=2000).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.lists(
            st.sampled_from(["<div>", "</div>", "<p>", "text ", "<script>", "&amp;", "\x00"])
        ).map(lambda parts: ("<html><body>" + "".join(parts)).encode()),
    ),
    charset=st.sampled_from([None, "utf-8", "utf-16", "shift_jis", "x-unknown", "utf-7"]),
)
def test_extraction_of_any_bytes_labelled_html_never_raises(
    payload: bytes, charset: str | None
) -> None:
    record = RawRecord(
        "f.warc", 0, None, "https://f/", None, "text/html", 200, payload, "html", charset
    )
    result = extract_text(record)
    assert isinstance(result, ExtractedText | Quarantined)
    if isinstance(result, Quarantined):
        assert result.reason in REASONS
    else:
        assert result.text.strip()


@FUZZ
@given(data=st.data())
def test_iter_documents_on_damaged_warc_accounts_for_every_read_record(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    blob, _ = data.draw(damaged(WARCS[".warc.gz"]))
    path = tmp_path_factory.mktemp("docs") / "f.warc.gz"
    path.write_bytes(blob)
    read = list(read_shard(str(path)))
    outcomes = list(iter_documents(str(path)))
    assert len(outcomes) == len(read), "extraction turns each record into exactly one outcome"
