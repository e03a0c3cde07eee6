"""Where the pipeline reads crawls and keeps its state, set by environment, never by code edits."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CRAWL_DIR = REPO_ROOT / "data" / "sample_crawl"


def foundry_home() -> Path:
    """FOUNDRY_HOME holds the lake, the DuckDB catalog and the Dagster instance."""
    return Path(os.environ.get("FOUNDRY_HOME") or REPO_ROOT / ".foundry").resolve()


def crawl_dir() -> str:
    """FOUNDRY_CRAWL_DIR is a local folder or an fsspec URL of crawl shards."""
    value = os.environ.get("FOUNDRY_CRAWL_DIR") or str(SAMPLE_CRAWL_DIR)
    return value if "://" in value else str(Path(value).resolve())


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or foundry_home() / "dagster")
