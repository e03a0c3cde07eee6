"""Token counting with a real tokenizer, so mixture budgets mean what a trainer will see."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from resources.models import prepare_smollm2


class TokenCounter(ConfigurableResource):
    tokenizer: str = Field(
        "", description="A tokenizer.json file or a model directory; '' = SmolLM2's tokenizer."
    )
    _tok: Any = PrivateAttr(default=None)

    def tokenizer_id(self) -> str:
        return self.tokenizer or "SmolLM2-135M-Instruct"

    def count(self, texts: Sequence[str]) -> list[int]:
        if self._tok is None:
            from tokenizers import Tokenizer

            path = Path(self.tokenizer) if self.tokenizer else prepare_smollm2()
            self._tok = Tokenizer.from_file(str(path / "tokenizer.json" if path.is_dir() else path))
        return [len(e.ids) for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]
