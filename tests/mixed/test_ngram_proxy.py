"""The default proxy is a real language model: normalised, and it prefers text like its training."""

import random
import sys

import numpy as np
import polars as pl
import pytest

from assets.mixed.proxy import CommandProxy, NgramProxy, chunk_documents
from assets.ngram import KneserNeyLM


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_kneser_ney_distributions_sum_to_one(order: int) -> None:
    rng = np.random.default_rng(order)
    docs = [rng.integers(0, 7, size=rng.integers(2, 40)) for _ in range(30)]
    lm = KneserNeyLM(order, vocab_size=7).fit(docs)
    for context in ([1, 2, 3], [6, 6, 6], [0, 4, 0]):
        seqs = [np.array([*context, w]) for w in range(7)]
        total = sum(lm._probabilities(s, np.array([3]))[0] for s in seqs)
        assert total == pytest.approx(1.0, abs=1e-9)


def test_higher_orders_fit_repetitive_text_better() -> None:
    pattern = np.tile(np.arange(5), 40)
    scores = [KneserNeyLM(n, 50).fit([pattern]).perplexity([pattern]) for n in (1, 2, 3)]
    assert scores[0] > scores[1] > scores[2]
    assert scores[2] < 1.5


def test_perplexity_is_lower_in_domain_than_shuffled_or_in_another_language(
    faq_docs: pl.DataFrame,
) -> None:
    english = faq_docs.filter(pl.col("language") == "en")["text"].to_list()
    german = faq_docs.filter(pl.col("language") == "de")["text"].to_list()
    train, held_out = english[::2], english[1::2]
    shuffled = []
    for text in held_out:
        words = text.split()
        random.Random(0).shuffle(words)
        shuffled.append(" ".join(words))
    proxy = NgramProxy()
    in_domain = proxy.evaluate(train, held_out)
    assert in_domain < 0.7 * proxy.evaluate(train, shuffled)
    assert in_domain < 0.5 * proxy.evaluate(train, german)
    assert proxy.evaluate(train + german, held_out) < proxy.evaluate(german, held_out)


def test_a_command_proxy_trains_on_the_files_it_is_given(tmp_path) -> None:
    script = tmp_path / "proxy.py"
    script.write_text(
        "import json, sys\n"
        "train = [json.loads(l)['text'] for l in open(sys.argv[1])]\n"
        "target = [json.loads(l)['text'] for l in open(sys.argv[2])]\n"
        "print('training...')\n"
        "print(len(' '.join(train)) / len(' '.join(target)))\n"
    )
    proxy = CommandProxy(command=f"{sys.executable} {script} {{train}} {{target}}")
    assert proxy.evaluate(["abcd", "ef"], ["ab"]) == pytest.approx(7 / 2)
    with pytest.raises(Exception, match="returned non-zero"):
        CommandProxy(command=f"{sys.executable} -c 'raise SystemExit(3)'").evaluate(["a"], ["b"])


def test_proxy_pieces_cover_each_document_once_with_its_tokens(faq_docs: pl.DataFrame) -> None:
    docs = faq_docs.head(40)
    pieces = chunk_documents(docs, chunk_tokens=64)
    assert pieces.height > 2 * docs.height
    rebuilt = (
        pieces.with_columns(pl.col("doc_id").str.split("#").list.first())
        .group_by("doc_id", maintain_order=True)
        .agg(pl.col("text").str.join(""), pl.col("tokens").sum(), pl.col("domain").first())
    )
    joined = docs.join(rebuilt, on="doc_id", suffix="_pieces")
    assert (joined["text"] == joined["text_pieces"]).all()
    assert (joined["domain"] == joined["domain_pieces"]).all()
    assert ((joined["tokens_pieces"] - joined["tokens"]).abs() <= pieces.height).all()
    assert pieces["tokens"].median() < 150
