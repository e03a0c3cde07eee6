"""New crawl files become partitions; finished ingests trigger the stale corpus-wide stages."""

import dagster as dg

from assets.partitions import crawl_shards
from orchestration.jobs import build_corpus_job, ingest_shard_job
from orchestration.schedules import corpus_rebuild
from orchestration.staleness import in_flight
from resources.crawl import CrawlSource


@dg.sensor(job=ingest_shard_job, minimum_interval_seconds=30)
def new_crawl_shards(context: dg.SensorEvaluationContext, crawl: CrawlSource):
    """Add a partition per new shard file and request its ingest run (and only its)."""
    existing = set(context.instance.get_dynamic_partitions(crawl_shards.name))
    new = [shard for shard in crawl.list_shards() if shard not in existing]
    if not new:
        return dg.SkipReason(f"no new shards in {crawl.location}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=shard, run_key=shard) for shard in new],
        dynamic_partitions_requests=[crawl_shards.build_add_request(new)],
    )


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[ingest_shard_job],
    request_job=build_corpus_job,
)
def corpus_after_ingest(context: dg.RunStatusSensorContext):
    """Once the last of a wave of shard ingests succeeds, rebuild the stale corpus assets once."""
    pending = in_flight(context.instance, ingest_shard_job.name)
    if pending:
        return dg.SkipReason(f"{len(pending)} shard ingests still running")
    return corpus_rebuild(
        context.instance,
        context.repository_def,
        context.log,
        f"after-{context.dagster_run.run_id}",
    )
