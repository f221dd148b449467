"""The chunk-vector index: exact below a size threshold, approximate (FAISS IVF-SQ8) above it.

Exact inner-product search reads every vector: ~11 ms per query at 10^5 chunks and ~115 ms at 10^6 on one
core here, too slow for a 50 ms hybrid budget at the top end. Above `threshold` vectors the store switches to
an inverted file with 8-bit scalar-quantised vectors (IVF-SQ8: a quarter of the memory of float32; in the
issue's measurements on 10^6 realistic vectors, recall@10 0.953 at 1.4 ms p95, where HNSW stayed below 0.93).
`nprobe` (how many of the `nlist` lists a query visits) is chosen by measurement at build time: the smallest
value whose recall@10 against exact search, over held-out perturbed copies of stored vectors, reaches the
target. What was chosen and measured is recorded in the manifest (`vector_index`).

FAISS runs one thread per query (`faiss.omp_set_num_threads(1)` when an index is loaded): with two threads
a single query was 4x slower here, and concurrent queries (the UI, the evaluation) already use the cores.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np

NPROBES = (4, 8, 16, 32, 48, 64, 96, 128, 192, 256)
# Recall on the build's own probe queries is optimistic. On 10^5 synthetic chunks (eval/bench_scale.py) the
# probes reached 0.968 / 0.976 / 0.982 / 0.987 at nprobe 16 / 32 / 64 / 256, real-model queries 0.871 / 0.928 /
# 0.956 / 0.985. A probe target of 0.98 therefore lands where queries pass 0.95 (0.99 was never reached: 256).
# At 10^6 the probes reached 0.982 at nprobe 96, where real-model queries found 0.9475 (0.958 at 128): 0.985.
TARGET_RECALL = 0.985
PROBE_QUERIES = 200
# Probe queries must be as far from the stored vectors as real questions are: perturbed copies at relative noise
# 0.35 picked nprobe 4 at 10^5 synthetic chunks, where real-model queries then found only 0.64 of their exact top
# 10. Half the probes are copies under heavy noise, half midpoints of two random stored vectors (between topics).
PROBE_NOISE = 1.2


def default_nlist(n: int) -> int:
    # ~4 sqrt(n) lists (FAISS's guideline is 4-16 sqrt(n)); 4000 at 10^6.
    return max(16, min(65536, int(4 * math.sqrt(n))))


def reusable(previous: Any, info: dict[str, Any], n: int, changed: int) -> bool:
    """Whether the previous build's trained IVF lists can index `n` vectors of which `changed` are new.

    Training (k-means over 40 points per list) is most of an IVF build; adding vectors to trained lists is
    cheap. The lists stay good while the collection is mostly the one they were trained on and their number
    stays near what `default_nlist` would choose; past that (a quarter new, or the size off by 2x) retrain.
    """
    if previous is None or info.get("kind") != "ivf-sq8" or not n:
        return False
    nlist = int(info.get("nlist", 0))
    return changed <= n // 4 and default_nlist(n) / 2 <= nlist <= default_nlist(n) * 2


def build_vector_index(
    vectors: np.ndarray,
    *,
    threshold: int,
    target_recall: float = TARGET_RECALL,
    seed: int = 0,
    previous: Any = None,
    previous_info: dict[str, Any] | None = None,
    changed: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """A FAISS index over L2-normalised `vectors` (inner product) and what describes it for the manifest.

    With the previous build's index (`previous`, described by `previous_info`) and the number of vectors that
    are new since (`changed`), an IVF index keeps the previous training when `reusable` says so: an update
    then costs adding the vectors and measuring nprobe, not k-means.
    """
    import faiss

    n, dim = vectors.shape
    if n < max(threshold, 1):
        flat = faiss.IndexFlatIP(dim)
        if n:
            flat.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return flat, {"kind": "flat"}
    started = time.perf_counter()
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # building: use every core
    try:
        rng = np.random.default_rng(seed)
        # Changes add up across builds that keep the training (incremental updates too: assistant.index.update).
        since = (changed or 0) + int((previous_info or {}).get("changed_since_training", 0))
        reuse = changed is not None and reusable(previous, previous_info or {}, n, since)
        index: Any
        if reuse:
            index = faiss.clone_index(previous)
            index.reset()  # keeps the trained lists and quantiser ranges, drops the vectors
            nlist = faiss.extract_index_ivf(index).nlist
        else:
            nlist = default_nlist(n)
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                                                  faiss.METRIC_INNER_PRODUCT)  # fmt: skip
            index.cp.niter = 10  # k-means iterations (FAISS default 25): lists barely move after 10, 2.5x faster
            # 40 training points per list is FAISS's minimum without warnings; more costs time, not recall.
            sample = rng.choice(n, size=min(n, 40 * nlist), replace=False)
            index.train(np.ascontiguousarray(vectors[np.sort(sample)], dtype=np.float32))
        for start in range(0, n, 65536):
            index.add(np.ascontiguousarray(vectors[start : start + 65536], dtype=np.float32))
        trained_s = time.perf_counter() - started
        queries = probe_queries(vectors, PROBE_QUERIES, rng)
        truth = exact_top_k(vectors, queries, 10)
        curve: dict[int, float] = {}
        chosen = NPROBES[-1]
        for nprobe in NPROBES:
            if nprobe > nlist:
                break
            index.nprobe = nprobe
            _, ids = index.search(queries, 10)
            curve[nprobe] = recall_at_k(ids, truth)
            chosen = nprobe
            if curve[nprobe] >= target_recall:
                break
        index.nprobe = chosen
    finally:
        faiss.omp_set_num_threads(threads)
    return index, {
        "kind": "ivf-sq8",
        "nlist": nlist,
        "nprobe": chosen,
        "recall_at_10": round(curve.get(chosen, 0.0), 4),
        "recall_by_nprobe": {str(k): round(v, 4) for k, v in curve.items()},
        "probe_queries": len(queries),
        "threshold": threshold,
        "train_add_s": round(trained_s, 2),
        "training": "reused from the previous build" if reuse else "trained",
        "changed_since_training": since if reuse else 0,
    }


def configure_loaded(index: Any, info: dict[str, Any]) -> Any:
    """One FAISS thread per query; the recorded nprobe on an IVF index."""
    import faiss

    faiss.omp_set_num_threads(1)
    if info.get("kind") == "ivf-sq8":
        faiss.extract_index_ivf(index).nprobe = int(info["nprobe"])
        faiss.extract_index_ivf(index).make_direct_map()  # hybrid search reads stored vectors by id
    return index


def probe_queries(vectors: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    rows = rng.choice(len(vectors), size=min(count, len(vectors)), replace=False)
    base = np.asarray(vectors[np.sort(rows)], dtype=np.float32)
    half = len(base) // 2
    others = np.asarray(vectors[np.sort(rng.choice(len(vectors), size=half, replace=False))], dtype=np.float32)
    base[:half] = base[:half] + others
    noisy = base + rng.normal(0.0, PROBE_NOISE / math.sqrt(base.shape[1]), size=base.shape).astype(np.float32)
    noisy[:half] = base[:half]
    return np.ascontiguousarray(noisy / np.linalg.norm(noisy, axis=1, keepdims=True), dtype=np.float32)


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int, block: int = 131072) -> np.ndarray:
    """Exact top-k ids by inner product, in blocks so 10^6 float16 vectors never become one float32 copy."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(vectors), block):
        scores = queries @ np.asarray(vectors[start : start + block], dtype=np.float32).T
        ids = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        all_scores = np.concatenate([best_scores, scores], axis=1)
        all_ids = np.concatenate([best_ids, ids], axis=1)
        top = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(all_scores, top, axis=1)
        best_ids = np.take_along_axis(all_ids, top, axis=1)
    return best_ids


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f[:k]) & set(t)) / k for f, t in zip(found, truth, strict=True)]))
