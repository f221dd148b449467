"""A real OpenAI-compatible chat server on 127.0.0.1 that replies from a script (for the LLM wire path)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from assistant.answer.llm import NOT_FOUND


class ScriptedLLM(BaseHTTPRequestHandler):
    replies: ClassVar[list[str]] = []
    delay: ClassVar[float] = 0.0
    requests: ClassVar[list[dict[str, Any]]] = []
    # Hostile behaviours: "drip" sends its reply one byte per `drip_seconds`; "garbage" sends `raw` bytes as
    # the body (broken JSON, a broken event stream); "flood" streams `flood_bytes` of text in small events;
    # "stall" sends the start of an event after `drip_seconds`, then nothing (until the test ends, at most 60 s).
    mode: ClassVar[str] = "normal"
    drip_seconds: ClassVar[float] = 0.2
    raw: ClassVar[bytes] = b""
    flood_bytes: ClassVar[int] = 0
    stop: ClassVar[threading.Event] = threading.Event()

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            self._reply()

    def _reply(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        type(self).requests.append(body)
        time.sleep(self.delay)
        reply = type(self).replies.pop(0) if type(self).replies else NOT_FOUND
        if self.mode == "garbage":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream" if body.get("stream") else "application/json")
            self.end_headers()
            self.wfile.write(self.raw)
            return
        if self.mode == "drip":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            event = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                     "choices": [{"index": 0, "delta": {"content": reply}, "finish_reason": None}]}  # fmt: skip
            for byte in f"data: {json.dumps(event)}\n\n".encode():  # bounded: one event, then the client quits
                if self.stop.wait(self.drip_seconds):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            return
        if self.mode == "stall":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.flush()
            if not self.stop.wait(self.drip_seconds):
                self.wfile.write(b"data: {")
                self.wfile.flush()
                self.stop.wait(60)
            return
        if self.mode == "flood":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            sent = 0
            while sent < self.flood_bytes and not self.stop.is_set():  # bounded by flood_bytes
                self._event({"choices": [{"index": 0, "delta": {"content": "word " * 20}, "finish_reason": None}]})
                sent += 100
            return
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for piece in _pieces(reply):
                self._event({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
            self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            self.wfile.write(b"data: [DONE]\n\n")
            return
        payload = {
            "id": "cmpl-1", "object": "chat.completion", "created": 0, "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }  # fmt: skip
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _event(self, delta: dict[str, Any]) -> None:
        event = {"id": "cmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "m", **delta}
        self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        self.wfile.flush()


def _pieces(text: str) -> Iterator[str]:
    for i in range(0, len(text), 7):
        yield text[i : i + 7]


@contextlib.contextmanager
def serve() -> Iterator[str]:
    """Start the server; yield its base URL (…/v1); always shut it down."""
    ScriptedLLM.replies, ScriptedLLM.delay, ScriptedLLM.requests = [], 0.0, []
    ScriptedLLM.mode, ScriptedLLM.raw, ScriptedLLM.flood_bytes = "normal", b"", 0
    ScriptedLLM.stop = threading.Event()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedLLM)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        ScriptedLLM.stop.set()  # hostile handlers still sending stop at once
        httpd.shutdown()
        httpd.server_close()
