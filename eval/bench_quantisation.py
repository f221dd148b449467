"""Which int8 recipe keeps retrieval quality: hybrid recall@1/@5 on a gold file per quantisation recipe.

    python eval/bench_quantisation.py [--gold eval/gold/dev.jsonl] [--index-dir index]

Reuses a built index (its chunks, BM25 and settings); for each recipe the chunk vectors and the query vectors
are recomputed with that ONNX model and swapped in, so only the embedding precision differs between rows.
Recipes: fp32 (the reference: the same vectors as sentence-transformers on torch), every MatMul in int8, and
int8 with the feed-forward down-projections kept in fp32 (the default, see onnx_embedder._down_projections).
Prints recall and the chunk-encoding seconds (noisy on a shared machine; compare within one run).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from assistant import Assistant, Settings
from assistant.evaluation.gold import GoldQuestion, load_gold
from assistant.evaluation.metrics import first_relevant_rank, recall_at
from assistant.index.embedder import resolve_model_path
from assistant.index.onnx_embedder import OnnxEmbedder, _down_projections, _quiet, export_onnx
from assistant.ingest.chunker import embedding_text


def quantise(fp32: Path, target: Path, *, keep_down_projections: bool) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    exclude = _down_projections(fp32) if keep_down_projections else []
    with _quiet():
        quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         nodes_to_exclude=exclude)  # fmt: skip
    return target


def load_for_swapping(description: str) -> tuple[Settings, list[GoldQuestion], Assistant]:
    """Options --gold and --index-dir: the settings, the gold file's answerable questions, the loaded index."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--gold", type=Path, default=Path(__file__).parent / "gold" / "dev.jsonl")
    parser.add_argument("--index-dir", type=Path, default=None, help="a built index (default: the configured one)")
    args = parser.parse_args()
    settings = Settings.from_env(**({"index_dir": args.index_dir} if args.index_dir else {}))
    return settings, [q for q in load_gold(args.gold) if q.answerable], Assistant.load(settings=settings)


def ranks_with(
    assistant: Assistant, vectors: np.ndarray, questions: list[GoldQuestion], mode: str = "hybrid"
) -> list[int | None]:
    """The evidence's rank for each question, searching with `vectors` swapped in as the chunk vectors."""
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(np.ascontiguousarray(vectors, dtype=np.float32))
    assistant.data.vectors = flat
    return [
        first_relevant_rank([h.chunk.text for h in assistant.search(q.question, top_k=10, mode=mode)], q.evidence)
        for q in questions
    ]


def main() -> None:
    settings, questions, assistant = load_for_swapping(__doc__.split("\n")[0])
    texts = [embedding_text(c) for c in assistant.data.chunks]
    reference = OnnxEmbedder(settings.embedding_model, precision="fp32")
    fp32 = export_onnx(resolve_model_path(settings.embedding_model), reference.model_file, precision="fp32")
    with tempfile.TemporaryDirectory() as tmp:
        recipes = {
            "fp32": fp32,
            "int8, every MatMul": quantise(fp32, Path(tmp) / "all.onnx", keep_down_projections=False),
            "int8, down-projections fp32 (default)": quantise(
                fp32, Path(tmp) / "keep.onnx", keep_down_projections=True
            ),
        }
        print(f"{'recipe':40} {'R@1':>6} {'R@5':>6} {'encode s':>9}")
        for name, model_file in recipes.items():
            embedder = OnnxEmbedder(settings.embedding_model, precision="fp32")
            embedder.model_file = model_file  # the recipe's file; prepare() graph-optimises it beside itself
            started = time.perf_counter()
            vectors = embedder.embed_documents(texts)
            seconds = time.perf_counter() - started
            assistant.embedder.embed_query = embedder.embed_query  # type: ignore[method-assign]
            ranks = ranks_with(assistant, vectors, questions)
            print(f"{name:40} {recall_at(ranks, 1):6.3f} {recall_at(ranks, 5):6.3f} {seconds:9.1f}", flush=True)


if __name__ == "__main__":
    main()
