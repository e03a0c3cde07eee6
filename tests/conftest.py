"""Shared fixtures: a private FOUNDRY_HOME per test, the bundled sample crawl, and one vLLM
engine for the tests that only talk to the model."""

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


@pytest.fixture(scope="session")
def in_process_model():
    """The packaged model in one in-process vLLM engine (max_model_len 1024) for the whole
    session: starting an engine takes about 25 s. Tests take ``model_copy(update=...)`` of it
    for their sampling settings; the copies share the engine."""
    from resources.rewriter import VLLMRewriter

    rewriter = VLLMRewriter(max_model_len=1024)
    rewriter.engine(), rewriter.tokenizer()  # built here, so that every copy shares them
    yield rewriter
    rewriter.teardown_after_execution(None)
