"""The `foundry` command line: one-line errors, progress lines read from Dagster's event log, logs
kept off the terminal unless --verbose, and a `foundry ui` that stops everything on SIGTERM."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import httpx
import polars as pl
import pytest

from orchestration import runner
from orchestration.cli import main
from orchestration.console import Console, EventFormatter, _Run, live_text
from resources.catalog import Catalog, TableVersion
from tests.conftest import REPO

# ---------------------------------------------------------------------------- one-line errors


@pytest.fixture
def small_catalog(foundry_home: Path) -> Path:
    """A real catalog with one current version of cleaned_documents (and its view)."""
    part = foundry_home / "lake" / "cleaned_documents" / "s1" / "v1" / "documents.parquet"
    part.parent.mkdir(parents=True)
    pl.DataFrame(
        {"doc_id": ["d1", "d2"], "language": ["en", "de"], "language_score": [0.9, 0.8]}
    ).write_parquet(part)
    table = TableVersion("cleaned_documents", "s1", "v1", "documents", str(part), 2)
    Catalog(foundry_home / "catalog.duckdb").register([table], "run-1", "1")
    return part


def one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    return err.strip()


def test_sql_with_a_misspelt_column_says_which_columns_exist(
    small_catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = one_error_line(capsys, ["sql", "SELECT langauge_score FROM cleaned_documents"])
    assert 'column "langauge_score" not found in cleaned_documents' in line
    assert "candidates: language_score" in line
    assert 'foundry sql "DESCRIBE cleaned_documents"' in line


def test_sql_with_a_misspelt_table_suggests_the_right_one(
    small_catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = one_error_line(capsys, ["sql", "SELECT * FROM cleaned_document"])
    assert 'did you mean "cleaned_documents"' in line and "SHOW TABLES" in line


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELEC 1", "syntax error"),
        ("DELETE FROM versions", "foundry sql only reads"),
    ],
)
def test_other_sql_errors_are_one_line(
    small_catalog: Path, capsys: pytest.CaptureFixture[str], query: str, expected: str
) -> None:
    assert expected in one_error_line(capsys, ["sql", query])


def test_sql_answers_on_the_small_catalog(
    small_catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sql", "SELECT count(*) AS n FROM cleaned_documents"]) == 0
    assert "2" in capsys.readouterr().out


def test_a_view_whose_files_are_gone_is_one_line(
    small_catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small_catalog.unlink()
    line = one_error_line(capsys, ["sql", "SELECT * FROM cleaned_documents"])
    assert "run foundry run" in line


@pytest.mark.parametrize(
    "argv", [["sql", "SELECT * FROM versions"], ["trace", "abc"], ["why", "https://x.org/"]]
)
def test_audit_commands_without_a_catalog_say_to_run_first(
    foundry_home: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    line = one_error_line(capsys, argv)
    assert "no catalog at" in line and "run foundry run first" in line
    assert not (foundry_home / "catalog.duckdb").exists(), "a lookup creates nothing"


def test_trace_of_an_unknown_mixture_version_says_how_to_list_them(
    small_catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = one_error_line(capsys, ["trace", "--mixture", "v-none", "d1"])
    assert "no training_mixture version 'v-none'" in line and "foundry sql" in line


def test_why_of_an_unknown_document_says_so_in_one_line(
    small_catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["why", "https://nowhere.example/"]) == 1
    out = capsys.readouterr()
    assert out.out.strip().endswith("no raw record has this URL or id") and not out.err
    assert out.out.count("\n") == 1


def test_the_console_script_prints_no_traceback(small_catalog: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "sql", "SELECT nope FROM cleaned_documents"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.startswith('error: column "nope" not found') and "Traceback" not in (
        done.stderr
    )
    assert done.stderr.count("\n") == 1


# --------------------------------------------------------- progress from real Dagster events

SHARDS = dg.StaticPartitionsDefinition(["shard-a"])


@dg.asset(
    partitions_def=SHARDS,
    check_specs=[dg.AssetCheckSpec("books_balance", asset="raw_documents")],
)
def raw_documents(context):
    from assets.progress import Progress

    progress = Progress(context.log, "rewrites", total=4, every_s=0.0)
    progress.advance(2)
    yield dg.MaterializeResult(metadata={"records": 5, "compute_s": 0.25})
    yield dg.AssetCheckResult(
        check_name="books_balance",
        passed=True,
        metadata={"rows_in": 5, "kept": 3, "dropped": 2},
    )


@dg.asset
def duplicate_clusters() -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={"rows_in": 1200, "kept": 1150, "dropped": 50, "compute_s": 1.5}
    )


@dg.asset(deps=[duplicate_clusters])
def training_mixture() -> None:
    raise ValueError("token budget 0 is below one document\nsecond line of detail")


@dg.asset(deps=[training_mixture])
def after_mixture() -> None:
    pass


def test_watcher_turns_a_sessions_runs_into_one_line_per_shard_and_step(
    foundry_home: Path,
) -> None:
    instance = runner.ensure_instance()
    tags = {runner.SESSION_TAG: "s-1"}
    dg.materialize([raw_documents], instance=instance, partition_key="shard-a", tags=tags)
    dg.materialize(
        [duplicate_clusters, training_mixture, after_mixture],
        instance=instance,
        tags=tags,
        raise_on_error=False,
    )
    dg.materialize([duplicate_clusters], instance=instance)  # not this session's: not shown

    watcher = runner.RunWatcher(instance, "s-1")
    lines = watcher.poll()
    assert watcher.poll() == [], "each event is read once"
    shard, dedup, failed, skipped = lines
    assert shard.split()[:5] == ["shard-a", "raw", "3", "kept/2", "dropped,"], shard
    assert dedup.split()[:8] == [
        "duplicate_clusters",
        "1,200",
        "rows",
        "in,",
        "1,150",
        "kept,",
        "50",
        "dropped,",
    ], dedup
    assert failed.split()[:2] == ["training_mixture", "FAILED"]
    assert failed.endswith("ValueError: token budget 0 is below one document"), failed
    assert skipped.split()[:2] == ["after_mixture", "skipped"]
    shard_run = next(r for r in watcher.formatter.runs.values() if r.partition == "shard-a")
    assert shard_run.steps["raw_documents"].progress.startswith("rewrites: 2/4 (50%), ")
    assert watcher.formatter.running(time.time()) == [], "nothing runs any more"


def test_live_text_names_the_running_step_and_its_progress() -> None:
    formatter = EventFormatter()
    formatter.runs["r"] = _Run("r", None)
    running = formatter.runs["r"].step("rephrased_documents")
    running.started, running.progress = 100.0, "rewrites: 40/100 (40%), 1.2/s, about 50s left"
    text = live_text(formatter, started=10.0, now=170.0, shards=0)
    assert text == (
        "2m40s | rephrased_documents 1m10s: rewrites: 40/100 (40%), 1.2/s, about 50s left"
    )


def test_console_without_a_tty_prints_the_live_line_only_after_a_quiet_spell() -> None:
    out = io.StringIO()
    console = Console(out, quiet_s=0.2, tty=False)
    console.line("crawl: x")
    for _ in range(5):
        console.live("rephrased_documents 3s")  # right after a line: nothing
    assert out.getvalue() == "crawl: x\n"
    time.sleep(0.25)
    console.live("rephrased_documents 4s")
    console.live("rephrased_documents 4s")
    assert out.getvalue().splitlines() == ["crawl: x", "  ... rephrased_documents 4s"]


def test_console_on_a_tty_rewrites_one_line_in_place() -> None:
    out = io.StringIO()
    console = Console(out, tty=True)
    console.live("step 1s")
    console.live("step 2s")
    console.line("step done")
    assert out.getvalue() == "\r\033[Kstep 1s\r\033[Kstep 2s\r\033[Kstep done\n"


# -------------------------------------------------------- quiet by default, --verbose streams

NOISY_WORKER = """
import json, os, subprocess, sys
from pathlib import Path
import dagster as dg
from orchestration.runner import SESSION_TAG, ensure_instance

request = json.loads(Path(sys.argv[1]).read_text())
print("NOISE from the worker's stdout", flush=True)
print("NOISE from the worker's stderr", file=sys.stderr, flush=True)
subprocess.run([sys.executable, "-c", "import os; os.write(2, b'NOISE from a grandchild\\\\n')"])

@dg.asset
def duplicate_clusters():
    return dg.MaterializeResult(metadata={"rows_in": 3, "kept": 2, "dropped": 1})

dg.materialize([duplicate_clusters], instance=ensure_instance(),
               tags={SESSION_TAG: request["session"]})
Path(request["summary"]).write_text(json.dumps(
    {"shards": ["a"], "failed": [], "corpus_ok": True}))
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_logs_go_to_the_file_and_only_verbose_streams_them(
    foundry_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    verbose: bool,
) -> None:
    monkeypatch.setattr(runner, "WORKER", NOISY_WORKER)
    log = foundry_home / "logs" / "run.log"
    console = Console(io.StringIO(), tty=False)
    outcome = runner.run_with_progress(1, None, None, log, console, verbose=verbose)
    assert outcome.summary is not None and outcome.summary.corpus_ok
    shown = console.stream.getvalue()
    assert shown.split()[:3] == ["duplicate_clusters", "3", "rows"], shown
    terminal = capfd.readouterr()
    logged = log.read_text()
    for noise in ("the worker's stdout", "the worker's stderr", "a grandchild"):
        assert f"NOISE from {noise}" in logged
        assert (f"NOISE from {noise}" in terminal.out + terminal.err) == verbose
    assert "DEBUG" in logged or "STEP_SUCCESS" in logged, "Dagster's event stream is logged"


def test_a_worker_that_dies_early_says_why_in_one_line(
    foundry_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "WORKER", "raise RuntimeError('No crawl shards found in /x')")
    log = foundry_home / "logs" / "run.log"
    outcome = runner.run_with_progress(1, None, None, log, Console(io.StringIO(), tty=False))
    assert outcome.summary is None and outcome.returncode != 0
    assert outcome.error == "RuntimeError: No crawl shards found in /x"


# ------------------------------------------------------------------ foundry ui stops cleanly

UI_STARTUP_S = 240
LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found += [child]
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_foundry_ui_stops_everything_it_started(tmp_path: Path, stop: signal.Signals) -> None:
    port, log = free_port(), tmp_path / "ui.log"
    env = {
        **os.environ,
        "FOUNDRY_HOME": str(tmp_path / "foundry"),
        "DAGSTER_HOME": str(tmp_path / "foundry" / "dagster"),
        "HF_HUB_OFFLINE": "1",
    }
    command = [sys.executable, "-m", "orchestration.cli", "ui", "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    started: list[int] = []
    try:
        deadline = time.monotonic() + UI_STARTUP_S
        while True:  # the webserver answers and the code server has loaded the definitions
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                body = httpx.post(
                    f"http://127.0.0.1:{port}/graphql", json={"query": LOCATIONS}, timeout=5
                ).json()
                entries = body["data"]["workspaceOrError"]["locationEntries"]
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    break
            except (httpx.HTTPError, KeyError, TypeError, ValueError):
                pass
            time.sleep(1)
        started = descendants(proc.pid)
        assert len(started) >= 3, "dagster dev, its webserver, daemon and code server"

        stop_asked = time.monotonic()
        proc.send_signal(stop)  # to the wrapper only, as a service manager or a terminal would
        proc.wait(timeout=15)
        while time.monotonic() - stop_asked < 10 and (
            port_open(port) or any(alive(pid) for pid in started)
        ):
            time.sleep(0.2)
        assert not port_open(port), "the port is still served"
        assert [pid for pid in started if alive(pid)] == [], "processes left behind"
        assert time.monotonic() - stop_asked < 12
    finally:
        for pid in [proc.pid, *started, *descendants(proc.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
