"""Dagster definition of the scored stage: signals per document and one combined score."""

import time
from collections.abc import Iterator

import dagster as dg
import polars as pl
from pydantic import Field

from assets.contracts import Contract, balance_check, check_specs, contract_check
from assets.corpus import corpus_documents
from assets.documents import DROPPED_SCHEMA
from assets.scored.signals import (
    DEFAULT_WEIGHTS,
    N_BUCKETS,
    SIGNAL_NAMES,
    combine,
    heuristic_signals,
)
from resources.lake import Lake

CODE_VERSION = "scored-1"
CONTRACT = Contract(
    columns=("doc_id", "origin", "quality_score", "quality_bucket", *SIGNAL_NAMES),
    not_null=("doc_id", "quality_score", "quality_bucket"),
    ranges={"quality_bucket": (0, N_BUCKETS - 1), "dup_line_ratio": (0.0, 1.0)},
)


class ScoredConfig(dg.Config):
    weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_WEIGHTS),
        description="Weight per signal (standardised) in the combined score.",
    )


@dg.asset(
    group_name="scored",
    code_version=CODE_VERSION,
    deps=["clusters"],
    check_specs=check_specs("quality_scores"),
    kinds={"parquet", "duckdb"},
)
def quality_scores(
    context: dg.AssetExecutionContext, config: ScoredConfig, lake: Lake
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Heuristic signals, a combined score and its quintile for every corpus document."""
    unknown = set(config.weights) - set(SIGNAL_NAMES)
    if unknown:
        raise dg.Failure(f"Unknown signals in weights: {sorted(unknown)}; known: {SIGNAL_NAMES}")
    started = time.perf_counter()
    corpus = corpus_documents(lake).select("doc_id", "origin", "text")
    signals = pl.concat(
        [
            pl.DataFrame(
                [{"doc_id": d, "origin": o, **heuristic_signals(t)} for d, o, t in b.iter_rows()]
            )
            for b in corpus.collect_batches(chunk_size=1024)
        ]
    )
    scores = combine(signals, config.weights)
    with lake.publish("quality_scores", run_id=context.run_id, code_version=CODE_VERSION) as out:
        out.write("documents", scores, _schema(scores))
        out.write("dropped", pl.DataFrame(), DROPPED_SCHEMA)
    yield dg.MaterializeResult(
        metadata={
            "documents": scores.height,
            "compute_s": round(time.perf_counter() - started, 3),
            "mean_score_by_origin": dg.MetadataValue.json(
                dict(scores.group_by("origin").agg(pl.col("quality_score").mean()).iter_rows())
            ),
            "weights": dg.MetadataValue.json(config.weights),
        }
    )
    yield contract_check("quality_scores", [f.path for f in lake.files("quality_scores")], CONTRACT)
    yield balance_check("quality_scores", signals.height, scores.height, 0)


def _schema(frame: pl.DataFrame):
    return frame.to_arrow().schema
