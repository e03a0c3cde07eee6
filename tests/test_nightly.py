"""Arrival and rebuilds: the crawl sensor's run alone processes a new file, and the nightly
schedules request only stale work, judged from a real Dagster instance's materialization records.

Shards are real sample crawls cut to five pages and really materialized (every per-shard asset,
with the fast embedder); the
corpus-wide stages are recorded as runless materializations, since running them needs models.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from orchestration.definitions import defs
from orchestration.jobs import CORPUS_ASSET_NAMES, SHARD_ASSET_NAMES
from orchestration.schedules import nightly_corpus, nightly_rebuild
from orchestration.sensors import corpus_after_ingest, new_crawl_shards
from orchestration.staleness import SOURCE_FINGERPRINT, in_dependency_order
from resources.crawl import CrawlSource
from resources.embedder import Embedder
from resources.lake import Lake
from resources.langid import LanguageIdentifier
from resources.tokenizer import TokenCounter
from tests.tiny_crawl import tiny_shard

EN, DE, FR = "debian-faq-en.warc.gz", "debian-faq-de.warc.gz", "debian-faq-fr.warc.gz"
NIGHT = datetime(2026, 1, 2, 2, 0, tzinfo=UTC)
CORPUS_KEYS = [dg.AssetKey(name) for name in CORPUS_ASSET_NAMES]
GRAPH = defs.get_repository_def().asset_graph
# every per-shard asset, upstream first: what a stale shard's request lists from raw on
SHARD_ASSETS = [
    k.to_user_string()
    for k in in_dependency_order(GRAPH, [dg.AssetKey(n) for n in SHARD_ASSET_NAMES])
]
AFTER_RAW = SHARD_ASSETS[1:]  # what a change of cleaned_documents makes stale
SHARD_DEFS = tuple(a for a in defs.assets if a.key.to_user_string() in SHARD_ASSETS)


@dataclass
class World:
    instance: dg.DagsterInstance
    crawl: Path
    home: Path

    def resources(self) -> dict[str, object]:
        return {
            "lake": Lake(home=str(self.home)),
            "crawl": CrawlSource(location=str(self.crawl)),
            "language_identifier": LanguageIdentifier(),
            "embedder": Embedder(model="hashing-svd"),
            "tokens": TokenCounter(),
        }

    def ingest(self, shard: str, assets: tuple = SHARD_DEFS) -> None:
        """What an ingest_shard run does, in process."""
        if shard not in self.instance.get_dynamic_partitions("crawl_shards"):
            self.instance.add_dynamic_partitions("crawl_shards", [shard])
        result = dg.materialize(
            list(assets), partition_key=shard, instance=self.instance, resources=self.resources()
        )
        assert result.success

    def tick(
        self, schedule: dg.ScheduleDefinition = nightly_rebuild, repository: dg.Definitions = defs
    ) -> list[dg.RunRequest] | str:
        """The schedule's run requests as the daemon would get them, or its skip message."""
        context = dg.build_schedule_context(
            instance=self.instance,
            scheduled_execution_time=NIGHT,
            resources={"crawl": CrawlSource(location=str(self.crawl))},
            repository_def=repository.get_repository_def(),
        )
        data = schedule.evaluate_tick(context)
        return list(data.run_requests or []) or str(data.skip_message)

    def sense(self) -> dg.SensorResult | dg.SkipReason:
        context = dg.build_sensor_context(
            instance=self.instance, resources={"crawl": CrawlSource(location=str(self.crawl))}
        )
        return new_crawl_shards(context)

    def report_corpus(self, keys: list[dg.AssetKey] = CORPUS_KEYS, version_of=None) -> None:
        """Record corpus materializations, upstream first, with each asset's code version."""
        graph = defs.get_repository_def().asset_graph
        for key in in_dependency_order(graph, keys):
            code = (version_of or {}).get(key) or graph.get(key).code_version
            self.instance.report_runless_asset_event(
                dg.AssetMaterialization(key, tags={"dagster/code_version": code})
            )


def shards_of(requests: list[dg.RunRequest] | str) -> dict[str, list[str]]:
    assert isinstance(requests, list), requests
    return {
        r.partition_key: [k.to_user_string() for k in r.asset_selection or []] for r in requests
    }


def with_code_version(name: str, version: str) -> dg.Definitions:
    """The project's definitions with one asset's code_version bumped, as after a code change."""
    assets = [
        dg.map_asset_specs(lambda s: s.replace_attributes(code_version=version), [a])[0]
        if a.key == dg.AssetKey(name)
        else a
        for a in defs.assets
    ]
    return dg.Definitions(
        assets=assets,
        jobs=defs.jobs,
        schedules=defs.schedules,
        sensors=defs.sensors,
        resources=defs.resources,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Two five-page shards, registered and ingested once for the whole module."""
    root = tmp_path_factory.mktemp("nightly")
    crawl = root / "crawl"
    dagster_home = root / "foundry" / "dagster"
    crawl.mkdir()
    dagster_home.mkdir(parents=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FOUNDRY_HOME", str(root / "foundry"))
        mp.setenv("FOUNDRY_CRAWL_DIR", str(crawl))
        with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
            world = World(instance, crawl, root / "foundry")
            for name in (EN, DE):
                tiny_shard(name, crawl)
                world.ingest(name)
            yield world


def test_an_unchanged_night_requests_nothing(world: World) -> None:
    assert world.tick() == "every registered shard is up to date"
    world.report_corpus()
    assert world.tick(nightly_corpus) == "every corpus asset is newer than its inputs and its code"


def test_a_new_file_is_processed_by_the_sensor_run_alone(world: World) -> None:
    tiny_shard(FR, world.crawl)
    result = world.sense()
    assert isinstance(result, dg.SensorResult)
    assert [r.partition_key for r in result.run_requests] == [FR]
    assert result.dynamic_partitions_requests[0].partition_keys == [FR]
    # The daemon adds the partition and launches the sensor's run; the night falls meanwhile.
    world.instance.add_dynamic_partitions("crawl_shards", [FR])
    run = world.instance.add_run(
        dg.DagsterRun(
            job_name="ingest_shard",
            status=dg.DagsterRunStatus.STARTED,
            tags={"dagster/partition": FR},
        )
    )
    assert world.tick() == "every registered shard is up to date"
    assert "shard ingests are running" in world.tick(nightly_corpus)
    world.ingest(FR)
    world.instance.handle_run_event(
        run.run_id,
        dg.DagsterEvent(
            event_type_value=dg.DagsterEventType.RUN_SUCCESS.value, job_name="ingest_shard"
        ),
    )
    assert world.tick() == "every registered shard is up to date"
    assert isinstance(world.sense(), dg.SkipReason)


def test_a_touched_or_replaced_file_makes_exactly_that_shard_stale(world: World) -> None:
    path = world.crawl / EN
    before = path.stat()
    os.utime(path, (before.st_atime + 60, before.st_mtime + 60))
    assert shards_of(world.tick()) == {EN: SHARD_ASSETS}
    assert "re-ingested first" in world.tick(nightly_corpus)  # the wave's end rebuilds it
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert world.tick() == "every registered shard is up to date"

    # A longer cut of the same crawl under the same name: new bytes, new modification time.
    tiny_shard(DE, world.crawl, responses=7)
    requests = world.tick()
    assert shards_of(requests) == {DE: SHARD_ASSETS}
    assert "crawl file" in requests[0].tags["foundry/stale"]
    assert requests[0].run_key == f"2026-01-02/{DE}"
    world.ingest(DE)
    assert world.tick() == "every registered shard is up to date"


def test_a_file_swapped_for_an_older_copy_is_caught_by_its_fingerprint(world: World) -> None:
    """`cp -p`, `mv` and `rsync -a` keep an older mtime: only the recorded fingerprint sees it."""
    event = world.instance.get_latest_materialization_event(dg.AssetKey("raw_documents"))
    assert SOURCE_FINGERPRINT in event.asset_materialization.metadata
    shutil.copy2(world.crawl / EN, world.crawl / "older.warc.gz")
    world.ingest("older.warc.gz")
    shutil.copy2(world.crawl / DE, world.crawl / "older.warc.gz")  # older mtime, other bytes
    assert shards_of(world.tick()) == {"older.warc.gz": SHARD_ASSETS}
    world.ingest("older.warc.gz")
    assert world.tick() == "every registered shard is up to date"


def test_a_code_version_change_makes_every_shard_stale_from_that_asset_on(world: World) -> None:
    shards = set(world.instance.get_dynamic_partitions("crawl_shards"))
    raw = shards_of(world.tick(repository=with_code_version("raw_documents", "raw-next")))
    assert raw == {shard: SHARD_ASSETS for shard in shards}
    cleaned = shards_of(world.tick(repository=with_code_version("cleaned_documents", "c-next")))
    assert cleaned == {shard: AFTER_RAW for shard in shards}
    assert world.tick() == "every registered shard is up to date"


def test_corpus_rebuilds_only_stale_assets_and_what_depends_on_them(world: World) -> None:
    world.report_corpus()
    assert isinstance(world.tick(nightly_corpus), str)

    mixing = with_code_version("training_mixture", "mixed-next")
    (request,) = world.tick(nightly_corpus, repository=mixing)
    assert request.asset_selection == [dg.AssetKey("training_mixture")]
    assert request.run_key == "nightly/2026-01-02"

    # A shard re-ingested outside a nightly wave (e.g. from the UI): the whole corpus follows.
    world.ingest(EN, assets=tuple(a for a in SHARD_DEFS if a.key.to_user_string() in AFTER_RAW))
    assert world.tick() == "every registered shard is up to date"
    graph = defs.get_repository_def().asset_graph
    downstream = dg.AssetSelection.assets("cleaned_documents").downstream(include_self=False)
    expected = downstream.resolve(graph) & set(CORPUS_KEYS)
    (request,) = world.tick(nightly_corpus)
    assert set(request.asset_selection) == expected
    reason = request.tags["foundry/stale"]  # names one re-materialized per-shard input
    assert any(f"upstream {name} materialized after it" in reason for name in AFTER_RAW), reason

    # After an ingest wave, the run-status sensor asks for the same stale set, once.
    run = world.instance.get_runs(limit=1)[0]
    context = dg.build_run_status_sensor_context(
        sensor_name=corpus_after_ingest.name,
        dagster_event=dg.DagsterEvent(
            event_type_value=dg.DagsterEventType.RUN_SUCCESS.value, job_name=run.job_name
        ),
        dagster_instance=world.instance,
        dagster_run=run,
        repository_def=defs.get_repository_def(),
    )
    after = corpus_after_ingest(context)
    assert isinstance(after, dg.RunRequest)
    assert set(after.asset_selection) == expected
    world.report_corpus()
    assert isinstance(corpus_after_ingest(context), dg.SkipReason)
    assert isinstance(world.tick(nightly_corpus), str)
