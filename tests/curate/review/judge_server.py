"""A real OpenAI-compatible chat server for judge tests: it answers `/v1/chat/completions` over HTTP on localhost.

What it replies is a function of the request (`reply(question, n)` -> text), and it can misbehave the way
real endpoints do: answer slowly, answer with an HTTP error, send a body that is not JSON. It counts the
requests it got, so tests can check that retries are bounded.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    """How the server answers: `reply(question, request_number)` -> the assistant's text; or misbehave."""

    reply: Callable[[str, int], str] = lambda question, n: "7"
    delay: float = 0.0  # seconds before answering
    status: int = 200
    raw_body: bytes | None = None  # sent as is instead of a chat completion
    requests: list[dict] = field(default_factory=list)


def answer_in(question: str, label: str = "Answer") -> str:
    """The text the rubric put under `label:` (`Answer`, `Answer A`, `Answer B`)."""
    match = re.search(rf"^{label}:\n(.*?)(?:\n\n(?:Answer [AB]:|Reply with)|\Z)", question, re.S | re.M)
    return match.group(1) if match else ""


@contextmanager
def chat_server(behaviour: Behaviour) -> Iterator[str]:
    """Serve `behaviour` on a free localhost port; yields the base URL (…/v1) and stops the server after."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server API)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            behaviour.requests.append(body)
            if behaviour.delay:
                time.sleep(behaviour.delay)
            question = body["messages"][-1]["content"]
            if behaviour.raw_body is not None:
                payload = behaviour.raw_body
            elif behaviour.status != 200:
                payload = json.dumps({"error": {"message": "the model is overloaded", "type": "server_error"}}).encode()
            else:
                text = behaviour.reply(question, len(behaviour.requests))
                payload = json.dumps(
                    {
                        "id": f"chatcmpl-{len(behaviour.requests)}",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                ).encode()
            try:
                self.send_response(behaviour.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (a timeout test)
                pass

        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
