"""How quick the chat page feels in a real browser: start-up, first page, question to rendered answer.

    python eval/bench_ui.py [--index-dir index] [--questions 8]

Starts `streamlit run ui/app.py` on a free 127.0.0.1 port against an existing index and drives Debian's
Chromium with Playwright. Questions come from the gold file's question texts (only the text is used).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index-dir", type=Path, default=ROOT / "index")
    parser.add_argument("--gold", type=Path, default=ROOT / "eval" / "gold" / "dev.jsonl")
    parser.add_argument("--questions", type=int, default=8)
    args = parser.parse_args()
    questions = [json.loads(line)["question"] for line in args.gold.read_text().splitlines() if line.strip()]
    questions = questions[:: max(1, len(questions) // args.questions)][: args.questions]

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "ASSISTANT_INDEX_DIR": str(args.index_dir.resolve())}
    command = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "ui" / "app.py"), "--server.port", str(port),
        "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    started = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1):
                        break
                except OSError:
                    time.sleep(0.1)
            healthy = time.perf_counter() - started
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=flags)
                page = browser.new_page()
                t = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}/")
                box = page.get_by_placeholder("Ask about the documents…")
                box.wait_for(timeout=120_000)
                first_page = time.perf_counter() - t
                latencies = []
                for i, question in enumerate(questions, start=1):
                    t = time.perf_counter()
                    box.fill(question)
                    box.press("Enter")
                    # Answered when its feedback thumbs (the last thing an answer renders) are on the page.
                    page.locator('[data-testid="stFeedback"]').nth(i - 1).wait_for(timeout=60_000)
                    latencies.append((time.perf_counter() - t) * 1000)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=15)
    print(f"server up (health endpoint): {healthy:.1f} s")
    print(f"first page with the chat box (index + model load): {first_page:.1f} s")
    print(f"question -> rendered answer over {len(latencies)} questions: median {statistics.median(latencies):.0f} ms, "
          f"max {max(latencies):.0f} ms (the first includes warm-up: {latencies[0]:.0f} ms)")  # fmt: skip


if __name__ == "__main__":
    main()
