"""Extraction quality on real pages (issue #17): normalized text, no page lost to an extractor
setting, bounds that do not depend on machine load, a selectable faster extractor, and the
benchmark's scoring. The pages and their licences are in tests/data/extraction_pages/."""

from __future__ import annotations

import gzip
import io
import multiprocessing
import signal
import time
from pathlib import Path

import pytest
import trafilatura
from trafilatura.deduplication import LRUCache
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from assets.raw import extract as extract_module
from assets.raw.boilerplate import BoilerplateLines
from assets.raw.extract import (
    RESILIPARSE_EXTRACTOR,
    TRAFILATURA_DEFAULT,
    TRAFILATURA_PRECISION,
    ExtractedText,
    ExtractionSettings,
    decode_html,
    extract_text,
    iter_documents,
)
from assets.raw.ingest import document_row, ingest_shard
from assets.raw.normalize import drop_title_line, normalize_text
from assets.raw.readers import read_shard
from assets.raw.records import Quarantined, RawRecord
from benchmarks.bench_extraction import TARGET_F1, load_benchmark, page_counts, run, score

DATA = Path(__file__).resolve().parents[1] / "data"
PAGES = DATA / "extraction_pages"
APT_DOC = DATA / "second_crawl" / "apt-doc.warc.gz"
APPLEINSIDER = "aeb-65bf3048b500"  # one text block: trafilatura's deduplicate drops it all
BARRONS = "aeb-f8ff621a0b9b"  # favor_precision keeps only the reprint notice


def _page(name: str) -> bytes:
    return gzip.decompress((PAGES / f"{name}.html.gz").read_bytes())


def _python_page(name: str) -> bytes:
    return _page(f"python-3.11-library-{name}")


def _record(html: bytes, offset: int = 0, url: str | None = None) -> RawRecord:
    return RawRecord("pages", offset, None, url, None, "text/html", 200, html, "html", "utf-8")


def _write_warc(path: Path, pages: list[tuple[str, bytes]]) -> Path:
    with path.open("wb") as out:
        writer = WARCWriter(out, gzip=True)
        for url, html in pages:
            headers = StatusAndHeaders(
                "200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.0"
            )
            record = writer.create_warc_record(
                url, "response", payload=io.BytesIO(html), http_headers=headers
            )
            writer.write_record(record)
    return path


# ------------------------------------------------------------------------------ normalization


def test_normalize_strips_lines_drops_blank_layout_and_keeps_paragraph_breaks() -> None:
    raw = "\n\n\tTitle  \n\t\t\n\t\tWarum hat APT\u00a0\n \n\n\n\nNext paragraph\n\t\n"
    assert normalize_text(raw) == "Title\nWarum hat APT\n\nNext paragraph"
    assert normalize_text(" \t\n\n") == ""
    assert normalize_text("one\r\ntwo") == "one\ntwo"


def test_title_line_goes_only_when_it_repeats_the_recorded_title() -> None:
    text = "Home Depot Stock Is Falling\nShares of Home Depot fell."
    title = "Home Depot Stock Is Falling | Barron's"
    assert drop_title_line(text, title) == "Shares of Home Depot fell."
    assert drop_title_line(text, "Another page") == text
    assert drop_title_line("Home Depot Stock Is Falling", title) == "Home Depot Stock Is Falling"
    assert drop_title_line("News\nBody text here.", "News | Site") == "News\nBody text here."


def test_real_docbook_pages_have_no_whitespace_only_or_indented_lines() -> None:
    """apt-doc's DocBook pages hold tab-indented text; trafilatura returns "\\t"-only lines."""
    raw_with_blank_layout = 0
    ours = {
        record.source_offset: extracted
        for record, extracted in (i for i in iter_documents(str(APT_DOC)) if isinstance(i, tuple))
    }
    assert len(ours) >= 90
    for record in read_shard(str(APT_DOC)):
        if not isinstance(record, RawRecord) or record.payload_kind != "html":
            continue
        raw = trafilatura.extract(
            decode_html(record.payload, record.charset), favor_precision=True, deduplicate=False
        )
        lines = (raw or "").split("\n")
        raw_with_blank_layout += any(line and not line.strip() for line in lines)
        extracted = ours[record.source_offset]
        for line in extracted.text.split("\n"):
            assert line == line.strip(), (record.url, line)
        assert "\n\n\n" not in extracted.text
        alone = extract_text(record)  # without the shard's boilerplate removal
        if alone.extractor == TRAFILATURA_PRECISION:  # the same words: only the layout went
            assert alone.text == drop_title_line(normalize_text(raw or ""), alone.title)
    assert raw_with_blank_layout >= 5  # the defect is real on these pages


def test_plain_text_records_are_normalized_too() -> None:
    record = RawRecord("f.jsonl", 0, None, None, None, "text/plain", None, "\tA\n\t\t\nB\n", "text")
    result = extract_text(record)
    assert isinstance(result, ExtractedText) and result.text == "A\nB"


# ------------------------------------------------------------------ no page lost to a setting


def test_a_page_that_deduplicate_discards_is_kept() -> None:
    """The AppleInsider review is one text block: trafilatura's deduplicate discards it."""
    html = _page(APPLEINSIDER)
    fresh = trafilatura.extract(
        html.decode(), favor_precision=True, deduplicate=LRUCache(maxsize=4096)
    )
    assert not fresh  # the defect, with a cache that never saw another page
    result = extract_text(_record(html))
    assert isinstance(result, ExtractedText) and len(result.text) > 15_000
    assert "16-inch MacBook Pro" in result.text


def test_precision_picking_the_wrong_block_falls_back_to_the_default() -> None:
    """On the Barron's page favor_precision keeps only the 260-character reprint notice."""
    html = _page(BARRONS).decode()
    precise = trafilatura.extract(html, favor_precision=True, include_comments=False)
    assert len(precise) < 300 and "reprint" in precise.lower()
    result = extract_text(_record(html.encode()))
    assert isinstance(result, ExtractedText) and result.extractor == TRAFILATURA_DEFAULT
    assert "Home Depot (ticker: HD) reported $2.53 in per-share earnings" in result.text
    assert len(result.text) > 10 * len(precise)


def test_a_good_precise_extraction_is_kept_and_labelled() -> None:
    result = extract_text(_record(_python_page("decimal")))
    assert isinstance(result, ExtractedText) and result.extractor == TRAFILATURA_PRECISION


def test_the_same_page_crawled_four_times_keeps_its_text_every_time(tmp_path: Path) -> None:
    """FineWeb's shard-wide deduplicate quarantined the fourth copy: its only text was seen."""
    html = _page(APPLEINSIDER)
    shard = _write_warc(tmp_path / "copies.warc.gz", [(f"https://a/{i}", html) for i in range(4)])
    docs = [item for item in iter_documents(str(shard)) if isinstance(item, tuple)]
    assert len(docs) == 4 and len({extracted.text for _, extracted in docs}) == 1


def test_boilerplate_lines_go_after_three_other_pages_but_never_a_page_s_own_text() -> None:
    notice = "This copy is for your personal, non-commercial use only. " * 3
    index = BoilerplateLines()
    pages = [f"Article {i} " + "body words " * 20 + f"\n{notice}" for i in range(5)]
    results = [index.apply(page) for page in pages]
    assert [r.removed_lines for r in results] == [0, 0, 0, 1, 1]
    assert notice not in results[3].text and results[3].text.startswith("Article 3")
    # a page that is mostly lines seen on other pages keeps its text whole
    assert index.apply(notice).text == notice
    # repeats inside one page count once: the page's own repetition is not boilerplate
    own = "A line that this page repeats many times over, long enough to be checked at all."
    assert BoilerplateLines().apply("\n".join([own * 2] * 6)).removed_lines == 0


# ------------------------------------------------------------------ bounds independent of load


def test_a_1mb_documentation_page_passes_the_bounds() -> None:
    """stdtypes.html: 706 KB, 17,000 elements, ~1.2 s of CPU; a 1 s wall-clock limit lost it."""
    started = time.process_time()
    result = extract_text(_record(_python_page("stdtypes")))
    cpu = time.process_time() - started
    assert isinstance(result, ExtractedText), getattr(result, "detail", None)
    assert "str.startswith" in result.text or "startswith" in result.text
    assert cpu < ExtractionSettings().max_cpu_s / 2  # the bound is generous


def test_cpu_budget_counts_cpu_time_not_waiting() -> None:
    with extract_module._cpu_budget(0.2):
        time.sleep(0.5)  # half a second of wall-clock time, no CPU time: not over budget
    with pytest.raises(extract_module._OverBudget), extract_module._cpu_budget(0.2):
        started = time.process_time()
        while time.process_time() - started < 5:
            pass


def test_cpu_budget_quarantines_and_leaves_wall_clock_timers_alone() -> None:
    page = "<div><p>" + "many words here " * 40 + "</p></div>"
    html = f"<html><body>{page * 3000}</body></html>".encode()
    saved_timer = signal.getitimer(signal.ITIMER_REAL)  # pytest-timeout's, if it runs
    outer_handler = signal.signal(signal.SIGALRM, signal.default_int_handler)
    signal.setitimer(signal.ITIMER_REAL, 600)  # an outer watchdog timer
    prof_handler = signal.getsignal(signal.SIGPROF)
    try:
        result = extract_text(_record(html), settings=ExtractionSettings(max_cpu_s=0.001))
        assert isinstance(result, Quarantined) and result.reason == "extraction_timeout"
        assert "CPU" in result.detail
        assert signal.getsignal(signal.SIGALRM) is signal.default_int_handler
        assert 590 < signal.getitimer(signal.ITIMER_REAL)[0] <= 600
        assert signal.getsignal(signal.SIGPROF) == prof_handler
        assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)
    finally:
        signal.signal(signal.SIGALRM, outer_handler)
        signal.setitimer(signal.ITIMER_REAL, *saved_timer)


def test_tree_size_bound_is_deterministic() -> None:
    html = ("<html><body>" + "<p>a word</p>" * 2000 + "</body></html>").encode()
    settings = ExtractionSettings(max_tree_elements=1000, max_cpu_s=None)
    results = {extract_text(_record(html), settings=settings) for _ in range(2)}
    (result,) = results
    assert isinstance(result, Quarantined) and result.reason == "extraction_timeout"
    assert "1000 elements" in result.detail


def _spin(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


def _outcomes(path: Path) -> list[tuple[int, str, str]]:
    return [
        (item.source_offset, item.reason, item.detail)
        if isinstance(item, Quarantined)
        else (item[0].source_offset, item[1].extractor, item[1].text)
        for item in iter_documents(str(path))
    ]


def test_a_shard_gives_the_same_text_on_an_idle_and_on_a_busy_machine(tmp_path: Path) -> None:
    """The library pages that a 1 s wall-clock timeout lost only under load (0.4-0.5 s of CPU
    each), extracted idle and with both cores busy."""
    pages = [
        (f"https://docs.python.org/3.11/library/{name}.html", _python_page(name))
        for name in ("datetime", "decimal")
    ]
    shard = _write_warc(tmp_path / "python-docs.warc.gz", pages)
    idle = _outcomes(shard)
    assert [kind for _, kind, _ in idle] == [TRAFILATURA_PRECISION] * 2
    context = multiprocessing.get_context("spawn")
    hogs = [context.Process(target=_spin, args=(60,), daemon=True) for _ in range(2)]
    for hog in hogs:
        hog.start()
    try:
        busy = _outcomes(shard)
    finally:
        for hog in hogs:
            hog.terminate()
            hog.join()
    assert busy == idle


# --------------------------------------------------------------------- the faster extractor


def test_resiliparse_is_selectable_and_recorded_in_the_extractor_column() -> None:
    settings = ExtractionSettings(extractor="resiliparse")
    record = _record(_python_page("decimal"), url="https://docs.python.org/3/library/decimal.html")
    result = extract_text(record, settings=settings)
    assert isinstance(result, ExtractedText) and result.extractor == RESILIPARSE_EXTRACTOR
    assert "decimal" in result.text and result.title
    assert all(line == line.strip() for line in result.text.split("\n"))
    row = document_row("shard-1", record, result)
    assert row["extractor"] == RESILIPARSE_EXTRACTOR and row["text"] == result.text


def test_unknown_extractor_is_refused() -> None:
    with pytest.raises(ValueError, match="extractor must be one of"):
        ExtractionSettings(extractor="boilerpipe")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- benchmark scoring


def test_benchmark_score_follows_the_benchmark_s_definition() -> None:
    truth = "one two three four five six"
    assert page_counts(truth, truth) == (1.0, 0.0, 0.0)
    assert page_counts(truth, "") == (0.0, 0.0, 1.0)
    tp, fp, fn = page_counts(truth, "one two three four five six seven")
    assert (tp, fp, fn) == pytest.approx((3 / 4, 1 / 4, 0.0))
    figures = score(
        {"a": {"articleBody": truth}, "b": {"articleBody": truth}}, {"a": truth, "b": ""}
    )
    # an empty prediction has no precision to average, and zero recall
    assert figures["precision"] == 1.0 and figures["recall"] == 0.5


def test_vendored_benchmark_loads_with_its_ground_truth() -> None:
    pages, truth = load_benchmark()
    assert len(pages) == len(truth) == 181
    assert all(page.lstrip()[:1] == b"<" for page in pages.values())


def test_the_raw_stage_meets_the_benchmark_s_quality_targets() -> None:
    """The 181 real pages of the ScrapingHub benchmark, one pass (speed is the benchmark's):
    F1 at the target and at least trafilatura's defaults, no page left empty that trafilatura's
    defaults extract, and each pass of the stage gives the same text."""
    figures = run(sides=("project", "trafilatura"), repeats=1)
    project, defaults = figures["project"], figures["trafilatura"]
    assert project["f1"] >= TARGET_F1 and project["f1"] >= defaults["f1"], figures
    assert project["empty_where_trafilatura_has_text"] == 0, figures


class _Rows:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def append(self, row: dict) -> None:
        self.rows.append(row)


def test_ingest_records_the_chosen_extractor_per_document() -> None:
    documents, dropped = _Rows(), _Rows()
    settings = ExtractionSettings(extractor="resiliparse")
    counts = ingest_shard(str(APT_DOC), "apt-doc", documents, dropped, settings=settings)
    assert counts.documents == len(documents.rows) > 90
    assert (
        counts.records
        == counts.documents + counts.quarantined
        == counts.documents + len(dropped.rows)
    )
    assert {row["extractor"] for row in documents.rows} == {RESILIPARSE_EXTRACTOR}
    assert counts.extractors == {RESILIPARSE_EXTRACTOR: counts.documents}
