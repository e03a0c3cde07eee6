"""Where work runs: one partition per crawl shard, and the GPU pool that rewriting and rating
share.

Shard partitions are added by the crawl sensor (or `foundry run`) as files arrive. GPU steps
queue across runs in the `gpu` pool and inside a run on the `foundry/gpu` tag (the executor's
tag limit in orchestration/jobs.py).
"""

from dagster import DynamicPartitionsDefinition

crawl_shards = DynamicPartitionsDefinition(name="crawl_shards")

GPU_POOL = "gpu"
GPU_TAG_KEY = "foundry/gpu"
GPU_TAG = {GPU_TAG_KEY: "1"}
