"""Main-text extraction against public ground truth: the raw stage, trafilatura's defaults and
resiliparse on the ScrapingHub article-extraction benchmark.

Data: https://github.com/scrapinghub/article-extraction-benchmark (MIT licence, Zyte /
Scrapinghub): 181 real news and blog pages (HTML as fetched in 2019) with hand-checked
`articleBody` text. A compressed copy of its `html/` and `ground-truth.json` (commit 4a3bc97)
ships in `tests/data/article_extraction_benchmark/`; `--data PATH` or the environment variable
`FOUNDRY_EXTRACTION_BENCHMARK` points at another copy (a checkout of the repository, or a folder
with `html/*.html.gz` and `ground-truth.json`).

Score: the benchmark's own measure (its `evaluate.py`, re-implemented here): texts are split
into `\\w+` tokens, compared as multisets of word 4-grams (shingles), true/false positives and
false negatives are normalized per page so long pages weigh no more than short ones; precision
is the mean over pages with any predicted shingle, recall the mean over pages with any true
shingle, and F1 the harmonic mean of the two means. Its published table (README, latest run)
gives trafilatura 2.0.0 F1 0.958 (P 0.938, R 0.978) and rs_trafilatura 0.970, the best.

Sides:
- `project`: `assets.raw.extract.extract_text` as the raw stage runs it (bytes in, charset
  sniffing, one deduplication cache for the whole set as for a shard, fallback, normalization).
- `trafilatura`: `trafilatura.extract(html, include_comments=False)` on the decoded page, as the
  benchmark's own runner calls it.
- `resiliparse`: the raw stage with `ExtractionSettings(extractor="resiliparse")`.

Speed is CPU milliseconds per page of this process (`time.process_time`, one core): the sides
take turns page by page, `repeats` times, and the sum of each page's fastest run is reported.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import statistics
import tarfile
import time
from collections import Counter
from pathlib import Path

import trafilatura

from assets.raw.extract import ExtractedText, ExtractionSettings, extract_text, new_dedup_cache
from assets.raw.records import RawRecord

VENDORED = Path(__file__).resolve().parents[1] / "tests/data/article_extraction_benchmark"
ENV_VAR = "FOUNDRY_EXTRACTION_BENCHMARK"
SIDES = ("project", "trafilatura", "resiliparse")
SHINGLE_N = 4
PUBLISHED = {"trafilatura-2.0.0": 0.958, "best (rs_trafilatura)": 0.970}
TARGET_F1 = 0.97
TARGET_CPU_RATIO = 1.2
_TOKEN = re.compile(r"\w+", re.UNICODE)


def parse_args(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks extraction")
    parser.add_argument("--data", default=None, help=f"benchmark copy (default ${ENV_VAR})")
    parser.add_argument("--sides", default=",".join(SIDES), help="comma-separated subset")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per side")
    args = parser.parse_args(argv)
    sides = tuple(s for s in args.sides.split(",") if s)
    if unknown := set(sides) - set(SIDES):
        parser.error(f"unknown sides {sorted(unknown)}; choose from {SIDES}")
    return {"data": args.data, "sides": sides, "repeats": args.repeats}


# ------------------------------------------------------------------------------------ data


def load_benchmark(data: str | None = None) -> tuple[dict[str, bytes], dict[str, dict]]:
    """(page id -> HTML bytes, page id -> ground truth) from a folder or the vendored archive."""
    location = data or os.environ.get(ENV_VAR)
    if location and Path(location).is_dir():
        folder = Path(location)
        pages = {
            path.name.split(".")[0]: gzip.decompress(path.read_bytes())
            for path in sorted((folder / "html").glob("*.html.gz"))
        }
        truth = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
    else:
        archive = Path(location) if location else VENDORED / "benchmark.tar.xz"
        pages, truth = {}, {}
        with tarfile.open(archive, "r:xz") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                name = Path(member.name).name
                content = tar.extractfile(member).read()
                if name == "ground-truth.json":
                    truth = json.loads(content.decode("utf-8"))
                elif name.endswith(".html"):
                    pages[name.removesuffix(".html")] = content
    if not pages or set(pages) != set(truth):
        raise ValueError(f"benchmark pages and ground truth do not match in {location or archive}")
    return pages, truth


def page_html(page_id: str, data: str | None = None) -> bytes:
    """One page of the benchmark (tests use a few of them)."""
    return load_benchmark(data)[0][page_id]


# --------------------------------------------------------------------------------- scoring


def _shingles(text: str) -> Counter:
    tokens = _TOKEN.findall(text or "")
    grams = (tuple(tokens[i : i + SHINGLE_N]) for i in range(max(1, len(tokens) - SHINGLE_N + 1)))
    return Counter(gram for gram in grams if gram)


def page_counts(true: str, pred: str) -> tuple[float, float, float]:
    """Shingle true positives, false positives and false negatives, summing to 1 (or all 0)."""
    expected, found = _shingles(true), _shingles(pred)
    tp = fp = fn = 0
    for gram in expected.keys() | found.keys():
        want, got = expected.get(gram, 0), found.get(gram, 0)
        tp += min(want, got)
        fp += max(0, got - want)
        fn += max(0, want - got)
    total = tp + fp + fn
    return (tp / total, fp / total, fn / total) if total else (0.0, 0.0, 0.0)


def _precision(tp: float, fp: float, fn: float) -> float:
    if fp == fn == 0:
        return 1.0
    return 0.0 if tp == fp == 0 else tp / (tp + fp)


def _recall(tp: float, fp: float, fn: float) -> float:
    if fp == fn == 0:
        return 1.0
    return 0.0 if tp == fn == 0 else tp / (tp + fn)


def score(truth: dict[str, dict], predicted: dict[str, str]) -> dict[str, float]:
    counts = [page_counts(truth[k].get("articleBody", ""), predicted[k]) for k in truth]
    precision = statistics.mean(_precision(*c) for c in counts if c[0] + c[1] > 0)
    recall = statistics.mean(_recall(*c) for c in counts if c[0] + c[2] > 0)
    f1 = 2 * precision * recall / (precision + recall)
    return {"f1": f1, "precision": precision, "recall": recall}


# --------------------------------------------------------------------------------- sides


class _Project:
    """The raw stage's extraction, one page at a time, the whole set as one shard."""

    def __init__(self, settings: ExtractionSettings) -> None:
        self.settings = settings
        self.cache = new_dedup_cache(settings)

    def start_pass(self) -> None:
        self.cache = new_dedup_cache(self.settings)

    def __call__(self, offset: int, page_id: str, html: bytes) -> tuple[str, str]:
        record = RawRecord(
            "article-extraction-benchmark", offset, page_id, None, None, "text/html", 200,
            html, "html", "utf-8",
        )  # fmt: skip
        result = extract_text(record, settings=self.settings, dedup_cache=self.cache)
        if isinstance(result, ExtractedText):
            return result.text, result.extractor
        return "", f"quarantined:{result.reason}"


class _TrafilaturaDefaults:
    """`trafilatura.extract(html, include_comments=False)`, as the benchmark's runner."""

    label = f"trafilatura-{trafilatura.__version__}"

    def start_pass(self) -> None:
        pass

    def __call__(self, offset: int, page_id: str, html: bytes) -> tuple[str, str]:
        return trafilatura.extract(html.decode("utf-8"), include_comments=False) or "", self.label


def run(data: str | None = None, sides: tuple[str, ...] = SIDES, repeats: int = 3) -> dict:
    pages, truth = load_benchmark(data)
    extractors = {
        "project": _Project(ExtractionSettings()),
        "trafilatura": _TrafilaturaDefaults(),
        "resiliparse": _Project(ExtractionSettings(extractor="resiliparse")),
    }
    # Sides take turns page by page, and each page's fastest pass counts: both sides then see
    # the same machine load, and a burst from another process spoils one pass, not the figure.
    texts: dict[str, dict[str, str]] = {side: {} for side in sides}
    labels: dict[str, Counter] = {side: Counter() for side in sides}
    cpu: dict[str, dict[str, float]] = {side: {} for side in sides}
    for repeat in range(max(repeats, 1)):
        for side in sides:
            extractors[side].start_pass()
        for offset, (page_id, html) in enumerate(pages.items()):
            for side in sides:
                started = time.process_time()
                text, label = extractors[side](offset, page_id, html)
                seconds = time.process_time() - started
                cpu[side][page_id] = min(cpu[side].get(page_id, seconds), seconds)
                if repeat and texts[side][page_id] != text:
                    raise AssertionError(f"{side}: another pass gave different text ({page_id})")
                texts[side][page_id] = text
                if not repeat:
                    labels[side][label] += 1
    total_cpu = {side: sum(cpu[side].values()) for side in sides}
    figures: dict = {"pages": len(pages), "published_f1": PUBLISHED}
    for side in sides:
        figures[side] = {
            **{k: round(v, 4) for k, v in score(truth, texts[side]).items()},
            "ms_per_page_cpu": round(1000 * total_cpu[side] / len(pages), 2),
            "empty_pages": sum(1 for t in texts[side].values() if not t.strip()),
            "extractors": dict(sorted(labels[side].items())),
        }
    if "trafilatura" in sides:
        reference = texts["trafilatura"]
        for side in set(sides) - {"trafilatura"}:
            figures[side]["empty_where_trafilatura_has_text"] = sum(
                1 for k, t in texts[side].items() if not t.strip() and reference[k].strip()
            )
            ratio = total_cpu[side] / total_cpu["trafilatura"]
            figures[side]["cpu_vs_trafilatura"] = round(ratio, 3)
    if {"project", "trafilatura"} <= set(sides):
        project = figures["project"]
        figures["targets_met"] = (
            project["f1"] >= TARGET_F1
            and project["empty_where_trafilatura_has_text"] == 0
            and project["cpu_vs_trafilatura"] <= TARGET_CPU_RATIO
        )
    return figures
