"""Tokens per document, counted once per crawl shard and stored, so the mixture's domain totals
are a GROUP BY over small rows instead of a tokenizer pass (and its encodings) over the corpus."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

import pyarrow as pa

from resources.lake import TableSink
from resources.tokenizer import TokenCounter

TOKEN_COUNTS_SCHEMA = pa.schema([("doc_id", pa.string()), ("tokens", pa.int64())])


def count_documents(rows: Iterable[dict[str, Any]], counter: TokenCounter, sink: TableSink) -> int:
    """Stream (doc_id, text) rows into (doc_id, tokens) rows, one chunk of texts at a time."""
    written = 0
    for chunk in _chunks(rows, counter.chunk_docs):
        counts = next(counter.count_chunks([[row["text"] for row in chunk]]))
        ids = [row["doc_id"] for row in chunk]
        sink.write(pa.table({"doc_id": ids, "tokens": counts}, schema=TOKEN_COUNTS_SCHEMA))
        written += len(ids)
    return written


def _chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk
