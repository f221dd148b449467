"""Large-index machinery at toy size: the approximate-index switch, float16 memory-mapped sentence vectors."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from assistant import Settings
from assistant.core import Assistant
from assistant.index.ann import build_vector_index, exact_top_k, recall_at_k
from assistant.index.builder import build_index
from assistant.index.store import load_index

TOPICS = ["relocation", "returns", "visa", "borders", "asylum", "funding", "frontex", "talent"]


def _clustered(n: int, dim: int = 32, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, dim))
    vectors = centres[rng.integers(0, 20, n)] + 0.5 * rng.normal(size=(n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_below_the_threshold_the_index_is_exact() -> None:
    index, info = build_vector_index(_clustered(500), threshold=1000)
    assert info == {"kind": "flat"} and isinstance(index, faiss.IndexFlatIP)


def test_above_the_threshold_an_ivf_index_with_measured_nprobe() -> None:
    vectors = _clustered(3000)
    index, info = build_vector_index(vectors, threshold=1000)
    assert info["kind"] == "ivf-sq8" and info["nlist"] == 219
    assert info["recall_at_10"] >= 0.96 or info["nprobe"] == max(int(k) for k in info["recall_by_nprobe"])
    queries = vectors[:50] + 0.01
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    _, found = index.search(queries, 10)
    assert recall_at_k(found, exact_top_k(vectors, queries, 10)) >= 0.9


def test_an_update_keeps_the_ivf_training_unless_much_changed() -> None:
    vectors = _clustered(3000)
    index, info = build_vector_index(vectors, threshold=1000)
    updated = vectors.copy()
    updated[:100] = _clustered(3100)[3000:]  # new vectors from the same topics (the lists fit them)
    again, again_info = build_vector_index(updated, threshold=1000, previous=index, previous_info=info, changed=100)
    assert again_info["training"].startswith("reused") and again.ntotal == 3000
    lists = faiss.extract_index_ivf(index).quantizer
    np.testing.assert_array_equal(faiss.extract_index_ivf(again).quantizer.reconstruct_n(0, lists.ntotal),
                                  lists.reconstruct_n(0, lists.ntotal))  # fmt: skip
    queries = updated[:50] + 0.01
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    _, found = again.search(queries, 10)
    assert recall_at_k(found, exact_top_k(updated, queries, 10)) >= 0.9
    _, retrained = build_vector_index(updated, threshold=1000, previous=index, previous_info=info, changed=1500)
    assert retrained["training"] == "trained"


def _many_chunks_corpus(root: Path) -> Path:
    corpus = root / "corpus"
    corpus.mkdir()
    for i in range(6):
        paragraphs = [
            f"## Part {j}\n\nThe {TOPICS[(i + j) % 8]} programme in region {i}-{j} reached {100 + 7 * j} people. "
            f"Officials reviewed {TOPICS[j % 8]} cases and {TOPICS[(j + 3) % 8]} budgets in {2020 + j % 5}."
            for j in range(12)
        ]
        (corpus / f"2024-0{1 + i % 9}-1{i}_doc{i}.md").write_text(f"# Document {i}\n\n" + "\n\n".join(paragraphs))
    return corpus


def test_the_builder_switches_to_ivf_past_the_setting_and_still_updates(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    corpus = _many_chunks_corpus(tmp_path)
    settings = Settings.from_env(
        environ={}, corpus_dir=corpus, index_dir=tmp_path / "index", chunk_max_tokens=64, ann_threshold=20
    )
    report = build_index(settings, embedder)
    assert report.chunks >= 20
    data = load_index(settings.index_dir, expect_fingerprint=embedder.fingerprint)
    info = data.manifest.vector_index
    assert info["kind"] == "ivf-sq8" and faiss.extract_index_ivf(data.vectors).nprobe == info["nprobe"]
    assert data.sentence_vectors.dtype == np.float16 and isinstance(data.sentence_vectors, np.memmap)
    hits = Assistant.load(settings=settings, embedder=embedder).search("relocation programme region 2-3", top_k=3)
    assert hits and "relocation" in hits[0].chunk.text.lower()
    # An incremental update reuses the other documents' vectors out of the IVF index.
    changed = sorted(corpus.iterdir())[0]
    changed.write_text(changed.read_text() + "\n\n## Extra\n\nA new paragraph about visa waivers.\n")
    report = build_index(settings, embedder)
    assert report.changed == [changed.name] and len(report.unchanged) == 5
    assert 0 < report.embedded_chunks < report.chunks // 3
    info = load_index(settings.index_dir).manifest.vector_index
    assert info["kind"] == "ivf-sq8"
    assert info["training"] == (
        "trained" if report.embedded_chunks > report.chunks // 4 else "reused from the previous build"
    )


def test_small_indexes_stay_exact_and_sentence_vectors_are_float16(settings: Settings, embedder) -> None:  # type: ignore[no-untyped-def]
    build_index(settings, embedder)
    data = load_index(settings.index_dir, expect_fingerprint=embedder.fingerprint)
    assert data.manifest.vector_index == {"kind": "flat"}
    assert data.sentence_vectors.dtype == np.float16
    row = np.asarray(data.sentence_vectors[0], dtype=np.float32)
    assert abs(float(np.linalg.norm(row)) - 1.0) < 2e-3
    assert faiss.omp_get_max_threads() == 1  # one thread per query once an index is loaded
