"""Dagster definitions of the clustered stage: embeddings, then k-means domains with labels."""

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pyarrow as pa
from pydantic import Field

from assets.clustered.embed import embed_new, embeddings_schema, load_vectors
from assets.clustered.kmeans import (
    Clustering,
    assign,
    choose_k,
    cluster,
    drift,
    semantic_duplicates,
)
from assets.clustered.labels import ctfidf_terms
from assets.clustered.plots import plot_projection
from assets.contracts import Contract, balance_check, check_specs, contract_check
from assets.corpus import corpus_documents
from assets.documents import DROPPED_SCHEMA
from assets.progress import Progress
from resources.embedder import Embedder
from resources.lake import Lake

EMBED_CODE_VERSION = "embeddings-1"
CLUSTER_CODE_VERSION = "clusters-2"

ASSIGNMENT_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("cluster_id", pa.int32()),
        ("distance", pa.float32()),
        ("origin", pa.string()),
    ]
)
SUMMARY_SCHEMA = pa.schema(
    [
        ("cluster_id", pa.int32()),
        ("label", pa.string()),
        ("size", pa.int64()),
        ("synthetic_share", pa.float64()),
        ("mean_quality", pa.float64()),
        ("representative_doc_ids", pa.list_(pa.string())),
    ]
)
CLUSTER_CONTRACT = Contract(
    columns=tuple(ASSIGNMENT_SCHEMA.names),
    not_null=("doc_id", "cluster_id"),
    ranges={"distance": (-1e-3, 2.0), "cluster_id": (0, None)},
    allowed={"origin": ("organic", "synthetic")},
)
EMBED_CONTRACT = Contract(columns=("doc_id", "text_hash", "model_id", "embedding"))


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
    started = time.perf_counter()
    model_id = embedder.model_id()
    previous = _previous_embeddings(lake, model_id)
    known = set(zip(previous["doc_id"], previous["text_hash"], strict=True))
    seen: list[tuple[str, str]] = []
    new = 0
    schema = embeddings_schema(embedder.dimension())
    with lake.publish(
        "document_embeddings", run_id=context.run.run_id, code_version=EMBED_CODE_VERSION
    ) as out:
        sink = out.table("documents", schema)
        progress = Progress(context.log, "embedded")
        for keys, table in embed_new(corpus_documents(lake), known, embedder.encode, model_id):
            seen.extend(keys)
            if table is not None:
                sink.write(table)
                new += table.num_rows
                progress.advance(table.num_rows)
        keep = pl.DataFrame(seen, schema=["doc_id", "text_hash"], orient="row")
        sink.write(previous.join(keep, on=["doc_id", "text_hash"], how="semi"))
    yield dg.MaterializeResult(
        metadata={
            "documents": len(seen),
            "newly_embedded": new,
            **progress.finish(),
            "model": model_id,
            "compute_s": round(time.perf_counter() - started, 3),
        }
    )
    files = [f.path for f in lake.files("document_embeddings")]
    yield contract_check("document_embeddings", files, EMBED_CONTRACT)
    yield balance_check("document_embeddings", len(seen), sink.rows, 0)


def _previous_embeddings(lake: Lake, model_id: str) -> pl.DataFrame:
    if not lake.has("document_embeddings"):
        return pl.DataFrame(schema={"doc_id": pl.String, "text_hash": pl.String})
    return lake.scan("document_embeddings").filter(pl.col("model_id") == model_id).collect()


class ClusterConfig(dg.Config):
    n_clusters: int = Field(0, description="k; 0 picks k by silhouette on a sample.")
    max_auto_k: int = Field(24, description="Largest k tried when choosing automatically.")
    refit: str = Field("auto", description="'auto' refits past max_drift; 'always'; 'never'.")
    max_drift: float = Field(
        0.15,
        description="Refit when new documents sit this much farther (relative) from their "
        "centroids than held-out documents did at the last fit.",
    )
    semdedup_threshold: float = Field(0.95, description="Cosine at which SemDeDup removes.")
    seed: int = 0
    label_terms: int = 5
    representatives: int = 3


CENTROID_SCHEMA = pa.schema(
    [
        ("cluster_id", pa.int32()),
        ("centroid", pa.list_(pa.float32())),
        ("reference_mean_distance", pa.float64()),
        ("fitted_on", pa.int64()),
    ]
)


FITTED_SCHEMA = pa.schema([("doc_id", pa.string())])


@dg.asset(
    group_name="clustered",
    code_version=CLUSTER_CODE_VERSION,
    deps=["document_embeddings"],
    check_specs=check_specs("clusters"),
    kinds={"parquet", "scikitlearn"},
)
def clusters(
    context: dg.AssetExecutionContext, config: ClusterConfig, lake: Lake
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """k-means domains with c-TF-IDF labels; new shards are assigned until drift forces a refit."""
    started = time.perf_counter()
    corpus = corpus_documents(lake).select("doc_id", "text", "origin").collect()
    embedded = lake.scan("document_embeddings").select("doc_id", "embedding").collect()
    docs = corpus.join(embedded, on="doc_id", how="inner")
    vectors = load_vectors(docs)
    fit, refitted, measured_drift = _fit_or_assign(lake, docs, vectors, config)
    terms = ctfidf_terms(docs["text"].to_list(), fit.labels, fit.k, config.label_terms)
    assignments = docs.select("doc_id", "origin").with_columns(
        pl.Series("cluster_id", fit.labels), pl.Series("distance", fit.distances)
    )
    removed = semantic_duplicates(vectors, fit.labels, fit.distances, config.semdedup_threshold)
    drops = _semdedup_drops(docs, removed, config.semdedup_threshold)
    summary = _summary(assignments, terms, config.representatives, _known_scores(lake))
    with lake.publish(
        "clusters", run_id=context.run.run_id, code_version=CLUSTER_CODE_VERSION
    ) as out:
        out.write("documents", assignments, ASSIGNMENT_SCHEMA)
        out.write("summary", summary, SUMMARY_SCHEMA)
        fitted = _fitted_documents(lake, docs, refitted)
        out.write("centroids", _centroids(fit, fitted.height), CENTROID_SCHEMA)
        out.write("fitted_documents", fitted, FITTED_SCHEMA)
        out.write("dropped", drops, DROPPED_SCHEMA)
        plot = out.staging / "projection.png"
        plot_projection(vectors, fit.labels, summary, plot)
        projection = _embed_png(plot)
    table = summary.select("cluster_id", "label", "size", "synthetic_share", "mean_quality")
    yield dg.MaterializeResult(
        metadata={
            "k": fit.k,
            "refitted": refitted,
            "drift": round(measured_drift, 4),
            "silhouette": fit.silhouette,
            "documents": assignments.height,
            "semantic_duplicates": drops.height,
            "cluster_table": dg.MetadataValue.md(table.to_pandas().to_markdown(index=False)),
            "projection": dg.MetadataValue.md(projection),
            "compute_s": round(time.perf_counter() - started, 3),
        }
    )
    files = [f.path for f in lake.files("clusters")]
    yield contract_check("clusters", files, CLUSTER_CONTRACT)
    yield balance_check("clusters", corpus.height, assignments.height - drops.height, drops.height)


def _fit_or_assign(
    lake: Lake, docs: pl.DataFrame, vectors: np.ndarray, config: ClusterConfig
) -> tuple[Clustering, bool, float]:
    """Assign to the last fit's centroids unless config or the new documents' drift asks for a
    refit; drift is measured on documents the last fit has not seen."""
    previous = _previous_fit(lake)
    measured = 0.0
    if previous is not None and config.refit != "always":
        centroids, reference, seen = previous
        labels, distances = assign(vectors, centroids)
        new = ~docs["doc_id"].is_in(list(seen)).to_numpy()
        measured = drift(distances[new], reference)
        same_k = config.n_clusters in (0, len(centroids))
        if config.refit == "never" or (same_k and measured <= config.max_drift):
            kept = Clustering(labels, distances, centroids, len(centroids), None, reference)
            return kept, False, measured
    k = config.n_clusters or choose_k(vectors, range(2, config.max_auto_k + 1), config.seed)
    return cluster(vectors, k, config.seed), True, measured


def _previous_fit(lake: Lake) -> tuple[np.ndarray, float, set[str]] | None:
    """Centroids, held-out baseline distance and the documents of the last fit."""
    if not (lake.has("clusters", "centroids") and lake.has("clusters", "fitted_documents")):
        return None
    frame = lake.scan("clusters", "centroids").collect().sort("cluster_id")
    if frame.is_empty():
        return None
    matrix = np.asarray(frame["centroid"].to_list(), dtype=np.float32)
    fitted = lake.scan("clusters", "fitted_documents").collect()["doc_id"]
    return matrix, float(frame["reference_mean_distance"][0]), set(fitted)


def _centroids(fit: Clustering, fitted_on: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "cluster_id": np.arange(fit.k, dtype=np.int32),
            "centroid": [c.tolist() for c in fit.centroids],
            "reference_mean_distance": [fit.unseen_distance] * fit.k,
            "fitted_on": [fitted_on] * fit.k,
        }
    )


def _fitted_documents(lake: Lake, docs: pl.DataFrame, refitted: bool) -> pl.DataFrame:
    """The documents the current centroids were fitted on (carried over between refits)."""
    if refitted or (previous := _previous_fit(lake)) is None:
        return docs.select("doc_id")
    return pl.DataFrame({"doc_id": sorted(previous[2])}, schema={"doc_id": pl.String})


def _semdedup_drops(
    docs: pl.DataFrame, removed: list[tuple[int, int, float]], threshold: float
) -> pl.DataFrame:
    ids = docs["doc_id"].to_list()
    return pl.DataFrame(
        {
            "doc_id": [ids[r] for r, _, _ in removed],
            "stage": ["clustered"] * len(removed),
            "rule": ["semdedup:cosine"] * len(removed),
            "value": [s for _, _, s in removed],
            "threshold": [threshold] * len(removed),
            "detail": [f"near {ids[k]} in embedding space" for _, k, _ in removed],
        },
        schema={
            "doc_id": pl.String,
            "stage": pl.String,
            "rule": pl.String,
            "value": pl.Float64,
            "threshold": pl.Float64,
            "detail": pl.String,
        },
    )


def _embed_png(staged_plot: Path) -> str:
    """The UI renders Markdown images; inline the plot so it shows wherever the lake lives."""
    encoded = base64.b64encode(staged_plot.read_bytes()).decode()
    return f"![2-D projection of the embeddings](data:image/png;base64,{encoded})"


def _known_scores(lake: Lake) -> pl.DataFrame:
    """Scores from the last scored run: the graph runs clusters before scores, so a cluster's
    mean quality covers the documents scored so far (null on the very first run)."""
    if not lake.has("quality_scores"):
        return pl.DataFrame(schema={"doc_id": pl.String, "quality_score": pl.Float64})
    return lake.scan("quality_scores").select("doc_id", "quality_score").collect()


def _summary(
    assignments: pl.DataFrame, terms: list[list[str]], n_rep: int, scores: pl.DataFrame
) -> pl.DataFrame:
    stats = (
        assignments.join(scores, on="doc_id", how="left")
        .sort("distance")
        .group_by("cluster_id", maintain_order=False)
        .agg(
            pl.len().alias("size"),
            (pl.col("origin") == "synthetic").mean().alias("synthetic_share"),
            pl.col("quality_score").mean().alias("mean_quality"),
            pl.col("doc_id").head(n_rep).alias("representative_doc_ids"),
        )
        .sort("cluster_id")
    )
    labels = [" / ".join(terms[c]) or f"cluster {c}" for c in stats["cluster_id"]]
    return stats.with_columns(pl.Series("label", labels))
