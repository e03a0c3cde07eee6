"""Benchmark decontamination (#18) on real pages: an eval set quoting passages of the sample's
Debian FAQ pages removes exactly the documents it quotes, with the item and the n-gram."""

from __future__ import annotations

import json
import re
import unicodedata

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.cleaned.decontaminate import (
    INDEX_SCHEMA,
    DecontamPolicy,
    EvalIndex,
    EvalSet,
    EvalSetError,
    IndexSummary,
    build_index,
    decontaminate,
    find_contaminated,
    ngram_hashes,
    words,
)
from assets.cleaned.schema import CLEANED_DOCUMENTS_SCHEMA
from assets.corpus import corpus_size, organic_documents
from assets.documents import DROPPED_SCHEMA
from benchmarks.bench_scale import cleaned_row
from resources.lake import Lake
from tests.scored.conftest import faq_pages

N = 13


def _plain_ngrams(text: str, n: int = N) -> set[tuple[str, ...]]:
    """An independent reference: NFKC, lower case, runs of letters and digits."""
    tokens = re.findall(r"[^\W_]+", unicodedata.normalize("NFKC", text).lower())
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def _publish(lake: Lake, shard: str, texts: list[str]) -> list[str]:
    ids = []
    with lake.publish("cleaned_documents", shard) as out:
        rows = out.table("documents", CLEANED_DOCUMENTS_SCHEMA)
        out.table("dropped", DROPPED_SCHEMA)
        for offset, text in enumerate(texts):
            url = f"https://www.debian.org/{shard}/{offset}"
            rows.append(row := cleaned_row(shard, offset, text, shard[-2:], url))
            ids.append(row["doc_id"])
    return ids


def _unique_passage(text: str, others: set[tuple[str, ...]], length: int = 30) -> str | None:
    """A run of `length` words of `text` none of whose 13-grams occurs in any other page."""
    tokens = text.split()
    for start in range(len(tokens) // 3, len(tokens) - length):
        passage = " ".join(tokens[start : start + length])
        grams = _plain_ngrams(passage)
        if grams and not grams & others:
            return passage
    return None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """Two shards of real FAQ pages; an eval set quoting three of them (re-cased, re-punctuated)
    plus items that must not match: a passage of a page outside the lake, one 12 words long,
    and one that shares 12 consecutive words with a page, then differs."""
    home = tmp_path_factory.mktemp("decontam")
    lake = Lake(home=str(home))
    en = [p for p in faq_pages("en") if len(p.split()) > 200]
    de = [p for p in faq_pages("de") if len(p.split()) > 200]
    in_lake, outside = en[:-1] + de, en[-1]
    ids = _publish(lake, "faq-en", en[:-1]) + _publish(lake, "faq-de", de)
    grams = [_plain_ngrams(t) for t in in_lake]
    planted, items = {}, []
    for k, position in enumerate((1, len(en) // 2, len(en) - 1 + 2)):
        others = set().union(*(g for i, g in enumerate(grams) if i != position))
        passage = _unique_passage(in_lake[position], others)
        assert passage is not None
        prompt = f"Q{k}: " + passage.upper().replace(" ", "  , ", 3) + "?"
        items.append({"id": f"item-{k}", "prompt": prompt, "answer": "B"})
        planted[ids[position]] = f"item-{k}"
    out_passage = _unique_passage(outside, set().union(*grams))
    tokens = words(in_lake[0])  # normalized words: "apt-get" is two of them
    near = " ".join(tokens[40:52])
    items += [
        {"id": "outside", "prompt": out_passage, "answer": "A"},
        {"id": "short", "prompt": " ".join(tokens[40:51]), "answer": "C"},
        {"id": "near-miss", "prompt": near + " zzyzx quux", "answer": "D"},
    ]
    evals = home / "evals"
    evals.mkdir()
    (evals / "faq-quiz.jsonl").write_text("\n".join(json.dumps(i) for i in items))
    policy = DecontamPolicy((EvalSet("faq-quiz", str(evals / "faq-quiz.jsonl")),), workers=1)
    return {"lake": lake, "policy": policy, "planted": planted, "ids": ids, "home": home}


def _run(corpus: dict, policy: DecontamPolicy) -> tuple:
    lake = corpus["lake"]
    with lake.publish("decontamination") as out:
        result = decontaminate(lake, policy, corpus["home"] / "index", out)
    return result, lake.scan("decontamination", "dropped").collect()


def test_the_planted_documents_and_only_they_are_removed(corpus) -> None:
    result, dropped = _run(corpus, corpus["policy"])
    assert dict(zip(dropped["doc_id"], dropped["rule"], strict=True)) == {
        doc: "decontam:faq-quiz" for doc in corpus["planted"]
    }
    for row in dropped.iter_rows(named=True):
        detail = json.loads(row["detail"])
        assert detail["item_id"] == corpus["planted"][row["doc_id"]]
        assert len(detail["ngram"].split()) == N and detail["ngram"] == detail["ngram"].lower()
        assert row["url"] and row["source_file"] in ("faq-en", "faq-de")
    kept = corpus["lake"].scan("decontamination").collect()
    assert kept.height + dropped.height == len(corpus["ids"]) == result.checked
    assert result.removed == {"faq-quiz": len(corpus["planted"])}
    assert result.index.summary.too_short == {"faq-quiz": 1}


def test_the_corpus_leaves_out_what_was_removed(corpus) -> None:
    _run(corpus, corpus["policy"])
    organic = set(organic_documents(corpus["lake"]).collect()["doc_id"])
    assert organic == set(corpus["ids"]) - set(corpus["planted"])
    assert corpus_size(corpus["lake"]) == len(organic)


def test_two_workers_remove_the_same_documents(corpus) -> None:
    _, one = _run(corpus, corpus["policy"])
    two_workers = DecontamPolicy(corpus["policy"].eval_sets, workers=2)
    _, two = _run(corpus, two_workers)
    assert one.sort("doc_id").equals(two.sort("doc_id"))


def test_the_index_is_built_once_per_eval_set_version(corpus, tmp_path) -> None:
    policy = corpus["policy"]
    first = build_index(policy, tmp_path)
    stamp = (first.folder / "ngrams.parquet").stat().st_mtime_ns
    again = build_index(policy, tmp_path)
    assert again.folder == first.folder
    assert (again.folder / "ngrams.parquet").stat().st_mtime_ns == stamp
    longer = build_index(DecontamPolicy(policy.eval_sets, ngram=8), tmp_path)
    assert longer.fingerprint != first.fingerprint
    hashes = first.hashes()
    assert isinstance(hashes, np.memmap) and np.all(np.diff(hashes.astype(np.float64)) >= 0)


def test_a_hash_collision_is_not_a_match(tmp_path) -> None:
    """An index n-gram with the document's hash but other words removes nothing."""
    text = "one two three four five six seven eight nine ten eleven twelve thirteen"
    (digest,) = ngram_hashes(words(text), N).tolist()
    folder = tmp_path / "forged"
    folder.mkdir()
    row = {"hash": [digest], "eval_set": ["x"], "item_id": ["1"], "ngram": ["other words"]}
    pq.write_table(pa.table(row, schema=INDEX_SCHEMA), folder / "ngrams.parquet")
    np.save(folder / "hashes.npy", np.array([digest], dtype=np.uint64))
    index = EvalIndex(folder, "forged", IndexSummary(1, 1))
    assert find_contaminated([("doc", text)], index, N) == []
    pq.write_table(
        pa.table({**row, "ngram": [" ".join(words(text))]}, schema=INDEX_SCHEMA),
        folder / "ngrams.parquet",
    )
    assert [m.doc_id for m in find_contaminated([("doc", text)], index, N)] == ["doc"]


def test_parquet_eval_sets_with_choices_and_clear_errors(tmp_path) -> None:
    text = "Which of these is the default package manager of the Debian project for installs"
    path = tmp_path / "mc.parquet"
    pl.DataFrame({"question": ["?"], "choices": [[text, "b"]]}).write_parquet(path)
    policy = DecontamPolicy((EvalSet("mc", str(path), text_fields=("question", "choices")),))
    index = build_index(policy, tmp_path / "index")
    assert index.summary.items == 1 and index.summary.ngrams == 3  # fields are joined
    doc = ("d", "Intro. " + text.lower() + " and more.")
    assert [m.item_id for m in find_contaminated([doc], index, N)] == ["0"]
    wrong = DecontamPolicy((EvalSet("mc", str(path)),))
    with pytest.raises(EvalSetError, match="text_fields"):
        build_index(wrong, tmp_path / "index")
    with pytest.raises(EvalSetError, match="no file"):
        build_index(DecontamPolicy((EvalSet("gone", str(tmp_path / "gone.jsonl")),)), tmp_path)


def test_no_eval_sets_removes_nothing_and_checks_every_document(corpus) -> None:
    result, dropped = _run(corpus, DecontamPolicy())
    assert dropped.is_empty() and result.checked == len(corpus["ids"])


def test_normalization_ignores_case_punctuation_and_width() -> None:
    assert words("Ｄｅｂｉａｎ's  APT—tool, v2_0!") == ["debian", "s", "apt", "tool", "v2", "0"]
    assert ngram_hashes(words("a b c"), 2).tolist() == ngram_hashes(words("A, B; C"), 2).tolist()
    assert ngram_hashes(words("a b"), 3).size == 0
