"""The whole Assistant on a SYNTHETIC scale index: load time, answer latency and peak memory, in a fresh process.

    python eval/bench_assistant_scale.py --out DIR --size N [--questions 20]

Reads the index `eval/bench_scale.py` built at DIR/nN/index (run it with --keep, or as its "assistant" step,
which runs this before the index is deleted) and the synthetic query texts in DIR/seed. In one new process:
`Assistant.load` (the configured embedding backend, the index, the answer scorer and its statistics), then
`Assistant.answer` for `--questions` query texts (extractive, hybrid retrieval, the real model embedding the
question). Peak memory is the process's VmHWM and its sampled peak anonymous memory (see bench_scale.AnonPeak).
Writes DIR/nN/assistant.json. Everything here is measured on synthetic data (see eval/bench_scale.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import SYNTHETIC, AnonPeak, _peak_rss_mb


def assistant_one(out: Path, size: int, questions: int) -> dict[str, object]:
    anon = AnonPeak()
    started = time.perf_counter()
    from assistant.config import Settings
    from assistant.core import Assistant
    from assistant.index.embedder import create_embedder

    imported = time.perf_counter()
    settings = Settings.from_env()
    embedder = create_embedder(settings)
    embedder.embed_query("warm up")  # the backend's session, so load_s below is the index and the answerer
    embedder_ready = time.perf_counter()
    assistant = Assistant.load(out / f"n{size}" / "index", settings=settings, embedder=embedder)
    loaded = time.perf_counter()
    load_anon = anon.peak
    texts: list[str] = json.loads((out / "seed" / "info.json").read_text())["queries"][:questions]
    times, abstained = [], 0
    for text in texts:
        t = time.perf_counter()
        answer = assistant.answer(text)
        times.append((time.perf_counter() - t) * 1000)
        abstained += answer.abstained
    result: dict[str, object] = {
        "chunks": size,
        "import_s": round(imported - started, 2),
        "embedder_s": round(embedder_ready - imported, 2),
        "load_s": round(loaded - embedder_ready, 2),  # Assistant.load: index, retriever, answer scorer
        "load_peak_anon_mb": round(load_anon),
        "first_answer_ms": round(times[0], 1),
        "answer_p50_ms": round(statistics.median(times), 1),
        "answer_max_ms": round(max(times), 1),
        "questions": len(texts),
        "abstained": abstained,
        "peak_rss_mb": round(_peak_rss_mb()),
        "peak_anon_mb": anon.stop(),
        "note": SYNTHETIC,
    }
    (out / f"n{size}" / "assistant.json").write_text(json.dumps(result, indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--questions", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(assistant_one(args.out, args.size, args.questions)))


if __name__ == "__main__":
    main()
