"""Warm answer latency of `Assistant.answer` on the gold questions, this checkout against another, in alternation.

    python eval/bench_warm.py --index-dir DIR [--code DIR --label before] [--rounds 5] [--gold FILE]

Each round starts one fresh process per checkout (in turn, so the shared machine's load hits both alike): it
loads the index, answers every gold question once untimed (caches, first-call set-up), then once timed, and
reports per-question milliseconds with the retrieval / answering split `Answer.timings_ms` gives, and the
process's CPU time per question (steadier than wall time when the machine is shared; it includes the ONNX
runtime's threads). Reported: the
median and 95th percentile over all rounds, and each round's median (the spread shows the machine's noise).
Only question texts are used. A history variant (`--history`) asks each question with the previous one as the
conversation (the follow-up check's parse runs too).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = """
import json, sys, time
from pathlib import Path
from assistant import Assistant, Settings
texts = json.loads(sys.stdin.read())
history = sys.argv[2] == "history"
a = Assistant.load(settings=Settings.from_env(index_dir=Path(sys.argv[1])))
def run():
    rows, previous = [], None
    for text in texts:
        t, c = time.perf_counter(), time.process_time()
        r = a.answer(text, history=[{"question": previous}] if history and previous else None)
        rows.append([(time.perf_counter() - t) * 1000, r.timings_ms["retrieve"], r.timings_ms["answer"],
                     (time.process_time() - c) * 1000])
        previous = text
    return rows
run()
print(json.dumps(run()))
"""


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--gold", type=Path, default=ROOT / "eval" / "gold" / "dev.jsonl")
    parser.add_argument("--code", type=Path, help="another checkout to time in alternation")
    parser.add_argument("--label", default="before")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--history", action="store_true", help="ask each question after the previous one")
    args = parser.parse_args()
    texts = [json.loads(line)["question"] for line in args.gold.read_text().splitlines() if line.strip()]
    configs = ([(args.label, args.code.resolve())] if args.code else []) + [("this checkout", ROOT)]
    results: dict[str, list[list[list[float]]]] = {label: [] for label, _ in configs}
    load_before = os.getloadavg()[0]
    for _ in range(args.rounds):
        for label, code in configs:
            env = {**os.environ, "PYTHONPATH": str(code)}
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(args.index_dir), "history" if args.history else "alone"],
                input=json.dumps(texts), capture_output=True, text=True, env=env, cwd=code, check=True,
            )  # fmt: skip
            results[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
    lines = [
        f"Warm `Assistant.answer`, {len(texts)} gold questions x {args.rounds} rounds per checkout"
        f"{' (each with the previous question as history)' if args.history else ''} (1-minute load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores)",
        "",
        "| checkout | total p50 (ms) | total p95 (ms) | retrieve p50 (ms) | answer p50 (ms) | CPU p50 (ms) "
        "| round medians (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, _ in configs:
        rows = [row for rnd in results[label] for row in rnd]
        totals = [r[0] for r in rows]
        medians = ", ".join(f"{statistics.median(r[0] for r in rnd):.1f}" for rnd in results[label])
        lines.append(
            f"| {label} | {statistics.median(totals):.1f} | {percentile(totals, 95):.1f} "
            f"| {statistics.median(r[1] for r in rows):.1f} | {statistics.median(r[2] for r in rows):.1f} "
            f"| {statistics.median(r[3] for r in rows):.1f} | {medians} |"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
