"""`assistant ui` runs this: Streamlit's own command line, and the index loading as soon as the server listens.

    python ui/serve.py run ui/app.py --server.address HOST --server.port PORT [other streamlit options]

Streamlit runs the page's script only when a browser opens it, so on its own the index and the models would
load only then. Here a thread waits until the server accepts connections (so as not to slow its start) and
then starts loading them (assistant.warm) while the browser fetches the page; the page's first run takes them.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time


def option(args: list[str], name: str, default: str) -> str:
    """The value of `--name VALUE` or `--name=VALUE` in Streamlit's arguments."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def warm_up_when_listening(host: str, port: int, *, timeout: float = 120.0) -> None:
    address = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((address, port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    from assistant import warm
    from assistant.config import Settings
    from assistant.errors import AssistantError

    with contextlib.suppress(AssistantError):  # a configuration problem: the page says what to do when it opens
        warm.start(Settings.from_env().index_dir)


def main() -> None:
    args = sys.argv[1:]
    host, port = option(args, "--server.address", "127.0.0.1"), int(option(args, "--server.port", "8501"))
    threading.Thread(target=warm_up_when_listening, args=(host, port), name="warm-up", daemon=True).start()
    from streamlit.web import cli

    cli.main(args=args, prog_name="streamlit")


if __name__ == "__main__":
    main()
