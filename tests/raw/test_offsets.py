"""`source_offset` says what it counts: compressed bytes in WARC files (a reader can seek there),
lines in JSONL, rows in Parquet."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import polars as pl
from warcio.archiveiterator import ArchiveIterator

from assets.raw.ingest import ingest_shard
from tests.tiny_crawl import tiny_shard


class Rows:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def append(self, row: dict) -> None:
        self.rows.append(row)


def ingest(path: Path) -> list[dict]:
    documents, dropped = Rows(), Rows()
    ingest_shard(str(path), path.name, documents, dropped)
    return documents.rows


def test_warc_offsets_are_bytes_a_reader_can_seek_to(tmp_path: Path) -> None:
    shard = tiny_shard("debian-faq-en.warc.gz", tmp_path, responses=3)
    rows = ingest(shard)
    assert rows and {r["source_offset_unit"] for r in rows} == {"byte"}
    with shard.open("rb") as stream:
        stream.seek(rows[0]["source_offset"])
        record = next(iter(ArchiveIterator(stream)))
    assert record.rec_headers.get_header("WARC-Target-URI") == rows[0]["url"]


def test_jsonl_offsets_are_lines_and_parquet_offsets_are_rows(tmp_path: Path) -> None:
    texts = [
        "Debian is a free operating system. " * 20,
        "The apt tool installs packages and resolves dependencies. " * 20,
    ]
    jsonl = tmp_path / "pages.jsonl.gz"
    with gzip.open(jsonl, "wt") as fh:
        fh.write("\n")  # a blank first line: offsets count lines, not records
        for i, text in enumerate(texts):
            fh.write(json.dumps({"text": text, "url": f"https://example.org/{i}"}) + "\n")
    parquet = tmp_path / "pages.parquet"
    pl.DataFrame(
        {"text": texts, "url": ["https://example.org/a", "https://example.org/b"]}
    ).write_parquet(parquet)
    assert [(r["source_offset_unit"], r["source_offset"]) for r in ingest(jsonl)] == [
        ("line", 1),
        ("line", 2),
    ]
    assert [(r["source_offset_unit"], r["source_offset"]) for r in ingest(parquet)] == [
        ("row", 0),
        ("row", 1),
    ]


def test_wet_offsets_are_bytes_a_reader_can_seek_to(tmp_path: Path) -> None:
    """Common Crawl's WET files: conversion records of plain text, each gzip member seekable."""
    from warcio.warcwriter import WARCWriter

    shard = tmp_path / "pages.warc.wet.gz"
    pages = [
        ("https://example.org/apt", "The apt tool installs packages and their dependencies. "),
        ("https://example.org/dpkg", "The dpkg tool unpacks a package file and configures it. "),
    ]
    with shard.open("wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        for url, sentence in pages:
            body = ((sentence * 12).strip() + "\n\n") * 3
            record = writer.create_warc_record(
                url,
                "conversion",
                payload=io.BytesIO(body.encode()),
                warc_content_type="text/plain",
            )
            writer.write_record(record)
    rows = ingest(shard)
    assert [r["url"] for r in rows] == [url for url, _ in pages]
    assert {r["source_offset_unit"] for r in rows} == {"byte"}
    for row in rows:
        with shard.open("rb") as stream:
            stream.seek(row["source_offset"])
            record = next(iter(ArchiveIterator(stream)))
        assert record.rec_type == "conversion"
        assert record.rec_headers.get_header("WARC-Target-URI") == row["url"]
