"""A DCLM / GPT-3 style quality classifier: reference text against crawl documents.

Features are hashed word unigrams and bigrams (what DCLM's fastText classifier sees), weighted by
sublinear TF-IDF, into a class-balanced logistic regression. Its held-out AUC comes from
stratified k-fold out-of-fold predictions, which uses every example once for evaluation: the
sample crawl has only a few dozen documents, too few for one fixed split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline


@dataclass(frozen=True)
class ClassifierSpec:
    n_features: int = 2**18
    ngram_max: int = 2
    c: float = 1.0
    folds: int = 5
    seed: int = 0
    max_chars: int = 20_000  # a page's first 20k characters say enough about its quality


@dataclass(frozen=True)
class Evaluation:
    auc: float | None
    reason: str | None  # why auc is None
    n_positive: int
    n_negative: int
    folds: int
    heldout: np.ndarray  # out-of-fold P(reference) per example; NaN where none was computed


def make_model(spec: ClassifierSpec) -> Pipeline:
    return Pipeline(
        [
            (
                "hash",
                HashingVectorizer(
                    ngram_range=(1, spec.ngram_max),
                    n_features=spec.n_features,
                    alternate_sign=False,
                    norm=None,
                ),
            ),
            ("tfidf", TfidfTransformer(sublinear_tf=True)),
            (
                "logreg",
                LogisticRegression(
                    C=spec.c,
                    class_weight="balanced",
                    solver="liblinear",
                    max_iter=2000,
                    random_state=spec.seed,
                ),
            ),
        ]
    )


def train_classifier(
    texts: Sequence[str], labels: Sequence[int], spec: ClassifierSpec
) -> tuple[Pipeline | None, Evaluation]:
    """Evaluate out of fold, then fit on everything; no model when a class is empty."""
    y = np.asarray(labels, dtype=int)
    docs = [t[: spec.max_chars] for t in texts]
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    heldout = np.full(len(y), np.nan)
    if min(n_pos, n_neg) == 0:
        reason = f"need both classes (reference={n_pos}, crawl={n_neg})"
        return None, Evaluation(None, reason, n_pos, n_neg, 0, heldout)
    folds = min(spec.folds, n_pos, n_neg)
    auc, reason = None, None
    if folds >= 2:
        split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=spec.seed)
        heldout = cross_val_predict(make_model(spec), docs, y, cv=split, method="predict_proba")[
            :, 1
        ]
        auc = float(roc_auc_score(y, heldout))
    else:
        reason = f"a class has fewer than 2 examples (reference={n_pos}, crawl={n_neg})"
    model = make_model(spec).fit(docs, y)
    return model, Evaluation(auc, reason, n_pos, n_neg, folds, heldout)


def classifier_scores(model: Pipeline, texts: Sequence[str], spec: ClassifierSpec) -> np.ndarray:
    """P(reference-like) per text, in input order."""
    if not texts:
        return np.zeros(0)
    return model.predict_proba([t[: spec.max_chars] for t in texts])[:, 1]
