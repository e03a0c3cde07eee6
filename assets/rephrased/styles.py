"""Rewrite styles loaded from `styles.toml`, each with a version that is part of its identity."""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

STYLES_FILE = Path(__file__).with_name("styles.toml")


@dataclass(frozen=True, slots=True)
class Style:
    style_id: str
    version: int
    system: str
    user: str
    source: str

    @property
    def prompt_hash(self) -> str:
        """Names the exact prompt text, so an edited prompt is never mistaken for the old one."""
        return hashlib.blake2b(
            (self.system + "\x00" + self.user).encode(), digest_size=6
        ).hexdigest()

    def messages(self, text: str) -> list[dict[str, str]]:
        """The document goes in as data inside the user turn; it never becomes the instruction."""
        messages = [{"role": "system", "content": self.system}] if self.system else []
        return [*messages, {"role": "user", "content": self.user.replace("{text}", text)}]


@cache
def load_styles(path: Path = STYLES_FILE) -> dict[str, Style]:
    with path.open("rb") as fh:
        raw = tomllib.load(fh)
    return {
        key: Style(key, int(v["version"]), v.get("system", ""), v["user"], v.get("source", ""))
        for key, v in raw.items()
    }


def get_style(style_id: str) -> Style:
    styles = load_styles()
    if style_id not in styles:
        raise KeyError(f"Unknown rewrite style {style_id!r}; known: {sorted(styles)}")
    return styles[style_id]
