"""Parsing LLM ratings strictly: a score only when the answer names one integer from 0 to 5."""

import pytest

from assets.scored.ratings import DIMENSIONS, conversation, parse_rating, prompt_hash, rate
from resources.rewriter import Generation


@pytest.mark.parametrize(
    ("answer", "score"),
    [
        ("Score: 3", 3),
        ("score:4\n\nThe text is clear", 4),
        ("Score: 0", 0),
        ("I would give it 4 out of 5.", 4),
        ("2/5 - mostly navigation", 2),
        ("5", 5),
        ("The educational value of the text is 1.", 1),
    ],
)
def test_accepted_answers(answer: str, score: int) -> None:
    parsed = parse_rating(answer)
    assert (parsed.score, parsed.error) == (score, None)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("Score: 12345", "out of range"),  # seen from SmolLM2-135M
        ("Score: 4.5", "not an integer"),
        ("0.0.0.1.1\n\nThe", "not an integer"),  # seen from SmolLM2-135M
        ("0 = nothing to learn, 5 = excellent teaching material", "ambiguous"),  # echoed scale
        ("The text above is not very useful for teaching a", "no number"),
        ("   ", "empty answer"),
    ],
)
def test_rejected_answers_keep_their_reason(answer: str, reason: str) -> None:
    parsed = parse_rating(answer)
    assert parsed.score is None and reason in parsed.error


def test_requests_of_one_document_share_their_prefix() -> None:
    """Only the question differs between dimensions, so vLLM's prefix cache reuses the rest."""
    text = "Debian is a free operating system."
    convs = [conversation(text, dim) for dim in DIMENSIONS]
    assert all(c[:-1] == convs[0][:-1] for c in convs)
    lasts = [c[-1]["content"] for c in convs]
    assert all(last.startswith(f"Text: {text}\n\n") for last in lasts)
    assert len(set(lasts)) == len(DIMENSIONS)
    assert [m["role"] for m in convs[0]] == ["user", "assistant", "user", "assistant", "user"]


def test_prompt_hash_is_stable() -> None:
    assert prompt_hash() == prompt_hash() and len(prompt_hash()) == 16


def test_rate_records_every_answer_and_never_guesses() -> None:
    answers = iter(["Score: 4", "Score: 9", "no idea", "Score: 1"])
    sent: list[list[dict]] = []

    def chat(conversations):
        sent.extend(conversations)
        return [Generation(next(answers), 100, 3, "stop") for _ in conversations]

    docs = [{"doc_id": "a", "text": "x " * 50}, {"doc_id": "b", "text": "y " * 50}]
    rows = rate(docs, ["educational_value", "cleanliness"], chat, lambda t: t[:20])
    assert [(r["doc_id"], r["dimension"], r["score"]) for r in rows] == [
        ("a", "educational_value", 4),
        ("a", "cleanliness", None),
        ("b", "educational_value", None),
        ("b", "cleanliness", 1),
    ]
    assert rows[1]["answer"] == "Score: 9" and "out of range" in rows[1]["parse_error"]
    assert rows[2]["parse_error"] == "no number in the answer"
    assert all(len(c[-1]["content"].split("\n\n")[0]) == len("Text: ") + 20 for c in sent)


def test_unknown_dimension_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown rating dimensions"):
        rate([], ["verbosity"], lambda c: [], lambda t: t)
