"""A small real HTTP server on loopback that answers chat completions like `vllm serve`.

Tests give it a `reply(body) -> (status, payload)`; it runs a thread per request, as a server
holding many requests at once does. The real `vllm serve` is benchmarks.vllm_serve's.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Reply = Callable[[dict], tuple[int, dict]]


def completion(content: str, prompt_tokens: int = 10, completion_tokens: int = 10):
    """A 200 with one finished choice, as `vllm serve` answers."""
    choice = {"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    return 200, {"choices": [choice], "usage": usage}


def refusal(status: int, message: str) -> tuple[int, dict]:
    return status, {"error": {"message": message}}


class ChatStub:
    def __init__(self, reply: Reply) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the client's pool expects

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, payload = reply(body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 512  # a window of 64 per client, several clients
            daemon_threads = True

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
