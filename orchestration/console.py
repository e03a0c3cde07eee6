"""What `foundry run` prints: a line per finished shard and corpus step, a live line while steps
run, and failures, all read from the Dagster instance's event log. The logs themselves (Dagster's
DEBUG event stream, vLLM's start-up output) go to a file; see `orchestration.runner`.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from assets.progress import is_progress_line

COUNT_KEYS = ("rows_in", "kept", "dropped")
SHORT_NAMES = {"raw_documents": "raw", "cleaned_documents": "cleaned"}
# Dagster logs this (no event of its own) for a step left out because its upstream failed.
ABANDONED = re.compile(r"Dependencies for step \S+ .*Not executing\.")
RUN_END = {"PIPELINE_SUCCESS", "PIPELINE_FAILURE", "PIPELINE_CANCELED"}


@dataclass
class _Step:
    name: str
    started: float | None = None
    ended: float | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    balance: dict[str, Any] = field(default_factory=dict)
    compute_s: float | None = None
    progress: str | None = None
    error: str | None = None
    skipped: bool = False

    def figures(self) -> dict[str, Any]:
        """rows_in, kept and dropped: the materialization's own, else the books_balance check's."""
        return {k: self.counts.get(k, self.balance.get(k)) for k in COUNT_KEYS}

    def seconds(self) -> float | None:
        if self.started is not None and self.ended is not None:
            return self.ended - self.started
        return self.compute_s


@dataclass
class _Run:
    run_id: str
    partition: str | None
    started: float | None = None
    ended: float | None = None
    status: str | None = None
    steps: dict[str, _Step] = field(default_factory=dict)

    def step(self, key: str) -> _Step:
        return self.steps.setdefault(key, _Step(key))


class EventFormatter:
    """Turns Dagster event log entries into progress lines.

    A partitioned run (one crawl shard) gets one line when it ends; an unpartitioned run (the
    corpus stages) gets one line per step as each ends.
    """

    def __init__(self, width: int = 28) -> None:
        self.runs: dict[str, _Run] = {}
        self.width = width

    def handle(self, run_id: str, partition: str | None, entry: Any) -> list[str]:
        run = self.runs.setdefault(run_id, _Run(run_id, partition))
        event = entry.dagster_event
        if event is None:
            message = entry.user_message or ""
            if entry.step_key and is_progress_line(message):
                run.step(entry.step_key).progress = message
            elif entry.step_key and ABANDONED.match(message):  # upstream failed, never started
                step = run.step(entry.step_key)
                step.skipped = True
                return [self._step_line(step)] if run.partition is None else []
            return []
        kind = event.event_type_value
        if kind == "PIPELINE_START":
            run.started = entry.timestamp
        elif kind in RUN_END:
            run.ended, run.status = entry.timestamp, kind
            return [self._shard_line(run)] if run.partition is not None else []
        if not event.step_key:
            return []
        step = run.step(event.step_key)
        data = event.event_specific_data
        if kind == "STEP_START":
            step.started = entry.timestamp
        elif kind == "ASSET_MATERIALIZATION":
            metadata = _plain(entry.asset_materialization.metadata)
            step.counts.update({k: metadata[k] for k in COUNT_KEYS if k in metadata})
            if isinstance(metadata.get("compute_s"), int | float):
                step.compute_s = float(metadata["compute_s"])
        elif kind == "ASSET_CHECK_EVALUATION" and data.check_name == "books_balance":
            step.balance = _plain(data.metadata)
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            step.ended = entry.timestamp
            step.skipped = kind == "STEP_SKIPPED"
            if kind == "STEP_FAILURE":
                step.error = error_line(getattr(data, "error", None))
            if run.partition is None:
                return [self._step_line(step)]
        return []

    def _step_line(self, step: _Step) -> str:
        name = f"{step.name:<{self.width}}"
        if step.skipped:
            return f"  {name} skipped (an upstream step failed)"
        if step.error is not None:
            return f"  {name} FAILED after {_duration(step.seconds())}: {step.error}"
        figures = step.figures()
        parts = [
            f"{_count(figures[k])} {k.replace('_', ' ')}"
            for k in COUNT_KEYS
            if figures[k] is not None
        ]
        parts.append(_duration(step.seconds()))
        return f"  {name} " + ", ".join(parts)

    def _shard_line(self, run: _Run) -> str:
        name = f"{run.partition:<{self.width}}"
        parts = []
        for step in sorted(run.steps.values(), key=lambda s: s.started or float("inf")):
            label = SHORT_NAMES.get(step.name, step.name)
            if step.error is not None:
                return f"  {name} FAILED in {step.name}: {step.error}"
            figures = step.figures()
            if figures["kept"] is not None:
                dropped = figures["dropped"]
                tail = f"/{_count(dropped)} dropped" if dropped is not None else ""
                parts.append(f"{label} {_count(figures['kept'])} kept{tail}")
        seconds = run.ended - run.started if run.started and run.ended else None
        if run.status != "PIPELINE_SUCCESS" and not parts:
            return f"  {name} {run.status.removeprefix('PIPELINE_').lower()}"
        return f"  {name} " + ", ".join([*parts, _duration(seconds)])

    def running(self, now: float) -> list[str]:
        """What runs right now: each started and unfinished step, its time and last progress."""
        out = []
        for run in self.runs.values():
            if run.ended is not None:
                continue
            for step in run.steps.values():
                if step.started is None or step.ended is not None:
                    continue
                where = f" [{run.partition}]" if run.partition else ""
                text = f"{step.name}{where} {_duration(now - step.started)}"
                out.append(f"{text}: {step.progress}" if step.progress else text)
        return out

    def shards_done(self) -> int:
        return sum(1 for r in self.runs.values() if r.partition is not None and r.ended)


class Console:
    """Lines on the terminal, and one live line that a TTY overwrites in place.

    Without a TTY the live line is printed as a plain line, only after a quiet spell in which
    nothing else was printed: ``quiet_s``, or a tenth of the time so far once that is longer. A
    six-minute run adds about a dozen such lines, a sixty-minute one about three dozen."""

    def __init__(
        self, stream: TextIO | None = None, quiet_s: float = 30.0, tty: bool | None = None
    ):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.quiet_s = quiet_s
        self._live_shown = False
        self._started = self._last = time.monotonic()

    def line(self, text: str) -> None:
        self._clear()
        self.stream.write(text + "\n")
        self.stream.flush()
        self._last = time.monotonic()

    def lines(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.line(text)

    def live(self, text: str | None) -> None:
        if not text:
            self._clear()
            return
        if self.tty:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r\033[K" + text[:width])
            self.stream.flush()
            self._live_shown = True
        else:
            now = time.monotonic()
            if now - self._last >= max(self.quiet_s, (now - self._started) / 10):
                self.line("  ... " + text)

    def _clear(self) -> None:
        if self._live_shown:
            self.stream.write("\r\033[K")
            self._live_shown = False


def live_text(formatter: EventFormatter, started: float, now: float, shards: int) -> str | None:
    running = formatter.running(now)
    if not running:
        return None
    head = f"{_duration(now - started)} "
    done = formatter.shards_done()
    if done < shards:
        head += f"shards {done}/{shards} "
    more = f" (+{len(running) - 2} more)" if len(running) > 2 else ""
    return f"{head}| {' | '.join(running[:2])}{more}"


def error_line(error: Any) -> str:
    """The innermost cause of a Dagster error, on one line: the user's exception, not the
    wrapper that says a step failed."""
    if error is None:
        return "unknown error (see the log)"
    while getattr(error, "cause", None) is not None:
        error = error.cause
    message = (getattr(error, "message", None) or str(error)).strip()
    first = message.splitlines()[0] if message else "unknown error"
    return first if len(first) <= 200 else first[:197] + "..."


def _plain(metadata: dict[str, Any]) -> dict[str, Any]:
    return {k: getattr(v, "value", v) for k, v in (metadata or {}).items()}


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"
