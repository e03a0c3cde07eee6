"""The dataset card shipped with every mixture: what went in, what was dropped and why."""

import json
from pathlib import Path

import polars as pl
import polars.selectors as cs

from resources.lake import Lake


def drop_reasons(lake: Lake, assets: list[str]) -> pl.DataFrame:
    frames = [
        lake.scan(asset, "dropped").group_by("stage", "rule").agg(pl.len().alias("documents"))
        for asset in assets
        if lake.has(asset, "dropped")
    ]
    if not frames:
        return pl.DataFrame(schema={"stage": pl.String, "rule": pl.String, "documents": pl.UInt32})
    return pl.concat([f.collect() for f in frames]).sort(
        "stage", "documents", descending=[False, True]
    )


def plot_weights(weights: dict[str, float], tokens: dict[str, int], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    domains = sorted(weights, key=weights.get, reverse=True)
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.25 * len(domains))), dpi=80)
    ax.barh(domains, [tokens.get(d, 0) for d in domains])
    ax.invert_yaxis()
    ax.set_xlabel("tokens in the mixture")
    ax.tick_params(axis="y", labelsize=6)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def plot_search(rounds: pl.DataFrame, out: Path) -> None:
    """Predicted against observed proxy scores, and every trial's score by round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=80)
    predicted = rounds.filter(pl.col("predicted").is_not_null())
    left.scatter(
        predicted["predicted"], predicted["observed"], c=predicted["round"], cmap="viridis", s=14
    )
    if predicted.height:
        low = min(predicted["predicted"].min(), predicted["observed"].min())
        high = max(predicted["predicted"].max(), predicted["observed"].max())
        left.plot([low, high], [low, high], color="grey", linewidth=0.8)
    left.set_xlabel("predicted proxy score")
    left.set_ylabel("observed proxy score")
    left.set_title("each round's picks: predicted, then observed (colour = round)")
    right.scatter(rounds["round"], rounds["observed"], s=14)
    for name, color in (("uniform", "tab:red"), ("final", "tab:green")):
        row = rounds.filter(pl.col("candidate") == name)
        if row.height:
            right.axhline(row["observed"][0], color=color, linewidth=0.8, label=name)
    right.set_xlabel("round (0 = baselines, last = final pick)")
    right.set_ylabel("observed proxy score")
    right.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def search_section(search: dict, rounds: pl.DataFrame) -> list[str]:
    """What the search tried, what it picked, and how that compares with the baselines."""
    best = rounds.group_by("round").agg(
        pl.len().alias("proxy_runs"),
        pl.col("observed").min().alias("best_observed"),
        pl.col("predicted").min().alias("best_predicted"),
    )
    return [
        "## Mixture search (RegMix / CLIMB)",
        "",
        f"- proxy: {search['proxy']}, trained on {search['proxy_tokens']:,}-token samples",
        f"- target: {search['target']}",
        f"- {search['rounds']} rounds of {search['candidates_per_round']} candidates, "
        f"Dirichlet concentration {search['concentration']}, regressor {search['regressor']} "
        f"(out-of-fold rank correlation with observed scores {search['cv_rank_correlation']})",
        f"- re-scored on fresh samples (seed {search['recheck_seed']}): uniform "
        f"{search['recheck_uniform_score']:.3f}, chosen {search['recheck_chosen_score']:.3f}",
        f"- picked: {search['picked']}",
        "",
        markdown_table(
            pl.DataFrame(
                {
                    "mixture": ["uniform", "temperature", "chosen"],
                    "proxy score": [
                        round(search["uniform_score"], 3),
                        round(search["temperature_score"], 3),
                        round(search["chosen_score"], 3),
                    ],
                }
            )
        ),
        "",
        "![predicted vs observed proxy scores](search.png)",
        "",
        markdown_table(best.sort("round").with_columns(cs.float().round(3))),
        "",
    ]


def write_card(
    out_dir: Path,
    manifest: dict,
    drops: pl.DataFrame,
    clusters: pl.DataFrame,
    languages: pl.DataFrame,
    rounds: pl.DataFrame | None = None,
    scores: tuple[pl.DataFrame, pl.DataFrame] | None = None,
) -> Path:
    plot_weights(manifest["weights"], manifest["tokens_per_domain"], out_dir / "weights.png")
    searched: list[str] = []
    if rounds is not None and manifest.get("search"):
        plot_search(rounds, out_dir / "search.png")
        searched = search_section(manifest["search"], rounds)
    lines = [
        "# Dataset card: Corpus Foundry training mixture",
        "",
        f"- tokens: {manifest['tokens']:,} of a budget of {manifest['token_budget']:,} "
        f"({manifest['tokenizer']} tokenizer)",
        f"- method: {manifest['method']}; seed {manifest['policy']['seed']}; at most "
        f"{manifest['policy']['max_repeats']} repeats per document; synthetic share capped at "
        f"{manifest['policy']['max_synthetic_share']:.0%}",
        f"- method settings: `{json.dumps(manifest.get('method_settings', {}))}`",
        *_draw_lines(manifest),
        "",
        *searched,
        f"## Domains ({_DOMAIN_PARTS[manifest.get('domain_by', 'cluster')]} x quality tier x "
        "origin)",
        "",
        "`weight` is the method's target share, `share` what whole documents filled under the "
        "repeat and synthetic caps.",
        "",
        "![tokens per domain](weights.png)",
        "",
        markdown_table(
            pl.DataFrame(
                {
                    "domain": list(manifest["weights"]),
                    "weight": [round(w, 4) for w in manifest["weights"].values()],
                    "tokens": [
                        manifest["tokens_per_domain"].get(d, 0) for d in manifest["weights"]
                    ],
                }
            )
            .with_columns((pl.col("tokens") / max(manifest["tokens"], 1)).round(4).alias("share"))
            .sort("weight", descending=True)
        ),
        "",
        *_scores_section(scores),
        "## Clusters",
        "",
        markdown_table(clusters),
        "",
        "## Languages of cleaned documents",
        "",
        markdown_table(languages),
        "",
        "## Why documents were dropped",
        "",
        markdown_table(drops),
        "",
        "## Upstream versions",
        "",
        "```json",
        json.dumps(manifest["upstream_versions"], indent=2),
        "```",
    ]
    path = out_dir / "DATASET_CARD.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


_DOMAIN_PARTS = {"cluster": "cluster", "dataman": "DataMan domain"}


def _scores_section(scores: tuple[pl.DataFrame, pl.DataFrame] | None) -> list[str]:
    """Every per-document score of quality_scores (model scores, DataMan's dm_* ratings) and
    the corpus's documents per DataMan domain."""
    if scores is None:
        return []
    summary, domains = scores
    return [
        "## Document scores (every corpus document, quality_scores)",
        "",
        "A model score is null where its model is absent; the combined score weighs it only "
        "where it showed held-out skill. `dm_domain` is null where the domain head showed none.",
        "",
        markdown_table(summary),
        "",
        "## DataMan domains (every corpus document)",
        "",
        markdown_table(domains),
        "",
    ]


def _draw_lines(manifest: dict) -> list[str]:
    """How the copies were drawn: per shard, by a seeded rule, and the few fill documents."""
    draw = manifest.get("draw")
    if not draw:
        return []
    return [
        f"- drawn shard by shard: `{draw['rule']}`, `t` per domain from the domain token totals; "
        f"{len(draw['fill_documents'])} fill documents drawn once more to close the budget; "
        f"{len(manifest.get('shards', []))} output shards, one or more per crawl shard",
    ]


def markdown_table(frame: pl.DataFrame) -> str:
    if frame.is_empty():
        return "_none_"
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([header, rule, *rows])
