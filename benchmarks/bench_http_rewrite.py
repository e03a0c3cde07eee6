"""Requests per second over HTTP against a real local `vllm serve`: batches that wait for their
slowest request against the continuous in-flight stream, on the same server and prompts.

The server is the CPU build of vLLM with the packaged SmolLM2-135M-Instruct (the project's
`cpu` extra), started without chunked prefill so that it takes per-request seeds. Prompts are
rewrite requests (one style) over real sample pages cut to 40-240 words, sampled with a
per-request seed and `max_tokens` output tokens each. Three clients, one after the other:

- `batch8`: what the rephrased stage did before, one `chat` call per 8 requests;
- `batch64`: batches as wide as the stream's window, each waiting for its slowest request;
- `stream64`: `max_in_flight` 64, each finished request replaced at once.

For each: wall seconds, requests/s, output tokens/s, and the requests in flight as the client
counted them (peak and time-weighted mean). `python -m benchmarks.bench_http_rewrite
[--requests 128] [--max-tokens 32]`; keep it short on a shared CPU machine.

Measured 2026-12-01 on the 2-core build machine while other jobs kept its load average at 6-9
(absolute rates are far below an idle machine's): batch8 0.58 req/s (in flight: peak 8, mean
7.9), batch64 1.41 req/s (64, 63.4), stream64 1.53 req/s (64, 63.4); stream/batch8 2.64,
stream/batch64 1.09. (An earlier run at load ~18: 0.39, 0.89, 0.93 req/s.) With a cap of 32
tokens nearly every answer runs to the cap, so a batch of 64 finishes together and loses
little; the stream's edge over wide batches grows with uneven answer lengths
(tests/rephrased/test_continuous_http.py: one slow request in 64 makes batches
take >= 4 s where the stream takes ~1 s).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time

from assets.rephrased.styles import get_style
from benchmarks.bench_filters import load_texts
from benchmarks.vllm_serve import SERVED_NAME, start_server
from resources.openai_client import HttpSettings, OpenAIChatClient

WINDOW = 64


def parse_args(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench_http_rewrite")
    parser.add_argument("--requests", type=int, default=128)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args(argv)
    return {"requests": args.requests, "max_tokens": args.max_tokens}


def run(requests: int = 128, max_tokens: int = 32) -> dict:
    conversations = _conversations(requests)
    sampling = {"temperature": 0.7, "top_p": 0.9, "max_tokens": max_tokens}
    _say("starting vllm serve")
    server = start_server()
    try:
        url = server.url
        _say("server ready; warming up")
        warm = _client(url, 4)
        warm.chat(conversations[:4], sampling, seed=0)
        modes = {
            "batch8": lambda c: _batches(c, conversations, sampling, 8),
            "batch64": lambda c: _batches(c, conversations, sampling, WINDOW),
            "stream64": lambda c: _stream(c, conversations, sampling),
        }
        figures = {}
        for name, call in modes.items():
            _say(f"{name}: {len(conversations)} requests")
            client = _client(url, WINDOW)
            started = time.perf_counter()
            results = call(client)
            seconds = time.perf_counter() - started
            figures[name] = {
                "wall_s": round(seconds, 2),
                "requests_per_s": round(len(results) / seconds, 2),
                "output_tok_per_s": round(sum(r["completion_tokens"] for r in results) / seconds),
                "in_flight_peak": client.in_flight.peak[url],
                "in_flight_mean": round(client.in_flight.mean()[url], 1),
            }
            client.close()
            _say(f"{name}: {figures[name]}")
    finally:
        server.stop()
    stream, batch8, batch64 = figures["stream64"], figures["batch8"], figures["batch64"]
    return {
        "requests": requests,
        "max_tokens": max_tokens,
        "model": "SmolLM2-135M-Instruct (vllm serve, CPU)",
        **figures,
        "stream_vs_batch8": round(stream["requests_per_s"] / batch8["requests_per_s"], 2),
        "stream_vs_batch64": round(stream["requests_per_s"] / batch64["requests_per_s"], 2),
    }


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _conversations(n: int) -> list[list[dict]]:
    style = get_style("wrap_wikipedia")
    texts = [t for t, language in load_texts() if language == "en"]
    out = []
    for i in range(n):
        words = texts[i % len(texts)].split()
        out.append(style.messages(" ".join(words[: 40 + (i * 37) % 200])))
    return out


def _client(url: str, window: int) -> OpenAIChatClient:
    settings = HttpSettings(
        endpoints=(url,), model=SERVED_NAME, timeout_s=600, max_in_flight=window
    )
    return OpenAIChatClient(settings)


def _batches(client: OpenAIChatClient, conversations, sampling, size: int) -> list[dict]:
    results = []
    for i in range(0, len(conversations), size):
        results += client.chat(conversations[i : i + size], sampling, seed=0)
    return results


def _stream(client: OpenAIChatClient, conversations, sampling) -> list[dict]:
    return [r for _, r in client.stream(list(enumerate(conversations)), sampling, seed=0)]


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server on the way out
    figures = run(**parse_args(sys.argv[1:]))
    print(json.dumps({"benchmark": "http_rewrite", **figures}, sort_keys=True))
