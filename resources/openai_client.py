"""Chat completions against one or more OpenAI-compatible endpoints (`vllm serve` replicas).

Requests flow continuously: each endpoint has `max_in_flight` worker threads that take the next
request from one shared queue as soon as their last one finishes, so a slow request holds one
slot, never a batch, and a faster replica takes more of the work. A failed request goes back on
the queue after an exponential backoff (any endpoint may take it). An endpoint that cannot be
reached (connection errors, 502/503/504) is taken out for a cool-down that doubles with each
failure, then tried with a single request before its workers resume (a circuit breaker), so a
dead replica neither eats the retries of the requests nor stalls the others. A request that
fails every attempt, or that a server refuses outright (a 4xx other than 408/429), comes back as
a `RequestFailure` with its reason while the others go on.

A per-request `seed` is sent when asked for. A server that rejects the field (a client error that
names it) gets the request again without it, and no later request carries it: each answer says
whether its seed was dropped and why (`seed_rejected`), so nothing records a seed that was not used.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0


class EndpointsUnavailableError(RuntimeError):
    """Every retry on every endpoint failed."""


@dataclass(frozen=True)
class HttpSettings:
    endpoints: tuple[str, ...]
    model: str
    timeout_s: float = 120.0
    max_retries: int = 6
    backoff_s: float = 0.5
    max_in_flight: int = 64  # per endpoint


@dataclass(frozen=True)
class RequestFailure:
    """A request that got no answer: the reason (last errors) and how many attempts were made."""

    reason: str
    attempts: int


class _Refused(Exception):
    """A client error that no retry will fix (bad request, prompt too long)."""


class _Unreachable(Exception):
    """The endpoint, not the request, failed: it is down, restarting or overloaded."""


class _Breaker:
    """One endpoint's health: closed (requests flow), open after a failure (a cool-down that
    doubles with each consecutive failure), then half-open (one probe request) until a success
    closes it again."""

    def __init__(self, backoff) -> None:
        self._backoff = backoff
        self._cond = threading.Condition()
        self.failures = 0
        self._open_until = 0.0
        self._probing = False

    def admit(self, stop: threading.Event) -> bool:
        """Wait until this worker may send (False: the stream stopped meanwhile)."""
        with self._cond:
            while not stop.is_set():
                if self.failures == 0:
                    return True
                now = time.monotonic()
                if now >= self._open_until and not self._probing:
                    self._probing = True
                    return True
                self._cond.wait(min(max(self._open_until - now, 0.05), 1.0))
            return False

    def succeeded(self) -> None:
        with self._cond:
            if self.failures or self._probing:
                self.failures, self._probing = 0, False
                self._cond.notify_all()

    def failed(self) -> None:
        with self._cond:
            self.failures += 1
            self._open_until = time.monotonic() + self._backoff(self.failures - 1)
            self._probing = False
            self._cond.notify_all()

    def released(self) -> None:
        """A probe that ended without judging the endpoint (the request itself was bad)."""
        with self._cond:
            if self._probing:
                self._probing = False
                self._cond.notify_all()


@dataclass
class _Job:
    key: Hashable
    messages: list[dict]
    attempt: int = 0
    errors: list[str] = field(default_factory=list)


class InFlight:
    """Requests outstanding per endpoint: now, at peak, and the time-weighted mean."""

    def __init__(self, endpoints: Sequence[str]) -> None:
        self._lock = threading.Lock()
        self.now = dict.fromkeys(endpoints, 0)
        self.peak = dict.fromkeys(endpoints, 0)
        self._area = dict.fromkeys(endpoints, 0.0)
        self._since = self._last = time.perf_counter()

    def change(self, endpoint: str, delta: int) -> None:
        with self._lock:
            self._tick()
            self.now[endpoint] += delta
            self.peak[endpoint] = max(self.peak[endpoint], self.now[endpoint])

    def mean(self) -> dict[str, float]:
        with self._lock:
            self._tick()
            span = max(self._last - self._since, 1e-9)
            return {e: area / span for e, area in self._area.items()}

    def _tick(self) -> None:
        now = time.perf_counter()
        for endpoint, count in self.now.items():
            self._area[endpoint] += count * (now - self._last)
        self._last = now


class OpenAIChatClient:
    def __init__(self, settings: HttpSettings) -> None:
        if not settings.endpoints:
            raise ValueError("the HTTP backend needs at least one endpoint URL")
        if settings.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.settings = settings
        self.endpoints = tuple(e.rstrip("/") for e in settings.endpoints)
        slots = settings.max_in_flight * len(self.endpoints)
        limits = httpx.Limits(max_connections=slots + 8, max_keepalive_connections=slots)
        self._client = httpx.Client(timeout=settings.timeout_s, limits=limits)
        self._lock = threading.Lock()
        self.seed_rejected = ""  # why the servers took no per-request seed, once one said so
        self.in_flight = InFlight(self.endpoints)

    def chat(
        self, conversations: Sequence[list[dict]], sampling: dict[str, Any], seed: int | None = None
    ) -> list[dict]:
        """One response dict per conversation, in order: text, token counts, finish reason, and
        `seed_rejected` (the reason) where `seed` was asked for but not sent. Raises
        `EndpointsUnavailableError` if any request failed."""
        results: dict[int, dict | RequestFailure] = dict(
            self.stream(list(enumerate(conversations)), sampling, seed)
        )
        failed = [r for r in results.values() if isinstance(r, RequestFailure)]
        if failed:
            raise EndpointsUnavailableError(
                f"{len(failed)} of {len(results)} requests failed: {failed[0].reason}"
            )
        return [results[i] for i in range(len(conversations))]  # type: ignore[misc]

    def stream(
        self,
        requests: Iterable[tuple[Hashable, list[dict]]],
        sampling: dict[str, Any],
        seed: int | None = None,
    ) -> Iterator[tuple[Hashable, dict | RequestFailure]]:
        """(key, answer or RequestFailure) per (key, messages), in the order they finish.

        `requests` is read lazily, on a thread of its own, at most two windows of requests
        ahead of what the caller has taken, so a long stream (or a slow caller) never piles up."""
        yield from _Stream(self, requests, sampling, seed)

    def close(self) -> None:
        self._client.close()

    def send(self, endpoint: str, job: _Job, sampling: dict[str, Any], seed: int | None) -> dict:
        """One attempt of one request on one endpoint (the seed dropped once a server refuses
        it); raises on failure."""
        body = {"model": self.settings.model, "messages": job.messages, **sampling}
        while True:
            seeded = seed is not None and not self.seed_rejected
            request = {**body, "seed": seed} if seeded else body
            self.in_flight.change(endpoint, +1)
            try:
                response = self._client.post(f"{endpoint}/v1/chat/completions", json=request)
            finally:
                self.in_flight.change(endpoint, -1)
            if seeded and _rejects_seed(response):
                with self._lock:
                    self.seed_rejected = self.seed_rejected or (
                        f"server rejects per-request seeds (HTTP {response.status_code}: "
                        f"{response.text[:160]})"
                    )
                log.warning("%s: sending requests without a seed", self.seed_rejected)
                continue  # the same attempt again, without the seed
            if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                raise _Refused(f"HTTP {response.status_code}: {response.text[:300]}")
            if response.status_code in (502, 503, 504):
                raise _Unreachable(f"HTTP {response.status_code}: {response.text[:160]}")
            response.raise_for_status()
            result = _parse(response.json())
            if seed is not None and not seeded:
                result["seed_rejected"] = self.seed_rejected
            return result

    def backoff(self, attempt: int) -> float:
        """Seconds before attempt `attempt + 1`: exponential, jittered, capped."""
        delay = self.settings.backoff_s * 2 ** min(attempt, 16) * (0.5 + random.random())
        return min(delay, MAX_BACKOFF_S)


class _Stream:
    """One stream of requests: a feeder thread, `max_in_flight` workers per endpoint, and the
    caller's thread taking answers off a queue as they come."""

    def __init__(
        self,
        client: OpenAIChatClient,
        requests: Iterable[tuple[Hashable, list[dict]]],
        sampling: dict[str, Any],
        seed: int | None,
    ) -> None:
        self.client, self.sampling, self.seed = client, sampling, seed
        per_endpoint = client.settings.max_in_flight
        if isinstance(requests, Sequence):  # no idle threads for a short list
            per_endpoint = max(1, min(per_endpoint, -(-len(requests) // len(client.endpoints))))
        self.todo: queue.Queue[_Job | None] = queue.Queue()
        self.answers: queue.Queue = queue.Queue()
        self.window = threading.Semaphore(2 * per_endpoint * len(client.endpoints))
        self.stop = threading.Event()
        self.breakers = {e: _Breaker(client.backoff) for e in client.endpoints}
        self.workers = [
            threading.Thread(target=self._work, args=(endpoint,), daemon=True)
            for endpoint in client.endpoints
            for _ in range(per_endpoint)
        ]
        self.feeder = threading.Thread(target=self._feed, args=(requests,), daemon=True)

    def __iter__(self) -> Iterator[tuple[Hashable, dict | RequestFailure]]:
        for thread in [*self.workers, self.feeder]:
            thread.start()
        handed, expected = 0, None
        try:
            while expected is None or handed < expected:
                kind, payload = self.answers.get()
                if kind == "fed":
                    expected = payload
                elif kind == "feed_error":
                    raise payload
                else:
                    handed += 1
                    self.window.release()
                    yield payload
        finally:
            self.stop.set()
            for _ in self.workers:
                self.todo.put(None)

    def _feed(self, requests: Iterable[tuple[Hashable, list[dict]]]) -> None:
        count = 0
        try:
            for key, messages in requests:
                while not self.window.acquire(timeout=0.5):
                    if self.stop.is_set():
                        return
                if self.stop.is_set():
                    return
                self.todo.put(_Job(key, messages))
                count += 1
        except BaseException as exc:  # the caller's iterator failed: the caller sees it
            self.answers.put(("feed_error", exc))
            return
        self.answers.put(("fed", count))

    def _work(self, endpoint: str) -> None:
        breaker = self.breakers[endpoint]
        while breaker.admit(self.stop):
            job = self.todo.get()
            if job is None or self.stop.is_set():
                breaker.released()
                return
            try:
                result = self.client.send(endpoint, job, self.sampling, self.seed)
            except _Refused as exc:
                breaker.released()
                job.errors.append(f"{endpoint}: {exc}")
                self._give_up(job)
                continue
            except (_Unreachable, *_ENDPOINT_DOWN) as exc:
                breaker.failed()
                self._retry(job, f"{endpoint}: {type(exc).__name__}: {exc}")
                continue
            except (httpx.HTTPError, KeyError, ValueError, TypeError, IndexError) as exc:
                breaker.released()
                self._retry(job, f"{endpoint}: {type(exc).__name__}: {exc}")
                continue
            breaker.succeeded()
            self.answers.put(("answer", (job.key, result)))

    def _retry(self, job: _Job, error: str) -> None:
        job.errors.append(error)
        job.attempt += 1
        if job.attempt > self.client.settings.max_retries:
            self._give_up(job)
            return
        delay = self.client.backoff(job.attempt - 1)
        log.warning("rewrite request failed (%s); retrying in %.1fs", error, delay)
        timer = threading.Timer(delay, self.todo.put, args=(job,))
        timer.daemon = True
        timer.start()

    def _give_up(self, job: _Job) -> None:
        attempts = len(job.errors)
        reason = f"{attempts} attempt(s) failed: " + "; ".join(job.errors[-3:])
        log.error("rewrite request %r failed for good: %s", job.key, reason)
        self.answers.put(("answer", (job.key, RequestFailure(reason, attempts))))


# transport errors that say the endpoint is down or restarting (not that a request was slow)
_ENDPOINT_DOWN = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
)


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
