"""What a mixture says about itself: its manifest, its dropped rows and its shard rows."""

from dataclasses import asdict

import polars as pl

from assets.mixed.plan import MixturePlan
from assets.mixed.sampling import MixturePolicy


def manifest_for(
    plan: MixturePlan,
    samples: pl.DataFrame,
    policy: MixturePolicy,
    tokenizer: str,
    settings: dict,
) -> dict:
    tokens = int(samples["tokens"].sum())
    per_domain = samples.group_by("domain").agg(pl.col("tokens").sum()).sort("domain")
    synthetic = samples.filter(pl.col("domain").str.ends_with("-synthetic"))["tokens"].sum()
    manifest = {
        "method": plan.method,
        "method_settings": settings,
        "token_budget": policy.token_budget,
        "tokens": tokens,
        "budget_error": round(abs(tokens - policy.token_budget) / policy.token_budget, 6),
        "synthetic_share": round(synthetic / tokens, 6) if tokens else 0.0,
        "tokenizer": tokenizer,
        "seed": policy.seed,
        "policy": asdict(policy),
        "weights": {d: round(w, 6) for d, w in sorted(plan.weights.items())},
        "tokens_per_domain": dict(per_domain.iter_rows()),
    }
    if plan.search is not None:
        manifest["search"] = search_summary(plan)
    return manifest


def search_summary(plan: MixturePlan) -> dict:
    """The numbers the closing note needs: baselines, the pick, and how the pick was made."""
    result = plan.search
    uniform, chosen = result.score("uniform"), result.chosen_score()
    rho = result.cv_rank_correlation
    return {
        **plan.details,
        "target": plan.target,
        "regressor": result.regressor,
        "proxy_runs": len(result.trials),
        "uniform_score": uniform,
        "temperature_score": result.score("temperature"),
        "chosen_score": chosen,
        "gain_vs_uniform": round(1 - chosen / uniform, 6),
        "picked": result.picked,
        "cv_rank_correlation": None if rho is None else round(rho, 3),
        "held_out_target_documents": plan.held_out.len(),
    }


def not_sampled(docs: pl.DataFrame, samples: pl.DataFrame, plan: MixturePlan) -> pl.DataFrame:
    """A dropped row for every document left out, with the reason that applies to it."""
    held = plan.held_out.implode()
    out = docs.join(samples.select("doc_id").unique(), on="doc_id", how="anti")
    if "copies" in plan.pool.columns:
        out = out.join(
            plan.pool.select("doc_id", "copies", "quality_rank"), on="doc_id", how="left"
        )
    else:
        out = out.with_columns(
            copies=pl.lit(None, pl.Float64), quality_rank=pl.lit(None, pl.Float64)
        )
    weight = pl.col("domain").replace_strict(plan.weights, default=0.0, return_dtype=pl.Float64)
    target = pl.col("doc_id").is_in(held)
    cut = pl.col("copies") == 0
    return out.select(
        "doc_id",
        pl.lit("mixed").alias("stage"),
        pl.when(target)
        .then(pl.lit("mixture:proxy_target"))
        .when(cut)
        .then(pl.lit("mixture:quadmix_below_threshold"))
        .otherwise(pl.lit("mixture:not_sampled"))
        .alias("rule"),
        pl.when(cut).then(pl.col("quality_rank")).otherwise(weight).alias("value"),
        pl.lit(None, dtype=pl.Float64).alias("threshold"),
        pl.when(target)
        .then(pl.lit("held out as the target set the mixture search scores proxies on"))
        .when(cut)
        .then(pl.lit("quality rank past its domain's QuaDMix threshold"))
        .when(weight == 0)
        .then(pl.lit("domain ") + pl.col("domain") + pl.lit(" has weight 0"))
        .otherwise(pl.lit("domain ") + pl.col("domain") + " filled its token share without it")
        .alias("detail"),
    )


def shard_rows(samples: pl.DataFrame, docs: pl.DataFrame) -> pl.DataFrame:
    """id, text, metadata: the three columns training stacks read."""
    joined = samples.join(
        docs.select("doc_id", "text", "origin", "cluster_id", "quality_bucket"), on="doc_id"
    )
    metadata = pl.struct(
        "doc_id", "repeat", "domain", "origin", "cluster_id", "quality_bucket", "tokens"
    ).alias("metadata")
    return joined.select(pl.col("sample_id").alias("id"), "text", metadata)
