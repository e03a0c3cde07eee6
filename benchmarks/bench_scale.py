"""Scale: every stage on generated corpora of growing size, per asset peak memory and CPU.

`python -m benchmarks scale --docs 20000 --docs 200000` writes, for each size, a crawl of JSONL
shards of `--shard-docs` documents made from the bundled crawls' real pages, then runs the whole
pipeline on it through `foundry run`'s own code path (stale shards in parallel runs, then the
corpus job) in a fresh FOUNDRY_HOME, with the fast CPU embedder and a rewrite budget of 0.

The pages are edited so that text and vocabulary keep varying as in a real crawl: each document
is one real page (its language and structure) in which three lines in four are swapped for
lines of other pages of the same language, and a made-up word that is new to the corpus is
appended to every fifth line. `--near-share` of the documents are planted near duplicates: a
copy of an earlier document of the same run (in another shard when there is one) with a few
words changed.

`--from cleaned` skips extraction and cleaning: it writes the generated documents straight into
the lake as `cleaned_documents` shards (with the filter signals of the page each was made from),
then runs every later asset. This is how the 1M-document run fits in this machine's time.

Each materialization records its CPU seconds and its own peak RSS (assets/usage.py). Per asset,
the line reports the peak over its partitions and worker processes, the CPU seconds per 1,000
corpus documents summed over partitions, and the summed step time. `outside_share` is the share
of the run's wall time in which no stage computed: process start-up, Dagster's orchestration,
catalog transactions.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bench_memory import _synthetic_word as made_up_word

NEAR_SHARE = 0.03
SWAP_SHARE = 0.75
NEW_WORD_EVERY = 5
EMBEDDER = json.loads(os.environ.get("FOUNDRY_SCALE_EMBEDDER", '{"model": "hashing-svd"}'))
"""The fast CPU embedder (resources/embedder.py); the variable picks another for a comparison."""
CORPUS_OPS = {
    "rephrased_documents": {"config": {"max_new_documents": 0}},
    "llm_ratings": {"config": {"sample_size": 0}},
    "dataman_ratings": {"config": {"sample_size": 0}},
}


def parse_args(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks scale")
    parser.add_argument("--docs", type=int, action="append", help="corpus size (repeatable)")
    parser.add_argument("--from", dest="start", choices=("crawl", "cleaned"), default="crawl")
    parser.add_argument("--shard-docs", type=int, default=10_000)
    parser.add_argument("--near-share", type=float, default=NEAR_SHARE)
    parser.add_argument("--parallel", type=int, default=2, help="shard runs at once")
    parser.add_argument("--workdir", default=None, help="where the corpora and homes go")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    return {
        "docs": args.docs or [20_000, 200_000],
        "start": args.start,
        "shard_docs": args.shard_docs,
        "near_share": args.near_share,
        "parallel": args.parallel,
        "workdir": args.workdir,
        "seed": args.seed,
    }


# ------------------------------------------------------------------------------ the documents


@dataclass(frozen=True)
class Page:
    text: str
    language: str
    signals: dict[str, float]  # what the cleaned stage measured on the real page


def real_pages() -> list[Page]:
    """The bundled crawls' pages that the default cleaning keeps, with their filter signals."""
    from assets.cleaned.clean import Cleaned, CleaningPolicy, clean_document
    from benchmarks.bench_filters import load_texts
    from resources.langid import LanguageIdentifier

    identify, policy = LanguageIdentifier().identify, CleaningPolicy()
    pages = []
    for i, (text, _) in enumerate(load_texts()):
        doc = {"doc_id": str(i), "shard": "s", "url": "u", "text": text, "source_offset": i}
        judged = clean_document(doc, identify, policy)
        if isinstance(judged, Cleaned):
            row = judged.row
            pages.append(Page(row["text"], row["language"], judged.signals))
    return pages


class Generator:
    """Edited real pages, seeded: the same arguments give the same corpus."""

    def __init__(self, pages: list[Page], seed: int, near_share: float) -> None:
        self.pages, self.rng, self.near_share = pages, random.Random(seed), near_share
        self.lines: dict[str, list[str]] = defaultdict(list)
        for page in pages:
            self.lines[page.language].extend(line for line in page.text.split("\n") if line)
        self.words = 0
        self.recent: list[tuple[int, str]] = []  # a bounded pool to copy near duplicates from

    def documents(self, n: int) -> Iterator[tuple[Page, str, int | None]]:
        """(source page, text, index of the document it nearly duplicates or None)."""
        for i in range(n):
            if self.recent and self.rng.random() < self.near_share:
                j, text = self.rng.choice(self.recent)
                yield self.pages[j % len(self.pages)], self._nudge(text), j
                continue
            page = self.pages[i % len(self.pages)]
            text = self._edit(page)
            if len(self.recent) < 2_000:
                self.recent.append((i, text))
            elif self.rng.random() < 0.01:
                self.recent[self.rng.randrange(len(self.recent))] = (i, text)
            yield page, text, None

    def _edit(self, page: Page) -> str:
        pool, out = self.lines[page.language], []
        for k, line in enumerate(page.text.split("\n")):
            if line and self.rng.random() < SWAP_SHARE:
                line = self.rng.choice(pool)
            if line and k % NEW_WORD_EVERY == 0:
                line = f"{line} {made_up_word(self.words)}"
                self.words += 1
            out.append(line)
        return "\n".join(out)

    def _nudge(self, text: str) -> str:
        words = text.split(" ")
        for _ in range(max(1, len(words) // 100)):
            words[self.rng.randrange(len(words))] = made_up_word(self.words)
            self.words += 1
        return " ".join(words)


def shard_name(i: int, suffix: str) -> str:
    return f"gen-{i:05d}.{suffix}"


def write_crawl(folder: Path, gen: Generator, docs: int, shard_docs: int) -> list[str]:
    """JSONL crawl shards with `url` and `text`, as a WET-like export would hold them."""
    folder.mkdir(parents=True, exist_ok=True)
    documents = gen.documents(docs)
    shards: list[str] = []
    for start in range(0, docs, shard_docs):
        shards.append(shard_name(len(shards), "jsonl.gz"))
        with gzip.open(folder / shards[-1], "wt", encoding="utf-8", compresslevel=1) as out:
            for i in range(start, min(start + shard_docs, docs)):
                _page, text, _near = next(documents)
                record = {"id": f"gen-{i}", "url": f"https://gen.example/{i}", "text": text}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return shards


def write_cleaned(home: Path, gen: Generator, docs: int, shard_docs: int) -> list[str]:
    """`cleaned_documents` shards straight into the lake: the corpus the later stages read."""
    from assets.cleaned.schema import CLEANED_DOCUMENTS_SCHEMA, SIGNALS_SCHEMA
    from assets.documents import DROPPED_SCHEMA
    from resources.lake import Lake

    lake = Lake(home=str(home), url="")
    documents = gen.documents(docs)
    shards = []
    for start in range(0, docs, shard_docs):
        shard = shard_name(len(shards), "jsonl.gz")
        shards.append(shard)
        with lake.publish("cleaned_documents", shard, run_id="scale-bench") as out:
            rows = out.table("documents", CLEANED_DOCUMENTS_SCHEMA)
            signals = out.table("signals", SIGNALS_SCHEMA)
            out.table("dropped", DROPPED_SCHEMA)
            for offset in range(min(shard_docs, docs - start)):
                page, text, _ = next(documents)
                score = page.signals.get("language_score", 1.0)
                row = cleaned_row(shard, offset, text, page.language, language_score=score)
                rows.append(row)
                doc_id = row["doc_id"]
                for name, value in page.signals.items():
                    signals.append({"doc_id": doc_id, "signal": name, "value": value})
    return shards


def cleaned_row(
    shard: str, offset: int, text: str, language: str, url: str = "", language_score: float = 1.0
) -> dict:
    """A `cleaned_documents` row for text that needs no cleaning: generated or test corpora."""
    from assets.documents import content_hash, make_doc_id

    return {
        "doc_id": make_doc_id(shard, str(offset)),
        "shard": shard,
        "url": url or f"https://gen.example/{shard}/{offset}",
        "language": language,
        "language_score": language_score,
        "text": text,
        "content_hash": content_hash(text),
        "n_chars": len(text),
        "source_offset": offset,
        "toxicity": 0.0,
        "pii_emails": 0,
        "pii_phones": 0,
        "pii_ips": 0,
    }


# ------------------------------------------------------------------------------ the runs


def _environment(home: Path, crawl: Path) -> None:
    os.environ.update(
        FOUNDRY_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster"),
        FOUNDRY_CRAWL_DIR=str(crawl),
        HF_HUB_OFFLINE="1",
    )


def run_from_crawl(parallel: int) -> bool:
    from orchestration.runner import run_pipeline

    resources = {"embedder": {"config": EMBEDDER}}
    summary = run_pipeline(
        parallel=parallel,
        shard_config={"resources": resources},
        corpus_config={"ops": CORPUS_OPS, "resources": resources},
        force=True,
    )
    return summary.corpus_ok and not summary.failed


def run_from_cleaned(shards: list[str], parallel: int) -> bool:
    """Every per-shard asset after cleaning, shards in parallel runs; then the corpus job."""
    from orchestration.jobs import SHARD_ASSET_NAMES
    from orchestration.runner import ensure_instance, run_corpus, run_shard, shard_pool

    instance = ensure_instance()
    instance.add_dynamic_partitions("crawl_shards", shards)
    later = [a for a in SHARD_ASSET_NAMES if a not in ("raw_documents", "cleaned_documents")]
    config = {"resources": {"embedder": {"config": EMBEDDER}}}
    with shard_pool(parallel) as pool:  # as `foundry run`: a process per shard run
        ok = list(
            pool.map(
                run_shard,
                shards,
                [config] * len(shards),
                [None] * len(shards),
                [later] * len(shards),
                [True] * len(shards),
            )
        )
    return all(ok) and run_corpus({"ops": CORPUS_OPS, **config})


def measure(since: float, wall_s: float, docs: int) -> dict:
    """Per asset figures from its materializations' metadata in the run's Dagster instance."""
    import dagster as dg

    from orchestration.jobs import STAGE_ASSET_NAMES
    from orchestration.runner import ensure_instance

    instance = ensure_instance()
    assets, intervals = {}, []
    for name in STAGE_ASSET_NAMES:
        records = _materializations(instance, dg.AssetKey(name))
        metas = [r.asset_materialization.metadata for r in records if r.timestamp >= since]
        if not metas:
            continue
        values = [{k: getattr(v, "value", v) for k, v in m.items()} for m in metas]
        assets[name] = {
            "peak_rss_mb": max(
                max(float(v.get("peak_rss_mb", 0)), float(v.get("worker_peak_rss_mb", 0)))
                for v in values
            ),
            "cpu_s_per_kdoc": round(sum(float(v.get("cpu_s", 0)) for v in values) / docs * 1e3, 3),
            "wall_s": round(sum(float(v["compute_s"]) for v in values), 1),
            "materializations": len(values),
        }
        for r, v in zip(records, values, strict=False):
            if r.timestamp >= since:
                intervals.append((r.timestamp - float(v["compute_s"]), r.timestamp))
    inside = _union(intervals)
    return {"assets": assets, "outside_share": round(max(0.0, 1 - inside / wall_s), 3)}


def _materializations(instance, key) -> list:
    records, cursor = [], None
    while True:
        page = instance.fetch_materializations(key, limit=10_000, cursor=cursor)
        records += page.records
        if not page.has_more:
            return records
        cursor = page.cursor


def _union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def run_size(
    docs: int, start: str, shard_docs: int, near_share: float, parallel: int, root: Path, seed: int
) -> dict:
    home, crawl = root / f"home-{docs}", root / f"crawl-{docs}"
    gen = Generator(real_pages(), seed, near_share)
    _environment(home, crawl)
    crawl.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if start == "cleaned":
        shards = write_cleaned(home, gen, docs, shard_docs)
    else:
        shards = write_crawl(crawl, gen, docs, shard_docs)
    generate_s = time.perf_counter() - t0
    since, started = time.time(), time.perf_counter()
    ok = run_from_cleaned(shards, parallel) if start == "cleaned" else run_from_crawl(parallel)
    wall_s = time.perf_counter() - started
    if not ok:
        raise RuntimeError(f"the pipeline failed at {docs} documents; see {home}")
    return {
        "shards": len(shards),
        "generate_s": generate_s,
        "wall_s": wall_s,
        **measure(since, wall_s, docs),
    }


def run(
    docs: list[int],
    start: str = "crawl",
    shard_docs: int = 10_000,
    near_share: float = NEAR_SHARE,
    parallel: int = 2,
    workdir: str | None = None,
    seed: int = 0,
) -> dict:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="scale-", dir=workdir))
    sizes = [run_size(n, start, shard_docs, near_share, parallel, root, seed) for n in docs]
    names = [a for a in sizes[0]["assets"] if all(a in s["assets"] for s in sizes)]
    assets = {
        a: {
            k: [s["assets"][a][k] for s in sizes]
            for k in ("peak_rss_mb", "cpu_s_per_kdoc", "wall_s")
        }
        for a in names
    }
    return {
        "docs": docs,
        "from": start,
        "assets": assets,
        "docs_per_s": [round(n / s["wall_s"], 1) for n, s in zip(docs, sizes, strict=True)],
        "outside_share": [s["outside_share"] for s in sizes],
        "wall_s": [round(s["wall_s"], 1) for s in sizes],
        "shards": [s["shards"] for s in sizes],
        "work": str(root),
    }
