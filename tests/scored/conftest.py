"""Real text for the scored stage's tests: Debian FAQ pages of the sample crawl."""

import pytest

from assets.raw.extract import iter_documents
from tests.conftest import SAMPLE_CRAWL


def faq_pages(language: str) -> list[str]:
    """The extracted main text of every page of one language's Debian FAQ shard."""
    shard = SAMPLE_CRAWL / f"debian-faq-{language}.warc.gz"
    return [item[1].text for item in iter_documents(str(shard)) if isinstance(item, tuple)]


@pytest.fixture(scope="session")
def faq_en() -> list[str]:
    return [page for page in faq_pages("en") if len(page) >= 1000]
