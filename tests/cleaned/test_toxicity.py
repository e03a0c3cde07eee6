"""The packaged profanity model separates abusive from ordinary text, paragraph-weighted."""

from assets.cleaned.toxicity import score_toxicity


def test_abusive_text_scores_high_and_documentation_low() -> None:
    calm = score_toxicity("Debian is a free operating system.\nIt installs packages with apt.")
    rude = score_toxicity("You are a fucking idiot and a piece of shit.")
    assert calm.mean < 0.2 and rude.mean > 0.8


def test_one_bad_line_in_a_long_page_raises_max_more_than_mean() -> None:
    page = "\n".join(["The package manager resolves dependencies for you."] * 30)
    score = score_toxicity(page + "\nshut up you stupid fucking moron")
    assert score.max > 0.8 and score.mean < 0.2
