"""The mixture as a trainer reads it: datatrove's tokenized format, shuffled globally by seed.

nanotron trains on folders of datatrove `.ds` files (token ids, little-endian uint16 below 65,536
ids) with a `.ds.index` of document ends, read by datatrove's `DatatroveFolderDataset`; files
are written here with datatrove's own `TokenizedFile`. Every sample is its text's token ids
(the `tokens` resource, no special tokens, as token_counts counted them) followed by the end-of-
document token.

The order is one global shuffle: samples sorted by a seeded uniform key per sample id. Out of
core, in two passes: each output text shard is tokenized once and its samples are appended to
the bucket of their key range (a spill file of ids and an index of (key, id, offset, length));
then each bucket, small enough to sort in memory (`bucket_bytes`), is sorted by key and written
as one `.ds` file. Bucket b holds keys in [b/B, (b+1)/B), so reading the files in name order
reads every sample in key order: the global shuffle.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from assets.mixed.pool import sql_list, unit_hash_sql
from resources.tokenizer import TokenCounter

FORMAT = "datatrove"
FOLDER = "tokenized"
BUCKET_BYTES = 256 * 2**20  # tokens of one bucket, sorted in memory
BATCH_ROWS = 512
INDEX_SCHEMA = pa.schema(
    [("key", pa.float64()), ("id", pa.string()), ("offset", pa.int64()), ("length", pa.int64())]
)


@dataclass
class TokenizedMixture:
    """What the manifest records about the tokenized files."""

    files: list[str] = field(default_factory=list)
    documents: int = 0
    tokens: int = 0  # in the files, end-of-document tokens included
    content_tokens: int = 0  # without them: what the mixture's budget counts
    token_size: int = 2
    eos_token_id: int = 0

    def manifest(self, tokenizer: str, seed: int) -> dict:
        return {
            "format": FORMAT,
            "reader": "datatrove.utils.dataset.DatatroveFolderDataset",
            "folder": FOLDER,
            "files": self.files,
            "documents": self.documents,
            "tokens": self.tokens,
            "content_tokens": self.content_tokens,
            "token_size": self.token_size,
            "eos_token_id": self.eos_token_id,
            "tokenizer": tokenizer,
            "shuffle": f"by md5 of ({seed}, 'shuffle', sample id), across all output shards",
        }


def write_tokenized(
    con: duckdb.DuckDBPyConnection,
    shards: list[Path],
    folder: Path,
    counter: TokenCounter,
    seed: int,
    expected_tokens: int,
    samples: int,
    bucket_bytes: int = BUCKET_BYTES,
) -> TokenizedMixture:
    """Tokenize the mixture's output shards (Parquet: id, text) into globally shuffled `.ds`
    files in `folder`; `expected_tokens`, `samples`: the mixture's own totals, which size the
    buckets and which the files must match."""
    out = TokenizedMixture(eos_token_id=counter.eos_id())
    out.token_size = 2 if counter.vocab_size() <= 2**16 else 4
    dtype = np.uint16 if out.token_size == 2 else np.uint32
    buckets = max(1, math.ceil((expected_tokens + samples) * out.token_size / bucket_bytes))
    spill = folder / "_spill"
    spill.mkdir(parents=True, exist_ok=True)
    _spill_buckets(con, shards, spill, counter, seed, buckets, dtype, out)
    for bucket in range(buckets):
        name = _sort_bucket(spill, bucket, folder, dtype, out, counter.tokenizer_id())
        if name:
            out.files.append(name)
    shutil.rmtree(spill)
    if out.content_tokens != expected_tokens or out.documents != samples:
        raise ValueError(
            f"tokenized mixture holds {out.documents} documents and {out.content_tokens} tokens, "
            f"the mixture {samples} and {expected_tokens}: the tokens resource differs from the "
            "one token_counts used; re-materialize token_counts"
        )
    return out


def _spill_buckets(
    con: duckdb.DuckDBPyConnection,
    shards: list[Path],
    spill: Path,
    counter: TokenCounter,
    seed: int,
    buckets: int,
    dtype: type,
    out: TokenizedMixture,
) -> None:
    """Pass 1: every shard's samples tokenized once, appended to their key range's bucket."""
    files = [open(spill / f"{b:05d}.bin", "wb") for b in range(buckets)]  # noqa: SIM115
    written = [0] * buckets
    eos = np.array([out.eos_token_id], dtype=dtype)
    try:
        for number, shard in enumerate(shards):
            rows: list[list[tuple]] = [[] for _ in range(buckets)]
            query = (
                f"SELECT id, text, {unit_hash_sql(seed, 'shuffle', 'id')} AS key "
                f"FROM read_parquet({sql_list([str(shard)])})"
            )
            for batch in con.cursor().sql(query).to_arrow_reader(BATCH_ROWS):
                ids, keys = batch.column(0).to_pylist(), batch.column(2).to_pylist()
                for sample, key, tokens in zip(
                    ids, keys, counter.encode(batch.column(1).to_pylist()), strict=True
                ):
                    b = min(int(key * buckets), buckets - 1)
                    data = np.concatenate([np.asarray(tokens, dtype=dtype), eos])
                    files[b].write(data.tobytes())
                    rows[b].append((key, sample, written[b], data.size))
                    written[b] += data.size
                    out.content_tokens += len(tokens)
            for b, found in enumerate(rows):
                if found:
                    columns = list(zip(*found, strict=True))
                    table = pa.table(dict(zip(INDEX_SCHEMA.names, columns, strict=True)))
                    pq.write_table(table.cast(INDEX_SCHEMA), spill / f"{b:05d}-{number:06d}.idx")
    finally:
        for fh in files:
            fh.close()


def _sort_bucket(
    spill: Path, bucket: int, folder: Path, dtype: type, out: TokenizedMixture, tokenizer: str
) -> str | None:
    """Pass 2: one bucket's samples in key order, into one `.ds` file (None: empty bucket)."""
    from datatrove.pipeline.tokens.tokenizer import TokenizedFile

    parts = sorted(spill.glob(f"{bucket:05d}-*.idx"))
    if not parts:
        return None
    index = pa.concat_tables([pq.read_table(p) for p in parts]).sort_by(
        [("key", "ascending"), ("id", "ascending")]
    )
    tokens = np.memmap(spill / f"{bucket:05d}.bin", dtype=dtype, mode="r")
    name = f"mixture-{bucket:05d}.ds"
    size = np.dtype(dtype).itemsize
    writer = TokenizedFile(
        str(folder),
        name,
        token_size=size,
        tokenizer_name_or_path=tokenizer,
        save_final_metadata=True,
    )
    for offset, length in zip(
        index.column("offset").to_pylist(), index.column("length").to_pylist(), strict=True
    ):
        writer.write_bytes(tokens[offset : offset + length].tobytes())
    writer.close()
    out.documents += index.num_rows
    out.tokens += writer.write_idx
    del tokens
    return name
