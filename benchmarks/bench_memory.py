"""Peak memory of the cleaned stage on one large shard (issue #3: "a 1 GB crawl shard is cleaned
with peak memory under 3 GB"), with datatrove's filter pipeline on the same input for reference.

The shard is synthetic: `raw_documents` rows (what `cleaned_documents` reads) holding `--gb` GB
of extracted text, made from the pages of both bundled crawls, copied over and over with one new
made-up word appended to about a third of the lines, so the words seen keep growing as in a real
crawl and every per-chunk memo fills up to its bound (1 GB of extracted text is several crawl
shards' worth: a 1 GB WARC.gz yields a few hundred MB of text). The `cleaned_documents` asset
then runs on it in a fresh process, as Dagster would run it (Unicode repair, language ID, the
filters, toxicity, PII, streaming Parquet in and out), while a thread samples the resident set
size; the peak is the process's `ru_maxrss`. datatrove's four filters (English, as FineWeb's
defaults) run in another fresh process on the first `--datatrove-docs` documents of the same
Parquet file, streaming, as its `ParquetReader -> filters -> ParquetWriter` pipeline would.

`python -m benchmarks memory --gb 0.25` for a quicker run; the figures give the resident size
after each tenth of the input, so growth can be read off (and extrapolated) at any size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

SHARD = "memory-bench"
SAMPLE_S = 0.5


def parse_args(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks memory")
    parser.add_argument("--gb", type=float, default=1.0, help="GB of extracted text")
    parser.add_argument("--datatrove-docs", type=int, default=2000, help="0 skips datatrove")
    parser.add_argument("--workdir", default=None, help="keep the shard here (default: temp)")
    args = parser.parse_args(argv)
    return {"gb": args.gb, "datatrove_docs": args.datatrove_docs, "workdir": args.workdir}


def _synthetic_word(n: int) -> str:
    """A made-up word of letters, different for every n ("zq" + n in base 26)."""
    letters = []
    while True:
        n, digit = divmod(n, 26)
        letters.append(chr(97 + digit))
        if not n:
            return "zq" + "".join(letters)


def _pages(target_bytes: int) -> Iterator[tuple[int, str]]:
    """(copy number, text) of edited copies of the sample pages, up to `target_bytes` of text."""
    from benchmarks.bench_filters import load_texts

    sources = [text for text, _ in load_texts()]
    produced = words = copy = 0
    while produced < target_bytes:
        for text in sources:
            lines = text.split("\n")
            for i in range(0, len(lines), 3):
                lines[i] = f"{lines[i]} {_synthetic_word(words)}"
                words += 1
            page = "\n".join(lines)
            produced += len(page.encode("utf-8"))
            yield copy, page
            if produced >= target_bytes:
                return
        copy += 1


def build_shard(home: Path, gb: float) -> dict:
    """Publish the synthetic shard as `raw_documents` in a lake under `home`."""
    from assets.raw.schema import RAW_DOCUMENTS_SCHEMA
    from resources.lake import Lake

    lake = Lake(home=str(home), url="")
    docs = text_bytes = 0
    with lake.publish("raw_documents", SHARD, run_id="membench") as out:
        sink = out.table("documents", RAW_DOCUMENTS_SCHEMA)
        for copy, text in _pages(int(gb * 1e9)):
            sink.append(
                {
                    "doc_id": f"{docs:09d}",
                    "shard": SHARD,
                    "url": f"https://example.org/{docs}?copy={copy}",
                    "source_file": f"{SHARD}.warc.gz",
                    "source_offset": docs,
                    "record_id": f"<urn:uuid:{docs:032x}>",
                    "text": text,
                    "extractor": "synthetic",
                }
            )
            docs += 1
            text_bytes += len(text.encode("utf-8"))
    path = lake.files("raw_documents", partitions=[SHARD])[0].path
    return {"docs": docs, "text_bytes": text_bytes, "parquet": path}


class _Sampler(threading.Thread):
    """Resident set size every `SAMPLE_S` seconds, with the input read so far."""

    def __init__(self, progress: dict) -> None:
        super().__init__(daemon=True)
        self.progress = progress
        self.samples: list[tuple[float, int, float]] = []  # (seconds, text bytes read, RSS MB)
        self.started = time.perf_counter()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(SAMPLE_S):
            self.sample()

    def sample(self) -> None:
        elapsed = time.perf_counter() - self.started
        self.samples.append((elapsed, self.progress["bytes"], _rss_mb()))


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _by_tenth(samples: list[tuple[float, int, float]], total: int) -> list[float]:
    """Highest RSS seen up to each tenth of the input."""
    out = []
    for tenth in range(1, 11):
        seen = [rss for _, read, rss in samples if read <= total * tenth / 10]
        out.append(round(max(seen, default=0.0), 1))
    return out


def _child_ours(home: str, total_bytes: int) -> dict:
    """Run the `cleaned_documents` asset on the shard; called in a fresh process."""
    import dagster as dg

    from assets.cleaned.assets import CleanedConfig, cleaned_documents
    from resources.lake import Lake
    from resources.langid import LanguageIdentifier

    progress = {"bytes": 0, "docs": 0}
    iter_rows = Lake.iter_rows

    def counted(self, *args, **kwargs):
        for row in iter_rows(self, *args, **kwargs):
            progress["docs"] += 1
            progress["bytes"] += len(row.get("text") or "")  # characters: close enough
            yield row

    Lake.iter_rows = counted
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("crawl_shards", [SHARD])
    context = dg.build_asset_context(partition_key=SHARD, instance=instance)
    sampler = _Sampler(progress)
    sampler.start()
    started = time.process_time()
    results = list(
        cleaned_documents(
            context,
            config=CleanedConfig(),
            lake=Lake(home=home, url=""),
            language_identifier=LanguageIdentifier(),
        )
    )
    cpu_s = time.process_time() - started
    sampler.done.set()
    sampler.sample()
    kept = results[0].metadata["kept"]
    return {
        "docs": progress["docs"],
        "kept": kept if isinstance(kept, int) else kept.value,
        "cpu_s": round(cpu_s, 1),
        "peak_rss_mb": round(_peak_mb(), 1),
        "rss_mb_by_tenth_of_input": _by_tenth(sampler.samples, progress["bytes"]),
    }


def _child_datatrove(parquet: str, limit: int) -> dict:
    """datatrove's reader -> four filters -> writer on the same file; in a fresh process."""
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter
    from datatrove.utils.logging import logger

    from benchmarks.bench_filters import _datatrove_chain

    logger.remove()
    progress = {"bytes": 0}
    folder, name = os.path.split(parquet)
    reader = ParquetReader(folder, glob_pattern=name, id_key="doc_id", limit=limit)

    def counted(docs):
        for doc in docs:
            progress["bytes"] += len(doc.text)
            yield doc

    sampler = _Sampler(progress)
    sampler.start()
    started = time.process_time()
    with tempfile.TemporaryDirectory() as out:
        data = counted(reader.run(None, 0, 1))
        for step in _datatrove_chain("en"):
            data = step.run(data, 0, 1)
        data = ParquetWriter(out).run(data, 0, 1)
        docs = sum(1 for _ in data)
    cpu_s = time.process_time() - started
    sampler.done.set()
    sampler.sample()
    return {
        "docs_in": limit,
        "docs_kept": docs,
        "cpu_s": round(cpu_s, 1),
        "peak_rss_mb": round(_peak_mb(), 1),
        "rss_mb_by_tenth_of_input": _by_tenth(sampler.samples, progress["bytes"]),
    }


def _in_child(*args: str) -> dict:
    """Run this module's child mode in a fresh interpreter; its last line is the figures."""
    command = [sys.executable, "-m", "benchmarks.bench_memory", "--child", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(gb: float = 1.0, datatrove_docs: int = 2000, workdir: str | None = None) -> dict:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        home = Path(tmp) / "home"
        started = time.perf_counter()
        shard = build_shard(home, gb)
        build_s = time.perf_counter() - started
        ours = _in_child("ours", str(home), str(shard["text_bytes"]))
        theirs = (
            _in_child("datatrove", shard["parquet"], str(datatrove_docs))
            if datatrove_docs
            else None
        )
    return {
        "shard_docs": shard["docs"],
        "shard_text_gb": round(shard["text_bytes"] / 1e9, 3),
        "shard_build_s": round(build_s, 1),
        "ours_cleaned_documents": ours,
        "datatrove_filters": theirs,
    }


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    kind, *rest = sys.argv[2:]
    figures = (
        _child_ours(rest[0], int(rest[1]))
        if kind == "ours"
        else _child_datatrove(rest[0], int(rest[1]))
    )
    print(json.dumps(figures))
