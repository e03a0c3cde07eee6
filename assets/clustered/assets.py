"""Dagster definitions of the clustered stage: per-shard embeddings, then k-means domains fitted
on a bounded sample, assigned shard by shard, with labels and SemDeDup."""

import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from assets.clustered.embed import (
    embed_into,
    embeddings_schema,
    previous_shard_embeddings,
    previous_synthetic_embeddings,
    synthetic_documents,
)
from assets.clustered.fit import (
    FitPolicy,
    RefitPolicy,
    centroid_table,
    fit_or_assign,
    fitted_documents,
    previous_fit,
)
from assets.clustered.labels import ctfidf_terms
from assets.clustered.mapping import Sample, Tally, assign_shards, draw_sample, label_documents
from assets.clustered.plots import plot_projection
from assets.clustered.schema import (
    ASSIGNMENT_SCHEMA,
    CENTROID_SCHEMA,
    CLUSTER_CONTRACT,
    EMBED_CONTRACT,
    FITTED_SCHEMA,
    SUMMARY_SCHEMA,
)
from assets.clustered.semdedup import ClusterSpill, semdedup_spill
from assets.clustered.sources import SourceReader, sources
from assets.clustered.summary import cluster_summary, semdedup_drops
from assets.contracts import check_specs
from assets.corpus import catalog_rows, corpus_size
from assets.defaults import default_of
from assets.documents import DROPPED_SCHEMA
from assets.partitions import crawl_shards
from assets.plotting import png_markdown
from assets.progress import Progress
from assets.publishing import Publication
from resources.embedder import Embedder
from resources.lake import Lake, TableSink

EMBED_CODE_VERSION = "embeddings-2"  # 2: per crawl shard, organic documents only
CLUSTER_CODE_VERSION = "clusters-4"  # 4: fit on a bounded sample, assign per shard, blockwise


@dg.asset(
    partitions_def=crawl_shards,
    group_name="clustered",
    code_version=EMBED_CODE_VERSION,
    deps=["cleaned_documents"],
    check_specs=check_specs("document_embeddings"),
    kinds={"parquet", "sentence_transformers"},
)
def document_embeddings(
    context: dg.AssetExecutionContext, lake: Lake, embedder: Embedder
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """One vector per cleaned document of the shard, in batches; vectors of unchanged texts
    (same doc_id, text hash and model) are copied from the shard's previous version."""
    shard = context.partition_key
    publication = Publication(context, lake, EMBED_CONTRACT, EMBED_CODE_VERSION, partition=shard)
    model_id = embedder.model_id()
    previous = previous_shard_embeddings(lake, shard, model_id)
    rows_in = catalog_rows(lake, "cleaned_documents", partitions=[shard])
    progress = Progress(context.log, "embedded", total=rows_in)
    documents = lake.scan("cleaned_documents", partitions=[shard]).select(
        "doc_id", pl.col("content_hash").alias("text_hash"), "text"
    )
    with publication.write() as out:
        sink = out.table("documents", embeddings_schema(embedder.dimension()))
        reused, embedded = embed_into(
            documents, previous, embedder.encode, model_id, sink, on_batch=progress.advance
        )
    yield from publication.results(
        rows_in,
        {"newly_embedded": embedded, "reused": reused, **progress.finish(), "model": model_id},
    )


class ClusterConfig(dg.Config):
    n_clusters: int = Field(
        default_of(FitPolicy, "n_clusters"), description="k; 0 picks k by silhouette on a sample."
    )
    max_auto_k: int = Field(
        default_of(FitPolicy, "max_auto_k"), description="Largest k tried automatically."
    )
    refit: RefitPolicy = Field(
        default_of(FitPolicy, "refit"), description="'auto' refits past max_drift."
    )
    max_drift: float = Field(
        default_of(FitPolicy, "max_drift"),
        description="Refit when new documents sit this much farther (relative) from their "
        "centroids than held-out documents did at the last fit.",
    )
    sample_size: int = Field(
        20_000,
        description="Documents k-means fits on: a seeded sample stratified by shard and "
        "language. Every document is then assigned, shard by shard.",
    )
    silhouette_sample: int = Field(
        default_of(FitPolicy, "silhouette_sample"),
        description="Documents of the fit sample the silhouette is scored on (it is quadratic).",
    )
    semdedup_threshold: float = Field(0.95, description="Cosine at which SemDeDup removes.")
    semdedup_block: int = Field(
        1024, description="SemDeDup compares a cluster's members in tiles of this many squared."
    )
    seed: int = default_of(FitPolicy, "seed")
    label_terms: int = 5
    label_documents: int = Field(
        200, description="Sampled documents per cluster whose texts c-TF-IDF reads."
    )
    label_chars: int = Field(4000, description="Characters of each label document read.")
    representatives: int = 3

    def fit_policy(self) -> FitPolicy:
        return FitPolicy(
            self.n_clusters,
            self.max_auto_k,
            self.refit,
            self.max_drift,
            self.seed,
            self.silhouette_sample,
        )


@dg.asset(
    group_name="clustered",
    code_version=CLUSTER_CODE_VERSION,
    deps=[
        "cleaned_documents",
        "duplicate_clusters",
        "decontamination",
        "rephrased_documents",
        "document_embeddings",
    ],
    check_specs=check_specs("clusters"),
    kinds={"parquet", "scikitlearn"},
)
def clusters(
    context: dg.AssetExecutionContext, config: ClusterConfig, lake: Lake, embedder: Embedder
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """k-means domains with c-TF-IDF labels, fitted on a bounded sample and assigned shard by
    shard; new shards are assigned until drift forces a refit. Rewritten documents are
    embedded here (their vectors of unchanged texts carried over between versions)."""
    publication = Publication(context, lake, CLUSTER_CONTRACT, CLUSTER_CODE_VERSION)
    model_id = embedder.model_id()
    with tempfile.TemporaryDirectory(prefix="foundry-clusters-") as scratch:
        spill_path, synthetic = _embed_synthetic(lake, embedder, model_id, Path(scratch))
        reader = SourceReader(lake, model_id, spill_path)
        corpus = sources(lake, spill_path)
        sample = draw_sample(reader, corpus, config.sample_size, config.seed)
        if sample.frame.is_empty():
            raise dg.Failure(f"clusters: no corpus document has a vector of {model_id}")
        previous = previous_fit(lake)
        decision = fit_or_assign(
            sample.frame["doc_id"], sample.vectors, previous, config.fit_policy()
        )
        fit = decision.fit
        label_ids = label_documents(sample, fit.labels, config.label_documents, config.seed)
        tally = Tally(config.representatives)
        spill = ClusterSpill(Path(scratch) / "semdedup", sample.vectors.shape[1])
        with publication.write() as out:
            _copy_synthetic(spill_path, out.table("synthetic_embeddings", _vector_schema(sample)))
            dropped = out.table("dropped", DROPPED_SCHEMA)
            unembedded = assign_shards(
                reader,
                corpus,
                fit.centroids,
                out.table("documents", ASSIGNMENT_SCHEMA),
                dropped,
                spill,
                tally,
                label_ids,
                config.label_chars,
            )
            removed = _semdedup(spill, config, dropped)
            texts = pl.concat(tally.label_texts)
            terms = ctfidf_terms(
                texts["text"].to_list(), texts["cluster_id"].to_numpy(), fit.k, config.label_terms
            )
            summary = cluster_summary(tally.summary_rows(), terms)
            fitted = fitted_documents(sample.frame["doc_id"], decision, previous)
            out.write("summary", summary, SUMMARY_SCHEMA)
            out.write("centroids", centroid_table(fit, fitted.height), CENTROID_SCHEMA)
            out.write("fitted_documents", fitted, FITTED_SCHEMA)
            projection = plot_projection(
                sample.vectors, fit.labels, summary, out.staging / "projection.png"
            )
    table = summary.select("cluster_id", "label", "size", "synthetic_share")
    yield from publication.results(
        corpus_size(lake),
        {
            "k": fit.k,
            "refitted": decision.refitted,
            "drift": round(decision.drift, 4),
            "silhouette": fit.silhouette,
            "fit_sample": sample.frame.height,
            "sample_strata": sample.strata,
            "semdedup_removed": removed,
            "missing_embedding": unembedded,
            **synthetic,
            "cluster_table": dg.MetadataValue.md(table.to_pandas().to_markdown(index=False)),
            "projection": dg.MetadataValue.md(png_markdown(projection, "2-D projection")),
        },
        kept=tally.assigned - removed,
    )


def _embed_synthetic(
    lake: Lake, embedder: Embedder, model_id: str, scratch: Path
) -> tuple[Path | None, dict[str, int]]:
    """Rewritten documents' vectors into a scratch file (None when there are none): unchanged
    ones from the last clusters version, the rest encoded now."""
    if not lake.has("rephrased_documents") or not catalog_rows(lake, "rephrased_documents"):
        return None, {"synthetic_embedded": 0, "synthetic_reused": 0}
    path = scratch / "synthetic.parquet"
    sink = TableSink(path, embeddings_schema(embedder.dimension()))
    previous = previous_synthetic_embeddings(lake, model_id)
    reused, embedded = embed_into(
        synthetic_documents(lake), previous, embedder.encode, model_id, sink
    )
    sink.close()
    return path, {"synthetic_embedded": embedded, "synthetic_reused": reused}


def _vector_schema(sample: Sample) -> pa.Schema:
    return embeddings_schema(sample.vectors.shape[1])


def _copy_synthetic(path: Path | None, sink: TableSink) -> None:
    if path is None:
        return
    for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
        sink.write(batch)


def _semdedup(spill: ClusterSpill, config: ClusterConfig, dropped: TableSink) -> int:
    """SemDeDup cluster by cluster; removals streamed to the dropped table."""
    removed = 0
    batch: list = []
    for removal in semdedup_spill(spill, config.semdedup_threshold, config.semdedup_block):
        batch.append(removal)
        if len(batch) >= 4096:
            dropped.write(semdedup_drops(batch, config.semdedup_threshold))
            removed, batch = removed + len(batch), []
    if batch:
        dropped.write(semdedup_drops(batch, config.semdedup_threshold))
    return removed + len(batch)
