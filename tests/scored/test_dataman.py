"""DataMan: prompts as versioned data, strict parsing of ratings and domains, the domain head's
held-out skill, and the real rater answering in the taught formats."""

import dataclasses

import numpy as np
import pytest

from assets.scored.dataman import (
    CRITERIA,
    DOMAIN,
    DOMAINS,
    annotate,
    load_prompts,
    parse_domain,
)
from assets.scored.domain_head import fit_domain_head
from resources.rewriter import Generation


def test_the_prompts_name_dataman_criteria_and_domains() -> None:
    prompts = load_prompts()
    assert len(CRITERIA) == 14 and "overall_score" in CRITERIA
    assert len(DOMAINS) == 15 and DOMAINS[-1] == "Other"
    assert (prompts.low, prompts.high) == (1, 5)
    assert "Retail E-commerce" in prompts.question(DOMAIN)


def test_an_edited_prompt_gets_a_new_hash() -> None:
    prompts = load_prompts()
    edited = dataclasses.replace(
        prompts, criteria={**prompts.criteria, "accuracy": "accuracy (no errors at all)"}
    )
    bumped = dataclasses.replace(prompts, version=prompts.version + 1)
    assert len({prompts.prompt_hash, edited.prompt_hash, bumped.prompt_hash}) == 3


def test_requests_of_one_document_share_their_prefix() -> None:
    prompts = load_prompts()
    convs = [prompts.conversation("Debian is free.", q) for q in (*CRITERIA, DOMAIN)]
    assert all(c[:-1] == convs[0][:-1] for c in convs)
    assert len({c[-1]["content"] for c in convs}) == 15


@pytest.mark.parametrize(
    ("answer", "domain"),
    [
        ("Domain: Technology", "Technology"),
        ("domain - retail e-commerce.", "Retail E-commerce"),
        ("It is about Law.", "Law"),
        ("Domain: Coding\nbecause it shows a shell command", "Coding"),
    ],
)
def test_accepted_domains(answer: str, domain: str) -> None:
    parsed = parse_domain(answer, DOMAINS)
    assert (parsed.domain, parsed.error) == (domain, None)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("Domain: Astrology", "names none"),
        ("Medicine or Law", "ambiguous"),
        ("", "empty answer"),
        ("Score: 3", "names none"),
    ],
)
def test_rejected_domains_keep_their_reason(answer: str, reason: str) -> None:
    parsed = parse_domain(answer, DOMAINS)
    assert parsed.domain is None and reason in parsed.error


def test_annotate_records_every_answer_and_never_guesses() -> None:
    answers = iter(["Score: 4", "Score: 0", "Domain: Technology", "5", "Score: 2", "Dunno"])

    def chat(conversations):
        return [Generation(next(answers), 100, 3, "stop") for _ in conversations]

    docs = [{"doc_id": "a", "text": "apt install"}, {"doc_id": "b", "text": "tax law"}]
    rows = annotate(docs, ["accuracy", "overall_score"], chat, lambda t: t)
    got = [(r["doc_id"], r["dimension"], r["score"], r["label"]) for r in rows]
    assert got == [
        ("a", "accuracy", 4, None),
        ("a", "overall_score", None, None),  # 0 is off DataMan's 1-5 scale
        ("a", "domain", None, "Technology"),
        ("b", "accuracy", 5, None),
        ("b", "overall_score", 2, None),
        ("b", "domain", None, None),
    ]
    assert "out of range 1-5" in rows[1]["parse_error"]
    assert rows[5]["parse_error"] == "names none of the known domains"
    with pytest.raises(ValueError, match="unknown DataMan criteria"):
        annotate(docs, ["verbosity"], chat, lambda t: t)


def _clustered(n: int, labels: list[str], spread: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = {name: rng.normal(size=16) * 3 for name in labels}
    names = [labels[i % len(labels)] for i in range(n)]
    return np.stack([centres[y] + rng.normal(size=16) * spread for y in names]), names


def test_a_domain_head_on_separable_vectors_beats_the_majority_baseline() -> None:
    vectors, labels = _clustered(60, ["Law", "Medicine", "Coding"], spread=0.5)
    head, report = fit_domain_head(vectors, labels, folds=5, seed=0)
    assert head is not None and report.reason is None
    assert report.accuracy > 0.9 and report.macro_f1 > 0.9
    assert report.accuracy_ci_low > report.majority_share == pytest.approx(1 / 3)
    assert report.accuracy_ci_low <= report.accuracy <= report.accuracy_ci_high
    assert len(report.heldout) == 60 and set(report.heldout) <= {"Law", "Medicine", "Coding"}
    assert list(head.predict(vectors[:3])) == labels[:3]


def test_a_domain_head_on_noise_shows_no_skill_beyond_the_baseline() -> None:
    rng = np.random.default_rng(1)
    labels = ["Law"] * 30 + ["Medicine"] * 10
    _, report = fit_domain_head(rng.normal(size=(40, 16)), labels, folds=5, seed=0)
    assert report.majority_share == 0.75
    assert report.accuracy_ci_low <= report.majority_share


@pytest.mark.parametrize(
    ("labels", "reason"),
    [(["Law"] * 3, "only 3 parsed"), (["Law"] * 10, "every label is 'Law'")],
)
def test_no_domain_head_without_something_to_learn(labels: list[str], reason: str) -> None:
    head, report = fit_domain_head(np.ones((len(labels), 4)), labels)
    assert head is None and report.accuracy is None and reason in report.reason


@pytest.mark.slow
def test_real_model_answers_ratings_and_domains(faq_en: list[str], in_process_model) -> None:
    rater = in_process_model.model_copy(update={"temperature": 0.0, "top_p": 1.0, "max_tokens": 10})
    docs = [{"doc_id": f"faq-{i}", "text": text} for i, text in enumerate(faq_en[:2])]
    rows = annotate(
        docs, ["coherence", "overall_score"], rater.chat, lambda t: rater.truncate(t, 96)
    )
    assert [(r["doc_id"], r["dimension"]) for r in rows] == [
        (d["doc_id"], q) for d in docs for q in ("coherence", "overall_score", DOMAIN)
    ]
    for row in rows:
        assert row["completion_tokens"] > 0 and row["answer"] is not None
        accepted = row["label"] if row["dimension"] == DOMAIN else row["score"]
        assert (accepted is None) == (row["parse_error"] is not None)
        if row["label"] is not None:
            assert row["label"] in DOMAINS
        if row["score"] is not None:
            assert 1 <= row["score"] <= 5
    # the worked examples teach both formats: most answers parse
    assert sum(r["parse_error"] is None for r in rows) >= 4, [r["answer"] for r in rows]


def test_held_out_ratings_stay_on_dataman_scale() -> None:
    """Out-of-fold predictions of a 1-5 criterion are clipped to 1-5, not to 0-5 (the contract
    of quality_scores refuses a dm_* value below 1)."""
    from assets.scored.distill import fit_heads

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(40, 8))
    scores = np.clip(np.round(1 + 4 * (vectors[:, 0] > 1.0) + rng.normal(size=40)), 1, 5)
    _, (report,) = fit_heads(vectors, {"dm_x": (np.arange(40), scores)}, 5, 0, scale=(1, 5))
    assert report.heldout.min() >= 1 and report.heldout.max() <= 5
