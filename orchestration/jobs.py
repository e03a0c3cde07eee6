"""Two jobs: per-shard ingest (partitioned) and the corpus-wide stages that follow it."""

import dagster as dg

from assets.partitions import crawl_shards

SHARD_ASSET_NAMES = ("raw_documents", "cleaned_documents")
CORPUS_ASSET_NAMES = (
    "duplicate_clusters",
    "rephrased_documents",
    "document_embeddings",
    "clusters",
    "quality_classifier",
    "llm_ratings",
    "rating_scorer",
    "quality_scores",
    "training_mixture",
)
STAGE_ASSET_NAMES = SHARD_ASSET_NAMES + CORPUS_ASSET_NAMES
SHARD_ASSETS = dg.AssetSelection.assets(*SHARD_ASSET_NAMES)
CORPUS_ASSETS = dg.AssetSelection.assets(*CORPUS_ASSET_NAMES)

# GPU steps queue inside a run; across runs the `gpu` pool limit does the same.
EXECUTOR = dg.multiprocess_executor.configured(
    {
        "max_concurrent": 2,
        "tag_concurrency_limits": [{"key": "foundry/gpu", "value": "1", "limit": 1}],
    }
)

ingest_shard_job = dg.define_asset_job(
    "ingest_shard",
    selection=SHARD_ASSETS,
    partitions_def=crawl_shards,
    description="Raw ingest and cleaning of one crawl shard.",
    executor_def=EXECUTOR,
)

build_corpus_job = dg.define_asset_job(
    "build_corpus",
    selection=CORPUS_ASSETS,
    description="Deduplicate, rephrase, cluster, score and mix everything ingested so far.",
    executor_def=EXECUTOR,
)
