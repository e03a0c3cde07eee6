"""The Dagster asset on a small real lake: shards, manifest, search rounds, card and checks."""

import gzip
import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.documents import DROPPED_SCHEMA
from assets.mixed.assets import training_mixture
from assets.mixed.proxy import NgramProxy
from resources.lake import Lake
from resources.tokenizer import TokenCounter

BUDGET = 30_000
SHARDS = ("en", "de", "fr")  # organic documents by language prefix of their doc_id
SEARCH = {"rounds": 2, "candidates": 4, "pool": 256, "top_k": 3, "proxy_tokens": 10_000}


def publish(
    lake: Lake, asset: str, tables: dict[str, pl.DataFrame], partition: str | None = None
) -> None:
    with lake.publish(asset, partition, run_id="fixture", code_version="test") as out:
        for name, frame in tables.items():
            schema = DROPPED_SCHEMA if name == "dropped" else frame.to_arrow().schema
            out.write(name, frame, schema)


@pytest.fixture
def lake(faq_docs: pl.DataFrame, foundry_home: Path) -> Lake:
    """The upstream tables the mixed stage reads, built from real FAQ pages."""
    lake = Lake(home=str(foundry_home))
    organic = faq_docs.filter(pl.col("origin") == "organic")
    synthetic = faq_docs.filter(pl.col("origin") == "synthetic")
    for shard in SHARDS:  # two crawl shards, each with its own token counts
        docs = organic.filter(pl.col("doc_id").str.starts_with(shard))
        publish(
            lake,
            "cleaned_documents",
            {"documents": docs.select("doc_id", "text", "language")},
            shard,
        )
        publish(lake, "token_counts", {"documents": docs.select("doc_id", "tokens")}, shard)
    rewrites = synthetic.select("doc_id", "text", "language", source_doc_id=pl.col("doc_id"))
    publish(lake, "rephrased_documents", {"documents": rewrites})
    semantic_dup = faq_docs.head(1).select("doc_id", stage=pl.lit("clustered"), rule=pl.lit("dup"))
    summary = faq_docs.group_by("cluster_id").agg(
        pl.col("language").first().alias("label"), pl.len().cast(pl.Int64).alias("size")
    )
    publish(
        lake,
        "clusters",
        {
            "documents": faq_docs.select("doc_id", "cluster_id"),
            "dropped": semantic_dup,
            "summary": summary,
        },
    )
    scores = faq_docs.select("doc_id", "origin", "quality_score", "quality_bucket")
    publish(lake, "quality_scores", {"documents": scores})
    return lake


def materialize(lake: Lake, config: dict) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [training_mixture],
        resources={"lake": lake, "tokens": TokenCounter(), "proxy": NgramProxy()},
        run_config={"ops": {"training_mixture": {"config": {"token_budget": BUDGET, **config}}}},
    )


def version_dir(lake: Lake) -> Path:
    return Path(lake.files("training_mixture")[0].path).parent


def test_search_mixture_ships_shards_manifest_rounds_and_card(lake: Lake) -> None:
    result = materialize(lake, {"method": "search", "search": SEARCH})
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())
    mixture = lake.scan("training_mixture").collect()
    assert abs(mixture["tokens"].sum() - BUDGET) / BUDGET < 0.01
    folder = version_dir(lake)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["method"] == "search" and manifest["policy"]["seed"] == 0
    assert sum(manifest["weights"].values()) == pytest.approx(1.0, abs=1e-5)
    assert sum(manifest["tokens_per_domain"].values()) == mixture["tokens"].sum()
    assert (
        manifest["upstream_versions"]["clusters"]
        and manifest["upstream_versions"]["quality_scores"]
    )
    search = manifest["search"]
    assert search["chosen_score"] <= search["uniform_score"]
    rounds = lake.scan("training_mixture", "search_rounds").collect()
    assert rounds.height == 2 + 2 * 4 + 1 == search["proxy_runs"]
    dropped = lake.scan("training_mixture", "dropped").collect()
    targets = dropped.filter(pl.col("rule") == "mixture:proxy_target")
    assert targets.height == search["held_out_target_documents"] > 0
    assert not mixture["doc_id"].is_in(targets["doc_id"].implode()).any()
    card = (folder / "DATASET_CARD.md").read_text()
    assert "## Mixture search (RegMix / CLIMB)" in card and "](search.png)" in card
    for plot in ("search.png", "weights.png"):
        assert (folder / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metadata = result.asset_materializations_for_node("training_mixture")[0].metadata
    assert metadata["proxy_chosen"].value <= metadata["proxy_uniform"].value
    assert Path(metadata["predicted_vs_observed"].value).exists()


def test_quadmix_mixture_explains_what_it_cut_and_shards_read_back(lake: Lake) -> None:
    config = {"method": "quadmix", "quadmix": {"*": {"threshold": 0.5, "steepness": 10.0}}}
    result = materialize(lake, config)
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())
    mixture = lake.scan("training_mixture").collect()
    assert abs(mixture["tokens"].sum() - BUDGET) / BUDGET < 0.01
    rules = set(lake.scan("training_mixture", "dropped").collect()["rule"])
    assert "mixture:quadmix_below_threshold" in rules
    shards = version_dir(lake) / "shards"
    parquet = pl.read_parquet(sorted(shards.glob("*.parquet")))
    assert set(parquet.columns) == {"id", "text", "metadata"}
    lines = []
    for path in sorted(shards.glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            lines += [json.loads(line) for line in fh]
    assert len(lines) == parquet.height == mixture.height
    assert {line["id"] for line in lines} == set(mixture["sample_id"])
    assert "quadmix" in (version_dir(lake) / "DATASET_CARD.md").read_text()


def test_audit_report_is_self_contained_and_linked_from_the_metadata(lake: Lake) -> None:
    result = materialize(lake, {"method": "temperature"})
    assert result.success
    metadata = result.asset_materializations_for_node("training_mixture")[0].metadata
    report_path = Path(metadata["audit_report"].value)
    assert report_path.parent == version_dir(lake)
    report = report_path.read_text()
    for section in (
        "Versions",
        "Documents per stage",
        "Why documents were dropped",
        "Languages",
        "Clusters",
        "Quality scores",
        "Mixture",
        "Configuration",
    ):
        assert f"<h2>{section}" in report, section  # fmt: skip
    assert "src='http" not in report and report.count("data:image/png;base64,") >= 4
    mixture = lake.scan("training_mixture").collect()
    assert f"<td class='n'>{mixture['doc_id'].n_unique()}</td>" in report
    assert "&quot;temperature&quot;: 2.0" in report, "the mixture's own config is shown"


def balance(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == "books_balance")


def test_a_document_without_a_score_is_dropped_with_its_reason(lake: Lake) -> None:
    scores = lake.scan("quality_scores").collect()
    publish(lake, "quality_scores", {"documents": scores.head(scores.height - 1)})
    result = materialize(lake, {})
    assert balance(result).passed
    dropped = lake.scan("training_mixture", "dropped").collect()
    lost = dropped.filter(pl.col("rule") == "mixed:missing_score")
    assert lost["doc_id"].to_list() == [scores["doc_id"][-1]]


def test_books_balance_fails_when_the_mixture_loses_a_document(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    import assets.mixed.parts as parts

    scores = lake.scan("quality_scores").collect()
    publish(lake, "quality_scores", {"documents": scores.head(scores.height - 1)})
    lost = scores["doc_id"][-1]  # dropped for its missing score, unless its row goes missing
    monkeypatch.setattr(parts, "_DROPPED_SQL", parts._DROPPED_SQL + f" AND doc_id <> '{lost}'")
    before = lake.files("training_mixture") if lake.has("training_mixture") else []
    result = dg.materialize(
        [training_mixture],
        resources={"lake": lake, "tokens": TokenCounter(), "proxy": NgramProxy()},
        run_config={"ops": {"training_mixture": {"config": {"token_budget": BUDGET}}}},
        raise_on_error=False,
    )
    check = balance(result)
    assert not check.passed
    assert check.metadata["rows_in"].value == check.metadata["kept"].value + 1 + (
        check.metadata["dropped"].value
    )
    current = lake.files("training_mixture") if lake.has("training_mixture") else []
    assert current == before, "the unbalanced version was not published"


def test_domains_by_dataman_domain_replace_clusters(lake: Lake) -> None:
    """`domain_by: dataman`: a domain is the document's DataMan domain (from quality_scores'
    dm_domain; 'unlabelled' where the domain head gave none) x quality tier x origin."""
    scores = lake.scan("quality_scores").collect().with_row_index("i")
    named = pl.when(pl.col("i") % 3 == 0).then(pl.lit("Retail E-commerce"))
    labelled = named.when(pl.col("i") % 3 == 1).then(pl.lit("Technology")).otherwise(None)
    accuracy = (pl.col("i") % 5 + 1).cast(pl.Float64).alias("dm_accuracy")
    scores = scores.with_columns(labelled.alias("dm_domain"), accuracy)
    publish(lake, "quality_scores", {"documents": scores.drop("i")})
    result = materialize(lake, {"domain_by": "dataman"})
    assert result.success and all(c.passed for c in result.get_asset_check_evaluations())
    manifest = json.loads((version_dir(lake) / "manifest.json").read_text())
    assert manifest["domain_by"] == "dataman"
    kinds = {domain.rsplit("-", 2)[0] for domain in manifest["weights"]}
    assert kinds == {"retail_e-commerce", "technology", "unlabelled"}
    mixture = lake.scan("training_mixture").collect()
    assert {d.rsplit("-", 2)[0] for d in mixture["domain"]} <= kinds
    card = (version_dir(lake) / "DATASET_CARD.md").read_text()
    assert "## Domains (DataMan domain x quality tier x origin)" in card
    assert "| Retail E-commerce |" in card and "| (none) |" in card
    mean = round(scores["dm_accuracy"].mean(), 3)
    assert f"| dm_accuracy | {scores.height} | {mean} |" in card, card
