"""One quality score from many: weighted standardised signals, then percentile buckets.

Meta-rater combines many raters with weights; here the weights are either configured or learned.
Learned weights are the ridge regression that best predicts the LLM's mean rating from the other
signals on the rated sample (Meta-rater regresses proxy-model losses instead, which needs proxy
runs). The distilled rating heads are not features of that regression: they were fitted to the
same ratings, so their in-sample values would take every weight; they keep configured weights.

A model score enters only if its held-out evaluation shows skill, judged on the lower bound of a
bootstrap confidence interval, not on the point estimate: a few dozen held-out examples give an
AUC or a Spearman that can clear a threshold by chance. The classifier's interval must start at
`min_heldout_auc` or up; a distilled head's must start above 0 (its agreement is distinguishable
from none) and at `min_heldout_spearman` or up, whichever is stricter. Others are kept as
columns but weigh nothing.

Signals are standardised within each language with enough documents (FineWeb2 sets thresholds
per language for the same reason: word statistics, and English-trained scorers, differ by
language), else over the corpus. A missing value counts as the median: no signal, no push.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.linear_model import Ridge

MIN_LEARN_ROWS = 8

# Meta-rater style weights over standardised signals: + favours, - penalises.
COMBINED_WEIGHTS: dict[str, float] = {
    "classifier_score": 1.0,
    "preselect_score": 0.5,
    "educational_value": 0.5,
    "writing_style": 0.5,
    "cleanliness": 0.5,
    "facts_and_trivia": 0.25,
    "required_expertise": 0.25,
    "dm_overall_score": 0.5,  # DataMan selects by its overall score
    "rps_doc_word_count": 0.25,
    "rps_doc_frac_unique_words": 0.25,
    "rps_doc_stop_word_fraction": 0.25,
    "rps_lines_ending_with_terminal_punctution_mark": 0.5,
    "rps_doc_frac_chars_dupe_lines": -0.5,
    "rps_doc_frac_chars_top_2gram": -0.25,
    "rps_doc_frac_chars_dupe_10grams": -0.25,
    "rps_doc_symbol_to_word_ratio": -0.25,
    "rps_doc_frac_no_alph_words": -0.25,
    "c4_lines_removed_fraction": -0.25,
    "toxicity": -0.5,
}


def skilled(
    weights: Mapping[str, float],
    heldout: Mapping[str, float | None],
    thresholds: Mapping[str, float],
    above: Mapping[str, float] | None = None,
) -> tuple[dict[str, float], dict[str, str]]:
    """Weights of model scores whose held-out skill is missing or too low are dropped: a scorer
    that showed no skill on data it did not see adds noise, not quality (and standardising a
    near-constant prediction would blow that noise up to full weight).

    `heldout[name]` is the lower bound of the bootstrap interval of the score's held-out metric;
    it must be at or above `thresholds[name]` and, where `above` names the score, strictly above
    `above[name]`."""
    above = above or {}
    kept, excluded = {}, {}
    for name, weight in weights.items():
        threshold, floor = thresholds.get(name), above.get(name)
        if threshold is None and floor is None:
            kept[name] = weight
            continue
        value = heldout.get(name)
        if value is None:
            excluded[name] = (
                f"held-out CI low n/a < {threshold if threshold is not None else floor}"
            )
        elif threshold is not None and value < threshold:
            excluded[name] = f"held-out CI low {value:.3f} < {threshold}"
        elif floor is not None and value <= floor:
            excluded[name] = f"held-out CI low {value:.3f} <= {floor}: no skill distinguishable"
        else:
            kept[name] = weight
    return kept, excluded


@dataclass(frozen=True)
class LearnedWeights:
    weights: dict[str, float] | None
    reason: str | None  # why none were learned
    n_rows: int


def learn_weights(
    z: pl.DataFrame, features: Sequence[str], target: np.ndarray, alpha: float = 10.0
) -> LearnedWeights:
    """Ridge weights predicting `target` (NaN = unrated), scaled to sum(|w|) = 1."""
    rated = ~np.isnan(target)
    n = int(rated.sum())
    if n < MIN_LEARN_ROWS:
        return LearnedWeights(None, f"only {n} rated documents (need {MIN_LEARN_ROWS})", n)
    if np.ptp(target[rated]) == 0:
        return LearnedWeights(None, "the mean rating is constant: nothing to learn", n)
    x = z.select(features).to_numpy()[rated]
    coef = Ridge(alpha=alpha).fit(x, target[rated]).coef_
    scale = float(np.abs(coef).sum()) or 1.0
    return LearnedWeights(
        {f: round(float(c / scale), 4) for f, c in zip(features, coef, strict=True)}, None, n
    )
