"""A real Milvus Lite server process on 127.0.0.1 (for the Milvus backend's tests and eval/bench_milvus.py).

`milvus-lite server` is the package's console script (milvus_lite.cmdline:main); it is run as
`python -m milvus_lite server` so the interpreter is the one running the tests. `--host 127.0.0.1` always:
its default listens on every interface.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MilvusLiteServer:
    """Start with `start()`, stop with `stop()` (SIGTERM, then SIGKILL); `url` is the ASSISTANT_STORE value."""

    def __init__(self, data_dir: Path, *, ready_timeout: float = 30.0) -> None:
        self.data_dir = data_dir
        self.ready_timeout = ready_timeout
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"{data_dir.name}.log"

    @property
    def url(self) -> str:
        return f"milvus://127.0.0.1:{self.port}"

    def start(self) -> MilvusLiteServer:
        for _ in range(3):  # another process may take the free port between choosing it and binding it
            self.port = free_port()
            with self.log.open("ab") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(self.data_dir),
                     "--host", "127.0.0.1", "--port", str(self.port)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=dict(os.environ),
                )  # fmt: skip
            if self._wait_ready():
                return self
            self.stop()
        raise RuntimeError(f"milvus-lite did not start within {self.ready_timeout} s; see {self.log}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.ready_timeout
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return self._answers(deadline)
            time.sleep(0.1)
        return False

    def _answers(self, deadline: float) -> bool:
        """The port is open; ready once a client request succeeds (a loaded machine can take a while)."""
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException

        while time.monotonic() < deadline:
            with contextlib.suppress(MilvusException):
                client = MilvusClient(f"http://127.0.0.1:{self.port}", timeout=5)
                client.list_collections(timeout=5)
                client.close()
                return True
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # a clean stop: it closes its data directory
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def kill(self) -> None:
        """Die at once, as a crashed server does."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
