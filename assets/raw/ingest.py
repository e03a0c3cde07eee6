"""Turn one crawl shard into documents and quarantined records, streaming in bounded memory."""

from __future__ import annotations

import logging
import posixpath
import time
from dataclasses import dataclass, field

from assets.documents import Drop, make_doc_id
from assets.raw.extract import DEFAULT_SETTINGS, ExtractedText, ExtractionSettings, iter_documents
from assets.raw.readers import offset_unit
from assets.raw.records import Quarantined, RawRecord
from resources.lake import TableSink

STAGE = "raw"
log = logging.getLogger(__name__)


@dataclass
class IngestCounts:
    records: int = 0
    documents: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    extractors: dict[str, int] = field(default_factory=dict)  # documents per `extractor` label
    seconds: float = 0.0


def record_origin(source_file: str, offset: int, record_id: str | None, url: str | None) -> str:
    """Origin of a record: its URL plus the crawl's own record id (or file and offset)."""
    where = record_id or f"{posixpath.basename(source_file)}#{offset}"
    return f"{url or ''}|{where}"


def document_row(shard: str, record: RawRecord, extracted: ExtractedText) -> dict:
    origin = record_origin(record.source_file, record.source_offset, record.record_id, record.url)
    return {
        "doc_id": make_doc_id(origin, extracted.text),
        "shard": shard,
        "url": record.url,
        "fetch_time": record.fetch_time,
        "content_type": record.content_type,
        "http_status": record.http_status,
        "source_file": record.source_file,
        "source_offset": record.source_offset,
        "source_offset_unit": offset_unit(record.source_file),
        "record_id": record.record_id,
        "title": extracted.title,
        "text": extracted.text,
        "extractor": extracted.extractor,
    }


def quarantine_row(item: Quarantined) -> dict:
    origin = record_origin(item.source_file, item.source_offset, None, item.url)
    return Drop(
        doc_id=make_doc_id(origin, ""),
        stage=STAGE,
        rule=item.reason,
        detail=item.detail,
        url=item.url,
        source_file=item.source_file,
        source_offset=item.source_offset,
    ).row()


def ingest_shard(
    path: str,
    shard: str,
    documents: TableSink,
    dropped: TableSink,
    settings: ExtractionSettings = DEFAULT_SETTINGS,
) -> IngestCounts:
    """Every record read ends as exactly one document row or one quarantine row; each document
    row names the extractor that produced its text (`extractor` column)."""
    counts = IngestCounts()
    started = time.perf_counter()
    for item in iter_documents(path, settings=settings):
        counts.records += 1
        if isinstance(item, Quarantined):
            dropped.append(quarantine_row(item))
            counts.quarantined += 1
            counts.reasons[item.reason] = counts.reasons.get(item.reason, 0) + 1
        else:
            documents.append(document_row(shard, *item))
            counts.documents += 1
            label = item[1].extractor
            counts.extractors[label] = counts.extractors.get(label, 0) + 1
        if counts.records % 500 == 0:
            rate = counts.records / (time.perf_counter() - started)
            log.info("%s: %d records read (%.1f/s)", shard, counts.records, rate)
    counts.seconds = time.perf_counter() - started
    return counts
