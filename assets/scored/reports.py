"""What the UI shows about scores: distributions, per-cluster quality, the raters' answers."""

from __future__ import annotations

import numpy as np
import polars as pl

from assets.measures import N_BUCKETS
from assets.scored import plots


def parsed_share(ratings: pl.DataFrame) -> dict[str, float]:
    shares = ratings.group_by("dimension").agg(pl.col("parse_error").is_null().mean())
    return {d: round(v, 3) for d, v in shares.sort("dimension").iter_rows()}


def rating_distribution(ratings: pl.DataFrame) -> str:
    """Markdown: answers per dimension and score, unparseable ones in their own column."""
    counts = ratings.with_columns(
        pl.col("score").cast(pl.String).fill_null("unparsed").alias("score")
    ).pivot(on="score", index="dimension", values="doc_id", aggregate_function="len")
    order = ["dimension", *[str(s) for s in range(6) if str(s) in counts.columns]]
    order += ["unparsed"] if "unparsed" in counts.columns else []
    return counts.select(order).fill_null(0).sort("dimension").to_pandas().to_markdown(index=False)


def failures(ratings: pl.DataFrame, n: int = 5) -> list[dict]:
    failed = ratings.filter(pl.col("parse_error").is_not_null())
    return failed.select("doc_id", "dimension", "answer", "parse_error").head(n).to_dicts()


def mean_score_by(scores: pl.LazyFrame | pl.DataFrame, by: str) -> dict[str, float]:
    """Mean combined score per value of `by` (one streaming group-by over the scores)."""
    means = scores.lazy().group_by(by).agg(pl.col("quality_score").mean())
    return {k: round(v, 3) for k, v in means.collect(engine="streaming").sort(by).iter_rows()}


def value_counts(scores: pl.LazyFrame | pl.DataFrame, column: str) -> dict[str, int]:
    """Documents per value of `column`, nulls as "null" (one streaming group-by)."""
    counts = scores.lazy().group_by(column).len().collect(engine="streaming")
    return {str(k): n for k, n in counts.sort("len", descending=True).iter_rows()}


def null_counts(scores: pl.LazyFrame | pl.DataFrame, columns: list[str]) -> dict[str, int]:
    counts = scores.lazy().select(pl.col(c).null_count() for c in columns)
    return counts.collect(engine="streaming").row(0, named=True)


def cluster_quality(scores: pl.LazyFrame | pl.DataFrame, labels: pl.DataFrame) -> str:
    """Markdown, best cluster first: size, mean combined and model scores, top-two-bucket share."""
    table = (
        scores.lazy()
        .filter(pl.col("cluster_id").is_not_null())
        .group_by("cluster_id")
        .agg(
            pl.len().alias("documents"),
            pl.col("quality_score").mean().round(3).alias("mean_quality"),
            pl.col("classifier_score").mean().round(3).alias("mean_classifier"),
            pl.col("educational_value").mean().round(2).alias("mean_educational"),
            (pl.col("quality_bucket") >= N_BUCKETS - 2).mean().round(2).alias("top_two_buckets"),
        )
        .collect(engine="streaming")
        .join(labels, on="cluster_id", how="left")
        .sort("mean_quality", descending=True)
    )
    columns = ["cluster_id", "label", "documents", "mean_quality", "mean_classifier"]
    columns += ["mean_educational", "top_two_buckets"]
    return table.select(columns).to_pandas().to_markdown(index=False)


def score_histograms(scores: pl.DataFrame, columns: list[str]) -> bytes:
    return plots.histograms(
        {n: scores[n].cast(pl.Float64).fill_null(np.nan).to_numpy() for n in columns}
    )
