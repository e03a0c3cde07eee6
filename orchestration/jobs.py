"""Two jobs: per-shard ingest (partitioned) and the corpus-wide stages that follow it; both
select their assets from the stage table in assets/stages.py."""

import dagster as dg

from assets.partitions import GPU_TAG_KEY, crawl_shards
from assets.stages import ASSET_NAMES, CORPUS_ASSET_NAMES, SHARD_ASSET_NAMES

STAGE_ASSET_NAMES = ASSET_NAMES
SHARD_ASSETS = dg.AssetSelection.assets(*SHARD_ASSET_NAMES)
CORPUS_ASSETS = dg.AssetSelection.assets(*CORPUS_ASSET_NAMES)

# GPU steps queue inside a run; across runs the `gpu` pool limit does the same.
EXECUTOR = dg.multiprocess_executor.configured(
    {
        "max_concurrent": 2,
        "tag_concurrency_limits": [{"key": GPU_TAG_KEY, "value": "1", "limit": 1}],
    }
)

# Each step in its own process, as the corpus job: resources (the lake's home, the crawl folder)
# are read from the environment when the definitions are imported, so a step must not inherit a
# long-lived process's import.
ingest_shard_job = dg.define_asset_job(
    "ingest_shard",
    selection=SHARD_ASSETS,
    partitions_def=crawl_shards,
    description="Everything that needs one crawl shard only: ingest, cleaning, MinHash "
    "signatures, token counts and embeddings.",
    executor_def=EXECUTOR,
)

build_corpus_job = dg.define_asset_job(
    "build_corpus",
    selection=CORPUS_ASSETS,
    description="Deduplicate, rephrase, cluster, score and mix everything ingested so far.",
    executor_def=EXECUTOR,
)
