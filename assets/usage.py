"""What one materialization cost the process that ran it: CPU seconds and peak resident memory.

Shard steps share their run's process (one step after another), so the process's lifetime peak
would mix steps. Linux lets a process reset its own peak (writing 5 to /proc/self/clear_refs
resets VmHWM), which gives each step its own peak. Elsewhere the lifetime peak is reported.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

CLEAR_REFS = Path("/proc/self/clear_refs")
STATUS = Path("/proc/self/status")


def reset_peak_rss() -> bool:
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """VmHWM (since the last reset) where /proc has it, else the process's lifetime peak."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    """This process's CPU plus that of the worker processes it has waited for (process pools)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _children_peak_mb() -> float:
    """The largest peak RSS of any worker process waited for so far (never reset)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


@dataclass
class Usage:
    """Started when a step starts; `figures()` when it ends. A step that spreads its work over
    worker processes (assets/workers.py) also reports their largest peak, when one of them
    peaked above every earlier child of this process."""

    cpu_started: float = field(default_factory=_cpu_s)
    children_peak_before: float = field(default_factory=_children_peak_mb)

    def __post_init__(self) -> None:
        reset_peak_rss()

    def figures(self) -> dict[str, float]:
        figures = {
            "cpu_s": round(_cpu_s() - self.cpu_started, 3),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
        if (workers := _children_peak_mb()) > self.children_peak_before:
            figures["worker_peak_rss_mb"] = round(workers, 1)
        return figures
