"""Columns of `rephrased_documents`: the rewrite and everything needed to reproduce it."""

import pyarrow as pa

REPHRASED_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("source_doc_id", pa.string()),
        ("style_id", pa.string()),
        ("style_version", pa.int32()),
        ("prompt_hash", pa.string()),
        ("model", pa.string()),
        ("sampling", pa.string()),
        ("seed", pa.int64()),  # sent with every request of the rewrite; null when none was
        ("determinism", pa.string()),  # what fixed the text: greedy, per-request seed, engine+batch
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("finish_reason", pa.string()),
        ("source_truncated", pa.bool_()),
        ("chunks", pa.int32()),
        ("language", pa.string()),
        ("text", pa.string()),
    ]
)
