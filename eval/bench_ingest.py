"""Ingestion time and memory against file size: is indexing linear in the size of a file?

Builds a text file of N MB from a fixed paragraph pattern (headings, sentences, a list, figures), then times
`ingest_file` on it (load, markup removal, structure, sentences, chunking, token counting with the real
embedding model's tokenizer) and reports seconds per MB and the peak memory of a child process per size.
Embedding is left out: its cost per chunk is fixed (batches of 64), so it is linear by construction, and
50 MB of text would take hours on a laptop CPU.

Tokens are counted with the project's default embedder (`create_embedder(Settings.from_env()).count_tokens`:
for the ONNX backends the `tokenizers` library alone, no torch and no ONNX session), so the peak memory is
that of ingestion plus the interpreter and the tokenizer, not of a loaded torch. "RAM/MB" is the peak divided
by the file's size; "base MB" is what the child held before ingesting (interpreter, libraries, tokenizer).

    python eval/bench_ingest.py                 # 1, 10 and 50 MB
    python eval/bench_ingest.py --sizes 1 2 4   # other sizes
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PARAGRAPH = (
    "## Section {n}\n\n"
    "The Commission approved EUR {n}.5 million for border management in {year}. Member States reported "
    "{n},204 applications, e.g. under Art. 12 of the Regulation; see COM(2024) 126 final. Returns rose by "
    "{p} % compared with the previous year.\n\n"
    "- Relocation: {n} persons relocated.\n- Funding: EUR {p} million committed.\n\n"
)


def make_file(path: Path, megabytes: float) -> None:
    target = int(megabytes * 1_000_000)
    with path.open("w", encoding="utf-8") as fh:
        fh.write("# A long report\n\n")
        written, n = 0, 0
        while written < target:
            block = PARAGRAPH.format(n=n, year=2000 + n % 25, p=n % 97)
            fh.write(block)
            written += len(block.encode())
            n += 1


def child(path: str) -> None:
    from assistant.config import Settings
    from assistant.index.builder import chunker_settings
    from assistant.index.embedder import create_embedder
    from assistant.ingest.pipeline import ingest_file

    settings = Settings.from_env()
    embedder = create_embedder(settings)
    embedder.count_tokens(["warm up the tokenizer"])
    base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # interpreter, libraries, tokenizer
    started, cpu = time.perf_counter(), time.process_time()
    ingested = ingest_file(Path(path), metadata={}, count_tokens=embedder.count_tokens,
                           settings=chunker_settings(settings))  # fmt: skip
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "cpu": cpu, "chunks": len(ingested.chunks), "peak_mb": peak_mb,
                      "base_mb": base_mb}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 10, 50])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    # CPU seconds as well as wall-clock ones: on a shared machine the wall clock mostly measures the neighbours.
    columns = (("MB", 6), ("seconds", 9), ("s/MB", 7), ("CPU s/MB", 9), ("chunks", 8), ("peak MB", 8), ("RAM/MB", 7),
               ("base MB", 8))  # fmt: skip
    print(" ".join(f"{name:>{width}}" for name, width in columns))
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = Path(tmp) / f"long-{size:g}mb.md"
            make_file(path, size)
            out = subprocess.run([sys.executable, __file__, "--child", str(path)], capture_output=True, text=True,
                                 check=True, timeout=3600)  # fmt: skip
            result = json.loads(out.stdout.strip().splitlines()[-1])
            real = path.stat().st_size / 1e6
            seconds, peak, base = result["seconds"], result["peak_mb"], result["base_mb"]
            print(f"{real:6.1f} {seconds:9.2f} {seconds / real:7.2f} {result['cpu'] / real:9.2f} "
                  f"{result['chunks']:8d} {peak:8.0f} {peak / real:7.1f} {base:8.0f}", flush=True)  # fmt: skip
            path.unlink()


if __name__ == "__main__":
    main()
