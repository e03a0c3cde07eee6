"""What the trained scorers learn from, read from the lake: examples, samples, earlier ratings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from assets.corpus import corpus_documents, organic_documents
from assets.documents import make_doc_id
from assets.scored.artifacts import stable_sample
from assets.scored.distill import HeadReport
from resources.lake import Lake


def classifier_examples(
    lake: Lake,
    reference: Sequence[str],
    languages: Sequence[str] | None,
    max_per_class: int,
    seed: int,
) -> pl.DataFrame:
    """Reference passages (label 1) against organic crawl documents (label 0) of `languages`.

    Rewrites are no negatives: they are not crawl documents, and the classifier scores them.
    Both classes are stable samples, so a re-run on the same crawl trains on the same examples."""
    positives = pl.DataFrame(
        {"doc_id": [make_doc_id("reference", t) for t in reference], "text": list(reference)},
        schema={"doc_id": pl.String, "text": pl.String},
    ).unique("doc_id", keep="first")
    keep = set(stable_sample(positives["doc_id"], max_per_class, seed))
    positives = positives.filter(pl.col("doc_id").is_in(list(keep))).with_columns(
        pl.lit("reference").alias("source"), pl.lit(None, pl.String).alias("language")
    )
    crawl = organic_documents(lake).select("doc_id", "text", "language")
    if languages is not None:
        crawl = crawl.filter(pl.col("language").is_in(list(languages)))
    ids = crawl.select("doc_id").collect()["doc_id"]
    chosen = stable_sample(ids, max_per_class, seed)
    negatives = (
        crawl.filter(pl.col("doc_id").is_in(chosen))
        .collect()
        .with_columns(pl.lit("crawl").alias("source"))
    )
    examples = pl.concat([positives, negatives], how="diagonal_relaxed")
    label = (pl.col("source") == "reference").cast(pl.Int8).alias("label")
    return examples.with_columns(label).sort("label", "doc_id", descending=[True, False])


def rating_sample(lake: Lake, languages: Sequence[str] | None, n: int, seed: int) -> pl.DataFrame:
    """A stable sample of corpus documents (organic and synthetic) in the rater's languages."""
    corpus = corpus_documents(lake).select("doc_id", "origin", "language", "text")
    if languages is not None:
        corpus = corpus.filter(pl.col("language").is_in(list(languages)))
    chosen = stable_sample(corpus.select("doc_id").collect()["doc_id"], n, seed)
    return corpus.filter(pl.col("doc_id").is_in(chosen)).collect().sort("doc_id")


def rating_targets(
    ratings: pl.DataFrame, embedded: pl.DataFrame, dimensions: Sequence[str]
) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """Embedding matrix of the rated documents and, per dimension, (rows, parsed scores).

    `ratings`: long (doc_id, dimension, score); `embedded`: doc_id, embedding."""
    ids = sorted(set(ratings["doc_id"]) & set(embedded["doc_id"]))
    order = pl.DataFrame({"doc_id": ids}, schema={"doc_id": pl.String})
    order = order.join(embedded, on="doc_id", how="left")
    vectors = (
        np.asarray(order["embedding"].to_numpy(), dtype=np.float32)
        if ids
        else np.zeros((0, 1), dtype=np.float32)
    )
    position = {doc_id: i for i, doc_id in enumerate(ids)}
    targets = {}
    for dim in dimensions:
        rows = ratings.filter((pl.col("dimension") == dim) & pl.col("score").is_not_null())
        rows = rows.filter(pl.col("doc_id").is_in(ids))
        index = np.array([position[d] for d in rows["doc_id"]], dtype=int)
        targets[dim] = (index, rows["score"].to_numpy().astype(float))
    return vectors, targets, ids


def earlier_ratings(
    lake: Lake, key: dict[str, str | int], ids: pl.Series, dimensions: Sequence[str]
) -> pl.DataFrame | None:
    """Ratings already made for these documents with the same model, prompt, text budget and
    sampling."""
    if not lake.has("llm_ratings", "ratings"):
        return None
    stored = lake.scan("llm_ratings", "ratings")
    if not set(key) <= set(stored.collect_schema().names()):
        return None  # written before the key had all its parts: nothing is known to match
    same = [pl.col(name) == value for name, value in key.items()]
    wanted = [pl.col("doc_id").is_in(ids.implode()), pl.col("dimension").is_in(list(dimensions))]
    return stored.filter(*same, *wanted).collect()


def wide_ratings(
    sample: pl.DataFrame, ratings: pl.DataFrame, dimensions: Sequence[str]
) -> pl.DataFrame:
    """One row per sampled document, one column per dimension (null = no accepted score)."""
    wide = sample.select("doc_id", "origin", "language")
    for dim in dimensions:
        scores = ratings.filter(pl.col("dimension") == dim).select("doc_id", pl.col("score"))
        wide = wide.join(scores.rename({"score": dim}), on="doc_id", how="left")
    parsed = pl.sum_horizontal(pl.col(d).is_not_null().cast(pl.Int32) for d in dimensions)
    return wide.with_columns(parsed.alias("n_parsed"))


def mean_rating(lake: Lake, ids: pl.Series) -> np.ndarray:
    """Mean accepted LLM rating per document (NaN where unrated), aligned with `ids`."""
    if not lake.has("llm_ratings", "ratings"):
        return np.full(len(ids), np.nan)
    means = (
        lake.scan("llm_ratings", "ratings")
        .group_by("doc_id")
        .agg(pl.col("score").cast(pl.Float64).mean().alias("mean"))
        .collect()
    )
    aligned = pl.DataFrame({"doc_id": ids}).join(means, on="doc_id", how="left")
    return aligned["mean"].fill_null(np.nan).to_numpy()


def head_table(
    ids: list[str], targets: dict[str, tuple[np.ndarray, np.ndarray]], reports: list[HeadReport]
) -> pl.DataFrame:
    """Per rated document: each dimension's rating and out-of-fold prediction (null = none)."""
    columns: dict[str, np.ndarray | list[str]] = {"doc_id": ids}
    for report in reports:
        rows, scores = targets[report.dimension]
        rating, heldout = np.full(len(ids), np.nan), np.full(len(ids), np.nan)
        rating[rows], heldout[rows] = scores, report.heldout
        columns[f"{report.dimension}_rating"] = rating
        columns[f"{report.dimension}_heldout"] = heldout
    return pl.DataFrame(columns).fill_nan(None)
