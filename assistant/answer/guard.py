"""Bounds on what an LLM server can do to us: one deadline per request, a cap on reply bytes.

httpx's timeouts are per operation: a server that sends one byte a second never trips a read timeout, and
nothing stops a 10 MB reply. `GuardedTransport` wraps httpx's own transport: each request gets one deadline
(connect, send and the whole streamed body), and the body is cut off past `max_bytes`. It is the HTTP
client of every chat model we build (`llm.make_chat_model`). The generated text is bounded again where it
is read (`llm.LLMBackend.generate`: bytes and tokens of content, whatever the chat model), and the deadline is
kept there too by `within_deadline`, which reads the chat model's stream in a thread: a per-read timeout alone
lets a server that goes silent just before the deadline hold the request for one more whole timeout.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
_END = object()


class ReplyTooLarge(httpx.ReadError):
    """The server sent more than the reply cap."""


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport with one deadline per request and a byte cap on each response body."""

    def __init__(self, *, timeout: float, max_bytes: int, inner: httpx.BaseTransport | None = None) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        deadline = time.monotonic() + self.timeout
        # Every phase waits at most until the deadline; the body is checked again as bytes arrive.
        limits = dict(request.extensions.get("timeout") or {})
        for phase in ("connect", "read", "write", "pool"):
            current = limits.get(phase)
            limits[phase] = self.timeout if current is None else min(float(current), self.timeout)
        request.extensions["timeout"] = limits
        response = self.inner.handle_request(request)
        stream = _GuardedStream(response.stream, deadline, self.max_bytes, request)  # type: ignore[arg-type]
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=stream,
            extensions=response.extensions,
            request=request,
        )

    def close(self) -> None:
        self.inner.close()


class _GuardedStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, deadline: float, max_bytes: int, request: httpx.Request) -> None:
        self.inner = inner
        self.deadline = deadline
        self.max_bytes = max_bytes
        self.request = request

    def __iter__(self) -> Iterator[bytes]:
        received = 0
        for chunk in self.inner:
            received += len(chunk)
            if time.monotonic() > self.deadline:
                raise httpx.ReadTimeout("the language model did not finish within the time limit", request=self.request)
            if received > self.max_bytes:
                raise ReplyTooLarge(f"reply larger than {self.max_bytes} bytes", request=self.request)
            yield chunk

    def close(self) -> None:
        self.inner.close()


def guarded_client(*, timeout: float, max_bytes: int) -> httpx.Client:
    return httpx.Client(transport=GuardedTransport(timeout=timeout, max_bytes=max_bytes), timeout=timeout)


def client_kwargs(*, timeout: float, max_bytes: int) -> dict[str, Any]:
    """httpx.Client keyword arguments for clients built by others (the Ollama client)."""
    return {"transport": GuardedTransport(timeout=timeout, max_bytes=max_bytes), "timeout": timeout}


def within_deadline(open_stream: Callable[[], Iterable[T]], deadline: float, *, what: str) -> Generator[T, None, None]:
    """The items of `open_stream()`, raising TimeoutError once `time.monotonic()` passes `deadline`.

    The stream is opened and read in a daemon thread, so however it blocks (a read timeout that restarts with
    every byte, a client library with its own retries), the caller waits no longer than the deadline. A
    reader left blocked stops at its next item or read timeout and closes the stream itself.
    """
    items: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=256)
    stop = threading.Event()

    def offer(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                items.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            stream = open_stream()
            try:
                for item in stream:
                    if not offer("item", item):
                        return
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:  # handed to the caller, who decides (the LLM path falls back)
            offer("error", exc)
            return
        offer("end", _END)

    threading.Thread(target=pump, name="llm-stream", daemon=True).start()
    try:
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise queue.Empty
                kind, value = items.get(timeout=remaining)
            except queue.Empty:
                raise TimeoutError(what) from None
            if kind == "error":
                raise value
            if kind == "end":
                return
            yield value
    finally:
        stop.set()
