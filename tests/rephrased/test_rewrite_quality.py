"""Rewrite quality control on real outputs of the default model, and each rule on its own.

`tests/data/rephrased/real_rewrites.jsonl` holds answers of the default model, SmolLM2-135M-
Instruct in process (vLLM's CPU build, max_tokens 512; default sampling with per-request seed 0,
or greedy where `recorded_with` says so), to documents of the bundled sample (data/sample_crawl),
recorded once: the source as the model got it (cut at `max_source_tokens`), each chunk's raw
answer and finish reason, and the rule QC must give (null: accepted). They are replayed through
`rewrite_batch`, so preamble stripping, chunk joining, the truncation flags and the asked-for
language are those of a real run. `accepted_before` and `rule_before` record what the QC of
before issue #15 said: several of these bad answers entered the corpus.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import Field

from assets.documents import Drop
from assets.rephrased.quality import QualityPolicy, judge_rewrite
from assets.rephrased.rewrite import ChunkLimits, rewrite_batch
from assets.rephrased.styles import get_style
from resources.langid import LanguageIdentifier
from resources.rewriter import Generation, VLLMRewriter

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "rephrased" / "real_rewrites.jsonl"
CASES = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]
POLICY = QualityPolicy()

SOURCE = (
    "Debian is a free operating system developed by volunteers. The apt tool installs packages "
    "from the Debian archive, resolves their dependencies and keeps the system up to date with "
    "security fixes published by the security team. Each release is supported for three years."
)
GOOD = (
    "Debian is a free operating system that volunteers develop. Its apt tool installs packages "
    "from the Debian archive, resolves their dependencies and keeps the system up to date with "
    "the security fixes that the security team publishes. Every release gets three years of "
    "support."
)


class ReplayRewriter(VLLMRewriter):
    """Answers with the recorded chunk answers, in order; counts tokens with the real tokenizer
    so that documents are chunked as they were in the recorded run."""

    replies: list[str] = Field(default_factory=list)
    finishes: list[str] = Field(default_factory=list)

    def chat(self, conversations) -> list[Generation]:
        assert len(conversations) == len(self.replies), "chunked unlike the recorded run"
        return [Generation(t, 0, 1, f) for t, f in zip(self.replies, self.finishes, strict=True)]


@pytest.fixture(scope="module")
def tokenizer():
    return VLLMRewriter().tokenizer()


def _replay(case: dict, tokenizer) -> dict | Drop:
    rewriter = ReplayRewriter(
        max_model_len=2048,
        replies=[text for text, _ in case["chunks"]],
        finishes=[finish for _, finish in case["chunks"]],
    )
    rewriter._tokenizer = tokenizer
    doc = {"doc_id": case["source_doc_id"], "text": case["source"], "language": case["language"]}
    limits = ChunkLimits(max_source_tokens=case["max_source_tokens"])
    (item,) = rewrite_batch(
        [doc],
        get_style(case["style_id"]),
        rewriter,
        LanguageIdentifier().identify,
        POLICY,
        limits,
    )
    return item


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{c['style_id']}-{c['source_doc_id'][:8]}-{c['expected']}" for c in CASES]
)
def test_real_outputs_of_the_default_model_get_their_rule(case: dict, tokenizer) -> None:
    item = _replay(case, tokenizer)
    if case["expected"] is None:
        assert not isinstance(item, Drop), item
        assert item["source_doc_id"] == case["source_doc_id"]
    else:
        assert isinstance(item, Drop) and item.rule == case["expected"], item
        assert f"source={case['source_doc_id']}" in item.detail


def test_the_fixture_covers_every_new_rule_and_good_outputs() -> None:
    expected = {c["expected"] for c in CASES}
    assert {
        "qc:chat_markup",
        "qc:repeated_sentence",
        "qc:truncated_output",
        "qc:wrong_language",
        "qc:task_talk",
        None,
    } <= expected
    single_chunk_cut = [c for c in CASES if len(c["chunks"]) == 1 and c["chunks"][0][1] == "length"]
    assert any(c["expected"] == "qc:truncated_output" for c in single_chunk_cut)
    # the QC of before issue #15 let real bad answers into the corpus
    assert any(c["accepted_before"] for c in CASES if c["expected"] is not None)


def test_chat_template_and_role_markup_is_rejected() -> None:
    preamble = "A chat between a curious user and an artificial intelligence assistant. " + GOOD
    assert judge_rewrite(SOURCE, preamble, 0.0, POLICY).rule == "qc:chat_markup"
    for markup in ("<|im_start|>assistant\n", "<|im_end|>", "[INST] ", "<</SYS>>"):
        assert judge_rewrite(SOURCE, GOOD + "\n" + markup, 0.0, POLICY).rule == "qc:chat_markup"
    for role in ("User: rewrite this.", "Assistant: Sure.", "### Assistant: here", "SYSTEM:"):
        rewrite = GOOD + "\n" + role + "\n" + GOOD
        assert judge_rewrite(SOURCE, rewrite, 0.0, POLICY).rule == "qc:chat_markup", role
    # a page that has role lines of its own (a transcript) may keep them in its rewrite
    transcript = SOURCE + "\nUser: how do I upgrade?\nAnswer: run apt upgrade."
    assert judge_rewrite(transcript, GOOD + "\nUser: how do I upgrade?", 0.0, POLICY) is None


def test_talk_about_the_chat_or_the_task_is_rejected() -> None:
    for talk in (
        "In this chat, I've provided a paraphrase of the given paragraph.",
        "The user asks how packages are installed.",
        "The assistant provides a list of commands.",
        "The above text explains what Debian is.",
    ):
        rejection = judge_rewrite(SOURCE, GOOD + "\n\n" + talk, 0.0, POLICY)
        assert rejection.rule == "qc:task_talk", talk
    # the page's own words are not talk about the task
    quoting = SOURCE + " When the user asks for a package, apt installs it."
    assert judge_rewrite(quoting, GOOD + " When the user asks for a package, apt installs it.",
                         0.0, POLICY) is None  # fmt: skip


def test_a_sentence_said_three_times_is_rejected() -> None:
    said = "The apt tool keeps the system up to date. "
    assert judge_rewrite(SOURCE, GOOD + " " + said * 2, 0.0, POLICY) is None
    rejection = judge_rewrite(SOURCE, GOOD + " " + said * 3, 0.0, POLICY)
    assert rejection.rule == "qc:repeated_sentence" and rejection.value == 3
    # not only in a row, and not only with the same punctuation or case
    spread = f"{said}{GOOD}\n{said.upper()}\nDebian is free. {said.rstrip('. ')}!"
    assert judge_rewrite(SOURCE, spread, 0.0, POLICY).rule == "qc:repeated_sentence"
    # a page that says it three times itself may be rewritten faithfully
    page = SOURCE + " " + said * 3
    assert judge_rewrite(page, GOOD + " " + said * 3, 0.0, POLICY) is None


def test_an_answer_cut_at_max_tokens_is_rejected_unless_a_chunk_boundary_explains_it() -> None:
    # one chunk, cut at max_tokens: nothing after the cut
    rejection = judge_rewrite(SOURCE, GOOD, 1.0, POLICY, last_chunk_truncated=True)
    assert rejection.rule == "qc:truncated_output"
    # a middle chunk of three was cut: the next chunk's answer carries on after the boundary
    assert judge_rewrite(SOURCE, GOOD, 1 / 3, POLICY, last_chunk_truncated=False) is None
    # the last chunk was cut: no boundary follows it
    assert (
        judge_rewrite(SOURCE, GOOD, 1 / 3, POLICY, last_chunk_truncated=True).rule
        == "qc:truncated_output"
    )


def test_an_answer_in_another_language_than_asked_is_rejected() -> None:
    identify = LanguageIdentifier().identify
    german = (
        "Debian ist ein freies Betriebssystem, das von Freiwilligen entwickelt wird. Das "
        "Werkzeug apt installiert Pakete aus dem Debian-Archiv, löst ihre Abhängigkeiten auf "
        "und hält das System mit den Sicherheitskorrekturen des Sicherheitsteams aktuell."
    )
    kwargs = {"expected_language": "en", "detected_language": identify(german)}
    rejection = judge_rewrite(SOURCE + " " + german, german, 0.0, POLICY, **kwargs)
    assert rejection.rule == "qc:wrong_language" and "asked=en answered=de" in rejection.detail
    ok = {"expected_language": "en", "detected_language": identify(GOOD)}
    assert judge_rewrite(SOURCE, GOOD, 0.0, POLICY, **ok) is None
    # an unsure language ID does not reject
    unsure = {"expected_language": "en", "detected_language": ("de", 0.6)}
    assert judge_rewrite(SOURCE, GOOD, 0.0, POLICY, **unsure) is None


def test_the_asked_language_is_the_styles_or_else_the_sources() -> None:
    assert get_style("wrap_wikipedia").answer_language("de") == "en"  # "... English language"
    assert get_style("nemotron_distill").answer_language("de") == "de"
