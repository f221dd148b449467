"""FAISS folder vs Milvus server: index time, query latency, and parity of recall@5 and answer-key accuracy.

    python eval/bench_milvus.py [--gold eval/gold/dev.jsonl] [--store milvus://HOST:PORT] [--skip-answers]

Without --store it starts a milvus-lite server on a free 127.0.0.1 port with its data in a temporary
directory (stopped at the end). Both backends get the same loaded MiniLM model, so build times exclude the
model load. It also measures the two ways the Milvus backend could provide sentence vectors to the answerer:
embedding the retrieved passages' sentences at answer time, or reading stored ones from a second collection.
--skip-answers leaves out the answer-key parity run (the slow part) and measures builds and latency only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant import Assistant, Settings  # noqa: E402
from assistant.evaluation import metrics as m  # noqa: E402
from assistant.evaluation.gold import GoldQuestion, load_gold  # noqa: E402
from assistant.evaluation.harness import SupportJudge, score  # noqa: E402
from assistant.evaluation.systems import AssistantSystem  # noqa: E402
from assistant.index.embedder import SentenceTransformerEmbedder  # noqa: E402
from assistant.retrieve_milvus import LazySentenceVectors  # noqa: E402


def percentiles(times: list[float]) -> tuple[float, float]:
    return statistics.median(times), statistics.quantiles(times, n=20)[18]


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def latency(assistant: Assistant, gold: list[GoldQuestion]) -> dict[str, float]:
    """Hybrid search, top 5, query embedding included (warm)."""
    assistant.search(gold[0].question, top_k=5)
    search = [timed(lambda q=q: assistant.search(q.question, top_k=5)) for q in gold]  # type: ignore[misc]
    return {"search_p50": percentiles(search)[0], "search_p95": percentiles(search)[1]}


def evaluate(assistant: Assistant, gold: list[GoldQuestion], judge: SupportJudge) -> dict[str, float]:
    """recall@5 and answer-key accuracy as `assistant eval` computes them, plus latencies."""
    system = AssistantSystem("assistant", assistant, None)
    sources = {name: doc.text for name, doc in assistant.data.documents.items()}
    system.run(gold[0].question)  # warm
    results = [score(q, "assistant", system.run(q.question), judge, sources) for q in gold]
    answerable = [r for r in results if r.question.answerable]
    total = [r.answer.timings_ms["total"] for r in results]
    return {
        **latency(assistant, gold),
        "recall@5": m.recall_at([r.relevant_rank for r in answerable], 5),
        "accuracy": m.mean([float(r.correct) for r in answerable]),
        "noans": m.mean([float(r.answer.abstained) for r in results if not r.question.answerable]),
        "answer_p50": percentiles(total)[0],
        "answer_p95": percentiles(total)[1],
    }


def bm25_agreement(milvus: Assistant, gold: list[GoldQuestion]) -> None:
    """Milvus' BM25 against bm25s over the same chunks (the FAISS backend's lexical side): same top 3?"""
    from assistant.retrieve import Retriever

    local = Retriever(milvus.data, milvus.embedder)  # only its bm25s side is used: no vectors needed
    same1 = same3 = 0
    for q in gold:
        ours = [h.chunk.chunk_id for h in milvus.search(q.question, mode="bm25", top_k=3)]
        theirs = [milvus.data.chunks[i].chunk_id for i, _ in local._lexical(q.question, None)[:3]]
        same1 += ours[:1] == theirs[:1]
        same3 += ours == theirs
    print(f"\nBM25, Milvus vs bm25s: same top 1 on {same1}/{len(gold)} questions, same top 3 on {same3}/{len(gold)}")


def sentence_vector_options(milvus: Assistant, gold: list[GoldQuestion], store: str) -> None:
    """Per question: embed the top-5 passages' sentences now, or read stored vectors from a second collection."""
    from pymilvus import DataType, MilvusClient

    from assistant.index.milvus_schema import parse_store

    data, embedder = milvus.data, milvus.embedder
    target = parse_store(store, corpus_dir=ROOT / "corpus")
    client = MilvusClient(target.uri)
    name = f"bench_sentences_{uuid.uuid4().hex[:8]}"
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("chunk", DataType.INT64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=embedder.dimension)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="IP")
    index.add_index("chunk", index_type="INVERTED")
    client.create_collection(name, schema=schema, index_params=index)
    started = time.perf_counter()
    texts = [(i, j, c.sentence_text(s)) for i, c in enumerate(data.chunks) for j, s in enumerate(c.sentences)]
    vectors = embedder.embed_documents([t for _, _, t in texts])
    embed_s = time.perf_counter() - started
    rows = [{"pk": f"{i}/{j}", "chunk": i, "vector": v.tolist()} for (i, j, _), v in zip(texts, vectors, strict=True)]
    for b in range(0, len(rows), 256):
        client.insert(name, rows[b : b + 256])
    client.flush(name)
    store_s = time.perf_counter() - started
    lazy_ms, read_ms = [], []
    for q in gold:
        hits = milvus.search(q.question, top_k=5)
        chunks = [milvus.scorer.position[h.chunk.chunk_id] for h in hits]
        fresh = LazySentenceVectors(data.chunks, data.sentence_offsets, embedder)
        lazy_ms.append(timed(lambda fresh=fresh, chunks=chunks: fresh.prefetch(chunks)))  # type: ignore[misc]
        read_ms.append(timed(lambda chunks=chunks: client.query(  # type: ignore[misc]
            name, filter=f"chunk in {chunks}", output_fields=["vector"], limit=1000)))  # fmt: skip
    client.drop_collection(name)
    print(f"\nsentence vectors for the answerer ({len(texts)} sentences in {len(data.chunks)} chunks):")
    print(f"  stored in a second collection: +{store_s:.1f} s index time ({embed_s:.1f} s of it embedding); "
          f"read per question p50 {percentiles(read_ms)[0]:.1f} ms, p95 {percentiles(read_ms)[1]:.1f} ms")  # fmt: skip
    print(f"  embedded at answer time (top-5 passages): p50 {percentiles(lazy_ms)[0]:.1f} ms, "
          f"p95 {percentiles(lazy_ms)[1]:.1f} ms per question (cold cache), no index time")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gold", type=Path, default=ROOT / "eval" / "gold" / "dev.jsonl")
    parser.add_argument("--store", help="an existing Milvus server (default: start milvus-lite on 127.0.0.1)")
    parser.add_argument("--skip-answers", action="store_true", help="builds and search latency only")
    args = parser.parse_args()
    gold = load_gold(args.gold)
    with tempfile.TemporaryDirectory(prefix="bench-milvus-") as tmp:
        server = None
        store = args.store
        if not store:
            from tests.milvus_server import MilvusLiteServer

            server = MilvusLiteServer(Path(tmp) / "milvus").start()
            store = server.url
        try:
            base = Settings.from_env(index_dir=Path(tmp) / "index")
            milvus_settings = base.replace(store=f"{store.rstrip('/')}/bench_{uuid.uuid4().hex[:8]}")
            embedder = SentenceTransformerEmbedder(base.embedding_model, batch_size=base.embedding_batch_size)
            embedder.embed_query("warm-up")  # the model load is left out of both build times
            builds = {}
            for label, settings in (("faiss", base.replace(store="")), ("milvus", milvus_settings)):
                started = time.perf_counter()
                report = Assistant.build(settings, embedder=embedder)
                full = time.perf_counter() - started
                started = time.perf_counter()
                Assistant.build(settings, embedder=embedder)
                builds[label] = (full, time.perf_counter() - started, report.chunks)
            faiss = Assistant.load(settings=base.replace(store=""), embedder=embedder)
            faiss_rrf = Assistant.load(settings=base.replace(store="", fusion="rrf"), embedder=embedder)
            started = time.perf_counter()
            milvus = Assistant.load(settings=milvus_settings, embedder=embedder)
            connect_s = time.perf_counter() - started
            judge = SupportJudge(embedder)
            answerable = sum(q.answerable for q in gold)
            print(f"{len(gold)} gold questions ({answerable} answerable), store {store}")
            for label, (full, again, chunks) in builds.items():
                print(
                    f"{label:7} build {full:.1f} s for {chunks} chunks (model loaded); unchanged re-index {again:.2f} s"
                )
            print(f"milvus  connect + load snapshot {connect_s:.2f} s")
            systems = {"faiss (score fusion, default)": faiss, "faiss (rrf)": faiss_rrf, "milvus (rrf)": milvus}
            if args.skip_answers:
                print(f"\n{'backend':30} {'hybrid search p50 / p95 ms':>28}")
                for label, assistant in systems.items():
                    r = latency(assistant, gold)
                    print(f"{label:30} {r['search_p50']:12.1f} / {r['search_p95']:7.1f}")
            else:
                rows = {label: evaluate(assistant, gold, judge) for label, assistant in systems.items()}
                head = f"{'R@5':>6} {'acc':>6} {'noans':>6} {'search p50/p95 ms':>18} {'answer p50/p95 ms':>18}"
                print(f"\n{'backend':30} {head}")
                for label, r in rows.items():
                    print(f"{label:30} {r['recall@5']:6.3f} {r['accuracy']:6.3f} {r['noans']:6.3f} "
                          f"{r['search_p50']:8.1f} /{r['search_p95']:7.1f} "
                          f"{r['answer_p50']:8.1f} /{r['answer_p95']:7.1f}")  # fmt: skip
                f, mv = rows["faiss (score fusion, default)"], rows["milvus (rrf)"]
                print(f"\nparity (milvus - faiss default): recall@5 {mv['recall@5'] - f['recall@5']:+.3f}, "
                      f"answer-key accuracy {mv['accuracy'] - f['accuracy']:+.3f} (target: within 0.03)")  # fmt: skip
            bm25_agreement(milvus, gold)
            sentence_vector_options(milvus, gold, store)
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
