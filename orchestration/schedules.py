"""The nightly rebuild: re-ingest every shard; the corpus stages follow when the wave finishes."""

import dagster as dg

from assets.partitions import crawl_shards
from orchestration.jobs import ingest_shard_job


@dg.schedule(
    job=ingest_shard_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def nightly_rebuild(context: dg.ScheduleEvaluationContext):
    night = context.scheduled_execution_time.strftime("%Y-%m-%d")
    shards = context.instance.get_dynamic_partitions(crawl_shards.name)
    if not shards:
        return dg.SkipReason("no crawl shards registered yet")
    return [dg.RunRequest(partition_key=s, run_key=f"{night}/{s}") for s in shards]
