"""Distilling ratings into ridge heads: held-out Spearman, and null with a reason when undefined."""

import numpy as np

from assets.scored.distill import agreement, fit_head, fit_heads, predict


def _data(n: int = 40, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    direction = rng.normal(size=dim)
    latent = vectors @ direction
    ratings = np.clip(np.round(2.5 + 1.2 * latent / latent.std()), 0, 5)
    return vectors, ratings


def test_a_learnable_rating_agrees_out_of_fold() -> None:
    vectors, ratings = _data()
    head, report = fit_head("educational_value", vectors, ratings)
    assert head is not None and report.n_rated == 40 and report.reason is None
    assert report.spearman > 0.7
    assert np.isfinite(report.heldout).all()


def test_ratings_unrelated_to_the_embeddings_do_not() -> None:
    vectors, _ = _data()
    noise = np.random.default_rng(1).integers(0, 6, size=len(vectors)).astype(float)
    _, report = fit_head("cleanliness", vectors, noise)
    assert report.spearman is None or abs(report.spearman) < 0.4


def test_constant_ratings_give_a_null_spearman_with_its_reason() -> None:
    vectors, _ = _data()
    head, report = fit_head("facts_and_trivia", vectors, np.ones(len(vectors)))
    assert report.spearman is None and "constant" in report.reason
    assert head is not None and np.allclose(head.predict(vectors), 1.0)


def test_too_few_ratings_give_no_head() -> None:
    vectors, ratings = _data(n=2)
    head, report = fit_head("writing_style", vectors, ratings)
    assert head is None and report.spearman is None and "only 2" in report.reason


def test_agreement_reports_constant_predictions() -> None:
    rho, reason = agreement(np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0]))
    assert rho is None and "predictions are constant" in reason
    rho, reason = agreement(np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.2, 0.3]))
    assert rho == 1.0 and reason is None


def test_heads_per_dimension_and_clipped_predictions() -> None:
    vectors, ratings = _data()
    targets = {
        "educational_value": (np.arange(40), ratings),
        "writing_style": (np.arange(2), ratings[:2]),
    }
    heads, reports = fit_heads(vectors, targets, folds=5, seed=0)
    assert set(heads) == {"educational_value"}
    assert [r.dimension for r in reports] == ["educational_value", "writing_style"]
    scores = predict(heads, vectors * 100)
    assert scores["educational_value"].min() >= 0.0 and scores["educational_value"].max() <= 5.0


def test_nothing_rated_gives_no_targets_and_no_heads() -> None:
    """A corpus run with the rater off (sample_size 0) reads back an empty, untyped table."""
    import polars as pl

    from assets.scored.training import rating_targets

    ratings = pl.DataFrame({"doc_id": [], "dimension": [], "score": []})
    embedded = pl.DataFrame({"doc_id": ["a"], "embedding": [[0.1, 0.2]]})
    vectors, targets, ids = rating_targets(ratings, embedded, ["educational_value"])
    assert ids == [] and vectors.shape[0] == 0
    assert targets["educational_value"][0].size == 0
    heads, evaluations = fit_heads(vectors, targets, 5, 0)
    assert not heads and [e.n_rated for e in evaluations] == [0]
