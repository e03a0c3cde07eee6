"""`foundry`: the things people do outside the web UI."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from resources.settings import REPO_ROOT, crawl_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="foundry", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="materialize every stage on FOUNDRY_CRAWL_DIR")
    run.add_argument("--parallel", type=int, default=2, help="shard runs at once")
    run.add_argument("--config", type=Path, help="JSON run config for the corpus-wide job")
    run.add_argument("--shard-config", type=Path, help="JSON run config for the shard job")
    run.add_argument(
        "--force",
        action="store_true",
        help="rebuild every shard and corpus asset, not only what is stale (new crawl files, "
        "changed code or inputs)",
    )
    run.add_argument(
        "--verbose",
        action="store_true",
        help="also stream Dagster's and vLLM's logs here (they always go to the log file)",
    )
    trace = commands.add_parser("trace", help="lineage of a document or mixture sample")
    trace.add_argument("doc_id")
    trace.add_argument("--json", action="store_true")
    trace.add_argument(
        "--mixture",
        metavar="VERSION",
        help="trace through this training_mixture version and the upstream versions its manifest "
        "pins (default: the current mixture)",
    )
    why = commands.add_parser("why", help="why a raw record (URL or id) is or is not in the mix")
    why.add_argument("url_or_doc_id")
    ui = commands.add_parser("ui", help="start the Dagster web UI (dagster dev)")
    ui.add_argument("--host", default="127.0.0.1", help="bind address (loopback by default)")
    ui.add_argument("--port", type=int, default=3000)
    sql = commands.add_parser("sql", help="run a read-only SQL query on the catalog's views")
    sql.add_argument("query")
    commands.add_parser("prepare-models", help="build the default model caches once")
    args = parser.parse_args(argv)
    command = {
        "run": _run,
        "trace": _trace,
        "why": _why,
        "ui": _ui,
        "sql": _sql,
        "prepare-models": _prepare,
    }[args.command]
    if args.command in ("sql", "trace", "why"):
        return _audit(command, args)
    return command(args)


def _run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        shard_config, corpus_config = _load(args.shard_config), _load(args.config)
    except (OSError, ValueError) as exc:
        return _fail(f"cannot read the run config: {exc}")
    from orchestration.console import Console
    from orchestration.runner import home_paths, run_with_progress

    paths = home_paths()
    log = paths["home"] / "logs" / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
    console = Console(tty=False if args.verbose else None)
    console.line(f"crawl: {crawl_dir()}")
    console.line(f"log:   {log}" + ("" if args.verbose else "   (--verbose streams it here)"))
    outcome = run_with_progress(
        args.parallel, shard_config, corpus_config, log, console, args.verbose, args.force
    )
    summary = outcome.summary
    if summary is None:
        if outcome.error != "interrupted":
            _fail(f"the run stopped before it finished: {outcome.error} (full log: {log})")
        return outcome.returncode or 1
    failed = (
        f", {len(summary.failed)} failed: {', '.join(summary.failed)}" if summary.failed else ""
    )
    console.line("")
    console.line(_summary_line(summary, failed))
    console.line(f"time: {_minutes(time.perf_counter() - started)}   log: {log}")
    console.line(f"lake (Parquet):   {paths['lake']}")
    console.line(
        f"catalog (DuckDB): {paths['catalog']}   e.g. foundry sql 'SELECT * FROM versions'"
    )
    console.line(f"mixture shards:   {paths['lake'] / 'training_mixture'}")
    console.line("web UI:           foundry ui   ->  http://127.0.0.1:3000")
    return 0 if summary.corpus_ok else 1


def _summary_line(summary, failed: str) -> str:
    ran = len(summary.shards) - len(summary.current_shards)
    if not ran and not summary.corpus_rebuilt and summary.corpus_ok:
        return (
            f"everything is current: {len(summary.shards)} shards and every corpus asset are "
            "newer than their inputs and code (foundry run --force rebuilds all)"
        )
    shards = f"shards: {ran} of {len(summary.shards)} rebuilt{failed}"
    if summary.current_shards:
        shards += f" ({len(summary.current_shards)} current)"
    if summary.failed:
        corpus = "not run"
    elif not summary.corpus_rebuilt:
        corpus = "all current"
    else:
        state = "succeeded" if summary.corpus_ok else "FAILED"
        corpus = f"{len(summary.corpus_rebuilt)} rebuilt, {state}"
    return f"{shards}; corpus stages: {corpus}"


class UserError(Exception):
    """An error whose message already says what to do; printed as one line."""


def _audit(command, args: argparse.Namespace) -> int:
    """The audit commands report any error in one line that says what to do, never a traceback."""
    try:
        return command(args)
    except UserError as exc:
        return _fail(str(exc))
    except Exception as exc:  # one line, not a traceback
        return _fail(explain_error(exc, getattr(args, "query", "")))


def explain_error(exc: BaseException, query: str = "") -> str:
    """One line for a DuckDB (or other) error, with what to run next."""
    message = str(exc).strip()
    first = message.splitlines()[0] if message else type(exc).__name__
    column = re.match(r'Binder Error: Referenced column "(.+?)" not found', first)
    if column:
        where = _tables(query)
        found = re.search(r"Candidate bindings: (.+)", message)
        candidates = found.group(1).replace('"', "") if found else ""
        table = where[0] if len(where) == 1 else None
        text = f'column "{column.group(1)}" not found in {table or ", ".join(where) or "the query"}'
        if candidates:
            text += f"; candidates: {candidates}"
        return text + f' (run foundry sql "DESCRIBE {table or "<table>"}" for its columns)'
    missing = re.match(r"Catalog Error: (?:Table|View) with name (.+?) does not exist", first)
    if missing:
        text = f'no table or view "{missing.group(1)}" in the catalog'
        guess = re.search(r'Did you mean "(.+?)"', message)
        if guess:
            text += f'; did you mean "{guess.group(1)}"?'
        return text + ' (run foundry sql "SHOW TABLES" for the list)'
    if first.startswith("Parser Error:"):
        return (
            first.removeprefix("Parser Error: ")
            + ' in the SQL (e.g. foundry sql "SELECT * FROM versions LIMIT 5")'
        )
    if "read-only mode" in first:
        return "foundry sql only reads: the pipeline writes the catalog (run foundry run)"
    if first.startswith("IO Error: No files found"):
        return (
            f"{first.removeprefix('IO Error: ')}: files behind a view are gone from the lake "
            "(run foundry run to rebuild them)"
        )
    if type(exc).__name__ == "CatalogLockedError":
        return first
    return f"{type(exc).__name__}: {first}" if not first.startswith(type(exc).__name__) else first


def _tables(query: str) -> list[str]:
    names = re.findall(r'\b(?:FROM|JOIN)\s+"?([A-Za-z_][\w.]*)"?', query, flags=re.IGNORECASE)
    return list(dict.fromkeys(n for n in names if n.lower() not in ("read_parquet", "select")))


def _trace(args: argparse.Namespace) -> int:
    from orchestration.lineage import UnknownMixtureError, format_trace, trace_document

    try:
        result = trace_document(_catalog(), args.doc_id, mixture=args.mixture)
    except UnknownMixtureError as exc:
        raise UserError(str(exc)) from exc
    if args.json:
        payload = {"doc_id": result.doc_id, "versions": result.versions, "steps": result.steps}
        print(json.dumps(payload, default=str, indent=2))
    else:
        print(format_trace(result))
    return 0 if result.steps else 1


def _why(args: argparse.Namespace) -> int:
    from orchestration.lineage import explain

    lines = explain(_catalog(), args.url_or_doc_id)
    print("\n".join(lines))
    return 1 if lines and lines[0].endswith("no raw record has this URL or id") else 0


def _ui(args: argparse.Namespace) -> int:
    from orchestration.runner import ensure_instance

    ensure_instance()
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-w",
        str(REPO_ROOT / "workspace.yaml"),
        "-h",
        args.host,
        "-p",
        str(args.port),
    ]
    # dagster dev starts the webserver, the daemon and code servers, and the daemon's runs; all
    # stay in the session started here, so stopping that one group stops everything.
    proc = subprocess.Popen(command, cwd=REPO_ROOT, env=os.environ.copy(), start_new_session=True)
    stop = {"signal": 0}

    def on_signal(signum: int, frame: object) -> None:
        stop["signal"] = signum

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    while proc.poll() is None and not stop["signal"]:
        time.sleep(0.2)
    if stop["signal"]:
        print("\nstopping dagster dev and everything it started ...", file=sys.stderr)
    stop_group(proc.pid)
    proc.wait()
    return 128 + stop["signal"] if stop["signal"] else proc.returncode


def stop_group(leader: int, grace_s: float = 5.0) -> None:
    """SIGTERM to a process group and to every descendant of its leader, SIGKILL to whatever is
    left after ``grace_s``. Descendants are collected first, so that a process that moved into
    a session of its own is not missed."""
    family = [leader, *_descendants(leader)]
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 2.0)):
        _signal_all(leader, family, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and _alive(leader, family):
            time.sleep(0.1)
        if not _alive(leader, family):
            return


def _signal_all(leader: int, family: list[int], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(leader, sig)
    for pid in family:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _alive(leader: int, family: list[int]) -> bool:
    try:
        os.killpg(leader, 0)
        return True
    except (ProcessLookupError, PermissionError):
        pass
    return any(_running(pid) for pid in family)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc; empty where there is none)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


# Statements that change a database: the catalog is opened read-only, but its views are TEMP
# views of the connection, which DuckDB would let a DROP or CREATE OR REPLACE change.
_WRITES = {"CREATE", "DROP", "INSERT", "UPDATE", "DELETE", "ALTER", "MERGE_INTO", "VACUUM"}


def _sql(args: argparse.Namespace) -> int:
    import duckdb

    if any(s.type.name in _WRITES for s in duckdb.extract_statements(args.query)):
        raise UserError("foundry sql only reads: the pipeline writes the catalog (run foundry run)")
    with _catalog().connect(read_only=True) as con:
        try:
            result = con.sql(args.query)
        except duckdb.CatalogException as exc:
            raise UserError(_missing_table(exc, con.view_names())) from exc
        if result is not None:
            print(result)
    return 0


def _missing_table(exc: Exception, views: list[str]) -> str:
    """Views are defined when a query names one, so DuckDB cannot suggest them: we do."""
    import difflib

    first = str(exc).splitlines()[0]
    if not views:
        message = first.removeprefix("Catalog Error: ")
        return f"{message} the catalog has no tables yet: run foundry run first"
    missing = re.match(r"Catalog Error: (?:Table|View) with name (.+?) does not exist", first)
    if not missing:
        return explain_error(exc)
    text = f'no table or view "{missing.group(1)}" in the catalog'
    guess = difflib.get_close_matches(missing.group(1), [*views, "versions"], n=1)
    if guess:
        text += f'; did you mean "{guess[0]}"?'
    return text + ' (run foundry sql "SHOW TABLES" for the list)'


def _prepare(args: argparse.Namespace) -> int:
    from resources.models import prepare_smollm2

    print(f"SmolLM2-135M-Instruct: {prepare_smollm2()}")
    return 0


def _catalog():
    """The catalog without importing Dagster, so audit commands answer in well under a second."""
    from resources.catalog import Catalog
    from resources.settings import foundry_home

    path = foundry_home() / "catalog.duckdb"
    if not path.exists():
        raise UserError(
            f"no catalog at {path}: run foundry run first (or set FOUNDRY_HOME to the home "
            "that holds one)"
        )
    return Catalog(path, index_dir=_doc_index_dir(path.parent))


def _doc_index_dir(home: Path) -> Path | None:
    """Where Lake keeps its doc index (resources/lake.py): none for a lake on object storage."""
    from resources.catalog import DOC_INDEX

    url = os.environ.get("FOUNDRY_LAKE_URL", "")
    if not url:
        return home / "lake" / DOC_INDEX
    if "://" in url and not url.startswith("file://"):
        return None
    return Path(os.path.abspath(url.removeprefix("file://"))) / DOC_INDEX


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _minutes(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def _load(path: Path | None) -> dict | None:
    return json.loads(path.read_text()) if path else None


if __name__ == "__main__":
    sys.exit(main())
