"""Maps over crawl shards inside one corpus-wide step, spread over worker processes.

A corpus-wide asset whose work is a map over shards (scoring, for example) would otherwise use
one core of its pod. Workers are spawned, never forked (polars and DuckDB keep thread pools that
a fork would copy mid-flight); each loads what it needs once, in its initializer, and results
come back in the order of the shards, so the output is the same for any number of workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def available_cpus() -> int:
    """CPUs this process may run on (a pod's or a container's share where the OS says so)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def worker_count(requested: int, items: int) -> int:
    """`requested` workers (0 = one per CPU), never more than there are items."""
    wanted = requested if requested > 0 else available_cpus()
    return max(1, min(wanted, items))


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    initializer: Callable[..., None],
    initargs: tuple[Any, ...] = (),
) -> Iterator[R]:
    """`map(fn, items)` in `workers` spawned processes (in this one when workers <= 1), after
    `initializer(*initargs)` has run once in each."""
    if workers <= 1:
        initializer(*initargs)
        yield from map(fn, items)
        return
    context = get_context("spawn")
    with ProcessPoolExecutor(workers, context, initializer, initargs) as pool:
        yield from pool.map(fn, items)
