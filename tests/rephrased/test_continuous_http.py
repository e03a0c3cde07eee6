"""Continuous in-flight HTTP rewriting against real HTTP servers on loopback that answer like
`vllm serve`, delay each answer by a set amount, and record how many requests they hold at once.

What is checked: `max_in_flight` requests stay outstanding per endpoint (never more), a slow
request does not stop the others from being refilled, endpoints share the work, and a failed
request is retried or quarantined with its reason while the rest of the stream goes on.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Iterator

import pytest

from assets.documents import Drop
from assets.rephrased.quality import QualityPolicy
from assets.rephrased.rewrite import REQUEST_FAILED, ChunkLimits, rewrite_documents
from assets.rephrased.styles import get_style
from resources.openai_client import (
    EndpointsUnavailableError,
    HttpSettings,
    OpenAIChatClient,
    RequestFailure,
)
from resources.rewriter import VLLMRewriter
from tests.chat_stub import ChatStub, completion, refusal

SAMPLING = {"temperature": 0.0, "max_tokens": 16}
_DELAY = re.compile(r"delay=([0-9.]+)")


class DelayServer(ChatStub):
    """Chat completions that echo the user message after `delay=<s>` seconds. A message with
    `refuse` gets a 400; one with `flaky` gets a 503 on its first attempt."""

    def __init__(self, base_delay: float = 0.0) -> None:
        self.base_delay = base_delay
        self.lock = threading.Lock()
        self.active = self.peak = self.served = 0
        self.finished: list[tuple[float, str]] = []  # (time, message) of each answer
        self.attempts: dict[str, int] = {}
        super().__init__(self._reply)

    def _reply(self, body: dict) -> tuple[int, dict]:
        content = body["messages"][-1]["content"]
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.attempts[content] = self.attempts.get(content, 0) + 1
            first = self.attempts[content] == 1
        try:
            match = _DELAY.search(content)
            time.sleep(self.base_delay + (float(match.group(1)) if match else 0.0))
            if "refuse" in content:
                return refusal(400, "prompt is too long")
            if "flaky" in content and first:
                return refusal(503, "overloaded")
            with self.lock:
                self.served += 1
                self.finished.append((time.monotonic(), content))
            return completion(content)
        finally:
            with self.lock:
                self.active -= 1


@pytest.fixture
def servers() -> Iterator[list[DelayServer]]:
    made: list[DelayServer] = []
    yield made
    for server in made:
        server.close()


def _client(urls: list[str], **kw) -> OpenAIChatClient:
    settings = {"max_in_flight": 64, "backoff_s": 0.02, "timeout_s": 30.0, **kw}
    return OpenAIChatClient(HttpSettings(endpoints=tuple(urls), model="m", **settings))


def _requests(delays: list[float], prefix: str = "r") -> list[tuple[str, list[dict]]]:
    return [
        (f"{prefix}{i}", [{"role": "user", "content": f"{prefix}{i} delay={d:.3f}"}])
        for i, d in enumerate(delays)
    ]


def test_max_in_flight_stay_outstanding_and_a_slow_request_holds_one_slot(servers) -> None:
    server = DelayServer()
    servers.append(server)
    rng = random.Random(7)
    delays = [6.0] + [rng.uniform(0.2, 0.6) for _ in range(399)]  # the first is very slow
    client = _client([server.url])
    answers = dict(client.stream(_requests(delays), SAMPLING))
    assert set(answers) == {f"r{i}" for i in range(400)}
    assert all(answers[k]["text"].startswith(f"{k} ") for k in answers), "answers keyed right"
    assert server.peak == 64, f"the server saw {server.peak} requests at once, not 64"
    assert client.in_flight.peak[server.url] == 64
    slow_done = next(t for t, m in server.finished if m.startswith("r0 "))
    during = sum(1 for t, m in server.finished if t < slow_done and not m.startswith("r0 "))
    # 63 slots refilled at ~0.4 s a request: all 399 in ~2.5 s, where a batch would give 63
    assert during >= 300, f"only {during} other requests finished while the slow one ran"


def test_a_batch_waits_for_its_slowest_request_where_the_stream_does_not(servers) -> None:
    """The comparison the stream replaces: the same requests as batches of 64."""
    server = DelayServer()
    servers.append(server)
    delays = [1.0 if i % 64 == 0 else 0.05 for i in range(256)]
    client = _client([server.url])
    started = time.perf_counter()
    for i in range(0, 256, 64):
        client.chat([c for _, c in _requests(delays[i : i + 64], f"b{i}-")], SAMPLING)
    batched = time.perf_counter() - started
    started = time.perf_counter()
    assert len(dict(client.stream(_requests(delays, "s"), SAMPLING))) == 256
    streamed = time.perf_counter() - started
    assert batched >= 4.0 and streamed < 0.6 * batched, (batched, streamed)


def test_endpoints_share_the_work_each_with_its_own_window(servers) -> None:
    fast, slow = DelayServer(base_delay=0.3), DelayServer(base_delay=1.0)
    servers += [fast, slow]
    client = _client([fast.url, slow.url])
    answers = dict(client.stream(_requests([0.0] * 600), SAMPLING))
    assert len(answers) == 600
    assert fast.peak == 64 and slow.peak == 64
    # a faster replica frees its slots sooner and so takes more (round robin would split evenly)
    assert fast.served > 1.3 * slow.served > 0, (fast.served, slow.served)


def test_failures_are_retried_elsewhere_or_quarantined_and_the_stream_goes_on(servers) -> None:
    live = DelayServer()
    servers.append(live)
    dead = "http://127.0.0.1:9"  # nothing listens on the discard port
    client = _client([dead, live.url], max_in_flight=8, max_retries=4)
    requests = _requests([0.01] * 40)
    requests += [("bad", [{"role": "user", "content": "refuse this"}])]
    requests += [("flaky", [{"role": "user", "content": "flaky one"}])]
    answers = dict(client.stream(requests, SAMPLING))
    assert len(answers) == 42
    bad = answers["bad"]
    assert isinstance(bad, RequestFailure) and "HTTP 400" in bad.reason and bad.attempts == 1
    assert "prompt is too long" in bad.reason
    assert answers["flaky"]["text"] == "flaky one", "a 503 is retried"
    assert not any(isinstance(answers[f"r{i}"], RequestFailure) for i in range(40))
    assert client.in_flight.peak[dead] <= 8 and live.peak <= 8
    with pytest.raises(EndpointsUnavailableError, match="1 of 2 requests failed"):
        client.chat(
            [[{"role": "user", "content": "refuse"}], [{"role": "user", "content": "x"}]], SAMPLING
        )


def test_a_request_that_fails_every_attempt_names_each_error(servers) -> None:
    client = _client(["http://127.0.0.1:9"], max_in_flight=4, max_retries=2, backoff_s=0.005)
    answers = dict(client.stream(_requests([0.0] * 3), SAMPLING))
    assert all(isinstance(a, RequestFailure) and a.attempts == 3 for a in answers.values())
    assert all("ConnectError" in a.reason for a in answers.values())


class _EchoRewriter(VLLMRewriter):
    """The HTTP backend with a whitespace tokenizer, so no model files are needed."""

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def truncate(self, text: str, max_tokens: int) -> str:
        return " ".join(text.split(" ")[:max_tokens])


SOURCE = (
    "Debian is a free operating system developed by volunteers. The apt tool installs packages "
    "from the Debian archive, resolves their dependencies and keeps the system up to date with "
    "security fixes published by the security team."
)


def test_documents_stream_through_and_a_failed_one_is_quarantined(servers, monkeypatch) -> None:
    server = DelayServer(base_delay=0.1)
    servers.append(server)
    style = get_style("wrap_wikipedia")
    monkeypatch.setattr(
        type(style), "messages", lambda self, text: [{"role": "user", "content": text}]
    )
    docs = [{"doc_id": f"d{i:03d}", "text": SOURCE, "language": "en"} for i in range(100)]
    docs[5] = {**docs[5], "text": SOURCE + " refuse"}
    rewriter = _EchoRewriter(
        backend="http", endpoints=[server.url], served_model_name="m", max_retries=1
    )
    items = list(
        rewrite_documents(
            ((style, d) for d in docs),
            rewriter,
            lambda text: ("en", 1.0),
            QualityPolicy(),
            ChunkLimits(),
            batch_size=8,
        )
    )
    assert len(items) == 100
    quarantined = [i for i in items if isinstance(i, Drop)]
    assert [q.rule for q in quarantined] == [REQUEST_FAILED]
    assert "source=d005" in quarantined[0].detail and "HTTP 400" in quarantined[0].detail
    rows = [i for i in items if not isinstance(i, Drop)]
    assert {r["source_doc_id"] for r in rows} == {d["doc_id"] for d in docs} - {"d005"}
    assert all(r["text"] == SOURCE for r in rows)
    assert rewriter.http_stats()["in_flight_peak"] == {server.url: 64}
