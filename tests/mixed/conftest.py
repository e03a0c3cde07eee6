"""Real text for the mixed stage's tests: Debian FAQ pages in three languages from the sample crawl,
cut into paragraph-sized documents and counted with the real SmolLM2 tokenizer."""

import polars as pl
import pytest

from assets.mixed.domains import with_domains
from assets.raw.extract import iter_documents
from resources.tokenizer import TokenCounter
from tests.conftest import SAMPLE_CRAWL

LANGUAGES = {"en": 0, "de": 1, "fr": 2}  # one "cluster" per language: an unambiguous signal
CHUNK_WORDS = 120


def chunk(text: str, words: int = CHUNK_WORDS) -> list[str]:
    """Consecutive lines grouped into pieces of at least `words` words."""
    pieces, current, count = [], [], 0
    for line in text.splitlines():
        current.append(line)
        count += len(line.split())
        if count >= words:
            pieces.append("\n".join(current))
            current, count = [], 0
    if count >= words // 4:
        pieces.append("\n".join(current))
    return pieces


def type_token_ratio(text: str) -> float:
    words = text.lower().split()
    return len(set(words)) / len(words) if words else 0.0


@pytest.fixture(scope="session")
def faq_docs() -> pl.DataFrame:
    return load_faq_docs()


def load_faq_docs() -> pl.DataFrame:
    """doc_id, text, language, origin, cluster_id, quality_score/bucket, tokens, domain.

    Every fourth German and French piece is labelled synthetic so the synthetic cap has
    something to cap; quality is the type-token ratio, bucketed into quintiles.
    """
    rows = []
    for lang, cluster in LANGUAGES.items():
        pages = [
            item[1].text
            for item in iter_documents(str(SAMPLE_CRAWL / f"debian-faq-{lang}.warc.gz"))
            if isinstance(item, tuple)
        ]
        for p, page in enumerate(pages):
            for i, text in enumerate(chunk(page)):
                synthetic = lang != "en" and (p + i) % 4 == 0
                rows.append(
                    {
                        "doc_id": f"{lang}-{p:02d}-{i:03d}",
                        "text": text,
                        "language": lang,
                        "origin": "synthetic" if synthetic else "organic",
                        "cluster_id": cluster,
                        "quality_score": type_token_ratio(text),
                    }
                )
    docs = pl.DataFrame(rows)
    docs = docs.with_columns(
        (pl.col("quality_score").rank("ordinal") * 5 // (pl.len() + 1))
        .cast(pl.Int32)
        .alias("quality_bucket"),
        pl.Series("tokens", TokenCounter().count(docs["text"].to_list()), dtype=pl.Int64),
    )
    return with_domains(docs, high_bucket=3)
