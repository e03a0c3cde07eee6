"""Shard-scoped removal of repeated boilerplate lines, which never takes a page's own text.

FineWeb's extraction passes trafilatura an LRU cache (`deduplicate=True`) so that a paragraph seen
more than twice in a run is dropped from later pages. Inside trafilatura that check also runs on
the whole extracted body, and visits one element several times when an article is a single text
block: a page can then be discarded although it was never seen before, and the check costs about
30% of the extraction's CPU time. The raw stage keeps the intent (a cookie notice, a reprint
notice or a newsletter pitch repeated on every page of a site is not text worth keeping) and
applies it to the extracted lines instead, with two guarantees:

- a line is removed only when more than `max_repetitions` *other* pages of the shard hold it, so
  the text survives elsewhere; repeats inside one page count once (the page's own business, for
  the repetition filters of the cleaned stage);
- a page never loses most of its text to it: when the repeated lines are all or nearly all of a
  page (the same article crawled under several URLs), the page keeps its text whole, and
  whole-document duplicates are left to the cleaned stage, which records what it removes.

The state is bounded (an LRU of 64-bit line hashes) and depends only on the order of the shard's
records, so a re-run of a shard gives the same text.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import xxhash

MIN_LINE_CHARS = 100  # trafilatura's MIN_DUPLCHECK_SIZE: shorter lines are never boilerplate here
MAX_REPETITIONS = 2  # trafilatura's MAX_REPETITIONS: the third other page holding a line drops it
MAX_LINES = 65_536  # line hashes remembered per shard
MIN_KEPT_FRACTION = 0.5  # a page losing more than half of its text keeps it whole


@dataclass(frozen=True, slots=True)
class Deduplicated:
    text: str
    removed_lines: int


class BoilerplateLines:
    """Counts, per line, how many pages of the shard held it so far; one instance per shard."""

    def __init__(
        self,
        max_repetitions: int = MAX_REPETITIONS,
        min_line_chars: int = MIN_LINE_CHARS,
        max_lines: int = MAX_LINES,
        min_kept_fraction: float = MIN_KEPT_FRACTION,
    ) -> None:
        self.max_repetitions = max_repetitions
        self.min_line_chars = min_line_chars
        self.max_lines = max_lines
        self.min_kept_fraction = min_kept_fraction
        self._pages: OrderedDict[int, int] = OrderedDict()

    def apply(self, text: str) -> Deduplicated:
        """The page's text without lines that enough earlier pages held; records its lines."""
        lines = text.split("\n")
        keys = {
            i: xxhash.xxh3_64_intdigest(line.encode())
            for i, line in enumerate(lines)
            if len(line) >= self.min_line_chars
        }
        repeated = {i for i, key in keys.items() if self._pages.get(key, 0) > self.max_repetitions}
        for key in set(keys.values()):  # a line counts once per page
            self._pages[key] = self._pages.pop(key, 0) + 1
            if len(self._pages) > self.max_lines:
                self._pages.popitem(last=False)
        if not repeated:
            return Deduplicated(text, 0)
        kept = [line for i, line in enumerate(lines) if i not in repeated]
        removed_chars = sum(len(lines[i]) for i in repeated)
        if len(text) - removed_chars < self.min_kept_fraction * len(text):
            return Deduplicated(text, 0)  # mostly text seen elsewhere: a duplicate page, kept
        return Deduplicated(_tidy("\n".join(kept)), len(repeated))


def _tidy(text: str) -> str:
    """Paragraph breaks left doubled (or at an edge) by removed lines become single again."""
    lines: list[str] = []
    for line in text.split("\n"):
        if line or (lines and lines[-1]):
            lines.append(line)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)
