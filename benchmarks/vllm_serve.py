"""A local `vllm serve` on loopback with the packaged SmolLM2, for the HTTP backend's benchmark
and tests.

It runs the CPU build without chunked prefill so that it takes per-request seeds (with chunked
prefill its engine dies on them: "CPU Generator does not use offset"). The module entry point is
what `vllm serve` runs; the `vllm` console script wants the GPU distribution's name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx

from resources.models import prepare_smollm2

SERVED_NAME = "smollm2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VllmServer:
    """One server process group; `start` again after `kill` brings it back on the same port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        command = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(prepare_smollm2()), "--served-model-name", SERVED_NAME,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--max-model-len", "1024", "--enforce-eager", "--dtype", "bfloat16",
            "--no-enable-chunked-prefill", "--max-num-batched-tokens", "4096",
        ]  # fmt: skip
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
        self.proc = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError("vllm serve exited while starting")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(2)
        raise TimeoutError("vllm serve did not become healthy")

    def kill(self) -> None:
        """SIGKILL, as a crashed server: what the retry test needs."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s."""
        try:
            self._signal(signal.SIGTERM)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signum)
            self.proc.wait(30)


def start_server() -> VllmServer:
    """A healthy server, or the error and no process left behind."""
    server = VllmServer()
    server.start()
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server
