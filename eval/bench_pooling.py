"""Chunk vectors encoded whole against chunk vectors pooled from sentence vectors: recall on a gold file.

    python eval/bench_pooling.py [--gold eval/gold/dev.jsonl] [--index-dir index]

Reuses a built index (its chunks, sentence vectors, BM25 and settings) and swaps in, in turn: each chunk encoded
whole by the embedding model (`embedding_text`, what builds did before), and its sentence vectors summed with
weights length ** p for several p (builds use POOL_POWER). Prints hybrid and dense recall@1/@5
and MRR@10, then chooses p by MRR@10 out of sample: leave one document out (a question belongs to the document
of its evidence's chunk). Retrieval only; answer accuracy per variant needs `assistant train --cv` on an index
built that way.
"""

from __future__ import annotations

import numpy as np
from bench_quantisation import load_for_swapping, ranks_with  # the same setup and measure, other vectors

from assistant import Assistant
from assistant.evaluation.metrics import mrr_at, recall_at
from assistant.index.vectors import POOL_POWER
from assistant.ingest.chunker import embedding_text

POWERS = (0.0, 0.25, 0.5, 0.75, 1.0)


def pooled(assistant: Assistant, power: float) -> np.ndarray:
    data = assistant.data
    offsets = data.sentence_offsets
    out = np.zeros((len(data.chunks), data.manifest.dimension), dtype=np.float32)
    for i, chunk in enumerate(data.chunks):
        rows = np.asarray(data.sentence_vectors[int(offsets[i]) : int(offsets[i + 1])], dtype=np.float32)
        weights = np.array([max(1, s.end - s.start) for s in chunk.sentences], dtype=np.float32) ** power
        out[i] = (rows * weights[:, None]).sum(0)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def main() -> None:
    _, questions, assistant = load_for_swapping(__doc__.split("\n")[0])
    variants = {"encoded whole": assistant.embedder.embed_documents([embedding_text(c) for c in assistant.data.chunks])}
    for p in POWERS:
        variants[f"pooled, p={p}" + (" (default)" if p == POOL_POWER else "")] = pooled(assistant, p)
    results = {n: {m: ranks_with(assistant, v, questions, m) for m in ("hybrid", "dense")} for n, v in variants.items()}
    print(f"{'chunk vectors':26} {'hybrid R@1':>10} {'R@5':>6} {'MRR':>6} {'dense R@1':>10} {'R@5':>6} {'MRR':>6}")
    for name, by_mode in results.items():
        h, d = by_mode["hybrid"], by_mode["dense"]
        print(f"{name:26} {recall_at(h, 1):10.3f} {recall_at(h, 5):6.3f} {mrr_at(h, 10):6.3f} "
              f"{recall_at(d, 1):10.3f} {recall_at(d, 5):6.3f} {mrr_at(d, 10):6.3f}")  # fmt: skip

    # Out of sample: for each document, choose p on the other documents' questions, score on its own.
    doc_of = {}
    for q in questions:
        doc_of[q.id] = next((c.doc for c in assistant.data.chunks if any(e in c.text for e in q.evidence)), "?")
    names = [n for n in results if n != "encoded whole"]
    for mode in ("dense", "hybrid"):
        held: list[int | None] = []
        chosen = []
        for doc in sorted(set(doc_of.values())):
            train = [i for i, q in enumerate(questions) if doc_of[q.id] != doc]
            best = max(names, key=lambda n: mrr_at([results[n][mode][i] for i in train], 10))
            chosen.append(best.split("=")[1].split(" ")[0])
            held += [results[best][mode][i] for i, q in enumerate(questions) if doc_of[q.id] == doc]
        print(f"p chosen by {mode} MRR, one document held out at a time: {', '.join(chosen)}; "
              f"held-out {mode} R@1 {recall_at(held, 1):.3f}, MRR@10 {mrr_at(held, 10):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
