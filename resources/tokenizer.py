"""Token counting with a real tokenizer, so mixture budgets mean what a trainer will see.

Only the count of each document is kept: an `Encoding` holds about 125 bytes per token, so
texts are encoded in chunks (`encode_batch_fast`, which skips offsets) and each chunk's
encodings are dropped before the next one is encoded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from resources.models import prepare_smollm2


class TokenCounter(ConfigurableResource):
    tokenizer: str = Field(
        "", description="A tokenizer.json file or a model directory; '' = SmolLM2's tokenizer."
    )
    chunk_docs: int = Field(256, ge=1, description="Documents encoded together, then dropped.")
    eos_token: str = Field(
        "<|endoftext|>",
        description="Appended to every document of a tokenized mixture (datatrove's default).",
    )
    _tok: Any = PrivateAttr(default=None)

    def tokenizer_id(self) -> str:
        return self.tokenizer or "SmolLM2-135M-Instruct"

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text (no special tokens), encoded chunk by chunk."""
        return [n for chunk in self.count_chunks(_chunks(texts, self.chunk_docs)) for n in chunk]

    def count_chunks(self, chunks: Iterable[Sequence[str]]) -> Iterator[list[int]]:
        """One list of counts per chunk of texts; no encoding outlives its chunk."""
        tok = self._tokenizer()
        for chunk in chunks:
            encodings = tok.encode_batch_fast(list(chunk), add_special_tokens=False)
            counts = [len(e.ids) for e in encodings]
            del encodings
            yield counts

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text (no special tokens), for a chunk the caller bounds."""
        return [e.ids for e in self._tokenizer().encode_batch_fast(list(texts), False)]

    def eos_id(self) -> int:
        token = self._tokenizer().token_to_id(self.eos_token)
        if token is None:
            raise ValueError(
                f"the tokenizer {self.tokenizer_id()} has no token {self.eos_token!r}: set the "
                "tokens resource's eos_token to its end-of-document token"
            )
        return token

    def vocab_size(self) -> int:
        return self._tokenizer().get_vocab_size(with_added_tokens=True)

    def _tokenizer(self) -> Any:
        if self._tok is None:
            from tokenizers import Tokenizer

            path = Path(self.tokenizer) if self.tokenizer else prepare_smollm2()
            self._tok = Tokenizer.from_file(str(path / "tokenizer.json" if path.is_dir() else path))
        return self._tok


def _chunks(texts: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(texts), size):
        yield texts[start : start + size]
