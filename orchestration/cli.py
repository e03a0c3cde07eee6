"""`foundry`: the things people do outside the web UI."""

from __future__ import annotations

import argparse
import json
import os
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
    trace = commands.add_parser("trace", help="lineage of a document or mixture sample")
    trace.add_argument("doc_id")
    trace.add_argument("--json", action="store_true")
    why = commands.add_parser("why", help="why a raw record (URL or id) is or is not in the mix")
    why.add_argument("url_or_doc_id")
    ui = commands.add_parser("ui", help="start the Dagster web UI (dagster dev)")
    ui.add_argument("--host", default="127.0.0.1", help="bind address (loopback by default)")
    ui.add_argument("--port", type=int, default=3000)
    sql = commands.add_parser("sql", help="run a read-only SQL query on the catalog's views")
    sql.add_argument("query")
    commands.add_parser("prepare-models", help="build the default model caches once")
    args = parser.parse_args(argv)
    return {
        "run": _run,
        "trace": _trace,
        "why": _why,
        "ui": _ui,
        "sql": _sql,
        "prepare-models": _prepare,
    }[args.command](args)


def _run(args: argparse.Namespace) -> int:
    from orchestration.runner import home_paths, run_pipeline

    started = time.perf_counter()
    print(f"crawl: {crawl_dir()}")
    summary = run_pipeline(args.parallel, _load(args.shard_config), _load(args.config))
    paths = home_paths()
    print(f"\nshards: {len(summary.shards)} ({len(summary.failed)} failed: {summary.failed})")
    print(f"corpus stages: {'succeeded' if summary.corpus_ok else 'FAILED'}")
    print(f"time: {time.perf_counter() - started:.0f}s")
    print(f"lake (Parquet):   {paths['lake']}")
    print(f"catalog (DuckDB): {paths['catalog']}   e.g. foundry sql 'SELECT * FROM versions'")
    print(f"mixture shards:   {paths['lake'] / 'training_mixture'}")
    print("web UI:           foundry ui   ->  http://127.0.0.1:3000")
    return 0 if summary.corpus_ok else 1


def _trace(args: argparse.Namespace) -> int:
    from orchestration.lineage import format_trace, trace_document

    result = trace_document(_catalog(), args.doc_id)
    if args.json:
        print(json.dumps({"doc_id": result.doc_id, "steps": result.steps}, default=str, indent=2))
    else:
        print(format_trace(result))
    return 0 if result.steps else 1


def _why(args: argparse.Namespace) -> int:
    from orchestration.lineage import explain

    print("\n".join(explain(_catalog(), args.url_or_doc_id)))
    return 0


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
    return subprocess.call(command, cwd=REPO_ROOT, env=os.environ.copy())


def _sql(args: argparse.Namespace) -> int:
    with _catalog().connect(read_only=True) as con:
        print(con.sql(args.query))
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from resources.models import prepare_smollm2

    print(f"SmolLM2-135M-Instruct: {prepare_smollm2()}")
    return 0


def _catalog():
    """The catalog without importing Dagster, so audit commands answer in well under a second."""
    from resources.catalog import Catalog
    from resources.settings import foundry_home

    return Catalog(foundry_home() / "catalog.duckdb")


def _load(path: Path | None) -> dict | None:
    return json.loads(path.read_text()) if path else None


if __name__ == "__main__":
    sys.exit(main())
