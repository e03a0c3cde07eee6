"""Chat completions against one or more OpenAI-compatible endpoints (`vllm serve` replicas).

Requests run concurrently, each with a timeout; a failed request is retried with exponential
backoff on the next endpoint, so one dead replica slows a batch down instead of failing it.
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

    def chat(self, conversations: Sequence[list[dict]], sampling: dict[str, Any]) -> list[dict]:
        """One response dict per conversation, in order: text, token counts, finish reason."""
        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            return list(pool.map(lambda c: self._one(c, sampling), conversations))

    def _endpoint(self) -> str:
        with self._lock:
            return self.settings.endpoints[next(self._next)].rstrip("/")

    def _one(self, messages: list[dict], sampling: dict[str, Any]) -> dict:
        body = {"model": self.settings.model, "messages": messages, **sampling}
        errors = []
        for attempt in range(self.settings.max_retries + 1):
            endpoint = self._endpoint()
            try:
                response = self._client.post(f"{endpoint}/v1/chat/completions", json=body)
                response.raise_for_status()
                return _parse(response.json())
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                errors.append(f"{endpoint}: {exc}")
                delay = self.settings.backoff_s * 2**attempt * (0.5 + random.random())
                log.warning("rewrite request failed (%s); retrying in %.1fs", exc, delay)
                time.sleep(min(delay, 30.0))
        raise EndpointsUnavailableError(
            f"{self.settings.max_retries + 1} attempts failed: " + "; ".join(errors[-3:])
        )

    def close(self) -> None:
        self._client.close()


def _parse(payload: dict) -> dict:
    choice = payload["choices"][0]
    usage = payload.get("usage") or {}
    return {
        "text": choice["message"]["content"] or "",
        "prompt_tokens": int(usage.get("prompt_tokens", 0)),
        "completion_tokens": int(usage.get("completion_tokens", 0)),
        "finish_reason": str(choice.get("finish_reason")),
    }
