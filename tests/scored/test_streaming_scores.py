"""quality_scores as a map over crawl shards (#16), checked against the whole-corpus computation.

The lake holds real pages of the bundled sample (the English and German Debian FAQ shards, cleaned
by the cleaned stage's own functions), a few rewrites, embeddings partitioned by shard and trained
scorers. `reference_scores` below is the scored stage as it was before the change: every document
in memory at once, `standardise` and `buckets` over the whole frame. The streaming implementation
must give the same features and scores (within float tolerance) and the same buckets, read each
shard's tables by partition, and keep its samples within their configured sizes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from sklearn.feature_extraction.text import HashingVectorizer

from assets.cleaned.clean import Cleaned, CleaningPolicy, clean_document
from assets.cleaned.schema import CLEANED_DOCUMENTS_SCHEMA, SIGNALS_SCHEMA
from assets.clustered.embed import to_table
from assets.corpus import corpus_documents
from assets.documents import DROPPED_SCHEMA, content_hash, make_doc_id
from assets.measures import buckets, standardise, weighted
from assets.rephrased.schema import REPHRASED_SCHEMA
from assets.scored import features as features_module
from assets.scored.artifacts import save_model, stable_sample
from assets.scored.classifier import ClassifierSpec, classifier_scores, train_classifier
from assets.scored.combine import learn_weights, skilled
from assets.scored.dataman import CRITERION_COLUMNS, DOMAIN_COLUMN
from assets.scored.distill import fit_heads, predict
from assets.scored.features import CLASSIFIER_FILE, HEADS_FILE, load_scorers
from assets.scored.ratings import DIMENSIONS
from assets.scored.schema import (
    CLASSIFIER_METRICS_SCHEMA,
    CLASSIFIER_SCHEMA,
    FEATURES_SCHEMA,
    SCORER_METRICS_SCHEMA,
    SCORES_SCHEMA,
    frame,
)
from assets.scored.scoring import KNOWN_INPUTS, ScoringPolicy, gates, score_corpus
from assets.scored.signals import redpajama_signals, text_signals
from assets.scored.statistics import aggregate, bucket_edges, bucket_of, prepared, sample_medians
from assets.scored.training import (
    classifier_examples,
    crawl_sample,
    head_table,
    rating_sample,
    rating_targets,
)
from resources.lake import Lake
from resources.langid import LanguageIdentifier
from tests.scored.conftest import faq_pages

SPEC = ClassifierSpec(n_features=2**14, folds=3, bootstrap=200)
# lenient gates, so that the classifier and the heads weigh in both computations
POLICY = ScoringPolicy(min_heldout_auc=0.0, min_heldout_spearman=-1.0, workers=1)
MODEL_ID = "hashed-64"
COLUMNS = sorted(KNOWN_INPUTS)


def _vectors(texts: list[str]) -> np.ndarray:
    return HashingVectorizer(n_features=64).transform(texts).toarray()


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Lake:
    lake = Lake(home=str(tmp_path_factory.mktemp("foundry")))
    identify = LanguageIdentifier().identify
    organic: list[dict] = []
    for language in ("en", "de"):
        shard = f"faq-{language}"
        kept: list[Cleaned] = []
        for i, text in enumerate(faq_pages(language)):
            doc = {"doc_id": make_doc_id(shard, text), "shard": shard, "url": f"u{i}", "text": text}
            result = clean_document({**doc, "source_offset": i}, identify, CleaningPolicy())
            if isinstance(result, Cleaned):
                kept.append(result)
        rows = [c.row for c in kept]
        organic += rows
        with lake.publish("cleaned_documents", shard) as out:
            out.write("documents", pl.DataFrame(rows), CLEANED_DOCUMENTS_SCHEMA)
            signals = [
                {"doc_id": c.row["doc_id"], "signal": k, "value": v}
                for c in kept
                for k, v in c.signals.items()
            ]
            out.write("signals", pl.DataFrame(signals), SIGNALS_SCHEMA)
        with lake.publish("document_embeddings", shard) as out:
            keys = [(r["doc_id"], content_hash(r["text"])) for r in rows]
            table = to_table(keys, MODEL_ID, _vectors([r["text"] for r in rows]))
            out.write("documents", table, table.schema)
    # two English pages removed as duplicates
    removed = [r for r in organic if r["language"] == "en"][:2]
    with lake.publish("duplicate_clusters") as out:
        dropped = [{"doc_id": r["doc_id"], "stage": "cleaned", "rule": "minhash"} for r in removed]
        out.write("dropped", pa.Table.from_pylist(dropped, DROPPED_SCHEMA), DROPPED_SCHEMA)
    # rewrites, unpartitioned; one in French, a language group too small for its own statistics
    rewrites = [
        {
            "doc_id": make_doc_id("rewrite", f"{lang}{r['text']}"),
            "source_doc_id": r["doc_id"],
            "language": lang,
            "text": prefix + r["text"][:1200],
        }
        for r, lang, prefix in zip(
            organic[3:6],
            ("en", "en", "fr"),
            ("Debian is a free system. ", "In short: ", "Debian est libre. "),
            strict=True,
        )
    ]
    with lake.publish("rephrased_documents") as out:
        out.write("documents", pa.Table.from_pylist(rewrites, REPHRASED_SCHEMA), REPHRASED_SCHEMA)
        keys = [(r["doc_id"], content_hash(r["text"])) for r in rewrites]
    corpus = corpus_documents(lake).select("doc_id", "text", "language").collect()
    with lake.publish("clusters") as out:
        clusters = corpus.select("doc_id").with_columns(
            (pl.int_range(pl.len()) % 3).cast(pl.Int32).alias("cluster_id")
        )
        out.write("documents", clusters, clusters.to_arrow().schema)
        # rewrites' vectors live with the clusters asset (it embeds them)
        table = to_table(keys, MODEL_ID, _vectors([r["text"] for r in rewrites]))
        out.write("synthetic_embeddings", table, table.schema)
    _train_scorers(lake, corpus)
    return lake


def _train_scorers(lake: Lake, corpus: pl.DataFrame) -> None:
    """A classifier on the topic-matched examples and rating heads on scripted ratings, stored
    as the trained assets store them."""
    examples = classifier_examples(lake, [], None, 2000, 0)
    model, evaluation = train_classifier(examples["text"], examples["label"], SPEC)
    table = examples.select("doc_id", "source", "language", "label").with_columns(
        pl.Series("heldout_score", evaluation.heldout).fill_nan(None),
        examples["text"].str.len_chars().cast(pl.Int64).alias("n_chars"),
    )
    metrics = {
        "fingerprint": "c",
        "trained": True,
        "auc": evaluation.auc,
        "auc_ci_low": evaluation.auc_ci_low,
        "auc_ci_high": evaluation.auc_ci_high,
        "n_reference": evaluation.n_positive,
        "n_crawl": evaluation.n_negative,
        "folds": evaluation.folds,
    }
    with lake.publish("quality_classifier") as out:
        out.write("documents", table, CLASSIFIER_SCHEMA)
        out.write("metrics", frame([metrics], CLASSIFIER_METRICS_SCHEMA), CLASSIFIER_METRICS_SCHEMA)
        save_model({"model": model, "spec": SPEC}, out.staging / CLASSIFIER_FILE)

    rated = corpus.filter(pl.col("doc_id").is_in(stable_sample(corpus["doc_id"], 40, 0)))
    # scripted ratings a head can learn: a direction of the embedding, on the 0-5 scale
    latent = _vectors(rated["text"].to_list()) @ np.random.default_rng(0).normal(size=64)
    scale = np.clip(np.round(2.5 + 1.5 * (latent - latent.mean()) / latent.std()), 0, 5)
    ratings = pl.DataFrame(
        [
            {"doc_id": d, "dimension": dim, "score": int(score)}
            for d, score in zip(rated["doc_id"], scale, strict=True)
            for dim in DIMENSIONS
        ],
        schema_overrides={"score": pl.Int8},
    )
    with lake.publish("llm_ratings") as out:
        out.write("documents", rated.select("doc_id"), pa.schema([("doc_id", pa.string())]))
        out.write("ratings", ratings, ratings.to_arrow().schema)
    embedded = _all_vectors(lake)
    vectors, targets, ids = rating_targets(ratings, embedded, list(DIMENSIONS))
    heads, reports = fit_heads(vectors, targets, 3, 0)
    rows = [
        {
            "fingerprint": "h",
            "dimension": r.dimension,
            "n_rated": r.n_rated,
            "spearman": r.spearman,
            "spearman_ci_low": r.spearman_ci_low,
        }
        for r in reports
    ]
    with lake.publish("rating_scorer") as out:
        table = head_table(ids, targets, reports)
        out.write("documents", table, table.to_arrow().schema)
        out.write("metrics", frame(rows, SCORER_METRICS_SCHEMA), SCORER_METRICS_SCHEMA)
        save_model({"heads": heads, "embedding_model": MODEL_ID}, out.staging / HEADS_FILE)


# ------------------------------------------------------------------ the computation before #16


def _all_vectors(lake: Lake) -> pl.DataFrame:
    """Every vector at once: organic ones per shard, rewrites' in the clusters asset."""
    return pl.concat(
        [
            lake.scan(asset, table).select("doc_id", "embedding").collect()
            for asset, table in (
                ("document_embeddings", "documents"),
                ("clusters", "synthetic_embeddings"),
            )
        ]
    )


def reference_scores(lake: Lake, policy: ScoringPolicy) -> pl.DataFrame:
    """The scored stage before #16, whole corpus in memory: every document's features at once,
    `standardise` over the whole frame, `weighted`, rank `buckets`, clusters joined."""
    scorers = load_scorers(lake)
    docs = corpus_documents(lake).select("doc_id", "origin", "language", "text").collect()
    organic = docs.filter(pl.col("origin") == "organic")
    long = lake.scan("cleaned_documents", "signals").collect()
    wide = long.pivot(on="signal", index="doc_id", values="value", aggregate_function="first")
    toxicity = lake.scan("cleaned_documents").select("doc_id", "toxicity").collect()
    measured = pl.concat(
        [
            organic.select("doc_id")
            .join(wide, on="doc_id", how="left")
            .join(toxicity, on="doc_id", how="left")
            .with_columns(pl.lit("cleaned").alias("toxicity_source")),
            features_module._measure(docs.filter(pl.col("origin") != "organic")),
        ],
        how="diagonal_relaxed",
    )
    signals = redpajama_signals(measured).join(
        measured.select("doc_id", "toxicity", "toxicity_source"), on="doc_id"
    )
    texts = docs["text"].to_list()
    derived = pl.DataFrame([text_signals(t) for t in texts])
    raw = classifier_scores(scorers.classifier["model"], texts, scorers.classifier["spec"])
    scores = {
        "classifier_score": features_module._out_of_fold(
            docs["doc_id"], raw, scorers.classifier_oof, "heldout_score"
        )
    }
    scores["preselect_score"] = np.full(docs.height, np.nan)  # no PreSelect in this lake
    scores |= {dim: np.full(docs.height, np.nan) for dim in DIMENSIONS}
    scores |= {name: np.full(docs.height, np.nan) for name in CRITERION_COLUMNS}  # no DataMan
    vectors = _all_vectors(lake)
    aligned = docs.select("doc_id").join(vectors, on="doc_id", how="left", maintain_order="left")
    matrix = np.asarray(aligned["embedding"].to_list(), dtype=np.float32)
    for dim, values in predict(scorers.heads, matrix).items():
        scores[dim] = features_module._out_of_fold(
            docs["doc_id"], values, scorers.heads_oof, f"{dim}_heldout"
        )
    features = docs.select("doc_id", "origin", "language").with_columns(
        *(pl.Series(name, values).fill_nan(None) for name, values in scores.items()),
        pl.lit(None, pl.String).alias(DOMAIN_COLUMN),
        *derived.get_columns(),
    )
    features = features.join(signals, on="doc_id", how="left")
    by = "language" if policy.standardise_by == "language" else None
    z = standardise(features, COLUMNS, by, policy.min_group)
    weights = dict(policy.weights)
    if policy.weighting == "learned":
        means = (
            lake.scan("llm_ratings", "ratings")
            .group_by("doc_id")
            .agg(pl.col("score").cast(pl.Float64).mean().alias("mean"))
            .collect()
        )
        target = features.select("doc_id").join(
            means, on="doc_id", how="left", maintain_order="left"
        )
        inputs = [c for c in policy.weights if c not in DIMENSIONS]
        learned = learn_weights(z, inputs, target["mean"].fill_null(np.nan).to_numpy())
        kept = {d: w for d, w in policy.weights.items() if d in DIMENSIONS}
        weights = {**learned.weights, **kept}
    weights, _ = skilled(weights, scorers.heldout, *gates(policy))
    total = weighted(z, weights)
    clusters = lake.scan("clusters").select("doc_id", "cluster_id").collect()
    return features.with_columns(
        pl.Series("quality_score", total), pl.Series("quality_bucket", buckets(total))
    ).join(clusters, on="doc_id", how="left")


def streamed(lake: Lake, policy: ScoringPolicy):
    with tempfile.TemporaryDirectory() as scratch, lake.publish("quality_scores") as out:
        result = score_corpus(lake, policy, out.table("documents", SCORES_SCHEMA), Path(scratch))
    return result, lake.scan("quality_scores").collect()


def _assert_same(new: pl.DataFrame, old: pl.DataFrame) -> None:
    assert new.height == old.height and set(new["doc_id"]) == set(old["doc_id"])
    joined = old.join(new, on="doc_id", suffix="_new")
    for name in [*FEATURES_SCHEMA.names[1:], "quality_score", "quality_bucket", "cluster_id"]:
        a, b = joined[name], joined[f"{name}_new"]
        if a.dtype.is_float() or b.dtype.is_float():
            a, b = a.cast(pl.Float64).to_numpy(), b.cast(pl.Float64).to_numpy()
            assert np.allclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True), name
        else:
            assert a.cast(pl.String).to_list() == b.cast(pl.String).to_list(), name


def _assert_close(new: pl.DataFrame, old: pl.DataFrame) -> None:
    """Equal frames, floats to 1e-9: a torch or BLAS model run in another process may use
    another thread count, and so sum in another order (the last bits of a score)."""
    assert new.columns == old.columns and new["doc_id"].equals(old["doc_id"])
    for name in new.columns:
        a, b = new[name], old[name]
        if a.dtype.is_float():
            assert np.allclose(a.to_numpy(), b.to_numpy(), rtol=1e-9, atol=1e-9, equal_nan=True)
        else:
            assert a.equals(b), name


@pytest.mark.parametrize("weighting", ["configured", "learned"])
def test_streamed_scores_equal_the_whole_corpus_computation(lake: Lake, weighting) -> None:
    policy = ScoringPolicy(**{**POLICY.__dict__, "weighting": weighting})
    old = reference_scores(lake, policy)
    assert old["quality_score"].n_unique() == old.height, "ties would make buckets ambiguous"
    assert set(old["language"]) == {"en", "de", "fr"}
    result, new = streamed(lake, policy)
    _assert_same(new, old)
    assert result.rows == new.height
    assert "classifier_score" in result.weights and set(DIMENSIONS) & set(result.weights)
    assert sorted(new["quality_bucket"].value_counts()["count"]) == sorted(
        old["quality_bucket"].value_counts()["count"]
    )
    if weighting == "learned":
        assert result.learned_note == f"learned on {new.height} rated documents"


def test_worker_processes_give_the_same_scores(lake: Lake) -> None:
    """The map over shards in two spawned workers: the same rows, scores, sample and edges."""
    alone, one = streamed(lake, POLICY)
    spread, two = streamed(lake, ScoringPolicy(**{**POLICY.__dict__, "workers": 2}))
    _assert_same(two, one)
    _assert_close(spread.sample.sort("doc_id"), alone.sample.sort("doc_id"))
    assert np.allclose(spread.edges, alone.edges, rtol=1e-9, atol=1e-12)


def test_each_shard_is_read_by_partition(lake: Lake, monkeypatch) -> None:
    """Signals, toxicity and vectors of a shard come from its own partition: no read of a whole
    per-shard table per batch (the N^2 of the old implementation)."""
    reads: list[tuple[str, str, tuple | None]] = []
    scan = Lake.scan

    def spy(self, asset, table="documents", partitions=None):
        reads.append((asset, table, tuple(partitions) if partitions else None))
        return scan(self, asset, table, partitions)

    monkeypatch.setattr(Lake, "scan", spy)
    streamed(lake, POLICY)
    shards = {("faq-en",), ("faq-de",)}
    signals = [p for a, t, p in reads if (a, t) == ("cleaned_documents", "signals")]
    assert sorted(signals) == sorted(shards)
    documents = {p for a, t, p in reads if (a, t) == ("cleaned_documents", "documents")}
    assert documents == shards
    vectors = [p for a, t, p in reads if a == "document_embeddings"]
    assert sorted(vectors) == sorted(shards)  # each shard's own partition, once
    synthetic = [p for a, t, p in reads if (a, t) == ("clusters", "synthetic_embeddings")]
    assert synthetic == [None]  # the rewrites' vectors, read once for the rewrites' unit


# ------------------------------------------------------------------ statistics


@pytest.fixture(scope="module")
def features(lake: Lake) -> pl.DataFrame:
    _, new = streamed(lake, POLICY)
    return new.select(FEATURES_SCHEMA.names)


def test_streaming_statistics_equal_the_in_memory_ones(features: pl.DataFrame, tmp_path) -> None:
    """Per language: mean and std with missing values at the language's median; over the
    corpus: at the corpus median (what `standardise` computes); then the same z-scores."""
    path = tmp_path / "features.parquet"
    features.write_parquet(path)
    medians = sample_medians(features, COLUMNS)
    stats = aggregate(pl.scan_parquet(path), COLUMNS, medians, "language", 3)
    for language in ("en", "de", "fr"):
        group = features.filter(pl.col("language") == language)
        row = stats.groups.filter(pl.col("language") == language).row(0, named=True)
        assert row["_n"] == group.height
        for c in COLUMNS:
            values = group.select(prepared(c))[c]
            if values.median() is not None:
                values = values.fill_null(values.median())
            for got, want in ((row[f"{c}_mean"], values.mean()), (row[f"{c}_std"], values.std())):
                assert (got is None and want is None) or np.isclose(got, want, rtol=1e-12), (
                    language,
                    c,
                    got,
                    want,
                )
    filled = features.select(prepared(c, medians[0][c]) for c in COLUMNS)
    for c in COLUMNS:
        mean, std = stats.overall[c]
        assert medians[0][c] == features.select(prepared(c).median()).item()
        want_mean, want_std = filled[c].mean(), filled[c].std()
        assert (mean is None and want_mean is None) or np.isclose(mean, want_mean, rtol=1e-12)
        assert (std is None and want_std is None) or np.isclose(std, want_std, rtol=1e-12)
    z = stats.z(features)
    assert np.allclose(z.to_numpy(), standardise(features, COLUMNS, "language", 3).to_numpy())
    corpus_z = aggregate(pl.scan_parquet(path), COLUMNS, medians, None, 3).z(features)
    assert np.allclose(corpus_z.to_numpy(), standardise(features, COLUMNS, None, 3).to_numpy())
    assert not np.allclose(z.to_numpy(), corpus_z.to_numpy())


def test_bucket_edges_reproduce_rank_buckets() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 7, 10, 101):
        scores = rng.normal(size=n)
        assert (bucket_of(scores, bucket_edges(scores)) == buckets(scores)).all(), n


# ------------------------------------------------------------------ bounded samples


def test_the_statistics_sample_is_bounded_and_seeded(lake: Lake) -> None:
    small = ScoringPolicy(**{**POLICY.__dict__, "sample_size": 25, "seed": 3})
    result, new = streamed(lake, small)
    assert result.sample.height == 25 < new.height
    assert set(result.sample["doc_id"]) == set(stable_sample(new["doc_id"], 25, 3))
    # means and deviations are still those of the whole corpus (with the sample's medians)
    filled = new.select(prepared(c, result.statistics.medians[c]) for c in COLUMNS)
    for c in ("classifier_score", "rps_doc_word_count"):
        assert np.isclose(result.statistics.overall[c][0], filled[c].mean(), rtol=1e-12)
    # buckets from the sample's edges: every bucket is used, roughly a fifth each
    counts = new["quality_bucket"].value_counts()["count"].to_numpy()
    assert len(counts) == 5 and counts.min() >= new.height / 5 / 2


def test_classifier_examples_come_from_a_bounded_per_language_sample(lake: Lake) -> None:
    organic = (
        corpus_documents(lake).filter(pl.col("origin") == "organic").select("doc_id", "language")
    ).collect()
    sample = crawl_sample(lake, None, 6, 0)
    for language in ("en", "de"):
        ids = organic.filter(pl.col("language") == language)["doc_id"]
        chosen = sample.filter(pl.col("language") == language)["doc_id"]
        assert ids.len() > 6 and set(chosen) == set(stable_sample(ids, 6, 0))
    examples = classifier_examples(lake, [], None, 2000, 0, sample_per_language=6)
    assert set(examples["doc_id"]) <= set(sample["doc_id"])
    counts = examples.group_by("language", "label").len()
    assert sorted(counts["len"]) == [2, 2, 2, 2]  # a third of 6 per class and language


def test_rating_sample_is_the_stable_sample_of_the_corpus(lake: Lake) -> None:
    corpus = corpus_documents(lake).select("doc_id", "language").collect()
    english = corpus.filter(pl.col("language") == "en")["doc_id"]
    sample = rating_sample(lake, ["en"], 7, 5)
    assert sample["doc_id"].to_list() == sorted(stable_sample(english, 7, 5))
    assert sample.columns == ["doc_id", "origin", "language", "text"]
    assert rating_sample(lake, None, 10**6, 0).height == corpus.height


def test_a_language_without_spread_takes_the_corpus_z_score(tmp_path) -> None:
    """86 equal values (a signal copied from one page, as on generated corpora): no spread, so
    the corpus statistics apply, decided exactly (a windowed std finds about 1e-17 there, whose
    z-scores would be float noise far from the corpus ones), here and in `standardise`."""
    rng = np.random.default_rng(0)
    value = 0.039900249376558575
    frame = pl.DataFrame(
        {
            "language": ["pl"] * 86 + ["en"] * 200,
            "x": [value] * 86 + rng.uniform(0, 0.2, 200).tolist(),
        }
    )
    frame.write_parquet(tmp_path / "f.parquet")
    stats = aggregate(
        pl.scan_parquet(tmp_path / "f.parquet"), ["x"], sample_medians(frame, ["x"]), "language", 3
    )
    z = stats.z(frame)["x"].to_numpy()
    corpus = standardise(frame, ["x"], None, 3)["x"].to_numpy()
    by_language = standardise(frame, ["x"], "language", 3)["x"].to_numpy()
    assert np.allclose(z[:86], corpus[:86])  # no spread: the corpus z-score
    assert np.allclose(z[86:], by_language[86:])  # spread: the language's own
    assert np.allclose(by_language[:86], corpus[:86])  # `standardise` decides spread alike
