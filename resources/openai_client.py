"""Chat completions against one or more OpenAI-compatible endpoints (`vllm serve` replicas).

Requests run concurrently, each with a timeout; a failed request is retried with exponential
backoff on the next endpoint, so one dead replica slows a batch down instead of failing it.

A per-request `seed` is sent when asked for. A server that rejects the field (a client error that
names it) gets the request again without it, and no later request carries it: each answer says
whether its seed was dropped and why (`seed_rejected`), so nothing records a seed that was not used.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)


class EndpointsUnavailableError(RuntimeError):
    """Every retry on every endpoint failed."""


@dataclass(frozen=True)
class HttpSettings:
    endpoints: tuple[str, ...]
    model: str
    timeout_s: float = 120.0
    max_retries: int = 6
    backoff_s: float = 0.5
    concurrency: int = 16


class OpenAIChatClient:
    def __init__(self, settings: HttpSettings) -> None:
        if not settings.endpoints:
            raise ValueError("the HTTP backend needs at least one endpoint URL")
        self.settings = settings
        self._next = itertools.cycle(range(len(settings.endpoints)))
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=settings.timeout_s)
        self.seed_rejected = ""  # why the servers took no per-request seed, once one said so

    def chat(
        self, conversations: Sequence[list[dict]], sampling: dict[str, Any], seed: int | None = None
    ) -> list[dict]:
        """One response dict per conversation, in order: text, token counts, finish reason, and
        `seed_rejected` (the reason) where `seed` was asked for but not sent."""
        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            return list(pool.map(lambda c: self._one(c, sampling, seed), conversations))

    def _endpoint(self) -> str:
        with self._lock:
            return self.settings.endpoints[next(self._next)].rstrip("/")

    def _one(self, messages: list[dict], sampling: dict[str, Any], seed: int | None) -> dict:
        body = {"model": self.settings.model, "messages": messages, **sampling}
        errors = []
        attempt = 0
        while attempt <= self.settings.max_retries:
            endpoint = self._endpoint()
            seeded = seed is not None and not self.seed_rejected
            request = {**body, "seed": seed} if seeded else body
            try:
                response = self._client.post(f"{endpoint}/v1/chat/completions", json=request)
                if seeded and _rejects_seed(response):
                    with self._lock:
                        self.seed_rejected = self.seed_rejected or (
                            f"server rejects per-request seeds (HTTP {response.status_code}: "
                            f"{response.text[:160]})"
                        )
                    log.warning("%s: sending requests without a seed", self.seed_rejected)
                    continue  # the same attempt again, without the seed
                response.raise_for_status()
                result = _parse(response.json())
                if seed is not None and not seeded:
                    result["seed_rejected"] = self.seed_rejected
                return result
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                errors.append(f"{endpoint}: {exc}")
                delay = self.settings.backoff_s * 2**attempt * (0.5 + random.random())
                log.warning("rewrite request failed (%s); retrying in %.1fs", exc, delay)
                time.sleep(min(delay, 30.0))
                attempt += 1
        raise EndpointsUnavailableError(
            f"{self.settings.max_retries + 1} attempts failed: " + "; ".join(errors[-3:])
        )

    def close(self) -> None:
        self._client.close()


def _rejects_seed(response: httpx.Response) -> bool:
    """A client error (400, 422) whose message names the `seed` field."""
    return response.status_code in (400, 422) and "seed" in response.text.lower()


def _parse(payload: dict) -> dict:
    choice = payload["choices"][0]
    usage = payload.get("usage") or {}
    return {
        "text": choice["message"]["content"] or "",
        "prompt_tokens": int(usage.get("prompt_tokens", 0)),
        "completion_tokens": int(usage.get("completion_tokens", 0)),
        "finish_reason": str(choice.get("finish_reason")),
    }
