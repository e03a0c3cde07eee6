"""The dataset card shipped with every mixture: what went in, what was dropped and why."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from resources.lake import Lake

STAGE_DROPS = [
    ("raw", "raw_documents"),
    ("cleaned", "cleaned_documents"),
    ("dedup", "duplicate_clusters"),
    ("rephrased", "rephrased_documents"),
    ("clustered", "clusters"),
    ("mixed", "training_mixture"),
]


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


def write_card(
    out_dir: Path,
    manifest: dict,
    drops: pl.DataFrame,
    clusters: pl.DataFrame,
    languages: pl.DataFrame,
) -> Path:
    plot_weights(manifest["weights"], manifest["tokens_per_domain"], out_dir / "weights.png")
    lines = [
        "# Dataset card: Corpus Foundry training mixture",
        "",
        f"- tokens: {manifest['tokens']:,} of a budget of {manifest['token_budget']:,} "
        f"({manifest['tokenizer']} tokenizer)",
        f"- method: {manifest['method']}; seed {manifest['policy']['seed']}; at most "
        f"{manifest['policy']['max_repeats']} repeats per document; synthetic share capped at "
        f"{manifest['policy']['max_synthetic_share']:.0%}",
        "",
        "## Domains (cluster x quality tier x origin)",
        "",
        "![tokens per domain](weights.png)",
        "",
        _markdown(
            pl.DataFrame(
                {
                    "domain": list(manifest["weights"]),
                    "weight": [round(w, 4) for w in manifest["weights"].values()],
                    "tokens": [
                        manifest["tokens_per_domain"].get(d, 0) for d in manifest["weights"]
                    ],
                }
            ).sort("weight", descending=True)
        ),
        "",
        "## Clusters",
        "",
        _markdown(clusters),
        "",
        "## Languages of cleaned documents",
        "",
        _markdown(languages),
        "",
        "## Why documents were dropped",
        "",
        _markdown(drops),
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


def _markdown(frame: pl.DataFrame) -> str:
    if frame.is_empty():
        return "_none_"
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([header, rule, *rows])
