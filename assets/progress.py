"""Progress lines for long steps: how many done, how fast, how long to go.

A user watching a run in the UI sees the run log, not a progress bar; one line every few seconds
(never one per document) tells them the step is alive and when it will finish.
"""

from __future__ import annotations

import re
import time
from typing import Protocol

# The three shapes of `Progress` lines, so that `foundry run` can pick them out of a run's log.
_LINE = re.compile(r"^\w+: \d+(/\d+ \(\d+%\), | in \d+s, | done in )")


class _Log(Protocol):
    def info(self, msg: str) -> object: ...


class Progress:
    def __init__(
        self, log: _Log, what: str, total: int | None = None, every_s: float = 10.0
    ) -> None:
        self.log, self.what, self.total, self.every_s = log, what, total, every_s
        self.done = 0
        self.started = self._last = time.perf_counter()

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.perf_counter()
        if now - self._last >= self.every_s:
            self._last = now
            self.log.info(self.line())

    def line(self) -> str:
        seconds = time.perf_counter() - self.started
        rate = self.done / seconds if seconds > 0 else 0.0
        if self.total:
            left = (self.total - self.done) / rate if rate > 0 else float("inf")
            return (
                f"{self.what}: {self.done}/{self.total} ({100 * self.done / self.total:.0f}%), "
                f"{rate:.1f}/s, about {left:.0f}s left"
            )
        return f"{self.what}: {self.done} in {seconds:.0f}s, {rate:.1f}/s"

    def finish(self) -> dict[str, float]:
        """Log the final line; the figures go into the materialization's metadata."""
        seconds = time.perf_counter() - self.started
        self.log.info(f"{self.what}: {self.done} done in {seconds:.1f}s")
        return {
            f"{self.what}_done": self.done,
            f"{self.what}_seconds": round(seconds, 3),
            f"{self.what}_per_s": round(self.done / seconds, 2) if seconds > 0 else 0.0,
        }


def is_progress_line(message: str) -> bool:
    """Whether a log message is one of `Progress`'s lines (`foundry run` shows them live)."""
    return bool(_LINE.match(message))
