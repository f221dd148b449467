"""Index and retrieval benchmark: build time, unchanged re-index, search latency, recall on a gold file.

    python eval/bench_index.py [--gold eval/gold/dev.jsonl] [--top-k 10]

Builds a fresh index in a temporary directory (the real one is untouched) and prints a table.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from assistant import Assistant, Settings
from assistant.evaluation.gold import load_gold
from assistant.evaluation.metrics import first_relevant_rank, mrr_at, recall_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gold", type=Path, default=Path(__file__).parent / "gold" / "dev.jsonl")
    parser.add_argument("--top-k", type=int, default=10)
    args = parser.parse_args()
    questions = [q for q in load_gold(args.gold) if q.answerable]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env(index_dir=Path(tmp) / "index")
        started = time.perf_counter()
        report = Assistant.build(settings)
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        Assistant.build(settings)
        reindex_s = time.perf_counter() - started
        assistant = Assistant.load(settings=settings)
        print(f"backend {settings.embedding_backend}")
        print(f"build {build_s:.1f} s (cold, model load included); unchanged re-index {reindex_s:.3f} s")
        print("build stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in report.timings.items()))
        print(
            f"{report.documents} documents, {report.chunks} chunks, "
            f"mean {report.mean_tokens} / max {report.max_tokens} tokens"
        )
        print(f"{'mode':8} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR@10':>7} {'p50 ms':>7} {'p95 ms':>7}")
        for mode in ("hybrid", "dense", "bm25"):
            ranks, times = [], []
            for q in questions:
                assistant.search(q.question, top_k=args.top_k, mode=mode)  # warm
                t = time.perf_counter()
                hits = assistant.search(q.question, top_k=args.top_k, mode=mode)
                times.append((time.perf_counter() - t) * 1000)
                ranks.append(first_relevant_rank([h.chunk.text for h in hits], q.evidence))
            p95 = statistics.quantiles(times, n=20)[18]
            print(f"{mode:8} {recall_at(ranks, 1):6.3f} {recall_at(ranks, 5):6.3f} {recall_at(ranks, 10):6.3f} "
                  f"{mrr_at(ranks, 10):7.3f} {statistics.median(times):7.1f} {p95:7.1f}")  # fmt: skip
            if mode == "hybrid":
                missed = [q.id for q, r in zip(questions, ranks, strict=True) if r != 1]
                print(f"         not at rank 1: {', '.join(missed)}")


if __name__ == "__main__":
    main()
