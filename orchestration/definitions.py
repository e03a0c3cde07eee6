"""The one Definitions object that `dagster dev -w workspace.yaml` and `foundry` load."""

import dagster as dg

from assets.cleaned.assets import (
    cleaned_documents,
    decontamination,
    duplicate_clusters,
    minhash_signatures,
)
from assets.clustered.assets import clusters, document_embeddings
from assets.mixed.assets import token_counts, training_mixture
from assets.mixed.proxy import NgramProxy
from assets.raw.assets import raw_documents
from assets.rephrased.assets import rephrased_documents
from assets.scored.assets import quality_classifier, quality_scores
from assets.scored.dataman_assets import dataman_heads, dataman_ratings
from assets.scored.preselect_assets import preselect_classifier
from assets.scored.ratings_assets import llm_ratings, rating_scorer
from orchestration.jobs import build_corpus_job, ingest_shard_job
from orchestration.schedules import nightly_corpus, nightly_rebuild
from orchestration.sensors import corpus_after_ingest, new_crawl_shards
from resources.crawl import CrawlSource
from resources.embedder import Embedder
from resources.lake import Lake
from resources.langid import LanguageIdentifier
from resources.rewriter import VLLMRewriter
from resources.tokenizer import TokenCounter

defs = dg.Definitions(
    assets=[
        raw_documents,
        cleaned_documents,
        minhash_signatures,
        duplicate_clusters,
        decontamination,
        rephrased_documents,
        document_embeddings,
        clusters,
        quality_classifier,
        preselect_classifier,
        llm_ratings,
        rating_scorer,
        dataman_ratings,
        dataman_heads,
        quality_scores,
        token_counts,
        training_mixture,
    ],
    jobs=[ingest_shard_job, build_corpus_job],
    schedules=[nightly_rebuild, nightly_corpus],
    sensors=[new_crawl_shards, corpus_after_ingest],
    resources={
        "lake": Lake(),
        "crawl": CrawlSource(),
        "language_identifier": LanguageIdentifier(),
        "rewriter": VLLMRewriter(),
        "embedder": Embedder(),
        "tokens": TokenCounter(),
        "proxy": NgramProxy(),
    },
)
