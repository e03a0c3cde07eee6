"""The mixture as a trainer reads it (#18): datatrove's tokenized files, read back with datatrove's
own reader (the one nanotron uses), hold every sample's tokens plus an end-of-document token, in
one global seeded order, and their counts are the manifest's."""

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from datatrove.utils.dataset import DatatroveFileDataset, DatatroveFolderDataset

from assets.mixed.pool import connect
from assets.mixed.tokenized import write_tokenized
from resources.tokenizer import TokenCounter
from tests.mixed.test_mixture_asset import lake, materialize, version_dir  # noqa: F401


def _manifest(lake) -> dict:  # noqa: F811
    return json.loads((version_dir(lake) / "manifest.json").read_text())


def _documents(path: Path, token_size: int) -> list[np.ndarray]:
    """Each document of one .ds file, cut at the ends datatrove's .index records."""
    dtype = np.uint16 if token_size == 2 else np.uint32
    tokens = np.fromfile(path, dtype=dtype)
    ends = np.fromfile(f"{path}.index", dtype="<u8")
    return np.split(tokens, ends[:-1])


def test_the_tokenized_mixture_reads_back_as_the_text_shards(lake) -> None:  # noqa: F811
    assert materialize(lake, {"method": "temperature"}).success
    manifest = _manifest(lake)
    tokenized = manifest["tokenized"]
    folder = version_dir(lake) / tokenized["folder"]
    assert tokenized["content_tokens"] == manifest["tokens"]
    assert tokenized["documents"] == manifest["samples"]
    assert tokenized["tokens"] == tokenized["content_tokens"] + tokenized["documents"]

    counter = TokenCounter()
    shards = pl.read_parquet(version_dir(lake) / "shards" / "*.parquet")
    texts = dict(zip(shards["id"], shards["text"], strict=True))
    documents = [
        doc
        for name in tokenized["files"]
        for doc in _documents(folder / name, tokenized["token_size"])
    ]
    assert len(documents) == len(texts) == tokenized["documents"]
    eos = counter.eos_id()
    decoded = {counter._tokenizer().decode(d[:-1].tolist()) for d in documents}
    assert all(d[-1] == eos for d in documents)
    assert decoded == {counter._tokenizer().decode(counter.encode([t])[0]) for t in texts.values()}

    seq_len = 64
    dataset = DatatroveFolderDataset(str(folder), seq_len=seq_len, token_size=2, shuffle=False)
    windows = len(dataset)
    assert windows == tokenized["tokens"] // (seq_len + 1)
    first = dataset[0]["input_ids"].numpy()
    assert np.array_equal(first, np.concatenate(documents)[: seq_len + 1])
    single = DatatroveFileDataset(str(folder / tokenized["files"][0]), seq_len=seq_len)
    assert single[0]["input_ids"].shape[0] == seq_len + 1


def test_the_order_is_one_global_shuffle_whatever_the_bucket_size(lake, tmp_path) -> None:  # noqa: F811
    """Tiny buckets (many files) and one bucket give the same sequence of documents."""
    assert materialize(lake, {"method": "temperature", "tokenized": False}).success
    manifest = _manifest(lake)
    assert "tokenized" not in manifest
    shards = sorted((version_dir(lake) / "shards").glob("*.parquet"))
    tokens, samples = manifest["tokens"], manifest["samples"]
    sequences = []
    for bucket_bytes, name in ((1 << 30, "one"), (4096, "many")):
        con = connect(tmp_path / name)
        out = write_tokenized(
            con, shards, tmp_path / name, TokenCounter(), 7, tokens, samples, bucket_bytes
        )
        docs = [d for f in out.files for d in _documents(tmp_path / name / f, out.token_size)]
        sequences.append((len(out.files), [d.tobytes() for d in docs]))
    (one_files, one), (many_files, many) = sequences
    assert one_files == 1 and many_files > 3 and one == many
    in_shard_order = [d for f in shards for d in pl.read_parquet(f)["id"]]
    assert len(one) == len(in_shard_order)


def test_a_tokenizer_that_disagrees_with_the_counts_is_refused(lake, tmp_path) -> None:  # noqa: F811
    assert materialize(lake, {"method": "temperature", "tokenized": False}).success
    manifest = _manifest(lake)
    shards = sorted((version_dir(lake) / "shards").glob("*.parquet"))
    samples = manifest["samples"]
    with pytest.raises(ValueError, match="re-materialize token_counts"):
        write_tokenized(
            connect(tmp_path), shards, tmp_path, TokenCounter(), 0, manifest["tokens"] + 1, samples
        )
