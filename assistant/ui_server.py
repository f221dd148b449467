"""`assistant ui` runs this: Streamlit's own command line, after starting to load the index (assistant.warm).

    python -m assistant.ui_server run ui/app.py [streamlit options]

The page cannot load anything before a browser opens it (Streamlit runs the script per visitor), so the
load starts here, in the server's process, and overlaps the server's start and the browser fetching the page.
"""

from __future__ import annotations

import contextlib
import sys

from assistant import warm
from assistant.config import Settings
from assistant.errors import AssistantError


def main() -> None:
    with contextlib.suppress(AssistantError):  # a configuration problem: the page says what to do when it opens
        warm.start(Settings.from_env().index_dir)
    from streamlit.web import cli

    cli.main(args=sys.argv[1:], prog_name="streamlit")


if __name__ == "__main__":
    main()
