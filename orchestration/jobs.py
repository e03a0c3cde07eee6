"""Two jobs: per-shard ingest (partitioned) and the corpus-wide stages that follow it; both
select their assets from the stage table in assets/stages.py."""

import dagster as dg

from assets.partitions import GPU_TAG_KEY, crawl_shards
from assets.stages import ASSET_NAMES, CORPUS_ASSET_NAMES, SHARD_ASSET_NAMES

STAGE_ASSET_NAMES = ASSET_NAMES
SHARD_ASSETS = dg.AssetSelection.assets(*SHARD_ASSET_NAMES)
CORPUS_ASSETS = dg.AssetSelection.assets(*CORPUS_ASSET_NAMES)

# GPU steps queue inside a run; across runs the `gpu` pool limit does the same.
MULTIPROCESS = {
    "max_concurrent": 2,
    "tag_concurrency_limits": [{"key": GPU_TAG_KEY, "value": "1", "limit": 1}],
}
EXECUTOR = dg.multiprocess_executor.configured(MULTIPROCESS)
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
"""Run config that runs a shard's steps in the run's own process: for a process started for
that one run (`foundry run`), which saves a Python start-up per step. Resources (the lake's
home, the crawl folder) are read from the environment when the definitions are imported, so a
long-lived process must not run steps in process: the default is a process per step."""

ingest_shard_job = dg.define_asset_job(
    "ingest_shard",
    selection=SHARD_ASSETS,
    partitions_def=crawl_shards,
    description="Everything that needs one crawl shard only: ingest, cleaning, MinHash "
    "signatures, token counts and embeddings.",
    executor_def=dg.multi_or_in_process_executor,
    config={"execution": {"config": {"multiprocess": MULTIPROCESS}}},
)

build_corpus_job = dg.define_asset_job(
    "build_corpus",
    selection=CORPUS_ASSETS,
    description="Deduplicate, rephrase, cluster, score and mix everything ingested so far.",
    executor_def=EXECUTOR,
)
