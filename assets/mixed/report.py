"""What a mixture says about itself: its manifest."""

from dataclasses import asdict

from assets.mixed.parts import Totals
from assets.mixed.plan import MixturePlan
from assets.mixed.quota import Quotas
from assets.mixed.sampling import MixturePolicy


def manifest_for(
    plan: MixturePlan,
    totals: Totals,
    quotas: Quotas,
    policy: MixturePolicy,
    tokenizer: str,
    settings: dict,
) -> dict:
    """The mixture's manifest: the per-part results added up, and how the draw was decided."""
    tokens = totals.tokens
    per_domain = dict(sorted(totals.tokens_per_domain.items()))
    synthetic = sum(t for d, t in per_domain.items() if d.endswith("-synthetic"))
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
        "tokens_per_domain": per_domain,
        "samples": totals.samples,
        "unique_documents": totals.documents,
        "draw": {
            "rule": "copies = min(max_repeats, max(0, ceil(lam * t[domain] - u))), "
            "u = md5(seed:mix:doc_id) in [0, 1)",
            "thresholds": {d: t for d, t in sorted(quotas.thresholds.items())},
            "target_tokens": {d: round(t, 1) for d, t in sorted(quotas.targets.items())},
            "fill_documents": sorted(quotas.extras),
        },
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
