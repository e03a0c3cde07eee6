"""Seeds that mean what they say: a rewrite records the seed its requests carried, or why none did.

The HTTP cases run against a small real HTTP server on loopback that answers like
`vllm serve` and, in one mode, rejects the `seed` field as some OpenAI-compatible servers do;
the real engine and `vllm serve` are covered in tests/test_rewriter.py and test_rewriter_http.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from assets.documents import Drop
from assets.rephrased.quality import QualityPolicy
from assets.rephrased.rewrite import ChunkLimits, rewrite_batch
from assets.rephrased.styles import get_style
from resources.rewriter import GREEDY, Generation, VLLMRewriter
from tests.chat_stub import ChatStub, completion, refusal

SOURCE = (
    "Debian is a free operating system developed by volunteers. The apt tool installs packages "
    "from the Debian archive, resolves their dependencies and keeps the system up to date with "
    "security fixes published by the security team."
)
ANSWER = (
    "Debian is a free operating system that volunteers develop. Its apt tool installs packages "
    "from the Debian archive, resolves their dependencies and keeps the system up to date with "
    "the security fixes that the security team publishes."
)


class FakeServer(ChatStub):
    """Chat completions on loopback; `reject_seed` answers 400 to any body with a `seed`."""

    def __init__(self, reject_seed: bool) -> None:
        self.bodies: list[dict] = []
        self.reject_seed = reject_seed
        super().__init__(self._reply)

    def _reply(self, body: dict) -> tuple[int, dict]:
        self.bodies.append(body)
        if self.reject_seed and "seed" in body:
            return refusal(400, "Unrecognized request argument: seed")
        return completion(ANSWER, prompt_tokens=40, completion_tokens=35)


@pytest.fixture(params=[False, True], ids=["takes_seed", "rejects_seed"])
def server(request) -> Iterator[FakeServer]:
    srv = FakeServer(reject_seed=request.param)
    yield srv
    srv.close()


def _http(srv: FakeServer, **kw) -> VLLMRewriter:
    return VLLMRewriter(backend="http", endpoints=[srv.url], served_model_name="m", **kw)


def test_http_requests_carry_the_seed_or_record_that_the_server_refused_it(server) -> None:
    rewriter = _http(server, seed=7, temperature=0.7)
    generations = rewriter.chat([[{"role": "user", "content": "a"}]] * 3)
    seeded = [b for b in server.bodies if "seed" in b]
    unseeded = [b for b in server.bodies if "seed" not in b]
    if not server.reject_seed:
        assert len(seeded) == 3 and not unseeded and all(b["seed"] == 7 for b in seeded)
        assert all(g.seed == 7 and g.determinism == "per-request seed 7" for g in generations)
        return
    # refused (once per request in flight), then every request went again without it
    assert 1 <= len(seeded) <= 3 and len(unseeded) == 3
    assert all(g.text == ANSWER and g.seed is None for g in generations)
    reason = "unseeded: server rejects per-request seeds (HTTP 400"
    assert all(g.determinism.startswith(reason) for g in generations), generations
    rewriter.chat([[{"role": "user", "content": "b"}]])
    assert "seed" not in server.bodies[-1], "a refused seed is not sent again"


def test_a_rewrite_row_records_only_a_seed_that_was_sent(server) -> None:
    rewriter = _http(server, seed=3, temperature=0.7)
    rewriter._tokenizer = _WordTokenizer()
    doc = {"doc_id": "d" * 24, "text": SOURCE, "language": "en"}
    (row,) = rewrite_batch(
        [doc], get_style("wrap_wikipedia"), rewriter, _english, QualityPolicy(), ChunkLimits()
    )
    assert not isinstance(row, Drop), row
    assert row["seed"] == (None if server.reject_seed else 3)
    assert json.loads(row["sampling"])["seed"] == row["seed"]
    if not server.reject_seed:
        assert row["determinism"] == "per-request seed 3"
    else:
        assert row["determinism"].startswith("unseeded: server rejects per-request seeds")


def test_greedy_and_switched_off_seeds_record_no_seed(server) -> None:
    greedy = _http(server, temperature=0.0).chat([[{"role": "user", "content": "a"}]])
    assert greedy[0].seed is None and greedy[0].determinism == GREEDY
    assert "seed" not in server.bodies[-1], "greedy decoding sends no seed"
    off = _http(server, per_request_seed=False).chat([[{"role": "user", "content": "a"}]])
    assert off[0].seed is None and off[0].determinism.startswith("unseeded: per_request_seed")
    assert "seed" not in server.bodies[-1]


def test_sampling_record_never_claims_a_seed() -> None:
    assert "seed" not in VLLMRewriter().sampling()


def test_a_document_of_chunks_with_different_seeding_records_no_seed() -> None:
    from assets.rephrased.rewrite import _determinism

    seeded = Generation("a.", 1, 1, "stop", 5, "per-request seed 5")
    unseeded = Generation("b.", 1, 1, "stop", None, "unseeded: server rejects per-request seeds")
    assert _determinism([seeded, seeded]) == (5, "per-request seed 5")
    seed, note = _determinism([seeded, unseeded])
    assert seed is None and "per-request seed 5" in note and "unseeded" in note
    assert _determinism([Generation("c.", 1, 1, "stop")]) == (None, "unrecorded")


class _WordTokenizer:
    """Whitespace 'tokens', so that this test needs no model files."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[str]:
        return text.split()

    def decode(self, ids: list[str]) -> str:
        return " ".join(ids)


def _english(text: str) -> tuple[str, float]:
    return "en", 1.0
