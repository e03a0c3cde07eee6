"""The web UI and the GraphQL API against a real `foundry ui` (dagster dev: webserver + daemon).

One server for the module, on a free loopback port, with its own FOUNDRY_HOME and a crawl folder
of two five-page sample shards. dagster dev rather than the bare webserver, as users run it: the
instance's default QueuedRunCoordinator and backfills both need the daemon. The browser is Debian's
headless Chromium driven by Playwright (never a browser that Playwright downloads).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import httpx
import pytest
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError
from playwright.sync_api import Page, expect, sync_playwright

from orchestration.jobs import STAGE_ASSET_NAMES
from resources.catalog import Catalog
from tests.conftest import REPO
from tests.tiny_crawl import tiny_shard

CHROMIUM = (
    os.environ.get("FOUNDRY_CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
    or "/usr/bin/chromium"
)
SHARDS = ("debian-faq-en.warc.gz", "debian-faq-de.warc.gz")
GROUPS = ("raw", "cleaned", "rephrased", "clustered", "scored", "mixed")
STARTUP_S = 180
RUN_S = 240

ADD_PARTITION = """
mutation Add($repo: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $repo, partitionsDefName: $name, partitionKey: $key) {
    __typename
  }
}"""
LOCATIONS = """
{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on RepositoryLocation { repositories { name } } } } } } }
"""


@dataclass
class Server:
    url: str
    port: int
    home: Path
    location: str
    repository: str
    log: Path

    def graphql(self, query: str, **variables: object) -> dict:
        response = httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables})
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home / "dagster"))

    def wait_for_runs(self, tags: dict[str, str], count: int) -> list[dg.DagsterRun]:
        """The runs with these tags, once `count` of them exist and all have ended."""
        instance = self.instance()
        deadline = time.monotonic() + RUN_S
        while True:
            runs = instance.get_runs(filters=dg.RunsFilter(tags=tags))
            if len(runs) >= count and all(run.is_finished for run in runs):
                return list(runs)
            assert time.monotonic() < deadline, f"runs {tags}: {[r.status for r in runs]}"
            time.sleep(2)

    def failures(self, run_ids: list[str]) -> str:
        """Why runs failed, from their event logs: the assertion message a red CI needs."""
        instance = self.instance()
        lines = []
        for run_id in run_ids:
            for entry in instance.all_logs(run_id):
                data = entry.dagster_event.event_specific_data if entry.dagster_event else None
                error = getattr(data, "error", None)
                if error is not None:
                    lines.append(f"{run_id} {entry.step_key or ''}: {error.to_string()[-1500:]}")
        return "\n".join(lines) or self.log.read_text()[-3000:]

    def run_ids(self, asset: str, partition: str) -> set[str]:
        """Runs that published a version of the asset's partition with documents in it."""
        with Catalog(self.home / "catalog.duckdb").connect(read_only=True) as con:
            rows = con.execute(
                "SELECT run_id FROM versions WHERE asset = ? AND partition = ? "
                "AND table_name = 'documents' AND row_count > 0",
                [asset, partition],
            ).fetchall()
        return {row[0] for row in rows}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_location(url: str, log: Path, proc: subprocess.Popen) -> tuple[str, str]:
    """Block until the server answers and the code location has loaded; its selector."""
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            body = httpx.post(f"{url}/graphql", json={"query": LOCATIONS}, timeout=10).json()
            for entry in body["data"]["workspaceOrError"]["locationEntries"]:
                loaded = entry["locationOrLoadError"] or {}
                assert loaded.get("__typename") != "PythonError", loaded
                if entry["loadStatus"] == "LOADED" and loaded.get("repositories"):
                    return entry["name"], loaded["repositories"][0]["name"]
        except (httpx.HTTPError, KeyError, TypeError, ValueError):
            pass
        time.sleep(1)
    raise TimeoutError(f"dagster dev did not load in {STARTUP_S}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("ui")
    crawl, home = root / "crawl", root / "foundry"
    crawl.mkdir()
    for name in SHARDS:
        tiny_shard(name, crawl)
    port, log = free_port(), root / "dagster-dev.log"
    env = {
        **os.environ,
        "FOUNDRY_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "FOUNDRY_CRAWL_DIR": str(crawl),
        "HF_HUB_OFFLINE": "1",
    }
    command = [sys.executable, "-m", "orchestration.cli", "ui", "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}"
        location, repository = wait_for_location(url, log, proc)
        server = Server(url, port, home, location, repository, log)
        selector = {"repositoryLocationName": location, "repositoryName": repository}
        for shard in SHARDS:  # what the crawl sensor does for a new file
            added = server.graphql(ADD_PARTITION, repo=selector, name="crawl_shards", key=shard)
            assert added["addDynamicPartition"]["__typename"] == "AddDynamicPartitionSuccess"
        yield server
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen) -> None:
    """Stop `foundry ui` and everything it started (dagster dev, daemon, code server, runs)."""
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait()
    deadline = time.monotonic() + 5  # a graceful stop takes ~10 s; nothing here needs one
    try:
        while time.monotonic() < deadline:
            os.killpg(proc.pid, 0)  # raises once the whole group is gone
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)
        # First visit of a fresh instance: a newsletter dialog covers the page.
        page.add_locator_handler(
            page.get_by_text("Join the Dagster community"),
            lambda: page.get_by_role("button", name="Skip").click(),
        )
        try:
            yield page
        finally:
            browser.close()


def test_asset_graph_shows_six_stages_and_a_backfill_over_all_shards_succeeds(
    server: Server, page: Page
) -> None:
    page.goto(f"{server.url}/asset-groups")
    for group in GROUPS:  # the group nodes drawn in the lineage graph
        expect(page.locator(f'[data-tooltip="{group}"]')).to_be_visible()
    page.goto(f"{server.url}/assets")
    for name in STAGE_ASSET_NAMES:  # the catalog links every asset (long names are truncated)
        expect(page.locator(f'a[href="/assets/{name}"]').first).to_be_visible()

    page.goto(f"{server.url}/assets/raw_documents")
    page.get_by_role("button", name="Materialize…").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="All", exact=True).click()
    expect(dialog.get_by_text(f"{len(SHARDS)} partitions")).to_be_visible()
    dialog.get_by_role("button", name="Launch backfill").click()
    toast = page.get_by_text(re.compile(r"Created backfill \w+"))
    backfill_id = toast.inner_text().split()[-1]

    # The daemon turns the backfill into one run per shard; once they end, the UI shows them.
    runs = server.wait_for_runs({"dagster/backfill": backfill_id}, len(SHARDS))
    page.goto(f"{server.url}/runs/b/{backfill_id}?tab=runs")
    expect(page.get_by_text("Success", exact=True)).to_have_count(len(SHARDS))
    statuses = {run.status for run in runs}
    assert statuses == {dg.DagsterRunStatus.SUCCESS}, server.failures([r.run_id for r in runs])
    instance = server.instance()
    materialized = instance.get_materialized_partitions(dg.AssetKey("raw_documents"))
    assert materialized == set(SHARDS)
    for shard in SHARDS:
        assert server.run_ids("raw_documents", shard) & {run.run_id for run in runs}


def test_graphql_api_launches_an_ingest_run_that_fills_the_lake(server: Server) -> None:
    client = DagsterGraphQLClient("127.0.0.1", port_number=server.port)
    shard = SHARDS[0]
    run_id = client.submit_job_execution(
        "ingest_shard",
        repository_location_name=server.location,
        repository_name=server.repository,
        tags={"dagster/partition": shard, "foundry/launched_by": "graphql test"},
    )
    deadline = time.monotonic() + RUN_S
    status = client.get_run_status(run_id)
    while status not in (
        dg.DagsterRunStatus.SUCCESS,
        dg.DagsterRunStatus.FAILURE,
        dg.DagsterRunStatus.CANCELED,
    ):
        assert time.monotonic() < deadline, f"run {run_id} still {status}"
        time.sleep(2)
        status = client.get_run_status(run_id)
    assert status == dg.DagsterRunStatus.SUCCESS, server.failures([run_id])
    for asset in ("raw_documents", "cleaned_documents"):
        assert run_id in server.run_ids(asset, shard), asset
    with pytest.raises(DagsterGraphQLClientError):
        client.submit_job_execution("no_such_job", tags={"dagster/partition": shard})
