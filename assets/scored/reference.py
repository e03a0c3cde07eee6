"""The high-quality reference text that the quality classifier learns to recognise.

DCLM trains its fastText classifier on OpenHermes-2.5 and ELI5 answers, GPT-3 on WebText,
Wikipedia and books: a reference set of text one wants more of, against the crawl. A reference
here is a list of sources, each a JSONL / Parquet file with a text column, a plain-text file (one
passage per blank-line-separated block), or the built-in default below.

The built-in default, `builtin:python-docs`, is the Python Language Reference and library
documentation topics that ship with every CPython (`pydoc_data.topics`, PSF License): about
465,000 characters of edited, explanatory technical English, available offline on any machine
with no file to bundle. It is English only, and it is about Python while the bundled crawl is
about Debian, so against that crawl it measures topic first: it reached held-out AUC 1.0 by
telling Python from Debian. The classifier's default examples are therefore the crawl's own best
and worst pages (topic-matched, see `assets.scored.training.classifier_examples`), and a
reference is used only with its `contrast="reference"`, against the crawl's low-signal pages:
point `reference_paths` at your own domain's best text for that.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import polars as pl

BUILTIN_PYTHON_DOCS = "builtin:python-docs"
_BLANK_LINES = re.compile(r"\n\s*\n")


def load_reference(
    sources: Sequence[str], text_column: str = "text", max_chars: int = 4000, min_chars: int = 300
) -> list[str]:
    """Every passage of every source, packed to at most `max_chars`, shorter ones dropped.

    Crawl pages and reference passages then have comparable lengths, so the classifier cannot
    separate them by length alone."""
    passages: list[str] = []
    for source in sources:
        for text in _texts(source, text_column):
            passages.extend(p for p in pack(text, max_chars) if len(p) >= min_chars)
    return passages


def _texts(source: str, text_column: str) -> Iterator[str]:
    if source == BUILTIN_PYTHON_DOCS:
        yield from python_docs()
        return
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"reference source {source!r} does not exist")
    name = path.name.lower()
    if name.endswith(".parquet"):
        yield from pl.read_parquet(path, columns=[text_column])[text_column].drop_nulls()
    elif name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as lines:
            for line in lines:
                if line.strip() and (text := json.loads(line).get(text_column)):
                    yield text
    elif name.endswith(".txt"):
        yield from _BLANK_LINES.split(path.read_text(encoding="utf-8"))
    else:
        raise ValueError(f"reference source {source!r}: use .parquet, .jsonl(.gz) or .txt")


def python_docs() -> list[str]:
    """CPython's documentation topics (the text behind `help("if")`), in a stable order."""
    from pydoc_data.topics import topics

    return [topics[name] for name in sorted(topics)]


def pack(text: str, max_chars: int) -> list[str]:
    """Consecutive paragraphs joined into passages of at most `max_chars` (longer ones cut)."""
    passages: list[str] = []
    current = ""
    for paragraph in _BLANK_LINES.split(text.strip()):
        paragraph = paragraph.strip()
        if current and len(current) + 2 + len(paragraph) > max_chars:
            passages.append(current)
            current = ""
        while len(paragraph) > max_chars:
            passages.append(paragraph[:max_chars])
            paragraph = paragraph[max_chars:]
        current = f"{current}\n\n{paragraph}" if current else paragraph
    if current:
        passages.append(current)
    return passages
