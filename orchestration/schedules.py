"""Nightly rebuilds of only what is stale, so a night with no change costs a few queries.

`nightly_rebuild` re-ingests the shards whose crawl file, code version or upstream changed; the
corpus-wide stages then follow that wave through `corpus_after_ingest`. `nightly_corpus` covers
the nights without a shard wave: it rebuilds the corpus assets that are stale on their own (a new
code version, or a run that failed half way), and only those and what depends on them.
"""

from __future__ import annotations

import logging

import dagster as dg

from assets.partitions import crawl_shards
from orchestration.jobs import (
    CORPUS_ASSET_NAMES,
    SHARD_ASSET_NAMES,
    build_corpus_job,
    ingest_shard_job,
)
from orchestration.staleness import (
    Rebuild,
    in_flight,
    outside_inputs_changed,
    stale_assets,
    stale_shards,
    with_downstream,
)
from resources.crawl import CrawlSource

NIGHTLY = "0 2 * * *"
PARTITION_TAG = "dagster/partition"


def shard_work(
    instance: dg.DagsterInstance, repository: dg.RepositoryDefinition, crawl: CrawlSource
) -> dict[str, Rebuild]:
    """Stale registered shards whose file is present and that no queued or running run holds.

    New files are the sensor's: only registered partitions are rebuilt here.
    """
    registered = set(instance.get_dynamic_partitions(crawl_shards.name))
    files = {key: file for key, file in crawl.files().items() if key in registered}
    keys = [dg.AssetKey(name) for name in SHARD_ASSET_NAMES]
    busy = {run.tags.get(PARTITION_TAG) for run in in_flight(instance, ingest_shard_job.name)}
    stale = stale_shards(instance, repository.asset_graph, keys, files)
    return {shard: rebuild for shard, rebuild in stale.items() if shard not in busy}


def corpus_rebuild(
    instance: dg.DagsterInstance,
    repository: dg.RepositoryDefinition,
    log: logging.Logger,
    run_key: str,
) -> dg.RunRequest | dg.SkipReason:
    """One run of the stale corpus assets and what depends on them, or a skip if none is."""
    keys = [dg.AssetKey(name) for name in CORPUS_ASSET_NAMES]
    stale = stale_assets(instance, repository.asset_graph, keys)
    for name in sorted(outside_inputs_changed(instance, None)):
        stale.setdefault(dg.AssetKey(name), "the eval sets it reads changed")
    stale = with_downstream(repository.asset_graph, keys, stale)
    if not stale:
        return dg.SkipReason("every corpus asset is newer than its inputs and its code")
    for key, reason in stale.items():
        log.info(f"{key.to_user_string()}: {reason}")
    first = next(iter(stale))
    return dg.RunRequest(
        run_key=run_key,
        asset_selection=list(stale),
        tags={"foundry/stale": f"{first.to_user_string()}: {stale[first]}"[:200]},
    )


@dg.schedule(
    job=ingest_shard_job,
    cron_schedule=NIGHTLY,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def nightly_rebuild(context: dg.ScheduleEvaluationContext, crawl: CrawlSource):
    """Re-ingest the shards whose crawl file, code version or upstream changed, nothing else."""
    work = shard_work(context.instance, context.repository_def, crawl)
    if not work:
        return dg.SkipReason("every registered shard is up to date")
    night = context.scheduled_execution_time.strftime("%Y-%m-%d")
    requests = []
    for shard, rebuild in work.items():
        context.log.info(f"{shard}: {rebuild.reason}")
        requests.append(
            dg.RunRequest(
                partition_key=shard,
                run_key=f"{night}/{shard}",
                asset_selection=list(rebuild.assets),
                tags={"foundry/stale": rebuild.reason[:200]},
            )
        )
    return requests


@dg.schedule(
    job=build_corpus_job,
    cron_schedule=NIGHTLY,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def nightly_corpus(context: dg.ScheduleEvaluationContext, crawl: CrawlSource):
    """Rebuild stale corpus assets, unless shards are due: the end of their wave does it then."""
    instance = context.instance
    if in_flight(instance, ingest_shard_job.name):
        return dg.SkipReason("shard ingests are running; corpus_after_ingest follows them")
    if shard_work(instance, context.repository_def, crawl):
        return dg.SkipReason("stale shards are re-ingested first; corpus_after_ingest follows")
    if in_flight(instance, build_corpus_job.name):
        return dg.SkipReason("a corpus run is already queued or running")
    night = context.scheduled_execution_time.strftime("%Y-%m-%d")
    return corpus_rebuild(instance, context.repository_def, context.log, f"nightly/{night}")
