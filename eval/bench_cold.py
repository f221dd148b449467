"""Cold start: `assistant ask` from process start to printed answer, run several times; medians in a table.

    python eval/bench_cold.py [--runs 5] [--backends onnx-int8,onnx-fp32,torch] [--index-dir DIR]
                              [--code DIR --code-index-dir DIR --label before] [--out FILE.md]

Each run is a fresh `python -m assistant.cli ask QUESTION` process; reported per configuration: the median
wall time until the process has printed the answer and exited, the median CPU time it used (user + system:
steadier than wall time on a shared machine), the median peak resident memory, and whether torch was
imported. Each backend needs an index built with it (`ASSISTANT_EMBEDDING_BACKEND=... assistant index
--index-dir DIR`); `--code DIR` also times another checkout of the project (for a before/after table) on
its own index.

Bytecode: Python caches compiled modules in __pycache__ on a module's first import, so a user's second
`assistant ask` does not compile the project again. A process started with PYTHONDONTWRITEBYTECODE=1 (as
this repository's sandbox sets it) never writes that cache and compiled the project's ~35 imported modules in
every run (about 0.13 s of CPU). By default (`--bytecode cached`) each configuration runs once untimed with a
bytecode cache in a private folder (PYTHONPYCACHEPREFIX, so the checkout is not written to) and the timed
runs use it, as a user's process would; `--bytecode as-is` keeps the environment as it is (the earlier
figures were taken so).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYCACHE = Path(tempfile.gettempdir()) / "assistant-bench-pycache"
QUESTION = "How many persons were relocated under the voluntary solidarity mechanism?"
# The CLI as `assistant` runs it, plus an exit hook that reports the process's own CPU time and peak memory.
PROBE = """
import atexit, resource, runpy, sys
def report():
    u = resource.getrusage(resource.RUSAGE_SELF)
    hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")]  # not carried over exec
    torch = int("torch" in sys.modules or "sentence_transformers" in sys.modules)
    sys.stderr.write(f"COLD-STATS {u.ru_utime + u.ru_stime} {hwm[0] if hwm else u.ru_maxrss} {torch}\\n")
atexit.register(report)
sys.argv = ["assistant", *sys.argv[1:]]
runpy.run_module("assistant.cli", run_name="__main__")
"""


def run_once(
    code: Path, index_dir: Path | None, backend: str | None, question: str, *, bytecode: str = "cached"
) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(code)}
    if bytecode == "cached":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE / code.resolve().as_posix().strip("/").replace("/", "_"))
    if backend:
        env["ASSISTANT_EMBEDDING_BACKEND"] = backend
    args = [sys.executable, "-c", PROBE, "ask", question]
    if index_dir is not None:
        args += ["--index-dir", str(index_dir)]
    started = time.perf_counter()
    proc = subprocess.Popen(args, env=env, cwd=code, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"`assistant ask` failed ({proc.returncode}):\n{err[-2000:]}")
    if not out.strip():
        raise SystemExit("`assistant ask` printed nothing")
    stats = [line.split() for line in err.splitlines() if line.startswith("COLD-STATS")][-1]
    # torch counts when the process ended with it (or sentence-transformers) loaded: a thwarted attempt
    # (assistant.spacy_load) does not.
    return {"wall_s": wall, "cpu_s": float(stats[1]), "rss_mb": int(stats[2]) / 1024, "torch": float(stats[3])}


def summarise(results: list[dict[str, float]]) -> dict[str, float]:
    walls = [r["wall_s"] for r in results]
    return {
        "wall_p50_s": statistics.median(walls),
        "wall_min_s": min(walls),
        "wall_max_s": max(walls),
        "cpu_p50_s": statistics.median(r["cpu_s"] for r in results),
        "peak_rss_mb": max(r["rss_mb"] for r in results),
        "torch": max(r["torch"] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", default="onnx-int8,torch")
    parser.add_argument("--index-dir", type=Path, help="index for --backends (default: the configured one)")
    parser.add_argument("--backend-index", action="append", default=[], metavar="BACKEND=DIR",
                        help="a separate index for one backend; repeatable")  # fmt: skip
    parser.add_argument("--code", type=Path, help="another checkout to time as well (e.g. before the change)")
    parser.add_argument("--code-index-dir", type=Path, help="the index that checkout reads")
    parser.add_argument("--label", default="before", help="row label for --code")
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    parser.add_argument("--bytecode", choices=("cached", "as-is"), default="cached", help="see the module docstring")
    args = parser.parse_args()
    per_backend = dict(item.split("=", 1) for item in args.backend_index)
    configs: list[tuple[str, Path, Path | None, str | None]] = []
    if args.code:
        configs.append((args.label, args.code, args.code_index_dir, None))
    for backend in [b for b in args.backends.split(",") if b]:
        index_dir = Path(per_backend[backend]) if backend in per_backend else args.index_dir
        configs.append((backend, ROOT, index_dir, backend))
    if args.bytecode == "cached":  # one untimed run each: compiles into the private bytecode cache
        for _, code, index_dir, backend in configs:
            run_once(code, index_dir, backend, args.question)
    load_before = os.getloadavg()[0]
    # Round robin (one run of each configuration in turn), so a change in the machine's load hits all alike.
    results: dict[str, list[dict[str, float]]] = {label: [] for label, *_ in configs}
    for _ in range(args.runs):
        for label, code, index_dir, backend in configs:
            results[label].append(run_once(code, index_dir, backend, args.question, bytecode=args.bytecode))
    rows = [(label, summarise(results[label])) for label, *_ in configs]
    lines = [
        f"`assistant ask` cold start, median of {args.runs} runs (1-minute load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores); bytecode: {args.bytecode}",
        "",
        "| configuration | wall p50 (s) | wall min (s) | wall max (s) | CPU p50 (s) | peak RSS (MB) | torch imported |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, r in rows:
        lines.append(
            f"| {label} | {r['wall_p50_s']:.2f} | {r['wall_min_s']:.2f} | {r['wall_max_s']:.2f} | "
            f"{r['cpu_p50_s']:.2f} | {r['peak_rss_mb']:.0f} | {'yes' if r['torch'] else 'no'} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
