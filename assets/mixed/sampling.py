"""Domain weights and token-budgeted, seeded sampling with a cap on repeats per document.

Temperature sampling (as in multilingual pretraining mixtures) flattens domain sizes:
w_d is proportional to tokens_d ** (1 / T). Documents are drawn in a seeded order per domain and
may repeat up to `max_repeats` epochs, the point past which "To Repeat or Not To Repeat" finds
repeated data stops helping. Every method's weights go through the same sampler, so the budget,
the repeat cap and the synthetic cap hold whichever method chose the weights.
"""

import zlib
from dataclasses import dataclass

import numpy as np
import polars as pl

SAMPLE_SCHEMA = {
    "doc_id": pl.String,
    "repeat": pl.Int32,
    "tokens": pl.Int64,
    "domain": pl.String,
    "weight": pl.Float64,
}
Draw = tuple[str, int, int]


@dataclass(frozen=True)
class MixturePolicy:
    token_budget: int
    temperature: float = 2.0
    max_repeats: int = 4
    max_synthetic_share: float = 0.3
    seed: int = 0


def temperature_weights(domains: pl.DataFrame, policy: MixturePolicy) -> dict[str, float]:
    """Weights from `domain`, `tokens`, `origin` columns, with the synthetic share capped."""
    sizes = domain_sizes(domains)
    raw = sizes["tokens"].to_numpy().astype(float) ** (1.0 / policy.temperature)
    weights = dict(zip(sizes["domain"].to_list(), (raw / raw.sum()).tolist(), strict=True))
    return cap_synthetic(weights, synthetic_domains(domains), policy.max_synthetic_share)


def uniform_weights(domains: pl.DataFrame, policy: MixturePolicy) -> dict[str, float]:
    """Every domain alike: the baseline a searched mixture has to beat."""
    names = domain_sizes(domains)["domain"].to_list()
    weights = {d: 1.0 / len(names) for d in names}
    return cap_synthetic(weights, synthetic_domains(domains), policy.max_synthetic_share)


def domain_sizes(domains: pl.DataFrame) -> pl.DataFrame:
    return domains.group_by("domain", "origin").agg(pl.col("tokens").sum()).sort("domain")


def synthetic_domains(domains: pl.DataFrame) -> set[str]:
    return set(domains.filter(pl.col("origin") == "synthetic")["domain"].unique().to_list())


def cap_synthetic(weights: dict[str, float], synthetic: set[str], cap: float) -> dict[str, float]:
    """Normalise, then scale synthetic domains down to `cap` of the mass; organic gets the rest."""
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("mixture weights sum to zero")
    out = {d: w / total for d, w in weights.items()}
    share = sum(w for d, w in out.items() if d in synthetic)
    if share > cap and share < 1.0:
        out = {
            d: w * (cap / share if d in synthetic else (1 - cap) / (1 - share))
            for d, w in out.items()
        }
    return out


def sample_mixture(
    docs: pl.DataFrame, weights: dict[str, float], policy: MixturePolicy
) -> pl.DataFrame:
    """Draws for every domain, then a fill pass, so the budget is met without overshooting.

    A domain that runs out hands its shortfall to the next ones; whatever is still missing at
    the end is filled from any weighted domain with room left. Synthetic draws never exceed
    `max_synthetic_share` of the budget. An optional `copies` column (expected copies per
    document, as QuaDMix's sampling function gives) limits how often each document is drawn
    in the first pass.
    """
    pools = _pools(docs, weights, policy)
    order = sorted((d for d in weights if weights[d] > 0 and d in pools), key=_by_weight(weights))
    synthetic_room = policy.max_synthetic_share * policy.token_budget
    drawn: dict[str, list[Draw]] = {d: [] for d in order}
    total, synthetic, carry = 0, 0, 0.0
    for fill in (False, True):
        for domain in order:
            pool = pools[domain]
            target = policy.token_budget - total if fill else weights[domain] * policy.token_budget
            target = target if fill else target + carry
            if pool.synthetic:
                target = min(target, synthetic_room - synthetic)
            draws = pool.draw(int(target), use_quota=not fill)
            got = sum(t for _, _, t in draws)
            carry = 0.0 if fill else target - got
            total += got
            synthetic += got if pool.synthetic else 0
            drawn[domain] += draws
    rows = [
        (doc, repeat, tokens, domain, weights[domain])
        for domain in order
        for doc, repeat, tokens in drawn[domain]
    ]
    return pl.DataFrame(rows, schema=SAMPLE_SCHEMA, orient="row")


class _DomainPool:
    """One domain's documents and how often each has been drawn so far."""

    def __init__(self, members: pl.DataFrame, max_repeats: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.ids = members["doc_id"].to_list()
        self.tokens = members["tokens"].to_numpy()
        self.synthetic = bool((members["origin"] == "synthetic").any())
        quota = members["copies"].to_numpy() if "copies" in members.columns else None
        self.quota = quota
        self.lottery = rng.random(len(self.ids))  # stochastic rounding of fractional quotas
        self.epochs = [rng.permutation(len(self.ids)) for _ in range(max_repeats)]
        self.used = np.zeros(len(self.ids), dtype=np.int64)
        self.smallest = int(self.tokens[self.tokens > 0].min()) if (self.tokens > 0).any() else 0

    def draw(self, target: int, use_quota: bool) -> list[Draw]:
        """Seeded draws, at most one per document per epoch, that fit inside the target."""
        picked: list[Draw] = []
        left = target
        for epoch, order in enumerate(self.epochs):
            for i in order:
                if left < self.smallest or not self.smallest:
                    return picked
                size = int(self.tokens[i])
                if self.used[i] != epoch or size <= 0 or size > left:
                    continue
                if use_quota and not self._within_quota(i, epoch):
                    continue
                picked.append((self.ids[i], epoch, size))
                self.used[i] += 1
                left -= size
        return picked

    def _within_quota(self, i: int, epoch: int) -> bool:
        return self.quota is None or self.lottery[i] < self.quota[i] - epoch


def _pools(
    docs: pl.DataFrame, weights: dict[str, float], policy: MixturePolicy
) -> dict[str, _DomainPool]:
    """Seeds come from the domain's name, so a domain's draws do not depend on other weights."""
    parts = docs.sort("doc_id").partition_by("domain", as_dict=True, maintain_order=True)
    return {
        key[0]: _DomainPool(part, policy.max_repeats, _domain_seed(policy.seed, key[0]))
        for key, part in parts.items()
        if key[0] in weights
    }


def _domain_seed(seed: int, domain: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(domain.encode())) % 2**32


def _by_weight(weights: dict[str, float]):
    return lambda d: (-weights[d], d)
