"""Materialize the pipeline outside the UI: every shard's ingest, then the corpus-wide stages.

This is what `foundry run` does; it uses the same jobs, instance and run history as the UI, so
runs started here show up in `dagster dev` and vice versa.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import IO

import dagster as dg

from orchestration.console import Console, EventFormatter, live_text
from resources.crawl import CrawlSource
from resources.settings import dagster_home

INSTANCE_YAML = """\
telemetry:
  enabled: false
# GPU steps share one pool; `dagster instance concurrency set gpu N` sets how many run at once.
"""


LAUNCHED_BY = {"foundry/launched_by": "foundry run"}
# Every run that one `foundry run` starts carries its session id, so that the terminal can follow
# exactly those runs in the instance's event log.
SESSION_TAG = "foundry/session"


@dataclass(frozen=True)
class RunSummary:
    shards: list[str]
    failed: list[str]
    corpus_ok: bool
    current_shards: list[str] = field(default_factory=list)  # up to date: not run again
    corpus_rebuilt: list[str] = field(default_factory=list)  # corpus assets this run rebuilt


def ensure_instance() -> dg.DagsterInstance:
    """A persistent Dagster instance inside FOUNDRY_HOME, shared with `dagster dev`."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def ingest_job() -> dg.JobDefinition:
    from orchestration.definitions import defs

    return defs.resolve_job_def("ingest_shard")


def corpus_job() -> dg.JobDefinition:
    from orchestration.definitions import defs

    return defs.resolve_job_def("build_corpus")


def register_shards(instance: dg.DagsterInstance) -> list[str]:
    shards = CrawlSource().list_shards()
    if not shards:
        raise RuntimeError(f"No crawl shards found in {CrawlSource().location}")
    known = set(instance.get_dynamic_partitions("crawl_shards"))
    new = [s for s in shards if s not in known]
    if new:
        instance.add_dynamic_partitions("crawl_shards", new)
    return shards


def run_shard(
    shard: str,
    run_config: dict | None = None,
    tags: dict[str, str] | None = None,
    assets: list[str] | None = None,
    in_process: bool = False,
) -> bool:
    """One ingest run of a shard: every per-shard asset, or only ``assets`` (the stale ones).
    ``in_process``: the steps run in this process, which must be one started for this run."""
    instance = ensure_instance()
    from orchestration.jobs import IN_PROCESS, MULTIPROCESS

    execution = (
        IN_PROCESS if in_process else {"execution": {"config": {"multiprocess": MULTIPROCESS}}}
    )
    result = dg.execute_job(
        dg.reconstructable(ingest_job),
        instance,
        run_config={**(run_config or {}), **execution},
        tags={"dagster/partition": shard, **LAUNCHED_BY, **(tags or {})},
        asset_selection=[dg.AssetKey(name) for name in assets] if assets else None,
    )
    return result.success


def shard_pool(parallel: int) -> ProcessPoolExecutor:
    """`parallel` shard runs at once, each in a new process that ends with its run, so its steps
    run in process, with the environment of this moment, and leave nothing to the next shard."""
    context = get_context("spawn")
    return ProcessPoolExecutor(max(parallel, 1), context, max_tasks_per_child=1)


def run_corpus(
    run_config: dict | None = None,
    assets: list[str] | None = None,
    tags: dict[str, str] | None = None,
) -> bool:
    """One run of the corpus job: every corpus asset, or only ``assets``."""
    instance = ensure_instance()
    result = dg.execute_job(
        dg.reconstructable(corpus_job),
        instance,
        run_config=run_config,
        tags={**LAUNCHED_BY, **(tags or {})},
        asset_selection=[dg.AssetKey(name) for name in assets] if assets else None,
    )
    return result.success


@dataclass(frozen=True)
class Plan:
    """What a run must do: per stale shard the assets to rebuild, and the stale corpus assets."""

    shards: dict[str, list[str]]
    corpus: list[str]
    current_shards: list[str]


def plan_run(
    instance: dg.DagsterInstance,
    shard_config: dict | None = None,
    corpus_config: dict | None = None,
    force: bool = False,
) -> Plan:
    """The nightly schedules' staleness, applied to every shard file in the crawl, plus config.

    A shard is rebuilt when its crawl file, a code version, an upstream or its run config changed;
    a corpus asset when it is older than an input or its code, ran with another config, or an
    upstream is rebuilt in this run. ``force`` rebuilds everything."""
    from orchestration.definitions import defs
    from orchestration.jobs import CORPUS_ASSET_NAMES, SHARD_ASSET_NAMES

    graph = defs.resolve_asset_graph()
    files = CrawlSource().files()
    if force:
        return Plan({s: list(SHARD_ASSET_NAMES) for s in files}, list(CORPUS_ASSET_NAMES), [])
    shards = _stale_shards(instance, graph, files, shard_config)
    corpus = list(CORPUS_ASSET_NAMES) if shards else _stale_corpus(instance, graph, corpus_config)
    return Plan(shards, corpus, sorted(set(files) - set(shards)))


def _stale_shards(instance, graph, files, shard_config: dict | None) -> dict[str, list[str]]:
    from orchestration.jobs import SHARD_ASSET_NAMES
    from orchestration.staleness import (
        config_changed,
        latest_by_partition,
        run_op_configs,
        stale_shards,
    )

    keys = [dg.AssetKey(name) for name in SHARD_ASSET_NAMES]
    work = {
        shard: [k.to_user_string() for k in rebuild.assets]
        for shard, rebuild in stale_shards(instance, graph, keys, files).items()
    }
    latest = {key: latest_by_partition(instance, key, files) for key in keys}
    unchanged = sorted(set(files) - set(work))
    run_ids = {s: {k.to_user_string(): latest[k][s].run_id for k in keys} for s in unchanged}
    configs = run_op_configs(instance, (r for ids in run_ids.values() for r in ids.values()))
    for shard in unchanged:  # one query per 500 runs, not one per shard
        if config_changed(configs, run_ids[shard], shard_config):
            work[shard] = list(SHARD_ASSET_NAMES)
    return work


def _stale_corpus(instance, graph, corpus_config: dict | None) -> list[str]:
    """Stale corpus assets and everything downstream of them, upstream first."""
    from orchestration.jobs import CORPUS_ASSET_NAMES
    from orchestration.staleness import (
        in_dependency_order,
        op_config_changed,
        outside_inputs_changed,
        stale_assets,
    )

    keys = in_dependency_order(graph, [dg.AssetKey(name) for name in CORPUS_ASSET_NAMES])
    stale = set(stale_assets(instance, graph, keys))
    run_ids = {}
    for key in keys:
        event = instance.get_latest_materialization_event(key)
        run_ids[key.to_user_string()] = event.run_id if event else None
    changed = op_config_changed(instance, run_ids, corpus_config)
    changed |= outside_inputs_changed(instance, corpus_config)
    stale |= {dg.AssetKey(name) for name in changed}
    for key in keys:  # upstream first, so one pass carries a rebuild downstream
        if any(parent in stale for parent in graph.get(key).parent_keys):
            stale.add(key)
    return [key.to_user_string() for key in keys if key in stale]


def run_pipeline(
    parallel: int = 2,
    shard_config: dict | None = None,
    corpus_config: dict | None = None,
    tags: dict[str, str] | None = None,
    force: bool = False,
) -> RunSummary:
    """Stale shards in parallel runs (each its own process), then one run of the stale corpus
    assets if every shard succeeded; with nothing stale, nothing runs."""
    instance = ensure_instance()
    shards = register_shards(instance)
    plan = plan_run(instance, shard_config, corpus_config, force)
    todo = [s for s in shards if s in plan.shards]
    with shard_pool(parallel) as pool:
        results = list(
            pool.map(
                run_shard,
                todo,
                [shard_config] * len(todo),
                [tags] * len(todo),
                [plan.shards[s] for s in todo],
                [True] * len(todo),
            )
        )
    failed = [s for s, ok in zip(todo, results, strict=True) if not ok]
    corpus = plan.corpus if not failed else []
    corpus_ok = not failed and (not corpus or run_corpus(corpus_config, corpus, tags=tags))
    return RunSummary(shards, failed, corpus_ok, plan.current_shards, corpus)


@dataclass(frozen=True)
class Outcome:
    """How a `foundry run` ended: the worker's summary, or why there is none."""

    summary: RunSummary | None
    returncode: int
    error: str | None = None


WORKER = "import sys; from orchestration.runner import worker; sys.exit(worker(sys.argv[1]))"


def worker(request_path: str) -> int:
    """The child process of `foundry run`: runs the pipeline with its output going to the log."""
    request = json.loads(Path(request_path).read_text())
    summary = run_pipeline(
        request["parallel"],
        request["shard_config"],
        request["corpus_config"],
        tags={SESSION_TAG: request["session"]},
        force=request.get("force", False),
    )
    Path(request["summary"]).write_text(json.dumps(asdict(summary)))
    return 0 if summary.corpus_ok else 1


def run_with_progress(
    parallel: int,
    shard_config: dict | None,
    corpus_config: dict | None,
    log_path: Path,
    console: Console,
    verbose: bool = False,
    force: bool = False,
) -> Outcome:
    """Run the pipeline in a child process whose stdout and stderr (Dagster's event stream, the
    step processes', vLLM's) go to ``log_path``, and print progress from the instance's event
    log meanwhile. ``verbose`` also streams the log to this terminal."""
    session = uuid.uuid4().hex[:12]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="foundry-run-") as tmp, log_path.open("ab") as log:
        summary_path = Path(tmp) / "summary.json"
        request = Path(tmp) / "request.json"
        request.write_text(
            json.dumps(
                {
                    "parallel": parallel,
                    "shard_config": shard_config,
                    "corpus_config": corpus_config,
                    "session": session,
                    "summary": str(summary_path),
                    "force": force,
                }
            )
        )
        show_warning = warnings.showwarning
        _route_warnings(log)
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(request)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if verbose else log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # Ctrl-C reaches only us; we stop the whole group
        )
        tee = _tee(proc.stdout, log) if verbose else None
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            _watch(proc, session, console)
        except KeyboardInterrupt:
            console.live(None)
            console.line("interrupted: stopping the runs (Dagster marks them canceled)")
            stop_process_group(proc, grace_s=15.0)
            return Outcome(None, 130, "interrupted")
        finally:
            signal.signal(signal.SIGTERM, previous)
            warnings.showwarning = show_warning
            if tee is not None:
                tee.join(timeout=5)
        if summary_path.exists():
            summary = RunSummary(**json.loads(summary_path.read_text()))
            return Outcome(summary, proc.returncode)
    return Outcome(None, proc.returncode or 1, last_line(log_path))


def _watch(proc: subprocess.Popen, session: str, console: Console) -> None:
    started = time.time()  # event timestamps are wall-clock times
    instance = ensure_instance()
    try:
        shards = len(CrawlSource().list_shards())
    except Exception:  # the worker reports a crawl it cannot list
        shards = 0
    watcher = RunWatcher(instance, session)
    while proc.poll() is None:
        console.lines(watcher.poll())
        console.live(live_text(watcher.formatter, started, time.time(), shards))
        time.sleep(1.0)
    console.lines(watcher.poll())
    console.live(None)


class RunWatcher:
    """New events of this session's runs, read from the instance, as progress lines."""

    def __init__(self, instance: dg.DagsterInstance, session: str) -> None:
        self.instance, self.session = instance, session
        self.formatter = EventFormatter()
        self.cursors: dict[str, str | None] = {}
        self.finished: set[str] = set()

    def poll(self) -> list[str]:
        lines: list[str] = []
        try:
            runs = self.instance.get_runs(
                filters=dg.RunsFilter(tags={SESSION_TAG: self.session}), ascending=True
            )
            for run in runs:
                if run.run_id not in self.finished:
                    lines += self._read(run)
        except sqlite3.OperationalError:  # a writer holds the SQLite file: next tick
            pass
        return lines

    def _read(self, run: dg.DagsterRun) -> list[str]:
        lines: list[str] = []
        done = run.is_finished
        partition = run.tags.get("dagster/partition")
        while True:
            page = self.instance.get_records_for_run(
                run.run_id, cursor=self.cursors.get(run.run_id), limit=500
            )
            self.cursors[run.run_id] = page.cursor
            for record in page.records:
                lines += self.formatter.handle(run.run_id, partition, record.event_log_entry)
            if not page.has_more:
                break
        if done:
            self.finished.add(run.run_id)
        return lines


def stop_process_group(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """SIGINT, then SIGTERM, then SIGKILL to the whole process group that ``proc`` leads."""
    for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            proc.poll()
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def last_line(path: Path) -> str | None:
    """The last non-empty line of a log: a worker that died early says why there."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    except OSError:
        return None
    return next((line for line in reversed(lines) if line), None)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _tee(source: IO[bytes] | None, log: IO[bytes]) -> threading.Thread:
    def copy() -> None:
        assert source is not None
        for chunk in iter(source.readline, b""):
            log.write(chunk)
            log.flush()
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread


def _route_warnings(log: IO[bytes]) -> None:
    """Python warnings raised while we watch the instance go to the log, not the terminal."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = warnings.formatwarning(message, category, filename, lineno, line)
        log.write(text.encode())
        log.flush()

    warnings.showwarning = show


def home_paths() -> dict[str, Path]:
    from resources.settings import foundry_home

    home = foundry_home()
    return {
        "home": home,
        "lake": home / "lake",
        "catalog": home / "catalog.duckdb",
        "dagster": dagster_home(),
    }
