"""Columns of `cleaned_documents` and of the per-document filter signals it keeps for scoring."""

import pyarrow as pa

CLEANED_DOCUMENTS_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("shard", pa.string()),
        ("url", pa.string()),
        ("language", pa.string()),
        ("language_score", pa.float64()),
        ("text", pa.string()),
        ("content_hash", pa.string()),
        ("n_chars", pa.int64()),
        ("source_offset", pa.int64()),
        ("toxicity", pa.float64()),
        ("pii_emails", pa.int32()),
        ("pii_phones", pa.int32()),
        ("pii_ips", pa.int32()),
    ]
)

SIGNALS_SCHEMA = pa.schema(
    [("doc_id", pa.string()), ("signal", pa.string()), ("value", pa.float64())]
)
