"""The audit report of a mixture: one self-contained HTML file an auditor can open offline.

The dataset card says what the mixture is; this report says how it was made: which version of
every stage fed it, with which configuration, how many documents each stage kept and dropped and
why, and the language, cluster and score distributions. Plots are inlined as PNG data URIs so
the file can be mailed or archived on its own.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import polars as pl

from assets.mixed.card import drop_reasons
from assets.plotting import png_bytes, pyplot
from assets.stages import assets_before, drop_tables
from resources.lake import Lake

# The mixture being published is described from its manifest, not from the catalog.
STAGES = assets_before("training_mixture")
HISTOGRAM_BINS = 20
STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px}
th{background:#f3f3f3}td.n{text-align:right}pre{background:#f7f7f7;padding:.6em;overflow:auto}
img{max-width:100%}
"""


def current_versions(lake: Lake, assets: Sequence[str] = STAGES) -> pl.DataFrame:
    """One row per asset: its current version(s), code version, run and row counts."""
    with lake.catalog.connect(read_only=True) as con:
        cur = con.execute(
            "SELECT asset, count(DISTINCT partition) AS partitions, max(version) AS version, "
            "any_value(code_version) AS code_version, count(DISTINCT run_id) AS runs, "
            "list(DISTINCT run_id) AS run_ids, "
            "sum(row_count) FILTER (WHERE table_name = 'documents') AS documents, "
            "sum(row_count) FILTER (WHERE table_name = 'dropped') AS dropped "
            "FROM versions WHERE is_current AND list_contains(?, asset) GROUP BY asset",
            [list(assets)],
        )
        frame = pl.DataFrame(cur.fetchall(), schema=[d[0] for d in cur.description], orient="row")
    order = {asset: i for i, asset in enumerate(assets)}
    return frame.sort(pl.col("asset").replace_strict(order, default=len(order)))


def run_configs(instance: Any, lake: Lake, assets: Sequence[str] = STAGES) -> dict[str, dict]:
    """The run config of the run that built each asset's current version (ops section)."""
    with lake.catalog.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT DISTINCT asset, run_id FROM versions "
            "WHERE is_current AND run_id IS NOT NULL AND list_contains(?, asset)",
            [list(assets)],
        ).fetchall()
    configs: dict[str, dict] = {}
    for asset, run_id in sorted(rows):
        run = instance.get_run_by_id(run_id)
        ops = (run.run_config or {}).get("ops", {}) if run else {}
        configs.setdefault(asset, ops.get(asset, {}).get("config", {}))
    return configs


def render_report(
    lake: Lake,
    mixture: dict[str, Any],
    configs: dict[str, dict],
    mixture_rows: tuple[int, int],
    title: str = "Audit report",
) -> str:
    """The whole report as one HTML string; `mixture` is the manifest being published and
    `mixture_rows` its (sampled documents, documents left out)."""
    versions = current_versions(lake)
    mixture_row = pl.DataFrame(
        {"asset": ["training_mixture (this version)"], "documents": [mixture_rows[0]],
         "dropped": [mixture_rows[1]]},
    )  # fmt: skip
    flow = pl.concat(
        [versions.select("asset", "documents", "dropped"), mixture_row], how="vertical_relaxed"
    )
    parts = [
        f"<h1>{_esc(title)}</h1>",
        f"<p>generated {datetime.now(UTC):%Y-%m-%d %H:%M UTC}; mixture of "
        f"{mixture.get('tokens', 0):,} tokens (budget {mixture.get('token_budget', 0):,}), "
        f"method <b>{_esc(mixture.get('method', '?'))}</b>, seed {mixture.get('seed', '?')}</p>",
        "<h2>Versions</h2>",
        _table(versions.drop("run_ids")),
        "<h2>Documents per stage</h2>",
        _stage_flow(flow),
        "<h2>Why documents were dropped</h2>",
        _table(drop_reasons(lake, [asset for _, asset in drop_tables(before="training_mixture")])),
        *_languages(lake),
        *_clusters(lake),
        *_scores(lake),
        "<h2>Mixture</h2>",
        _table(_domain_table(mixture)),
        "<h2>Configuration</h2>",
        *[
            f"<h3>{_esc(asset)}</h3><pre>{_esc(json.dumps(cfg, indent=2, default=str))}</pre>"
            for asset, cfg in configs.items()
        ],
    ]
    body = "\n".join(parts)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_esc(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )


def _stage_flow(versions: pl.DataFrame) -> str:
    flow = versions.select(
        "asset",
        pl.col("documents").fill_null(0).alias("kept"),
        pl.col("dropped").fill_null(0),
    ).with_columns(
        (pl.col("dropped") / (pl.col("kept") + pl.col("dropped")).clip(1))
        .round(3)
        .alias("dropped_share")
    )
    return _table(flow) + _img(_bar(flow["asset"].to_list(), flow["kept"].to_list(), "kept rows"))


def _languages(lake: Lake) -> list[str]:
    if not lake.has("cleaned_documents"):
        return []
    counts = (
        lake.scan("cleaned_documents").group_by("language").len().sort("len", descending=True)
    ).collect()
    return [
        "<h2>Languages (cleaned documents)</h2>",
        _table(counts),
        _img(_bar(counts["language"].to_list(), counts["len"].to_list(), "documents")),
    ]


def _clusters(lake: Lake) -> list[str]:
    if not lake.has("clusters", "summary"):
        return []
    summary = lake.scan("clusters", "summary").collect()
    columns = ("cluster_id", "label", "size", "synthetic_share", "mean_quality")
    table = summary.select([c for c in columns if c in summary.columns]).sort("cluster_id")
    labels = [f"{c}: {str(label)[:40]}" for c, label in table.select("cluster_id", "label").rows()]
    return ["<h2>Clusters</h2>", _table(table), _img(_bar(labels, table["size"].to_list(), "size"))]


def _scores(lake: Lake) -> list[str]:
    """Summary and histogram from streaming aggregates (20 bins), never the scores themselves."""
    if not lake.has("quality_scores"):
        return []
    scan = lake.scan("quality_scores").select("origin", "quality_score")
    summary = (
        scan.group_by("origin")
        .agg(
            pl.len().alias("documents"),
            pl.col("quality_score").mean().round(3).alias("mean"),
            pl.col("quality_score").median().round(3).alias("median"),
            pl.col("quality_score").min().alias("low"),
            pl.col("quality_score").max().alias("high"),
        )
        .collect(engine="streaming")
    )
    low, high = summary["low"].min(), summary["high"].max()
    width = (high - low) / HISTOGRAM_BINS if summary.height and high > low else 1.0
    bin_of = ((pl.col("quality_score") - low) / width).floor().clip(0, HISTOGRAM_BINS - 1)
    bins = (
        scan.group_by("origin", bin_of.cast(pl.Int32).alias("bin"))
        .len()
        .collect(engine="streaming")
        .sort("origin", "bin")
    )
    table = summary.drop("low", "high").sort("origin")
    return ["<h2>Quality scores</h2>", _table(table), _img(_histogram(bins, low or 0.0, width))]


def _domain_table(mixture: dict[str, Any]) -> pl.DataFrame:
    weights: dict[str, float] = mixture.get("weights", {})
    tokens: dict[str, int] = mixture.get("tokens_per_domain", {})
    return pl.DataFrame(
        {
            "domain": list(weights),
            "weight": [round(w, 4) for w in weights.values()],
            "tokens": [int(tokens.get(d, 0)) for d in weights],
        },
        schema={"domain": pl.String, "weight": pl.Float64, "tokens": pl.Int64},
    ).sort("weight", descending=True)


def _table(frame: pl.DataFrame, limit: int = 200) -> str:
    if frame.is_empty():
        return "<p><i>none</i></p>"
    head = "".join(f"<th>{_esc(c)}</th>" for c in frame.columns)
    rows = []
    for row in frame.head(limit).iter_rows():
        cells = "".join(
            f"<td class='n'>{_esc(v)}</td>" if isinstance(v, int | float) else f"<td>{_esc(v)}</td>"
            for v in row
        )
        rows.append(f"<tr>{cells}</tr>")
    more = f"<p>... {frame.height - limit} more rows</p>" if frame.height > limit else ""
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>{more}"


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _bar(labels: list[str], values: list[float], xlabel: str) -> bytes:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, max(1.8, 0.28 * len(labels))), dpi=80)
    ax.barh([str(label) for label in labels], values)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.tick_params(axis="y", labelsize=7)
    return png_bytes(fig)


def _histogram(bins: pl.DataFrame, low: float, width: float) -> bytes:
    """Counts per (origin, bin) drawn as overlaid step histograms."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3), dpi=80)
    for (name,), group in bins.group_by("origin", maintain_order=True):
        edges = [low + width * b for b in group["bin"].to_list()]
        counts = group["len"].to_list()
        ax.bar(edges, counts, width=width, align="edge", alpha=0.6, label=f"{name} ({sum(counts)})")
    ax.set_xlabel("combined quality score")
    ax.legend()
    return png_bytes(fig)


def _img(png: bytes) -> str:
    return f"<img alt='plot' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
