"""One text normalization for every extractor of the raw stage (trafilatura, resiliparse, plain).

Extractors hand back text with artefacts of the page's source layout: lines of tabs or spaces
(DocBook and many CMS templates indent the text inside their paragraphs), leading indentation and
runs of blank lines. Line-based filters downstream (Gopher's duplicate-line rule counts every
whitespace-only line as a duplicate) must not see them, so they are removed here, once.
"""

from __future__ import annotations

MIN_TITLE_LINE_CHARS = 10  # shorter first lines ("News", "Review") are kept even if in the title


def normalize_text(text: str) -> str:
    """Strip every line, drop whitespace-only lines, keep paragraph breaks (one empty line).

    An empty line between two text lines is a paragraph break; a run of them is one break. A
    line of only spaces or tabs is layout, not a break, and is dropped. No leading or trailing
    empty line is kept.
    """
    lines: list[str] = []
    paragraph_break = False
    for line in text.splitlines():
        if not line:
            paragraph_break = bool(lines)
            continue
        stripped = line.strip()
        if not stripped:
            continue
        if paragraph_break:
            lines.append("")
            paragraph_break = False
        lines.append(stripped)
    return "\n".join(lines)


def drop_title_line(text: str, title: str | None) -> str:
    """The text without a first line that only repeats the page's title.

    The raw stage keeps the title in its own column; a headline that opens the extracted text
    as well is stored twice (and is not body text: "Headline | Site" titles hold it whole).
    The line goes only when it lies inside the recorded title, has at least
    MIN_TITLE_LINE_CHARS characters and is not the whole text, so no page loses its only text.
    """
    if not title or not text:
        return text
    first, newline, rest = text.partition("\n")
    if not newline or not rest.strip():
        return text
    first = " ".join(first.split())
    if len(first) < MIN_TITLE_LINE_CHARS or first not in " ".join(title.split()):
        return text
    return rest.lstrip("\n")
