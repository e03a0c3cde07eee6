"""spaCy's suffix search, exact and about 7x faster, by dispatching on a chunk's last character.

spaCy's suffix regex is one alternation of ~80 patterns, each ending in ``$``; ``re.search``
tries every one of them at every position of the chunk. A pattern that must end at the end of
the chunk can only match a chunk whose last character it can consume last. So for each last
character we compile the alternation of only those patterns (read off Python's own regex
parser), which finds the same leftmost match: the patterns left out cannot match at all, and
all matches end at the same place, so their order does not matter. A pattern whose last
character cannot be worked out (a class with ``\\w`` or a negation, a pattern that can match
the empty string) is kept for every character; a regex that is not such an alternation is
used as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from re import _constants as sre  # the parser's opcodes (CPython >= 3.11)
from re import _parser as sre_parse

Ranges = list[tuple[int, int]]
Search = Callable[[str], re.Match | None]
_ZERO_WIDTH = {sre.AT, sre.ASSERT, sre.ASSERT_NOT}
_REPEATS = {sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT}


def top_level_alternatives(pattern: str) -> list[str]:
    """``pattern`` split at its top-level ``|`` (outside groups, classes and escapes)."""
    pieces, depth, in_class, start, i = [], 0, False, 0, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            i += 1 if pattern[i + 1 : i + 2] == "^" else 0
            i += 1 if pattern[i + 1 : i + 2] == "]" else 0  # a leading "]" is a literal
        elif ch in "()":
            depth += 1 if ch == "(" else -1
        elif ch == "|" and depth == 0:
            pieces.append(pattern[start:i])
            start = i + 1
        i += 1
    return [*pieces, pattern[start:]]


def last_chars(pattern: str, flags: int) -> Ranges | None:
    """Code-point ranges of the characters a match of ``pattern`` can end with; None when
    unknown (or when it can match the empty string)."""
    edge = _sequence_edge(list(sre_parse.parse(pattern, flags)))
    return None if edge is None or edge[1] else edge[0]


def _sequence_edge(items: list) -> tuple[Ranges, bool] | None:
    """(last-character ranges, whether the sequence can match empty), or None if unknown."""
    ranges: Ranges = []
    for op, av in reversed(items):
        if op in _ZERO_WIDTH:
            continue
        edge = _item_edge(op, av)
        if edge is None:
            return None
        ranges += edge[0]
        if not edge[1]:
            return ranges, False
    return ranges, True


def _item_edge(op, av) -> tuple[Ranges, bool] | None:
    if op is sre.LITERAL:
        return [(av, av)], False
    if op is sre.IN:
        return _class_ranges(av)
    if op is sre.SUBPATTERN:
        return _sequence_edge(list(av[-1]))
    if op is sre.ATOMIC_GROUP:
        return _sequence_edge(list(av))
    if op in _REPEATS:
        edge = _sequence_edge(list(av[2]))
        return None if edge is None else (edge[0], edge[1] or av[0] == 0)
    if op is sre.BRANCH:
        edges = [_sequence_edge(list(branch)) for branch in av[1]]
        if any(edge is None for edge in edges):
            return None
        return [r for ranges, _ in edges for r in ranges], any(empty for _, empty in edges)
    return None  # any character, a negated literal, a back-reference...


def _class_ranges(items) -> tuple[Ranges, bool] | None:
    ranges: Ranges = []
    for op, av in items:
        if op is sre.LITERAL:
            ranges.append((av, av))
        elif op is sre.RANGE:
            ranges.append(av)
        else:  # a category (\w, \d), a negation
            return None
    return ranges, False


class SuffixSearch:
    """A drop-in for ``compiled_suffix_regex.search`` (see the module docstring)."""

    def __init__(self, compiled: re.Pattern) -> None:
        self._regex = compiled
        self._by_char: dict[str, Search | None] = {}
        self._by_subset: dict[tuple[int, ...], Search | None] = {}
        pieces = top_level_alternatives(compiled.pattern)
        ends = [_ends_at_end(piece, compiled.flags) for piece in pieces]
        self._pieces = pieces if all(ends) and len(pieces) > 1 else None
        self._last = [last_chars(p, compiled.flags) for p in pieces] if self._pieces else []

    def __call__(self, chunk: str) -> re.Match | None:
        if self._pieces is None or not chunk or "\n" in chunk:
            return self._regex.search(chunk)
        last = chunk[-1]
        try:
            search = self._by_char[last]
        except KeyError:
            search = self._by_char[last] = self._search_for(ord(last))
        return None if search is None else search(chunk)

    def _search_for(self, code: int) -> Search | None:
        subset = tuple(
            i for i, ranges in enumerate(self._last) if ranges is None or _inside(code, ranges)
        )
        if subset not in self._by_subset:
            pattern = "|".join(self._pieces[i] for i in subset)  # type: ignore[index]
            compiled = re.compile(pattern, self._regex.flags) if subset else None
            self._by_subset[subset] = None if compiled is None else compiled.search
        return self._by_subset[subset]


def _ends_at_end(piece: str, flags: int) -> bool:
    try:
        items = list(sre_parse.parse(piece, flags))
    except re.error:
        return False
    return bool(items) and items[-1] == (sre.AT, sre.AT_END)


def _inside(code: int, ranges: Iterable[tuple[int, int]]) -> bool:
    return any(lo <= code <= hi for lo, hi in ranges)


def fast_suffix_search(search: Search | None) -> Search | None:
    """``SuffixSearch`` for a compiled regex's bound ``search``; anything else unchanged."""
    compiled = getattr(search, "__self__", None)
    if isinstance(compiled, re.Pattern) and search == compiled.search:
        return SuffixSearch(compiled)
    return search
