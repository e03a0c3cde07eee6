"""PreSelect's predictive strength: keep the documents on which better models do better.

Shum et al. (2025), "Predictive Data Selection: The Data That Predicts Is the Data That Teaches":
a document is worth training on when the losses of a set of models on it rank the models as
their downstream abilities do. The paper scores a seeded sample with a ladder of LLMs, takes the
documents of highest predictive strength as positives and the lowest as negatives, and trains a
fastText classifier that then finds more of them in the whole crawl.

Here the default ladder is `rungs` n-gram LMs (interpolated Kneser-Ney on SmolLM2 tokens, see
assets/ngram.py) trained on nested samples of the reference text, each twice the size of the one
before; a rung's ability is minus its log-perplexity on held-out reference text, so every rung is
measurably better than the one below. A nested ladder lowers almost every document's loss as it
climbs, so each rung's losses are first divided by that rung's mean loss over the sample (the
level it reaches on an average document); a document's strength is then the share of rung pairs
whose normalized losses order as their abilities do (PreSelect's pairwise agreement), ties broken
by the correlation of ability with minus the normalized loss. Users plug in their own ladder
through `ladder_losses` (a loss per document and rung) and `abilities`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import polars as pl

from assets.ngram import KneserNeyLM
from assets.scored.classifier import ClassifierSpec, Evaluation, train_classifier
from resources.tokenizer import TokenCounter


@dataclass(frozen=True)
class LadderSpec:
    rungs: int = 4
    order: int = 3
    heldout_share: float = 0.2  # of the reference passages, for the rungs' abilities
    seed: int = 0


@dataclass(frozen=True)
class Ladder:
    models: list[KneserNeyLM]
    abilities: np.ndarray  # minus held-out log-perplexity, per rung
    train_tokens: list[int]  # tokens each rung was trained on


def ngram_ladder(reference: Sequence[np.ndarray], vocab_size: int, spec: LadderSpec) -> Ladder:
    """Rungs trained on nested prefixes (1/2^(R-1), ..., 1/2, all) of a seeded order of the
    reference passages that are not held out; abilities on the held-out ones."""
    if len(reference) < 4:
        raise ValueError(f"the ladder needs at least 4 reference passages, got {len(reference)}")
    order = np.random.default_rng(spec.seed).permutation(len(reference))
    n_held = max(1, round(len(reference) * spec.heldout_share))
    held = [reference[i] for i in order[:n_held]]
    train = [reference[i] for i in order[n_held:]]
    models, abilities, sizes = [], [], []
    for rung in range(spec.rungs):
        take = max(1, int(np.ceil(len(train) / 2 ** (spec.rungs - 1 - rung))))
        docs = train[:take]
        model = KneserNeyLM(spec.order, vocab_size).fit(docs)
        models.append(model)
        abilities.append(-float(np.log(model.perplexity(held))))
        sizes.append(int(sum(len(d) for d in docs)))
    return Ladder(models, np.array(abilities), sizes)


def ladder_losses(ladder: Ladder, docs: Sequence[np.ndarray]) -> np.ndarray:
    """(documents x rungs) mean token loss of each document under each rung."""
    return np.column_stack([m.document_losses(docs) for m in ladder.models])


@dataclass(frozen=True)
class Strength:
    agreement: np.ndarray  # share of rung pairs ordered as their abilities, per document
    correlation: np.ndarray  # Pearson r of ability with minus the normalized loss


def predictive_strength(losses: np.ndarray, abilities: np.ndarray) -> Strength:
    """Per document (rows of `losses`): how well its normalized losses rank the rungs as their
    abilities do. Rows with a missing loss get NaN."""
    losses = np.asarray(losses, dtype=float)
    normalized = losses / np.nanmean(losses, axis=0, keepdims=True)
    pairs = [
        (i, j) for i, j in combinations(range(len(abilities)), 2) if abilities[i] != abilities[j]
    ]
    if not pairs:
        raise ValueError("the rungs' abilities are all equal: nothing to rank them by")
    agree = np.zeros(len(losses))
    for i, j in pairs:
        better, worse = (i, j) if abilities[i] > abilities[j] else (j, i)
        agree += normalized[:, better] < normalized[:, worse]
    agreement = agree / len(pairs)
    centred = -normalized - np.nanmean(-normalized, axis=1, keepdims=True)
    a = abilities - abilities.mean()
    spread = np.sqrt((centred**2).sum(axis=1) * (a**2).sum())
    correlation = np.divide(centred @ a, spread, out=np.zeros(len(losses)), where=spread > 0)
    missing = np.isnan(losses).any(axis=1)
    agreement[missing], correlation[missing] = np.nan, np.nan
    return Strength(agreement, correlation)


def strength_labels(strength: Strength, share: float) -> np.ndarray:
    """1 for the top `share` of documents by strength, 0 for the bottom `share`, -1 otherwise
    (and for documents without a strength)."""
    labels = np.full(len(strength.agreement), -1, dtype=np.int8)
    valid = np.flatnonzero(~np.isnan(strength.agreement))
    k = int(len(valid) * share)
    if k == 0:
        return labels
    ranked = valid[np.lexsort((strength.correlation[valid], strength.agreement[valid]))]
    labels[ranked[:k]] = 0
    labels[ranked[-k:]] = 1
    return labels


# ------------------------------------------------------------------------------ training


@dataclass(frozen=True)
class LadderScores:
    """Every sampled document's loss under every rung, the rungs' abilities, what each rung is."""

    losses: np.ndarray  # (documents x rungs)
    abilities: np.ndarray
    rungs: list[dict]  # per rung: what it is and its ability, for the metrics


@dataclass(frozen=True)
class PreselectFit:
    table: pl.DataFrame  # the sample: losses, strength, label, out-of-fold score
    model: dict | None  # {"model", "spec"} as quality_scores loads it; None when untrained
    evaluation: Evaluation
    scores: LadderScores


def ngram_ladder_scores(
    texts: Sequence[str],
    reference: Sequence[str],
    counter: TokenCounter,
    spec: LadderSpec,
    max_doc_tokens: int,
) -> LadderScores:
    """The default ladder: n-gram LMs on nested reference samples (mean loss per token)."""
    ladder = ngram_ladder(_encoded(counter, reference, None), counter.vocab_size(), spec)
    losses = ladder_losses(ladder, _encoded(counter, texts, max_doc_tokens))
    rungs = [
        {"model": f"kneser-ney-{spec.order}", "train_tokens": n, "ability": round(float(a), 4)}
        for n, a in zip(ladder.train_tokens, ladder.abilities, strict=True)
    ]
    return LadderScores(losses, ladder.abilities, rungs)


def model_ladder_scores(
    texts: Sequence[str], models: Sequence[tuple[str, float, Callable]], max_doc_tokens: int
) -> LadderScores:
    """A user's own ladder: (name, ability, losses(texts, max_tokens)) per model, e.g. each a
    local model scored through vLLM's prompt logprobs (nats per character), one at a time."""
    losses = np.column_stack([np.asarray(f(texts, max_doc_tokens), float) for _, _, f in models])
    abilities = np.array([ability for _, ability, _ in models], dtype=float)
    rungs = [{"model": name, "ability": ability} for name, ability, _ in models]
    return LadderScores(losses, abilities, rungs)


def fit_preselect(
    sample: pl.DataFrame, scores: LadderScores, share: float, spec: ClassifierSpec
) -> PreselectFit:
    """Strength of every sampled document (doc_id, text, language) under the ladder, labels
    from the top and bottom `share`, and the hashed n-gram classifier on them."""
    texts = sample["text"].to_list()
    strength = predictive_strength(scores.losses, scores.abilities)
    labels = strength_labels(strength, share)
    chosen = np.flatnonzero(labels >= 0)
    model, evaluation = train_classifier([texts[i] for i in chosen], labels[chosen], spec)
    heldout = np.full(len(texts), np.nan)
    heldout[chosen] = evaluation.heldout
    table = sample.select("doc_id", "language").with_columns(
        pl.Series("losses", scores.losses.tolist(), pl.List(pl.Float64)),
        pl.Series("agreement", strength.agreement).fill_nan(None),
        pl.Series("correlation", strength.correlation).fill_nan(None),
        pl.Series("label", labels, pl.Int8),
        pl.Series("heldout_score", heldout).fill_nan(None),
    )
    return PreselectFit(
        table, {"model": model, "spec": spec} if model else None, evaluation, scores
    )


def _encoded(counter: TokenCounter, texts: Sequence[str], limit: int | None) -> list[np.ndarray]:
    out = []
    for start in range(0, len(texts), counter.chunk_docs):
        for ids in counter.encode(texts[start : start + counter.chunk_docs]):
            out.append(np.asarray(ids[:limit] if limit else ids, dtype=np.int64))
    return out
