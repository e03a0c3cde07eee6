"""Shared fixtures: a private FOUNDRY_HOME per test, and the bundled sample crawl."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CRAWL = REPO / "data" / "sample_crawl"
SECOND_CRAWL = REPO / "tests" / "data" / "second_crawl"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


@pytest.fixture
def foundry_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "foundry"
    monkeypatch.setenv("FOUNDRY_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    return home
