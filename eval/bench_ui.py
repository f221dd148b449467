"""How quick the chat page feels in a real browser: page ready after the server starts, Enter to rendered answer.

    python eval/bench_ui.py [--index-dir index] [--runs 3] [--questions 8]
                            [--code DIR --label before] [--out FILE.md]

Each run starts the page as `make run` does (`assistant ui`) on a free 127.0.0.1 port against an existing index
and drives Debian's Chromium with Playwright (launched before the server, so its own start-up is not counted):

- page ready: from starting the server process to the page showing the chat box *and* the corpus facts in
  the sidebar (which the page can only show once the index and the models are loaded: it can answer then);
- Enter -> answer: from pressing Enter in the chat box to the answer's feedback thumbs (the last thing an
  answer renders) being on the page, for each question; the first question of a run is reported apart.

Bytecode: as in eval/bench_cold.py, the server runs with a bytecode cache in a private folder, filled by one
untimed start per checkout (a sandbox with PYTHONDONTWRITEBYTECODE=1 otherwise compiles the project's modules
at every start, which a user's install does once); `--bytecode as-is` keeps the environment as it is.

Questions come from the gold file's question texts (only the text is used). `--code DIR` also times another
checkout of the project (e.g. before a change); runs alternate between the checkouts so that the machine's
load (shared, 2 cores) hits both alike. Medians over all runs; the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYCACHE = Path(tempfile.gettempdir()) / "assistant-bench-pycache"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


# Timestamps taken in the page itself (performance.now()): when Enter goes down in the chat box, and when the
# n-th answer's feedback thumbs (the last thing an answer renders) are laid out with a size. Polling from
# Playwright instead (locator.wait_for) backs off to every 500 ms and by itself adds up to half a second.
RECORDER = """() => {
  const bench = (window.__bench = {enter: [], shown: {}});
  document.addEventListener("keydown", (e) => { if (e.key === "Enter") bench.enter.push(performance.now()); }, true);
  new MutationObserver(() => {
    const thumbs = document.querySelectorAll('[data-testid="stFeedback"]');
    for (let n = 1; n <= thumbs.length; n++) {
      if (bench.shown[n] === undefined && thumbs[n - 1].getBoundingClientRect().height > 0) {
        bench.shown[n] = performance.now();
      }
    }
  }).observe(document.body, {childList: true, subtree: true, attributes: true});
}"""
# Ready: the chat box is there and the sidebar shows the corpus facts, which need the loaded index and models.
READY = """() => !!document.querySelector('textarea[placeholder="Ask about the documents…"]')
  && [...document.querySelectorAll('[data-testid="stSidebar"] p')].some((p) => p.textContent.includes("Corpus:"))"""


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far: steadier than wall time on a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_run(
    browser: Any, code: Path, index_dir: Path, questions: list[str], bytecode: str = "cached"
) -> dict[str, Any]:
    port = free_port()
    env = {**os.environ, "ASSISTANT_INDEX_DIR": str(index_dir.resolve()), "PYTHONPATH": str(code)}
    if bytecode == "cached":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE / code.resolve().as_posix().strip("/").replace("/", "_"))
    # The page as `make run` serves it: `assistant ui` (which becomes the Streamlit server, same process).
    command = [sys.executable, "-m", "assistant.cli", "ui", "--port", str(port), "--host", "127.0.0.1"]
    page = browser.new_page()
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=code)
        try:
            while True:
                if server.poll() is not None:
                    log.seek(0)
                    raise SystemExit(f"streamlit exited ({server.returncode}):\n{log.read().decode()[-2000:]}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1):
                        break
                except OSError:
                    time.sleep(0.05)
            healthy = time.perf_counter() - started
            page.goto(f"http://127.0.0.1:{port}/")
            page.evaluate(RECORDER)
            page.wait_for_function(READY, polling="raf", timeout=120_000)
            ready = time.perf_counter() - started
            ready_cpu = cpu_seconds(server.pid)
            box = page.get_by_placeholder("Ask about the documents…")
            latencies, polled, own, cpu = [], [], [], []
            for i, question in enumerate(questions, start=1):
                box.fill(question)
                t, used = time.perf_counter(), cpu_seconds(server.pid)
                box.press("Enter")
                page.wait_for_function("n => window.__bench.shown[n] !== undefined", arg=i, polling="raf")
                polled.append((time.perf_counter() - t) * 1000)
                cpu.append((cpu_seconds(server.pid) - used) * 1000)
                latencies.append(page.evaluate("n => window.__bench.shown[n] - window.__bench.enter[n - 1]", i))
                # The page's own caption: "... answer from N passages in M ms." (the assistant's work alone)
                caption = page.get_by_text(re.compile(r"answer from \d+ passages in \d+ ms")).nth(i - 1).inner_text()
                own.append(float(re.findall(r"in (\d+) ms", caption)[0]))
        finally:
            page.close()
            server.terminate()
            server.wait(timeout=15)
    return {
        "healthy_s": healthy, "ready_s": ready, "ready_cpu_s": ready_cpu,
        "latencies_ms": latencies, "polled_ms": polled, "own_ms": own, "cpu_ms": cpu,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index-dir", type=Path, default=ROOT / "index")
    parser.add_argument("--gold", type=Path, default=ROOT / "eval" / "gold" / "dev.jsonl")
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3, help="server starts per checkout")
    parser.add_argument("--code", type=Path, help="another checkout to time as well (e.g. before the change)")
    parser.add_argument("--label", default="before", help="row label for --code")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    parser.add_argument("--bytecode", choices=("cached", "as-is"), default="cached", help="see the module docstring")
    args = parser.parse_args()
    texts = [json.loads(line)["question"] for line in args.gold.read_text().splitlines() if line.strip()]
    questions = texts[:: max(1, len(texts) // args.questions)][: args.questions]
    configs = ([(args.label, args.code.resolve())] if args.code else []) + [("this checkout", ROOT)]
    results: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in configs}
    load_before = os.getloadavg()[0]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            if args.bytecode == "cached":  # one untimed start each: compiles into the private bytecode cache
                for _, code in configs:
                    one_run(browser, code, args.index_dir, questions[:1])
            for run in range(args.runs):
                for label, code in configs:
                    r = one_run(browser, code, args.index_dir, questions, args.bytecode)
                    results[label].append(r)
                    print(f"run {run + 1} {label}: ready {r['ready_s']:.2f} s ({r['ready_cpu_s']:.2f} s CPU), "
                          f"Enter->answer {[round(x) for x in r['latencies_ms']]} ms", file=sys.stderr)  # fmt: skip
        finally:
            browser.close()
    lines = [
        f"Chat page in Chromium, {args.runs} server starts x {len(questions)} questions per checkout "
        f"(1-minute load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores); "
        f"bytecode: {args.bytecode}",
        "",
        "| checkout | server up (s) | page ready p50 (s) | ready min-max (s) | server CPU until ready (s) "
        "| first Enter -> answer (ms) | Enter -> answer p50 (ms) | max (ms) | answer's own time p50 (ms) "
        "| server CPU per answer p50 (ms) "
        "| seen by Playwright polling p50 (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, _ in configs:
        rs = results[label]
        rest = [x for r in rs for x in r["latencies_ms"][1:]] or [r["latencies_ms"][0] for r in rs]
        lines.append(
            f"| {label} | {statistics.median(r['healthy_s'] for r in rs):.2f} "
            f"| {statistics.median(r['ready_s'] for r in rs):.2f} "
            f"| {min(r['ready_s'] for r in rs):.2f}-{max(r['ready_s'] for r in rs):.2f} "
            f"| {statistics.median(r['ready_cpu_s'] for r in rs):.2f} "
            f"| {statistics.median(r['latencies_ms'][0] for r in rs):.0f} "
            f"| {statistics.median(rest):.0f} | {max(rest):.0f} "
            f"| {statistics.median(x for r in rs for x in r['own_ms']):.0f} "
            f"| {statistics.median(x for r in rs for x in r['cpu_ms'][1:] or r['cpu_ms']):.0f} "
            f"| {statistics.median(x for r in rs for x in r['polled_ms'][1:] or r['polled_ms']):.0f} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
