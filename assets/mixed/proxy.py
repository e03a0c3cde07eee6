"""Proxy evaluators for the mixture search: train something on a candidate's sample, score it.

RegMix and CLIMB train small proxy models on each candidate mixture and regress their validation
loss on the mixture weights. The evaluator is a resource so that a team can swap the default, a
Kneser-Ney n-gram LM that costs milliseconds, for its own proxy training runs (`CommandProxy`,
or a subclass of `ProxyEvaluator`). Lower scores are better: perplexity or loss on the target.
Candidates are scored on samples drawn by the mixture's own sampler at a small budget.
"""

import json
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field, PrivateAttr

from assets.mixed.sampling import MixturePolicy, sample_mixture
from assets.ngram import KneserNeyLM


class ProxyEvaluator(dg.ConfigurableResource):
    """Scores a training sample against a target set; lower is better."""

    def evaluate(self, train_texts: Sequence[str], target_texts: Sequence[str]) -> float:
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__


class NgramProxy(ProxyEvaluator):
    """Perplexity on the target of a Kneser-Ney token n-gram LM trained on the sample."""

    order: int = Field(3, description="n of the n-gram model (1-4).")
    tokenizer: str = Field(
        "", description="A tokenizer.json file or model directory; '' = SmolLM2's tokenizer."
    )
    _tok: Any = PrivateAttr(default=None)
    _cache: dict[str, np.ndarray] = PrivateAttr(default_factory=dict)

    def evaluate(self, train_texts: Sequence[str], target_texts: Sequence[str]) -> float:
        lm = KneserNeyLM(self.order, self._tokenizer().get_vocab_size()).fit(
            self.encode(train_texts)
        )
        return lm.perplexity(self.encode(target_texts))

    def describe(self) -> str:
        return f"{self.order}-gram Kneser-Ney LM, perplexity ({self.tokenizer or 'SmolLM2'})"

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token ids per text; candidates share documents, so each text is encoded once."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            encoded = self._tokenizer().encode_batch(missing, add_special_tokens=False)
            for text, enc in zip(missing, encoded, strict=True):
                self._cache[text] = np.asarray(enc.ids, dtype=np.int64)
        return [self._cache[t] for t in texts]

    def _tokenizer(self):
        if self._tok is None:
            from tokenizers import Tokenizer

            from resources.models import prepare_smollm2

            path = Path(self.tokenizer) if self.tokenizer else prepare_smollm2()
            self._tok = Tokenizer.from_file(str(path / "tokenizer.json" if path.is_dir() else path))
        return self._tok


class CommandProxy(ProxyEvaluator):
    """Your own proxy run: a command that trains on {train} and prints its {target} score.

    Both are JSONL files of {"text": ...} lines; the last line of stdout must be the score
    (lower is better), e.g. `python train_tiny_lm.py --train {train} --eval {target}`.
    """

    command: str = Field(description="Command line with {train} and {target} placeholders.")
    timeout_s: float = Field(3600.0, description="Limit for one proxy run.")

    def evaluate(self, train_texts: Sequence[str], target_texts: Sequence[str]) -> float:
        with tempfile.TemporaryDirectory(prefix="foundry-proxy-") as tmp:
            train, target = Path(tmp) / "train.jsonl", Path(tmp) / "target.jsonl"
            _write_jsonl(train, train_texts)
            _write_jsonl(target, target_texts)
            argv = [part.format(train=train, target=target) for part in shlex.split(self.command)]
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=self.timeout_s, check=True
            )
        lines = done.stdout.strip().splitlines()
        if not lines:
            raise RuntimeError(f"proxy command printed no score: {self.command}")
        return float(lines[-1])

    def describe(self) -> str:
        return f"command: {self.command}"


def proxy_objective(
    docs: pl.DataFrame,
    domains: Sequence[str],
    target_texts: Sequence[str],
    proxy: ProxyEvaluator,
    policy: MixturePolicy,
) -> Callable[[np.ndarray], float]:
    """weights -> proxy score of the sample those weights draw (same seed for every candidate,
    so two candidates differ only by their weights)."""
    text_of = dict(zip(docs["doc_id"].to_list(), docs["text"].to_list(), strict=True))

    def evaluate(weights: np.ndarray) -> float:
        sample = sample_mixture(docs, dict(zip(domains, weights.tolist(), strict=True)), policy)
        return proxy.evaluate([text_of[d] for d in sample["doc_id"].to_list()], target_texts)

    return evaluate


def chunk_documents(docs: pl.DataFrame, chunk_tokens: int) -> pl.DataFrame:
    """Documents cut on line breaks into pieces of about `chunk_tokens` tokens.

    Proxy samples are small: drawn as whole documents, a few long pages decide a candidate's
    score and nearby weights score far apart. Drawn as pieces, a sample follows its weights
    closely, as the token streams of RegMix's proxy runs do. Token counts of pieces are
    estimated from their share of the document's characters.
    """
    rows = []
    for doc_id, text, tokens, domain, origin in docs.select(
        "doc_id", "text", "tokens", "domain", "origin"
    ).iter_rows():
        per_char = tokens / max(len(text), 1)
        pieces = _pieces(text, max(1, int(chunk_tokens / per_char)) if per_char else len(text))
        for i, piece in enumerate(pieces):
            size = max(1, round(len(piece) * per_char))
            rows.append((f"{doc_id}#{i}", piece, size, domain, origin))
    schema = {"doc_id": pl.String, "text": pl.String, "tokens": pl.Int64}
    schema |= {"domain": pl.String, "origin": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row")


def _pieces(text: str, max_chars: int) -> list[str]:
    pieces, current, size = [], [], 0
    for line in text.splitlines(keepends=True):
        current.append(line)
        size += len(line)
        if size >= max_chars:
            pieces.append("".join(current))
            current, size = [], 0
    if current:
        pieces.append("".join(current))
    return pieces


def proxy_policy(policy: MixturePolicy, proxy_tokens: int) -> MixturePolicy:
    return replace(policy, token_budget=min(policy.token_budget, proxy_tokens))


def _write_jsonl(path: Path, texts: Sequence[str]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for text in texts:
            fh.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
