"""The rater with real vLLM (CPU build) and the packaged SmolLM2-135M-Instruct on real pages."""

import pytest

from assets.scored.ratings import rate

pytestmark = pytest.mark.slow


def test_real_model_answers_in_the_taught_format(faq_en: list[str], in_process_model) -> None:
    rater = in_process_model.model_copy(update={"temperature": 0.0, "top_p": 1.0, "max_tokens": 8})
    docs = [{"doc_id": f"faq-{i}", "text": text} for i, text in enumerate(faq_en[:3])]
    rows = rate(
        docs, ["educational_value", "writing_style"], rater.chat, lambda t: rater.truncate(t, 96)
    )
    assert [(r["doc_id"], r["dimension"]) for r in rows] == [
        (d["doc_id"], dim) for d in docs for dim in ("educational_value", "writing_style")
    ]
    for row in rows:
        assert row["completion_tokens"] > 0 and row["prompt_tokens"] < 400
        if row["score"] is None:
            assert row["parse_error"] and row["answer"] is not None
        else:
            assert 0 <= row["score"] <= 5 and row["parse_error"] is None
    # two worked examples teach the format: most answers parse
    assert sum(r["score"] is not None for r in rows) >= 4, [r["answer"] for r in rows]
