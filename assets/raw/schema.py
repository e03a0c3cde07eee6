"""Columns of `raw_documents`: extracted text plus everything needed to find the record again."""

import pyarrow as pa

RAW_DOCUMENTS_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("shard", pa.string()),
        ("url", pa.string()),
        ("fetch_time", pa.timestamp("us", tz="UTC")),
        ("content_type", pa.string()),
        ("http_status", pa.int32()),
        ("source_file", pa.string()),
        ("source_offset", pa.int64()),
        ("source_offset_unit", pa.string()),  # "byte" (WARC, WET), "line" (JSONL), "row" (Parquet)
        ("record_id", pa.string()),
        ("title", pa.string()),
        ("text", pa.string()),
        ("extractor", pa.string()),
    ]
)
