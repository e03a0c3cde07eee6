"""Small real crawl shards for orchestration tests: the first pages of a bundled sample shard."""

from __future__ import annotations

from pathlib import Path

from warcio.archiveiterator import ArchiveIterator

from tests.conftest import SAMPLE_CRAWL


def tiny_shard(name: str, dest: Path, responses: int = 5, *, rename: str | None = None) -> Path:
    """Copy the records up to the `responses`-th response of a sample shard into `dest`.

    Each record of a .warc.gz is its own gzip member, so a prefix cut at a record boundary is a
    valid shard: real crawl data that ingests in a second or two instead of half a minute.
    """
    source = SAMPLE_CRAWL / name
    with source.open("rb") as stream:
        records = ArchiveIterator(stream)
        seen, cut = 0, None
        for record in records:
            if seen == responses:
                cut = records.get_record_offset()
                break
            seen += record.rec_type == "response"
    data = source.read_bytes()
    target = dest / (rename or name)
    target.write_bytes(data if cut is None else data[:cut])
    return target
