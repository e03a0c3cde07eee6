"""What the trained scorers learn from, read from the lake: examples, samples, earlier ratings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import polars as pl

from assets.documents import make_doc_id
from assets.measures import standardise, weighted
from assets.scored.artifacts import (
    BottomK,
    current_artifact,
    fingerprint,
    ids_digest,
    reusable,
    stable_sample,
)
from assets.scored.combine import COMBINED_WEIGHTS
from assets.scored.distill import HeadReport
from assets.scored.features import HEADS_FILE, cleaned_measurements
from assets.scored.shards import ShardReader
from assets.scored.signals import REDPAJAMA_SIGNALS, redpajama_signals, text_signals
from resources.lake import Lake

# The cleaned stage's measurements that rank the crawl's pages for the classifier's classes: the
# heuristic part of the combined score's weights (no model scores, no toxicity).
HEURISTIC_QUALITY_WEIGHTS: dict[str, float] = {
    name: weight for name, weight in COMBINED_WEIGHTS.items() if name in REDPAJAMA_SIGNALS
}
Contrast = Literal["crawl_quality", "reference"]
SHARD = "_shard"  # the partition a sampled document was read from


def classifier_examples(
    lake: Lake,
    reference: Sequence[str],
    languages: Sequence[str] | None,
    max_per_class: int,
    seed: int,
    contrast: Contrast = "crawl_quality",
    tier_share: float = 1 / 3,
    sample_per_language: int = 10_000,
) -> pl.DataFrame:
    """The quality classifier's examples: label 1 (what to want more of) against label 0.

    The default, `crawl_quality`, draws both classes from the crawl itself, topic-matched: the
    organic documents of `languages` are ranked within their language by the cleaned stage's
    heuristic quality (Gopher, C4 and FineWeb measurements as RedPajama-style signals, weighted
    as in the combined score, standardised per language); the top `tier_share` of each language
    are the positives and its bottom `tier_share` the negatives (the crawl's own low-signal
    pages), the middle is left out so that neither class holds borderline pages. Why this one:
    a classifier trained on a reference set against the crawl (DCLM's recipe) learns whatever
    separates the two sources first, and with the built-in reference (CPython's documentation)
    and a crawl about Debian that is the topic: it reached held-out AUC 1.0 on the sample by
    telling Python from Debian, and that AUC said nothing about quality. Here both classes come
    from the same sites, the same languages (in equal numbers per language) and the same topic
    mix, so a held-out AUC above chance can only come from what tells the crawl's good pages
    from its bad ones, in words the classifier can also find in pages (and rewrites) the
    heuristics rank badly or never saw. A reference set re-balanced by topic would need a
    reference that covers the crawl's topics, which the built-in one does not; `reference`
    (the passages) is then unused.

    `reference`: DCLM's recipe with topic-matched negatives only: the reference passages
    (label 1) against the crawl's bottom `tier_share` (label 0). Use it with a reference of the
    crawl's own domain; with an off-topic one the classifier separates topics again.

    Rewrites are no examples: they are not crawl documents, and the classifier scores them.
    The tiers are ranked within a bounded, seeded sample stratified by language (the
    `sample_per_language` organic documents of each language with the lowest seeded hash of
    their doc_id, drawn shard by shard; the whole crawl while it is smaller), and every class is
    a stable sample of its tier, so a re-run on the same crawl trains on the same examples."""
    ranked = quality_tiers(
        lake, crawl_sample(lake, languages, sample_per_language, seed), tier_share
    )
    low = _sampled(ranked.filter(pl.col("tier") == "low"), max_per_class, seed)
    if contrast == "crawl_quality":
        high = _sampled(ranked.filter(pl.col("tier") == "high"), max_per_class, seed)
        positives = high.with_columns(pl.lit("crawl").alias("source"))
    elif contrast == "reference":
        positives = _reference_examples(reference, max_per_class, seed)
    else:
        raise ValueError(f"unknown contrast {contrast!r}: use 'crawl_quality' or 'reference'")
    negatives = low.with_columns(pl.lit("crawl").alias("source"))
    examples = pl.concat(
        [
            positives.with_columns(pl.lit(1, pl.Int8).alias("label")),
            negatives.with_columns(pl.lit(0, pl.Int8).alias("label")),
        ],
        how="diagonal_relaxed",
    )
    columns = ["doc_id", "text", "language", "source", "label"]
    return examples.select(columns).sort("label", "doc_id", descending=[True, False])


def quality_tiers(lake: Lake, docs: pl.DataFrame, tier_share: float) -> pl.DataFrame:
    """`docs` (doc_id, text, language) with `heuristic_quality` and `tier`: high, middle or low.

    Within each language the same number of documents, floor(n * tier_share), is high and low
    (ties broken by doc_id, so the tiers are stable)."""
    if docs.is_empty():
        return docs.with_columns(
            pl.lit(None, pl.Float64).alias("heuristic_quality"),
            pl.lit(None, pl.String).alias("tier"),
        )
    quality = heuristic_quality(lake, docs)
    ranked = docs.with_columns(pl.Series("heuristic_quality", quality)).sort(
        "language", "heuristic_quality", "doc_id"
    )
    rank = pl.int_range(pl.len()).over("language")
    size = (pl.len().over("language") * tier_share).floor().cast(pl.Int64)
    tier = (
        pl.when(rank < size)
        .then(pl.lit("low"))
        .when(rank >= pl.len().over("language") - size)
        .then(pl.lit("high"))
        .otherwise(pl.lit("middle"))
    )
    return ranked.with_columns(tier.alias("tier"))


def heuristic_quality(lake: Lake, docs: pl.DataFrame) -> np.ndarray:
    """The heuristic part of the combined score for organic documents, from what the cleaned
    stage measured (its `signals` table) and the text, standardised within language. With a
    `shard` column (as `crawl_sample` gives), each shard's measurements are read from its own
    partition."""
    reader = ShardReader(lake)
    if SHARD in docs.columns:
        parts = docs.partition_by(SHARD, as_dict=True, include_key=False)
        wide = [cleaned_measurements(reader, d["doc_id"], key[0]) for key, d in parts.items()]
    else:
        wide = [cleaned_measurements(reader, docs["doc_id"])]
    measured = docs.select("doc_id").join(
        pl.concat(wide, how="diagonal_relaxed"), on="doc_id", how="left", maintain_order="left"
    )
    signals = redpajama_signals(measured)
    derived = pl.DataFrame([text_signals(t) for t in docs["text"]])
    frame = docs.select("doc_id", "language").with_columns(derived.get_columns())
    frame = frame.join(signals.drop(derived.columns, strict=False), on="doc_id", how="left")
    z = standardise(frame, list(HEURISTIC_QUALITY_WEIGHTS), "language", min_group=3)
    return weighted(z, HEURISTIC_QUALITY_WEIGHTS)


def crawl_sample(
    lake: Lake, languages: Sequence[str] | None, per_language: int, seed: int
) -> pl.DataFrame:
    """doc_id, text, language, shard of at most `per_language` organic documents per language:
    the lowest seeded hashes of doc_id (`BottomK`), drawn one shard at a time from ids and
    languages only; the texts of the chosen few are read afterwards, shard by shard."""
    reader = ShardReader(lake)
    chosen = BottomK(per_language, seed, by="language")
    for unit in reader.units(synthetic=False):
        if (docs := reader.organic(unit)) is None:
            continue
        if languages is not None:
            docs = docs.filter(pl.col("language").is_in(list(languages)))
        chosen.offer(docs.select("doc_id", "language", pl.lit(unit).alias(SHARD)).collect())
    return _texts(
        reader, chosen.frame, lambda unit: reader.organic(unit).select("doc_id", "text", "language")
    )


def _texts(reader: ShardReader, chosen: pl.DataFrame | None, source) -> pl.DataFrame:
    """The chosen documents' rows (with their texts), read per shard."""
    if chosen is None or chosen.is_empty():
        names = ("doc_id", "origin", "language", "text", SHARD)
        return pl.DataFrame(schema=dict.fromkeys(names, pl.String))
    frames = []
    for (unit,), ids in chosen.partition_by(SHARD, as_dict=True).items():
        wanted = pl.col("doc_id").is_in(ids["doc_id"].implode())
        frames.append(source(unit).filter(wanted).with_columns(pl.lit(unit).alias(SHARD)).collect())
    return pl.concat(frames, how="diagonal_relaxed").sort("doc_id")


def _sampled(frame: pl.DataFrame, k: int, seed: int) -> pl.DataFrame:
    chosen = set(stable_sample(frame["doc_id"], k, seed))
    return frame.filter(pl.col("doc_id").is_in(list(chosen))).select("doc_id", "text", "language")


def _reference_examples(reference: Sequence[str], k: int, seed: int) -> pl.DataFrame:
    passages = pl.DataFrame(
        {"doc_id": [make_doc_id("reference", t) for t in reference], "text": list(reference)},
        schema={"doc_id": pl.String, "text": pl.String},
    ).unique("doc_id", keep="first")
    return _sampled(
        passages.with_columns(pl.lit(None, pl.String).alias("language")), k, seed
    ).with_columns(pl.lit("reference").alias("source"))


def rating_sample(lake: Lake, languages: Sequence[str] | None, n: int, seed: int) -> pl.DataFrame:
    """A stable sample of corpus documents (organic and synthetic) in the rater's languages:
    the `n` lowest seeded hashes of doc_id, kept while the shards stream past (`BottomK`)."""
    reader = ShardReader(lake)
    chosen = BottomK(n, seed)

    def corpus(unit: str) -> pl.LazyFrame:
        docs = reader.documents(unit)
        if languages is not None:
            docs = docs.filter(pl.col("language").is_in(list(languages)))
        return docs

    for unit in reader.units():
        chosen.offer(corpus(unit).select("doc_id", pl.lit(unit).alias(SHARD)).collect())
    return _texts(reader, chosen.frame, corpus).select("doc_id", "origin", "language", "text")


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


def mean_ratings(lake: Lake) -> pl.DataFrame:
    """doc_id, mean accepted LLM rating of every rated document (a bounded sample)."""
    if not lake.has("llm_ratings", "ratings"):
        return pl.DataFrame(schema={"doc_id": pl.String, "mean": pl.Float64})
    return (
        lake.scan("llm_ratings", "ratings")
        .group_by("doc_id")
        .agg(pl.col("score").cast(pl.Float64).mean().alias("mean"))
        .collect()
    )


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
    return pl.DataFrame(columns, schema_overrides={"doc_id": pl.String}).fill_nan(None)


def head_metrics(
    reports: list[HeadReport], fingerprint: str, embedding_model: str | None
) -> list[dict]:
    """One metrics row per head: its held-out Spearman, interval, reason and penalty."""
    return [
        {
            "fingerprint": fingerprint,
            "dimension": r.dimension,
            "n_rated": r.n_rated,
            "spearman": r.spearman,
            "spearman_ci_low": r.spearman_ci_low,
            "spearman_ci_high": r.spearman_ci_high,
            "spearman_reason": r.reason,
            "alpha": r.alpha,
            "embedding_model": embedding_model,
        }
        for r in reports
    ]


def head_inputs(
    lake: Lake, asset: str, ids: pl.Series, answers: pl.DataFrame, *settings: object
) -> tuple[pl.DataFrame, list[str], str, bool]:
    """The rated sample's vectors, their embedding models, the fingerprint of everything the
    heads depend on (`settings`: code version, folds, seed), and whether `asset`'s current
    artifact already has it (then it is reused, not refitted)."""
    embedded = ShardReader(lake).vectors(ids, None)  # the rated sample only
    model_ids = sorted(set(embedded["model_id"]))
    wanted = fingerprint(
        *settings,
        model_ids,
        answers.sort("doc_id", "dimension").rows(),
        ids_digest(embedded["text_hash"]),
    )
    reused = reusable(current_artifact(lake, asset), wanted, lake, HEADS_FILE)
    return embedded, model_ids, wanted, reused
