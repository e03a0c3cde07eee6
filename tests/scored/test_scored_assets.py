"""The scored stage's four assets on real Debian FAQ pages in a private lake.

The cleaned stage's own functions prepare the organic documents; embeddings are hashed word
counts and the rater is scripted (the real vLLM rater has its own test): the subject here is the
wiring, the reuse of trained artifacts and ratings, and that every document gets every score."""

import dagster as dg
import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from sklearn.feature_extraction.text import HashingVectorizer

from assets.cleaned.clean import Cleaned, CleaningPolicy, clean_document
from assets.cleaned.schema import CLEANED_DOCUMENTS_SCHEMA, SIGNALS_SCHEMA
from assets.clustered.embed import to_table
from assets.documents import content_hash, make_doc_id
from assets.rephrased.schema import REPHRASED_SCHEMA
from assets.scored.assets import quality_classifier, quality_scores
from assets.scored.dataman import CRITERION_COLUMNS, DOMAIN_COLUMN
from assets.scored.dataman_assets import dataman_heads, dataman_ratings
from assets.scored.preselect_assets import preselect_classifier
from assets.scored.ratings import DIMENSIONS
from assets.scored.ratings_assets import llm_ratings, rating_scorer
from resources.lake import Lake
from resources.langid import LanguageIdentifier
from resources.rewriter import Generation, VLLMRewriter
from resources.tokenizer import TokenCounter

CALLS: list[int] = []  # prompts per chat call of llm_ratings, across resource copies
DATAMAN_CALLS: list[int] = []  # the same for dataman_ratings (its conversations are longer)


class ScriptedRater(VLLMRewriter):
    """Rates by how often a page names Debian, names the domain by whether it talks of packages;
    cannot answer on about a quarter of the requests."""

    def truncate(self, text: str, max_tokens: int) -> str:
        return text[: max_tokens * 4]

    def chat(self, conversations) -> list[Generation]:
        (DATAMAN_CALLS if len(conversations[0]) > 5 else CALLS).append(len(conversations))
        out = []
        for conv in conversations:
            text = conv[-1]["content"]
            score = min(text.count("Debian"), 5)
            answer = f"Score: {max(score, 1)}"
            if "Which one domain" in text:
                answer = "Domain: " + ("Technology" if "package" in text else "Education")
            if sum(map(ord, text)) % 4 == 0:
                answer = "I cannot tell"
            out.append(Generation(answer, 50, 4, "stop"))
        return out


@pytest.fixture
def lake(foundry_home, faq_en: list[str]) -> Lake:
    lake = Lake(home=str(foundry_home))
    identify = LanguageIdentifier().identify
    kept: list[Cleaned] = []
    for i, text in enumerate(faq_en):
        doc = {"doc_id": make_doc_id("faq", text), "shard": "faq-en", "url": f"u{i}", "text": text}
        result = clean_document({**doc, "source_offset": i}, identify, CleaningPolicy())
        if isinstance(result, Cleaned):
            kept.append(result)
    with lake.publish("cleaned_documents", "faq-en") as out:
        out.write("documents", pl.DataFrame([c.row for c in kept]), CLEANED_DOCUMENTS_SCHEMA)
        signals = [
            {"doc_id": c.row["doc_id"], "signal": k, "value": v}
            for c in kept
            for k, v in c.signals.items()
        ]
        out.write("signals", pl.DataFrame(signals), SIGNALS_SCHEMA)
    source = kept[0].row
    rewrite = {
        "doc_id": make_doc_id("rewrite", source["text"]),
        "source_doc_id": source["doc_id"],
        "language": "en",
        "text": "Debian is a free operating system. " + source["text"][:1500],
    }
    with lake.publish("rephrased_documents") as out:
        out.write("documents", pa.Table.from_pylist([rewrite], REPHRASED_SCHEMA), REPHRASED_SCHEMA)
    ids = [c.row["doc_id"] for c in kept] + [rewrite["doc_id"]]
    texts = [c.row["text"] for c in kept] + [rewrite["text"]]
    vectors = HashingVectorizer(n_features=64).transform(texts).toarray()
    keys = [(d, content_hash(t)) for d, t in zip(ids, texts, strict=True)]
    with lake.publish("document_embeddings") as out:
        table = to_table(keys, "hashed-64", vectors)
        out.write("documents", table, table.schema)
    with lake.publish("clusters") as out:
        clusters = pl.DataFrame({"doc_id": ids, "cluster_id": [i % 2 for i in range(len(ids))]})
        out.write("documents", clusters, clusters.to_arrow().schema)
        summary = pl.DataFrame({"cluster_id": [0, 1], "label": ["even", "odd"]})
        out.write("summary", summary, summary.to_arrow().schema)
    return lake


ASSETS = [
    quality_classifier,
    preselect_classifier,
    llm_ratings,
    rating_scorer,
    dataman_ratings,
    dataman_heads,
    quality_scores,
]


def _run(lake: Lake, instance, ops: dict | None = None) -> dg.ExecuteInProcessResult:
    config = {
        "quality_classifier": {"config": {"n_features": 2**16}},
        "preselect_classifier": {"config": {"n_features": 2**16, "folds": 3}},
        **(ops or {}),
    }
    result = dg.materialize(
        ASSETS,
        resources={"lake": lake, "rewriter": ScriptedRater(), "tokens": TokenCounter()},
        run_config={"ops": config},
        instance=instance,
    )
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 2 * len(ASSETS) and all(c.passed for c in checks), [
        (c.asset_key, c.check_name, c.metadata) for c in checks if not c.passed
    ]
    return result


def _meta(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    (event,) = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in event.metadata.items()}


def test_every_document_gets_every_score_and_a_rerun_reuses_what_was_trained(lake: Lake) -> None:
    CALLS.clear()
    DATAMAN_CALLS.clear()
    instance = dg.DagsterInstance.ephemeral()
    first = _run(lake, instance)
    corpus = lake.scan("cleaned_documents").collect()
    scores = lake.scan("quality_scores").collect()
    assert scores.height == corpus.height + 1
    for column in (
        "classifier_score",
        *DIMENSIONS,
        *CRITERION_COLUMNS,
        "toxicity",
        "quality_score",
    ):
        assert scores[column].null_count() == 0, column
    assert set(scores["quality_bucket"]) <= set(range(5)) and scores["quality_bucket"].max() == 4
    assert scores["classifier_score"].is_between(0, 1).all()

    # carried from the cleaned stage, not measured again; the rewrite is measured here
    organic = scores.filter(pl.col("origin") == "organic").join(corpus, on="doc_id")
    assert organic["toxicity"].equals(organic["toxicity_right"])
    assert set(organic["toxicity_source"]) == {"cleaned"}
    words = lake.scan("cleaned_documents", "signals").filter(
        pl.col("signal") == "gopher_quality.n_words"
    )
    joined = organic.join(words.collect(), on="doc_id")
    assert np.allclose(joined["rps_doc_word_count"], joined["value"])
    synthetic = scores.filter(pl.col("origin") == "synthetic").row(0, named=True)
    assert synthetic["toxicity_source"] == "scored" and synthetic["rps_doc_word_count"] > 0

    ratings = lake.scan("llm_ratings", "ratings").collect()
    assert ratings.height == scores.height * len(DIMENSIONS) and [ratings.height] == CALLS
    failed = ratings.filter(pl.col("score").is_null())
    assert failed.height > 0 and set(failed["answer"]) == {"I cannot tell"}
    assert set(failed["parse_error"]) == {"no number in the answer"}
    assert (ratings.filter(pl.col("score").is_not_null())["answer"].str.starts_with("Score:")).all()

    # cross-fitting: a crawl document the classifier trained on keeps its out-of-fold score;
    # both classes are crawl pages (its best and worst thirds), topic-matched
    trained_on = lake.scan("quality_classifier").filter(pl.col("source") == "crawl").collect()
    crossfit = trained_on.join(scores, on="doc_id")
    assert crossfit.height == 2 * (corpus.height // 3)
    assert np.allclose(crossfit["heldout_score"], crossfit["classifier_score"])

    metrics = _meta(first, "quality_classifier")
    assert metrics["reused"] is False
    assert metrics["auc_ci_low"] <= metrics["heldout_auc"] <= metrics["auc_ci_high"]
    assert metrics["n_crawl"] == metrics["n_reference"] == corpus.height // 3
    stored = lake.scan("quality_classifier", "metrics").collect().row(0, named=True)
    assert stored["auc_ci_low"] == metrics["auc_ci_low"]
    scorer = _meta(first, "rating_scorer")
    spearman, low = scorer["heldout_spearman"], scorer["spearman_ci_low"]
    assert set(spearman) == set(low) == set(scorer["spearman_ci_high"]) == set(DIMENSIONS)
    scored = _meta(first, "quality_scores")
    # the gates read the intervals' lower bounds: Spearman's above 0 and at 0.1 or up, AUC's 0.6
    unskilled = {d for d, bound in low.items() if bound is None or bound < 0.1}
    if metrics["auc_ci_low"] < 0.6:
        unskilled.add("classifier_score")
    preselect = _meta(first, "preselect_classifier")
    if preselect["auc_ci_low"] is None or preselect["auc_ci_low"] < 0.6:
        unskilled.add("preselect_score")
    dataman = _meta(first, "dataman_heads")
    if (dataman["spearman_ci_low"]["dm_overall_score"] or 0) < 0.1:
        unskilled.add("dm_overall_score")
    if dataman["domain_accuracy_ci"][0] <= dataman["domain_majority_share"]:
        unskilled.add("dm_domain")
    assert set(scored["excluded_for_no_heldout_skill"]) == unskilled
    assert unskilled.isdisjoint(scored["weights"])
    assert "cluster_quality" in scored

    _check_dataman(lake, first, scores)

    classifier_version = lake.files("quality_classifier", "metrics")[0].version
    scorer_version = lake.files("rating_scorer", "metrics")[0].version
    second = _run(lake, instance)
    assert [ratings.height] == CALLS, "unchanged sample: no new rating request"
    assert _meta(second, "llm_ratings")["reused_documents"] == scores.height
    assert _meta(second, "quality_classifier")["reused"] is True
    assert _meta(second, "preselect_classifier")["reused"] is True
    assert _meta(second, "rating_scorer")["reused"] is True
    assert _meta(second, "dataman_heads")["reused"] is True
    assert _meta(second, "dataman_ratings")["reused_documents"] == scores.height
    assert len(DATAMAN_CALLS) == 1, "unchanged sample and prompts: no new DataMan request"
    assert lake.files("quality_classifier", "metrics")[0].version == classifier_version
    assert lake.files("rating_scorer", "metrics")[0].version == scorer_version
    assert lake.scan("quality_scores").collect().sort("doc_id").equals(scores.sort("doc_id"))

    third = _run(
        lake,
        instance,
        {
            "quality_classifier": {"config": {"n_features": 2**16, "c": 0.5}},
            "quality_scores": {"config": {"weighting": "learned"}},
        },
    )
    assert _meta(third, "quality_classifier")["reused"] is False
    assert lake.files("quality_classifier", "metrics")[0].version != classifier_version
    assert _meta(third, "quality_scores")["learned_weights_note"].startswith("learned on")


def _check_dataman(lake: Lake, result: dg.ExecuteInProcessResult, scores: pl.DataFrame) -> None:
    """14 ratings and a domain per sampled document, every answer kept; heads apply to every
    document; the domain reaches dm_domain only if its head beat the majority baseline."""
    answers = lake.scan("dataman_ratings", "ratings").collect()
    assert answers.height == scores.height * 15 and [answers.height] == DATAMAN_CALLS
    domains = answers.filter(pl.col("dimension") == "domain")
    assert set(domains["label"].drop_nulls()) == {"Technology", "Education"}
    assert set(domains.filter(pl.col("label").is_null())["answer"]) == {"I cannot tell"}
    wide = lake.scan("dataman_ratings").collect()
    assert wide.height == scores.height and wide["dm_overall_score"].is_between(1, 5).all()
    heads = _meta(result, "dataman_heads")
    assert set(heads["heldout_spearman"]) == set(CRITERION_COLUMNS)
    low, baseline = heads["domain_accuracy_ci"][0], heads["domain_majority_share"]
    assert heads["domain_accuracy"] is not None and 0 < baseline < 1
    assert scores["dm_overall_score"].is_between(1, 5).all()
    excluded = _meta(result, "quality_scores")["excluded_for_no_heldout_skill"]
    if low > baseline:
        assert scores[DOMAIN_COLUMN].null_count() == 0 and DOMAIN_COLUMN not in excluded
        assert set(scores[DOMAIN_COLUMN]) <= {"Technology", "Education"}
    else:
        assert scores[DOMAIN_COLUMN].null_count() == scores.height
        assert "no skill distinguishable" in excluded[DOMAIN_COLUMN]


def test_without_a_rating_sample_the_distilled_scores_are_null_and_the_checks_pass(
    lake: Lake,
) -> None:
    """`sample_size: 0` for both raters (a run without a rating engine): the heads train on
    nothing, say why, and every document still gets its scores, the distilled ones null."""
    none = {"config": {"sample_size": 0}}
    result = _run(
        lake, dg.DagsterInstance.ephemeral(), {"llm_ratings": none, "dataman_ratings": none}
    )
    assert _meta(result, "dataman_heads")["n_labelled"] == 0
    metrics = lake.scan("dataman_heads", "metrics").collect()
    assert metrics["dimension"].to_list() == ["dm_domain"] and metrics["spearman_reason"][0]
    scores = lake.scan("quality_scores").collect()
    assert scores.height > 0 and scores["quality_score"].null_count() == 0
    for column in ("dm_overall_score", "dm_domain"):
        assert scores[column].null_count() == scores.height, column
