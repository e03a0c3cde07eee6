"""Progress lines: throttled, with counts, rate and time left, and figures for the metadata."""

from __future__ import annotations

import logging

import pytest

from assets.progress import Progress


def test_progress_reports_counts_rate_and_time_left(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("foundry.test")
    with caplog.at_level(logging.INFO, logger="foundry.test"):
        progress = Progress(log, "rewrites", total=10, every_s=0.0)
        progress.advance(4)
        figures = progress.finish()
    first, last = caplog.messages
    assert first.startswith("rewrites: 4/10 (40%)") and "/s, about" in first
    assert last.startswith("rewrites: 4 done in")
    assert figures["rewrites_done"] == 4 and figures["rewrites_per_s"] > 0


def test_progress_is_throttled(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("foundry.test")
    with caplog.at_level(logging.INFO, logger="foundry.test"):
        progress = Progress(log, "embedded", every_s=3600)
        for _ in range(1000):
            progress.advance()
    assert caplog.messages == [], "no line per item"
    assert progress.line().startswith("embedded: 1000 in")
