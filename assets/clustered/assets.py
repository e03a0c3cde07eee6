"""Dagster definitions of the clustered stage: embeddings, then k-means domains with labels."""

from collections.abc import Iterator

import dagster as dg
import polars as pl
from pydantic import Field

from assets.clustered.embed import embed_new, embeddings_schema, load_vectors, previous_embeddings
from assets.clustered.fit import (
    FitPolicy,
    RefitPolicy,
    centroid_table,
    fit_or_assign,
    fitted_documents,
    previous_fit,
)
from assets.clustered.kmeans import semantic_duplicates
from assets.clustered.labels import ctfidf_terms
from assets.clustered.plots import plot_projection
from assets.clustered.schema import (
    ASSIGNMENT_SCHEMA,
    CENTROID_SCHEMA,
    CLUSTER_CONTRACT,
    EMBED_CONTRACT,
    FITTED_SCHEMA,
    SUMMARY_SCHEMA,
)
from assets.clustered.summary import cluster_summary, missing_embedding_drops, semdedup_drops
from assets.contracts import check_specs
from assets.corpus import corpus_documents, corpus_size
from assets.defaults import default_of
from assets.documents import DROPPED_SCHEMA
from assets.plotting import png_markdown
from assets.progress import Progress
from assets.publishing import Publication
from resources.embedder import Embedder
from resources.lake import Lake

EMBED_CODE_VERSION = "embeddings-1"
CLUSTER_CODE_VERSION = "clusters-3"  # 3: no mean quality (the scored stage reports it)


@dg.asset(
    group_name="clustered",
    code_version=EMBED_CODE_VERSION,
    deps=["cleaned_documents", "duplicate_clusters", "rephrased_documents"],
    check_specs=check_specs("document_embeddings"),
    kinds={"parquet", "sentence_transformers"},
)
def document_embeddings(
    context: dg.AssetExecutionContext, lake: Lake, embedder: Embedder
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """One vector per corpus document, organic and synthetic; unchanged texts are reused."""
    publication = Publication(context, lake, EMBED_CONTRACT, EMBED_CODE_VERSION)
    model_id = embedder.model_id()
    previous = previous_embeddings(lake, model_id)
    known = set(zip(previous["doc_id"], previous["text_hash"], strict=True))
    seen: list[tuple[str, str]] = []
    progress = Progress(context.log, "embedded")
    with publication.write() as out:
        sink = out.table("documents", embeddings_schema(embedder.dimension()))
        for keys, table in embed_new(corpus_documents(lake), known, embedder.encode, model_id):
            seen.extend(keys)
            if table is not None:
                sink.write(table)
                progress.advance(table.num_rows)
        keep = pl.DataFrame(seen, schema=["doc_id", "text_hash"], orient="row")
        sink.write(previous.join(keep, on=["doc_id", "text_hash"], how="semi"))
    yield from publication.results(
        corpus_size(lake), {"newly_embedded": progress.done, **progress.finish(), "model": model_id}
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
    semdedup_threshold: float = Field(0.95, description="Cosine at which SemDeDup removes.")
    seed: int = default_of(FitPolicy, "seed")
    label_terms: int = 5
    representatives: int = 3

    def fit_policy(self) -> FitPolicy:
        return FitPolicy(self.n_clusters, self.max_auto_k, self.refit, self.max_drift, self.seed)


@dg.asset(
    group_name="clustered",
    code_version=CLUSTER_CODE_VERSION,
    deps=["cleaned_documents", "duplicate_clusters", "rephrased_documents", "document_embeddings"],
    check_specs=check_specs("clusters"),
    kinds={"parquet", "scikitlearn"},
)
def clusters(
    context: dg.AssetExecutionContext, config: ClusterConfig, lake: Lake
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """k-means domains with c-TF-IDF labels; new shards are assigned until drift forces a refit."""
    publication = Publication(context, lake, CLUSTER_CONTRACT, CLUSTER_CODE_VERSION)
    corpus = corpus_documents(lake).select("doc_id", "text", "origin").collect()
    embedded = lake.scan("document_embeddings").select("doc_id", "embedding").collect()
    docs = corpus.join(embedded, on="doc_id", how="inner")
    vectors = load_vectors(docs)
    previous = previous_fit(lake)
    decision = fit_or_assign(docs["doc_id"], vectors, previous, config.fit_policy())
    fit = decision.fit
    terms = ctfidf_terms(docs["text"].to_list(), fit.labels, fit.k, config.label_terms)
    assignments = docs.select("doc_id", "origin").with_columns(
        pl.Series("cluster_id", fit.labels), pl.Series("distance", fit.distances)
    )
    removed = semantic_duplicates(vectors, fit.labels, fit.distances, config.semdedup_threshold)
    drops = pl.concat(
        [
            semdedup_drops(docs["doc_id"].to_list(), removed, config.semdedup_threshold),
            missing_embedding_drops(corpus.join(embedded, on="doc_id", how="anti")),
        ]
    )
    summary = cluster_summary(assignments, terms, config.representatives)
    fitted = fitted_documents(docs["doc_id"], decision, previous)
    with publication.write() as out:
        out.write("documents", assignments, ASSIGNMENT_SCHEMA)
        out.write("summary", summary, SUMMARY_SCHEMA)
        out.write("centroids", centroid_table(fit, fitted.height), CENTROID_SCHEMA)
        out.write("fitted_documents", fitted, FITTED_SCHEMA)
        out.write("dropped", drops, DROPPED_SCHEMA)
        projection = plot_projection(vectors, fit.labels, summary, out.staging / "projection.png")
    table = summary.select("cluster_id", "label", "size", "synthetic_share")
    yield from publication.results(
        corpus_size(lake),
        {
            "k": fit.k,
            "refitted": decision.refitted,
            "drift": round(decision.drift, 4),
            "silhouette": fit.silhouette,
            "cluster_table": dg.MetadataValue.md(table.to_pandas().to_markdown(index=False)),
            "projection": dg.MetadataValue.md(png_markdown(projection, "2-D projection")),
        },
        kept=assignments.height - len(removed),
    )
