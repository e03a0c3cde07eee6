"""One function per mixing method: which documents may be drawn, and with which domain weights."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from assets.mixed.domains import held_out_target
from assets.mixed.methods import QuadMixParams, manual_weights, quadmix_copies, quadmix_weights
from assets.mixed.proxy import ProxyEvaluator, chunk_documents, proxy_objective, proxy_policy
from assets.mixed.sampling import (
    MixturePolicy,
    cap_synthetic,
    synthetic_domains,
    temperature_weights,
    uniform_weights,
)
from assets.mixed.search import SearchParams, SearchResult, search_mixture


def _no_ids() -> pl.Series:
    return pl.Series("doc_id", [], dtype=pl.String)


@dataclass
class MixturePlan:
    method: str
    weights: dict[str, float]
    pool: pl.DataFrame  # the documents the sampler may draw
    held_out: pl.Series = field(default_factory=_no_ids)  # the proxy's target, kept out
    search: SearchResult | None = None
    target: str = ""
    details: dict = field(default_factory=dict)  # the search's settings, for the manifest


def plan_manual(
    docs: pl.DataFrame, policy: MixturePolicy, patterns: Mapping[str, float]
) -> MixturePlan:
    return MixturePlan("manual", manual_weights(docs, patterns, policy), docs)


def plan_temperature(docs: pl.DataFrame, policy: MixturePolicy) -> MixturePlan:
    return MixturePlan("temperature", temperature_weights(docs, policy), docs)


def plan_quadmix(
    docs: pl.DataFrame, policy: MixturePolicy, params: Mapping[str, QuadMixParams]
) -> MixturePlan:
    copies = quadmix_copies(docs, params, policy)
    return MixturePlan("quadmix", quadmix_weights(copies, policy), copies)


@dataclass(frozen=True)
class TargetSpec:
    """Explicit target texts, or `tokens` held out of the top quality bucket."""

    texts: Sequence[str] | None = None
    tokens: int = 20_000
    source: str = ""


def plan_search(
    docs: pl.DataFrame,
    policy: MixturePolicy,
    params: SearchParams,
    proxy: ProxyEvaluator,
    target: TargetSpec,
    proxy_tokens: int,
    chunk_tokens: int = 256,
    totals: pl.DataFrame | None = None,
    held_out: pl.Series | None = None,
) -> MixturePlan:
    """RegMix/CLIMB search with uniform and temperature weights as round-0 baselines; proxy
    samples draw pieces of `chunk_tokens` (0: whole documents), the mixture whole documents.

    `docs` may be a bounded sample of the corpus: then `totals` (domain, origin, tokens of the
    whole corpus) set the domains and the baselines, and `held_out` names the target documents
    already taken out (with their texts in `target`)."""
    if held_out is None:
        held_out, texts, description = _resolve_target(docs, target, policy.seed)
    else:
        texts, description = target.texts or [], target.source
    pool = docs.filter(~pl.col("doc_id").is_in(held_out.implode()))
    sizes = pool if totals is None else totals
    domains = sorted(sizes["domain"].unique().to_list())
    baselines = {
        "uniform": _vector(uniform_weights(sizes, policy), domains),
        "temperature": _vector(temperature_weights(sizes, policy), domains),
    }
    synthetic = synthetic_domains(sizes)

    def project(weights: np.ndarray) -> np.ndarray:
        named = dict(zip(domains, weights.tolist(), strict=True))
        return _vector(cap_synthetic(named, synthetic, policy.max_synthetic_share), domains)

    sampled = proxy_policy(policy, proxy_tokens)
    pieces = chunk_documents(pool, chunk_tokens) if chunk_tokens else pool
    evaluate = proxy_objective(pieces, domains, texts, proxy, sampled)
    result = search_mixture(domains, baselines["temperature"], baselines, evaluate, project, params)
    # The pick is the best of many scored samples; fresh samples (another seed) show whether it
    # beats uniform for its weights rather than for the luck of the documents it drew.
    recheck = proxy_objective(
        pieces, domains, texts, proxy, replace(sampled, seed=sampled.seed + 1)
    )
    details = {
        "proxy": proxy.describe(),
        "proxy_tokens": sampled.token_budget,
        "proxy_chunk_tokens": chunk_tokens,
        "rounds": params.rounds,
        "candidates_per_round": params.candidates_per_round,
        "concentration": params.concentration,
        "recheck_seed": sampled.seed + 1,
        "recheck_uniform_score": recheck(baselines["uniform"]),
        "recheck_chosen_score": recheck(result.chosen),
    }
    weights = dict(zip(domains, result.chosen.tolist(), strict=True))
    return MixturePlan("search", weights, pool, held_out, result, description, details)


def _resolve_target(
    docs: pl.DataFrame, target: TargetSpec, seed: int
) -> tuple[pl.Series, Sequence[str], str]:
    """(held-out doc_ids, target texts, description): given texts, or a held-out slice."""
    if target.texts is not None:
        return _no_ids(), target.texts, f"{len(target.texts)} texts from {target.source}"
    held_out = held_out_target(docs, target.tokens, seed)
    kept = docs.filter(pl.col("doc_id").is_in(held_out.implode()))
    description = (
        f"{kept.height} held-out organic documents of the top quality bucket "
        f"({kept['tokens'].sum():,} tokens)"
    )
    texts = kept["text"].to_list()
    return held_out, texts, description


def _vector(weights: Mapping[str, float], domains: Sequence[str]) -> np.ndarray:
    return np.array([weights.get(d, 0.0) for d in domains], dtype=np.float64)
