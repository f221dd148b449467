"""Scale benchmark on SYNTHETIC collections: build, memory, disk, query latency and ANN recall by size.

    python eval/bench_scale.py --sizes 10000,100000,1000000 --out DIR [--queries 200] [--sample 256]
                               [--update-sizes 100000]

Everything reported here is measured on synthetic data, labelled so in every output:
- chunk text: sentences of the real corpus with about half of their longer words replaced by words drawn
  from the corpus vocabulary (by frequency), 2-6 such sentences per chunk, under a synthetic title/heading;
- vectors: the real model (the configured backend) embeds `--sample` synthetic chunks and the query texts;
  every other chunk vector is a stand-in, a normalised mixture of two sample vectors plus Gaussian noise,
  and sentence vectors are their chunk's vector plus noise (embedding 10^6 chunks for real would take
  hours on this machine; the real-model embedding rate is reported so that cost can be estimated);
- queries: `--queries` short texts cut from synthetic sentences, embedded with the real model.

Each size is built in one subprocess (timed: BM25, the vector index, sentence vectors, metadata, checksums)
and served in another (timed: index load, then dense / BM25 / hybrid search through the real Retriever with
the query vector given, so the query-embedding cost, constant in size, is excluded and reported apart).
recall_at_10 is the dense index actually used (exact below Settings.ann_threshold, IVF-SQ8 above) against
exact search on the same vectors. At the `--update-sizes` (default 10^5) a third subprocess measures
incremental updates with the real builder (`build_index`) and the real model: add one real corpus document,
then change one synthetic document; it reports seconds, chunks embedded, the builder's stage timings and
whether the IVF lists were reused or retrained. Writes DIR/scale.json (one row per size; rows of sizes not
run this time are kept), DIR/scale.md, DIR/scale.png.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SYNTHETIC = "SYNTHETIC data (see eval/bench_scale.py): generated text, stand-in vectors"
POOL = 50_000  # distinct synthetic sentences; chunks draw from them
PER_DOC = 100  # chunks per synthetic document


def _peak_rss_mb() -> float:
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across exec, so a child would report its
    # parent's peak (the parent holds the embedding model).
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class AnonPeak:
    """Peak anonymous memory (RssAnon), sampled every 20 ms in a thread.

    VmHWM counts the pages of memory-mapped files the process touched (the float16 vector files it writes and
    reads: gigabytes at 10^6 chunks) though the kernel can drop them at will; RssAnon is what must fit in RAM.
    """

    def __init__(self) -> None:
        import threading

        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    self.peak = max(self.peak, int(line.split()[1]) / 1024)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return round(self.peak)


# ---------------------------------------------------------------- seed material (parent process, once)


def prepare_seed(out: Path, *, sample: int, queries: int) -> dict[str, float]:
    """Corpus sentences, vocabulary, a real-model sample of synthetic chunks and the query vectors."""
    from assistant.config import Settings
    from assistant.index.embedder import create_embedder
    from assistant.ingest.chunker import ChunkerSettings
    from assistant.ingest.pipeline import discover, ingest_file, load_metadata

    seed = out / "seed"
    if (seed / "info.json").exists() and "fingerprint" in json.loads((seed / "info.json").read_text()):
        return dict(json.loads((seed / "info.json").read_text())["timing"])
    seed.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env()
    embedder = create_embedder(settings)
    metadata = load_metadata(settings.corpus_dir)
    sentences: list[str] = []
    for path in discover([settings.corpus_dir]):
        ingested = ingest_file(path, metadata=metadata, count_tokens=embedder.count_tokens, settings=ChunkerSettings())
        sentences += [" ".join(c.sentence_text(s).split()) for c in ingested.chunks for s in c.sentences]
    sentences = [s for s in sentences if len(s.split()) >= 4]
    words = Counter(w for s in sentences for w in re.findall(r"[A-Za-z][A-Za-z-]{3,}", s))
    rng = np.random.default_rng(13)
    pool = synthetic_sentences(sentences, words, POOL, rng)
    chunk_texts = [" ".join(pool[i] for i in rng.integers(0, POOL, rng.integers(2, 7))) for _ in range(sample)]
    query_texts = [" ".join(pool[i].split()[:8]) for i in rng.integers(0, POOL, queries)]
    started = time.perf_counter()
    embedder.embed_documents(chunk_texts[:8])  # model load, not throughput
    loaded = time.perf_counter()
    sample_vectors = embedder.embed_documents(chunk_texts)
    encoded = time.perf_counter()
    query_vectors = np.stack([embedder.embed_query(q) for q in query_texts])
    queried = time.perf_counter()
    np.save(seed / "sample_vectors.npy", sample_vectors.astype(np.float32), allow_pickle=False)
    np.save(seed / "query_vectors.npy", query_vectors.astype(np.float32), allow_pickle=False)
    timing = {
        "model_load_s": loaded - started,
        "chunks_per_s": sample / max(encoded - loaded, 1e-9),
        "query_embed_ms": (queried - encoded) * 1000 / queries,
    }
    (seed / "info.json").write_text(json.dumps({
        "backend": settings.embedding_backend, "pool": pool, "queries": query_texts, "timing": timing,
        "model": embedder.name, "fingerprint": embedder.fingerprint, "note": SYNTHETIC,
    }))  # fmt: skip
    return timing


def synthetic_sentences(real: list[str], words: Counter[str], count: int, rng: np.random.Generator) -> list[str]:
    vocab = list(words)
    weights = np.array([words[w] for w in vocab], dtype=np.float64)
    weights /= weights.sum()
    draws = iter(rng.choice(len(vocab), size=count * 40, p=weights).tolist())
    out = []
    for template in rng.choice(len(real), size=count).tolist():
        tokens = real[template].split()
        out.append(" ".join(
            vocab[next(draws)] if len(t) > 3 and t.isalpha() and rng.random() < 0.5 else t for t in tokens
        ))  # fmt: skip
    return out


# ---------------------------------------------------------------- one size: build (subprocess)


def build_one(out: Path, size: int, threshold: int, corpus: bool) -> None:
    from assistant.config import Settings
    from assistant.index.builder import TEXT_FORMAT, _file_key, chunker_settings
    from assistant.index.lexical import LexicalIndex
    from assistant.index.store import FORMAT_VERSION, Manifest, write_index
    from assistant.ingest.chunker import embedding_text
    from assistant.nlp import PARSE_FORMAT
    from assistant.types import Chunk, Document, Sentence

    seed = out / "seed"
    info = json.loads((seed / "info.json").read_text())
    pool: list[str] = info["pool"]
    basis = np.load(seed / "sample_vectors.npy")
    rng = np.random.default_rng(size)
    work = out / f"n{size}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    dim = basis.shape[1]

    anon = AnonPeak()
    started = time.perf_counter()
    # Documents of PER_DOC chunks each; a document's text is its chunks' texts joined by blank lines, so every
    # span points into it (the store checks that). With `corpus`, the documents are also written as .txt files
    # and keyed in the manifest as the builder keys them, so `assistant.index.builder.build_index` can update
    # this index incrementally (the "update" step).
    chunks: list[Chunk] = []
    counts = rng.integers(2, 7, size)
    picks = rng.integers(0, POOL, int(counts.sum()))
    at = 0
    doc_parts: list[str] = []
    documents: dict[str, Document] = {}
    keys: dict[str, str] = {}
    settings = Settings.from_env()  # the chunker settings the update step's builder will compare
    if corpus:
        (work / "corpus").mkdir()

    def close_document(d: int) -> None:
        name = f"synthetic-{d:06d}.txt"
        text = "\n\n".join(doc_parts)
        documents[name] = Document(name, name.removesuffix(".txt"), "", "", "0", text)
        if corpus:
            path = work / "corpus" / name
            path.write_text(text + "\n", encoding="utf-8")
            keys[name] = _file_key(path, None)
        doc_parts.clear()

    offset = 0
    for i in range(size):
        if i % PER_DOC == 0 and i:
            close_document(i // PER_DOC - 1)
        if i % PER_DOC == 0:
            offset = 0
        parts = [pool[j] for j in picks[at : at + counts[i]].tolist()]
        at += int(counts[i])
        spans, pos = [], 0
        for p in parts:
            spans.append(Sentence(pos, pos + len(p), offset + pos, offset + pos + len(p)))
            pos += len(p) + 1
        text = " ".join(parts)
        doc = f"synthetic-{i // PER_DOC:06d}.txt"
        chunks.append(Chunk(chunk_id=f"s{i:07d}", doc=doc, title=doc.removesuffix(".txt"), date="",
                            section=f"Part {i % PER_DOC // 10}", page=None, text=text, start=offset,
                            end=offset + len(text), sentences=tuple(spans), tokens=len(text) // 5))  # fmt: skip
        doc_parts.append(text)
        offset += len(text) + 2
    if size:
        close_document((size - 1) // PER_DOC)
    generated_text = time.perf_counter()

    # Stand-in vectors, float16 on disk (ground truth for recall and the source for the index).
    vectors = np.lib.format.open_memmap(work / "chunk_vectors.npy", mode="w+", dtype=np.float16, shape=(size, dim))
    sentences = np.lib.format.open_memmap(
        work / "sentence_vectors.npy", mode="w+", dtype=np.float16, shape=(int(counts.sum()), dim)
    )
    row = 0
    for start in range(0, size, 65536):
        n = min(65536, size - start)
        a, b = basis[rng.integers(0, len(basis), n)], basis[rng.integers(0, len(basis), n)]
        w = rng.uniform(0.5, 1.0, (n, 1)).astype(np.float32)
        v = w * a + (1 - w) * b + rng.normal(0, 0.6 / np.sqrt(dim), (n, dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        vectors[start : start + n] = v
        reps = counts[start : start + n]
        s = np.repeat(v, reps, axis=0) + rng.normal(0, 0.8 / np.sqrt(dim), (int(reps.sum()), dim)).astype(np.float32)
        s /= np.linalg.norm(s, axis=1, keepdims=True)
        sentences[row : row + len(s)] = s
        row += len(s)
    vectors.flush()
    sentences.flush()
    generated = time.perf_counter()

    lexical = LexicalIndex.build(embedding_text(c) for c in chunks)
    bm25_done = time.perf_counter()
    chunker = {**asdict(chunker_settings(settings)), "text_format": TEXT_FORMAT, "parse_format": PARSE_FORMAT}
    manifest = Manifest(
        format_version=FORMAT_VERSION, created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        # The stand-in vectors carry the real model's identity so the builder may update this index with it.
        embedding_model=info["model"], embedding_fingerprint=info["fingerprint"], dimension=dim,
        chunker=chunker, files={d: {"sha256": "0", "key": keys.get(d, "0"), "chunks": 0} for d in documents},
    )  # fmt: skip
    for c in chunks:
        entry = manifest.files[c.doc]
        entry["chunks"] += 1
        # What the builder's report reads of a file without reading its chunks (assistant.index.builder._file_stats).
        entry["tokens"] = entry.get("tokens", 0) + c.tokens
        entry["max_tokens"] = max(entry.get("max_tokens", 0), c.tokens)
    write_index(work / "index", manifest, documents, chunks, vectors, sentences, [()] * size, lexical=lexical,
                ann_threshold=threshold)  # fmt: skip
    finished = time.perf_counter()
    index_dir = work / "index"
    disk = sum(f.stat().st_size for f in index_dir.rglob("*") if f.is_file())
    result = {
        "build_s": round(finished - generated, 2),  # BM25 + vector index + writing, as the builder does
        "build_bm25_s": round(bm25_done - generated, 2),
        "build_write_s": round(finished - bm25_done, 2),
        "generate_s": round(generated - started, 2),
        "generate_text_s": round(generated_text - started, 2),
        "build_peak_rss_mb": round(_peak_rss_mb()),
        "build_peak_anon_mb": anon.stop(),
        "disk_mb": round(disk / 2**20, 1),
        "sentences": int(counts.sum()),
        "vector_index": manifest.vector_index,
    }
    (work / "build.json").write_text(json.dumps(result, indent=1))


# ---------------------------------------------------------------- one size: serve (subprocess)


def serve_one(out: Path, size: int) -> None:
    import faiss

    from assistant.index.ann import exact_top_k, recall_at_k
    from assistant.index.store import load_index
    from assistant.retrieve import Retriever

    seed = out / "seed"
    info = json.loads((seed / "info.json").read_text())
    queries: list[str] = info["queries"]
    qv = np.load(seed / "query_vectors.npy")
    work = out / f"n{size}"
    anon = AnonPeak()
    started = time.perf_counter()
    data = load_index(work / "index")

    class _NoEmbedder:  # vectors are given to every search; nothing may embed here
        name, dimension, fingerprint = "none", qv.shape[1], "none"

        def embed_query(self, text: str) -> np.ndarray:
            raise AssertionError("the benchmark passes query vectors")

    retriever = Retriever(data, _NoEmbedder())  # type: ignore[arg-type]
    load_s = time.perf_counter() - started
    assert faiss.omp_get_max_threads() == 1
    times: dict[str, list[float]] = {"dense": [], "bm25": [], "hybrid": []}
    found = []
    for text, vector in zip(queries, qv, strict=True):
        t = time.perf_counter()
        _, ids = data.vectors.search(vector.reshape(1, -1), 10)
        times["dense"].append((time.perf_counter() - t) * 1000)
        found.append(ids[0])
        t = time.perf_counter()
        retriever.search(text, top_k=5, mode="bm25")
        times["bm25"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        retriever.search(text, top_k=5, mode="hybrid", vector=vector)
        times["hybrid"].append((time.perf_counter() - t) * 1000)
    truth = exact_top_k(np.load(work / "chunk_vectors.npy", mmap_mode="r"), qv, 10)
    built = json.loads((work / "build.json").read_text())
    curve = {}
    if data.manifest.vector_index.get("kind") == "ivf-sq8":
        # Recall and latency of the real-model queries against nprobe: what the build's choice trades.
        ivf = faiss.extract_index_ivf(data.vectors)
        chosen = ivf.nprobe
        for nprobe in (4, 8, 16, 32, 64, 128):
            ivf.nprobe = nprobe
            lat, ids_all = [], []
            for vector in qv:
                t = time.perf_counter()
                _, ids = data.vectors.search(vector.reshape(1, -1), 10)
                lat.append((time.perf_counter() - t) * 1000)
                ids_all.append(ids[0])
            curve[str(nprobe)] = {"recall_at_10": round(recall_at_k(np.array(ids_all), truth), 4),
                                  "p95_ms": round(statistics.quantiles(lat, n=100)[94], 2)}  # fmt: skip
        ivf.nprobe = chosen

    def pct(values: list[float], q: int) -> float:
        return round(statistics.quantiles(values, n=100)[q - 1], 2)

    row = {
        "chunks": size,
        "build_s": built["build_s"],
        "peak_rss_mb": round(_peak_rss_mb()),  # the serving process: load + 3 x queries
        "peak_anon_mb": anon.stop(),
        "disk_mb": built["disk_mb"],
        "dense_p50_ms": pct(times["dense"], 50),
        "dense_p95_ms": pct(times["dense"], 95),
        "bm25_p95_ms": pct(times["bm25"], 95),
        "hybrid_p50_ms": pct(times["hybrid"], 50),
        "hybrid_p95_ms": pct(times["hybrid"], 95),
        "recall_at_10": round(recall_at_k(np.array(found), truth), 4),
        "load_s": round(load_s, 2),
        "bm25_p50_ms": pct(times["bm25"], 50),
        "build_peak_rss_mb": built["build_peak_rss_mb"],
        "build_peak_anon_mb": built.get("build_peak_anon_mb"),
        "build_bm25_s": built["build_bm25_s"],
        "build_write_s": built["build_write_s"],
        "generate_s": built["generate_s"],
        "sentences": built["sentences"],
        "vector_index": built["vector_index"],
        "query_nprobe_curve": curve,
        "queries": len(queries),
        "synthetic": True,
    }
    (work / "row.json").write_text(json.dumps(row, indent=1))


# ---------------------------------------------------------------- one size: incremental update (subprocess)


def update_one(out: Path, size: int, threshold: int) -> None:
    """Add one real corpus document, change one synthetic document, remove the added one, then the same change of
    another document written whole (a compaction: what an update costs when assistant.index.update falls back to a
    full build). Each with the real builder and model, on a copy of the built index (so the step can be rerun)."""
    from assistant.config import Settings
    from assistant.index import update
    from assistant.index.builder import build_index
    from assistant.index.embedder import create_embedder
    from assistant.index.store import load_index

    work = out / f"n{size}"
    copy = work / "update-copy"
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir()
    shutil.copytree(work / "corpus", copy / "corpus")
    shutil.copytree(work / "index", copy / "index")
    real = Settings.from_env()
    settings = Settings.from_env(corpus_dir=copy / "corpus", index_dir=copy / "index", ann_threshold=threshold)
    anon = AnonPeak()
    embedder = create_embedder(settings)
    embedder.embed_documents(["warm up"])  # model load is not the update's cost
    steps: dict[str, Any] = {}
    added = sorted(p for p in real.corpus_dir.iterdir() if p.suffix == ".txt")[0]
    changed = settings.corpus_dir / "synthetic-000000.txt"
    other = settings.corpus_dir / "synthetic-000001.txt"
    default_fraction = update.COMPACT_FRACTION

    def compact() -> None:
        update.COMPACT_FRACTION = -1.0  # any garbage at all: the builder writes the whole index
        other.write_text(other.read_text() + "\n\nA new closing paragraph on visas.\n")

    for step, act in (
        ("add", lambda: shutil.copy(added, settings.corpus_dir / added.name)),
        ("change", lambda: changed.write_text(changed.read_text() + "\n\nA new closing paragraph on visas.\n")),
        ("remove", lambda: (settings.corpus_dir / added.name).unlink()),
        ("compact", compact),
    ):
        act()
        started = time.perf_counter()
        rss_before = _peak_rss_mb()
        report = build_index(settings, embedder)
        seconds = time.perf_counter() - started
        update.COMPACT_FRACTION = default_fraction
        info = load_index(settings.index_dir).manifest.vector_index
        steps[step] = {
            "seconds": round(seconds, 2),
            "embedded_chunks": report.embedded_chunks,
            "chunks": report.chunks,
            "stages_s": report.timings,
            "write_mode": report.write_mode, "full_reason": report.full_reason,
            "ann_training": info.get("training", info["kind"]),
            "added": report.added, "changed": report.changed, "removed": report.removed,
            "unchanged_documents": len(report.unchanged),
            "peak_rss_mb_after": round(_peak_rss_mb()), "peak_rss_mb_before": round(rss_before),
        }  # fmt: skip
        print(f"[{time.strftime('%H:%M:%S')}] update {step}: {steps[step]}", flush=True)
    steps["peak_rss_mb"] = round(_peak_rss_mb())
    steps["peak_anon_mb"] = anon.stop()
    (work / "update.json").write_text(json.dumps(steps, indent=1))
    shutil.rmtree(copy, ignore_errors=True)


# ---------------------------------------------------------------- BM25 alone: exact against capped postings


def bm25_one(out: Path, size: int) -> None:
    """The same synthetic texts as `build_one` (same seed), BM25 only: latency and top-10 agreement of the
    capped query (lexical.POSTING_CAP, the default) against exact scoring over every posting."""
    from assistant.index.lexical import POSTING_CAP, LexicalIndex
    from assistant.ingest.chunker import embedding_head

    info = json.loads((out / "seed" / "info.json").read_text())
    pool: list[str] = info["pool"]
    rng = np.random.default_rng(size)
    counts = rng.integers(2, 7, size)
    picks = rng.integers(0, POOL, int(counts.sum())).tolist()
    starts = np.concatenate([[0], np.cumsum(counts)]).tolist()

    def texts():  # type: ignore[no-untyped-def]
        for i in range(size):
            doc = f"synthetic-{i // PER_DOC:06d}"
            head = embedding_head(doc, f"Part {i % PER_DOC // 10}")
            yield head + "\n" + " ".join(pool[j] for j in picks[starts[i] : starts[i + 1]])

    anon = AnonPeak()
    started = time.perf_counter()
    index = LexicalIndex.build(texts())
    build_s = time.perf_counter() - started

    def top(scores: np.ndarray, k: int) -> np.ndarray:  # as Retriever._lexical ranks its candidates
        keep = np.flatnonzero(scores > 0)
        if len(keep) > k:
            keep = keep[np.argpartition(-scores[keep], k - 1)[:k]]
        return keep[np.lexsort((keep, -scores[keep]))]

    caps = sorted({POSTING_CAP, 25_000, 100_000, 200_000})
    lat: dict[str, list[float]] = {"exact": [], **{f"cap{c}": [] for c in caps}}
    overlap: dict[str, list[float]] = {f"cap{c}": [] for c in caps}
    for query in info["queries"]:
        found = {}
        for name, cap in (("exact", None), *((f"cap{c}", c) for c in caps)):
            t = time.perf_counter()
            found[name] = top(index.scores(query, cap=cap), 50)
            lat[name].append((time.perf_counter() - t) * 1000)
        truth = set(found["exact"][:10].tolist())
        for name in overlap:
            if truth:
                overlap[name].append(len(truth & set(found[name][:10].tolist())) / len(truth))
    result = {
        "chunks": size, "default_posting_cap": POSTING_CAP, "build_s": round(build_s, 1),
        "build_peak_anon_mb": anon.stop(), "build_peak_rss_mb": round(_peak_rss_mb()),
        "longest_posting_list": int(np.diff(index.indptr).max()),
        "p50_ms": {name: round(statistics.quantiles(v, n=100)[49], 2) for name, v in lat.items()},
        "p95_ms": {name: round(statistics.quantiles(v, n=100)[94], 2) for name, v in lat.items()},
        "top10_overlap_with_exact": {name: round(float(np.mean(v)), 4) for name, v in overlap.items()},
        "queries": len(info["queries"]), "synthetic": True,
    }  # fmt: skip
    print(json.dumps(result))
    (out / f"bm25_n{size}.json").write_text(json.dumps(result, indent=1))


# ---------------------------------------------------------------- report


def write_report(out: Path, rows: list[dict], timing: dict[str, float]) -> None:
    (out / "scale.json").write_text(json.dumps(rows, indent=1))
    keys = ["chunks", "build_s", "peak_rss_mb", "peak_anon_mb", "build_peak_rss_mb", "build_peak_anon_mb", "disk_mb",
            "load_s", "dense_p50_ms", "dense_p95_ms", "bm25_p95_ms", "hybrid_p50_ms", "hybrid_p95_ms",
            "recall_at_10"]  # fmt: skip
    lines = [
        f"# Scale benchmark — {SYNTHETIC}",
        "",
        f"Machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end (shared). "
        "Latencies exclude the query embedding "
        f"({timing['query_embed_ms']:.1f} ms per query with the real model); the real model embeds "
        f"{timing['chunks_per_s']:.1f} chunks/s here, so embedding N real chunks would add N / that to build_s.",
        "",
        "| " + " | ".join(keys) + " | index |",
        "|" + "---|" * (len(keys) + 1),
    ]
    notes = [
        "peak_rss_mb / build_peak_rss_mb are VmHWM, which counts touched pages of memory-mapped vector files "
        "(reclaimable); *_anon_mb are peak anonymous memory (sampled every 20 ms), what must fit in RAM.",
        "",
    ]
    lines[4:4] = notes
    for r in rows:
        vi = r["vector_index"]
        kind = vi["kind"] if vi["kind"] == "flat" else f"IVF{vi['nlist']}-SQ8 nprobe {vi['nprobe']}"
        lines.append("| " + " | ".join(str(r.get(k, "n/a")) for k in keys) + f" | {kind} |")
    for r in rows:
        if r.get("query_nprobe_curve"):
            lines += [
                "",
                f"{r['chunks']} chunks, real-model queries against nprobe (recall@10 / dense p95 ms): "
                + ", ".join(f"{k}: {v['recall_at_10']} / {v['p95_ms']}" for k, v in r["query_nprobe_curve"].items()),
            ]
    for r in rows:
        u = r.get("update")
        if u:
            lines += ["", f"Incremental update of the {r['chunks']}-chunk index with the real builder and model "
                      "(assistant.index.builder.build_index):"]  # fmt: skip
            for step in ("add", "change", "remove", "compact"):
                if step not in u:
                    continue
                s = u[step]
                what = {"add": f"added {s['added']}", "remove": f"removed {s.get('removed')}"}.get(
                    step, f"changed {s['changed']}"
                )
                mode = f", {s['write_mode']} write" if s.get("write_mode") else ""
                lines.append(
                    f"- {step}: {what}: {s['seconds']} s, {s['embedded_chunks']} chunks embedded of "
                    f"{s['chunks']}{mode}, ANN {s['ann_training']}; stages (s): "
                    + ", ".join(f"{k} {v}" for k, v in s["stages_s"].items())
                )
            anon = f" ({u['peak_anon_mb']} MB anonymous)" if u.get("peak_anon_mb") else ""
            lines.append(f"- peak memory of the updating process (model loaded): {u['peak_rss_mb']} MB{anon}")
    whole = [r for r in rows if r.get("assistant")]
    if whole:
        lines += ["", "The whole Assistant in a fresh process (eval/bench_assistant_scale.py: Assistant.load with the "
                  "real embedding backend, then extractive answers to the synthetic queries):", "",
                  "| chunks | Assistant.load s | embedder s | first answer ms | answer p50 ms | peak anon MB "
                  "| VmHWM MB |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in whole:
            a = r["assistant"]
            lines.append(f"| {r['chunks']} | {a['load_s']} | {a['embedder_s']} | {a['first_answer_ms']} | "
                         f"{a['answer_p50_ms']} | {a['peak_anon_mb']} | {a['peak_rss_mb']} |")  # fmt: skip
    lines += ["", "Targets at 10^6 chunks: hybrid p95 <= 50 ms, recall@10 >= 0.95, peak memory <= 8 GB, load <= 5 s."]
    (out / "scale.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["chunks"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("dense_p95_ms", "bm25_p95_ms", "hybrid_p95_ms", "hybrid_p50_ms"):
        left.loglog(sizes, [max(r[key], 1e-3) for r in rows], marker="o", label=key)
    left.axhline(50, color="grey", ls="--", lw=0.8)
    left.set(xlabel="chunks", ylabel="ms", title="query latency (synthetic)")
    left.legend()
    for key in ("peak_rss_mb", "peak_anon_mb", "build_peak_rss_mb", "build_peak_anon_mb", "disk_mb"):
        have = [(r["chunks"], r[key]) for r in rows if r.get(key)]
        if have:
            right.loglog(*zip(*have, strict=True), marker="o", label=key)
    right.axhline(8192, color="grey", ls="--", lw=0.8)
    right.set(xlabel="chunks", ylabel="MB", title="memory and disk (synthetic)")
    right.legend()
    fig.tight_layout()
    fig.savefig(out / "scale.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--sample", type=int, default=256)
    parser.add_argument("--ann-threshold", type=int, default=None, help="default: Settings.ann_threshold")
    parser.add_argument("--keep", action="store_true", help="keep the built indexes (default: delete after)")
    parser.add_argument(
        "--update-sizes",
        default="100000",
        help="sizes at which to measure an incremental update with the real builder and model",
    )
    parser.add_argument(
        "--step",
        choices=("build", "serve", "assistant", "update", "bm25"),
        help="bm25: only BM25 at --size, exact against capped postings (needs the seed)",
    )
    parser.add_argument("--corpus", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.step == "build":
        build_one(args.out, args.size, args.ann_threshold, args.corpus)
        return
    if args.step == "bm25":
        bm25_one(args.out, args.size)
        return
    if args.step == "update":
        update_one(args.out, args.size, args.ann_threshold)
        return
    if args.step == "serve":
        serve_one(args.out, args.size)
        return
    if args.step == "assistant":  # the whole Assistant: load, answers, memory (its own script)
        from bench_assistant_scale import assistant_one

        assistant_one(args.out, args.size, questions=20)
        return
    from assistant.config import Settings

    threshold = args.ann_threshold or Settings.from_env().ann_threshold
    timing = prepare_seed(args.out, sample=args.sample, queries=args.queries)
    # Rows of other sizes from an earlier run stay (so 10^6 can be run on its own); a size run now replaces its row.
    previous = json.loads((args.out / "scale.json").read_text()) if (args.out / "scale.json").exists() else []
    rows = {int(r["chunks"]): r for r in previous}
    updates = {int(s) for s in args.update_sizes.split(",") if s}
    for size in [int(s) for s in args.sizes.split(",") if s]:
        steps = ("build", "serve", "assistant", "update") if size in updates else ("build", "serve", "assistant")
        for step in steps:
            cmd = [sys.executable, __file__, "--out", str(args.out), "--step", step, "--size", str(size),
                   "--ann-threshold", str(threshold), *(["--corpus"] if size in updates else [])]  # fmt: skip
            print(f"[{time.strftime('%H:%M:%S')}] {size} chunks: {step}", flush=True)
            subprocess.run(cmd, check=True)
        row = json.loads((args.out / f"n{size}" / "row.json").read_text())
        if size in updates:
            row["update"] = json.loads((args.out / f"n{size}" / "update.json").read_text())
        row["assistant"] = json.loads((args.out / f"n{size}" / "assistant.json").read_text())
        print(json.dumps({k: row[k] for k in list(row)[:11]}), flush=True)
        rows[size] = row
        if not args.keep:
            shutil.rmtree(args.out / f"n{size}" / "index", ignore_errors=True)
            shutil.rmtree(args.out / f"n{size}" / "corpus", ignore_errors=True)
            for name in ("chunk_vectors.npy", "sentence_vectors.npy"):
                (args.out / f"n{size}" / name).unlink(missing_ok=True)
        write_report(args.out, [rows[k] for k in sorted(rows)], timing)
    print(f"wrote {args.out / 'scale.json'}, scale.md, scale.png ({SYNTHETIC})")


if __name__ == "__main__":
    main()
