"""Rewrite styles loaded from `styles.toml`, each with a version that is part of its identity."""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

STYLES_FILE = Path(__file__).with_name("styles.toml")
LANGUAGE_CODES = {
    "english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it",
    "portuguese": "pt", "dutch": "nl", "russian": "ru", "japanese": "ja", "chinese": "zh",
}  # fmt: skip
# "... a paraphrase of the same in high-quality English language ..." (WRAP, Nemotron-CC)
ASKED_LANGUAGE = re.compile(
    r"\bin (?:[\w-]+ ){0,3}?(" + "|".join(LANGUAGE_CODES) + r") language\b", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class Style:
    style_id: str
    version: int
    system: str
    user: str
    source: str
    language: str = ""  # ISO 639-1 code the answer must be in; "" = as the prompt or source says

    @property
    def prompt_hash(self) -> str:
        """Names the exact prompt text, so an edited prompt is never mistaken for the old one."""
        return hashlib.blake2b(
            (self.system + "\x00" + self.user).encode(), digest_size=6
        ).hexdigest()

    def answer_language(self, source_language: str) -> str:
        """The language the prompt asks the answer in: the style's `language`, else one its
        prompt names ("in high-quality English language"), else the source document's."""
        if self.language:
            return self.language
        asked = ASKED_LANGUAGE.search(self.user)
        return LANGUAGE_CODES[asked.group(1).lower()] if asked else source_language

    def messages(self, text: str) -> list[dict[str, str]]:
        """The document goes in as data inside the user turn; it never becomes the instruction."""
        messages = [{"role": "system", "content": self.system}] if self.system else []
        return [*messages, {"role": "user", "content": self.user.replace("{text}", text)}]


@cache
def load_styles(path: Path = STYLES_FILE) -> dict[str, Style]:
    with path.open("rb") as fh:
        raw = tomllib.load(fh)
    return {
        key: Style(
            key,
            int(v["version"]),
            v.get("system", ""),
            v["user"],
            v.get("source", ""),
            v.get("language", ""),
        )
        for key, v in raw.items()
    }


def get_style(style_id: str) -> Style:
    styles = load_styles()
    if style_id not in styles:
        raise KeyError(f"Unknown rewrite style {style_id!r}; known: {sorted(styles)}")
    return styles[style_id]
