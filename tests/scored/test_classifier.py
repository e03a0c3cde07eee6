"""The quality classifier on real text: CPython's documentation against Debian FAQ pages."""

import numpy as np
import pytest

from assets.scored.classifier import ClassifierSpec, classifier_scores, train_classifier
from assets.scored.reference import BUILTIN_PYTHON_DOCS, load_reference, pack

SPEC = ClassifierSpec(n_features=2**16, folds=5)


@pytest.fixture(scope="module")
def examples(faq_en: list[str]) -> tuple[list[str], list[int]]:
    reference = load_reference([BUILTIN_PYTHON_DOCS])[::4]  # every 4th passage, ~40
    return reference + faq_en, [1] * len(reference) + [0] * len(faq_en)


def test_builtin_reference_is_real_and_packed() -> None:
    passages = load_reference([BUILTIN_PYTHON_DOCS], max_chars=4000, min_chars=300)
    assert len(passages) > 100
    assert all(300 <= len(p) <= 4000 for p in passages)
    assert any('The "if" statement is used for conditional execution' in p for p in passages)


def test_reference_files_in_every_format(tmp_path, faq_en: list[str]) -> None:
    import polars as pl

    pl.DataFrame({"body": faq_en[:2]}).write_parquet(tmp_path / "ref.parquet")
    pl.DataFrame({"body": faq_en[2:3]}).write_ndjson(tmp_path / "ref.jsonl")
    (tmp_path / "ref.txt").write_text("\n\n".join(["word " * 80, "short"]))
    paths = [str(tmp_path / n) for n in ("ref.parquet", "ref.jsonl", "ref.txt")]
    passages = load_reference(paths, text_column="body", max_chars=100_000, min_chars=300)
    assert passages == [*faq_en[:3], ("word " * 80).strip()]
    with pytest.raises(FileNotFoundError):
        load_reference([str(tmp_path / "missing.jsonl")])


def test_pack_joins_paragraphs_up_to_the_limit() -> None:
    text = "\n\n".join(["a" * 40, "b" * 40, "c" * 40, "d" * 150])
    assert pack(text, 100) == ["a" * 40 + "\n\n" + "b" * 40, "c" * 40, "d" * 100, "d" * 50]


def test_heldout_auc_separates_reference_from_crawl(examples) -> None:
    texts, labels = examples
    model, evaluation = train_classifier(texts, labels, SPEC)
    assert model is not None and evaluation.folds == 5
    assert evaluation.n_positive == sum(labels) and evaluation.n_negative == labels.count(0)
    assert evaluation.auc is not None and evaluation.auc > 0.95
    assert np.isfinite(evaluation.heldout).all()
    unseen_reference = load_reference([BUILTIN_PYTHON_DOCS])[1::4][:5]
    unseen_crawl = [p for p in texts[sum(labels) :]][:5]
    assert classifier_scores(model, unseen_reference, SPEC).min() > 0.5
    assert classifier_scores(model, unseen_crawl, SPEC).shape == (5,)


def test_shuffled_labels_give_chance_auc(examples) -> None:
    """Held-out means held out: with labels unrelated to the text, in-sample fitting would still
    reach AUC 1.0, out-of-fold predictions cannot."""
    texts, labels = examples
    shuffled = list(np.random.default_rng(0).permutation(labels))
    _, evaluation = train_classifier(texts, shuffled, SPEC)
    assert evaluation.auc is not None and evaluation.auc < 0.8


def test_tiny_data_reports_why_there_is_no_auc(examples) -> None:
    texts, labels = examples
    one_negative = texts[: sum(labels)] + texts[-1:]
    model, evaluation = train_classifier(one_negative, [1] * sum(labels) + [0], SPEC)
    assert model is not None and evaluation.auc is None
    assert "fewer than 2 examples" in evaluation.reason
    model, evaluation = train_classifier(texts[:3], [1, 1, 1], SPEC)
    assert model is None and "need both classes" in evaluation.reason
