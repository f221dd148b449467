"""Incremental updates (assistant.index.update): the same search results as a fresh build, only new rows written."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np
import pytest

from assistant import Assistant, Settings
from assistant.index import chunkstore, termstats, update
from assistant.index.builder import build_index
from assistant.index.store import load_index
from tests.conftest import KeywordEmbedder, write_small_corpus

# A small migration-policy vocabulary (generic words, no phrase of the corpus).
WORDS = [
    "relocation", "asylum", "border", "visa", "return", "readmission", "funding", "partnership", "frontex",
    "schengen", "solidarity", "mechanism", "commission", "council", "member", "states", "applicants", "reception",
    "integration", "labour", "migration", "smuggling", "route", "mediterranean", "balkan", "pact", "screening",
    "procedure", "eurodac", "resettlement", "talent", "mobility", "protection",
]  # fmt: skip
QUERIES = [
    "relocation solidarity mechanism",
    "visa border schengen screening",
    "funding for reception and integration",
    "return and readmission partnership",
    "talent mobility labour migration",
    "eurodac screening procedure pact",
    "smuggling route mediterranean",
]
MODES = ("dense", "bm25", "hybrid")


def _write_doc(corpus: Path, name: str, seed: int, paragraphs: int) -> None:
    rng = np.random.default_rng(seed)
    parts = [f"Report {name}"]
    for _ in range(paragraphs):
        sentences = [" ".join(rng.choice(WORDS, size=int(rng.integers(6, 14)))).capitalize() + "." for _ in range(3)]
        parts.append(" ".join(sentences))
    (corpus / name).write_text("\n\n".join(parts) + "\n", encoding="utf-8")


@pytest.fixture
def corpus_settings(settings: Settings) -> Settings:
    for i in range(6):
        _write_doc(settings.corpus_dir, f"doc-{i}.txt", seed=i, paragraphs=3 + i % 3)
    return settings


def _fresh(settings: Settings, tmp: Path) -> Settings:
    return dataclasses.replace(settings, index_dir=tmp / f"fresh-{len(list(tmp.glob('fresh-*')))}")


def _results(settings: Settings, embedder: KeywordEmbedder) -> dict[tuple[str, str], dict[str, float]]:
    assistant = Assistant.load(settings=settings, embedder=embedder)
    return {
        (mode, q): {h.chunk.chunk_id: h.score for h in assistant.search(q, top_k=1000, mode=mode)}
        for mode in MODES
        for q in QUERIES
    }


def _assert_same_as_fresh(settings: Settings, embedder: KeywordEmbedder, tmp: Path) -> None:
    fresh = _fresh(settings, tmp)
    report = build_index(fresh, embedder)
    assert report.write_mode == "full"
    got, want = _results(settings, embedder), _results(fresh, embedder)
    for key, expected in want.items():
        assert got[key].keys() == expected.keys(), key
        ids = sorted(expected)
        np.testing.assert_allclose([got[key][i] for i in ids], [expected[i] for i in ids], rtol=1e-5, atol=1e-6)
    mine, theirs = load_index(settings.index_dir), load_index(fresh.index_dir)
    assert sorted(c.chunk_id for c in mine.chunks) == sorted(c.chunk_id for c in theirs.chunks)
    # The answerer's stored statistics (written by the update from the previous ones) equal a count over the chunks.
    stored, counted = termstats.load(mine), termstats.compute(mine.chunks)
    assert stored is not None and stored.chunks == counted.chunks
    assert stored.df == counted.df and dict(stored.positions) == counted.positions
    # Sentence vectors and parse values follow their chunks wherever the rows went.
    by_id = {c.chunk_id: i for i, c in enumerate(theirs.chunks)}
    for row, chunk in enumerate(mine.chunks):
        other = by_id[chunk.chunk_id]
        np.testing.assert_array_equal(mine.sentence_vectors[mine.sentence_rows(row)],
                                      theirs.sentence_vectors[theirs.sentence_rows(other)])  # fmt: skip
        assert mine.values[row] == theirs.values[other]
        assert mine.documents[chunk.doc] == theirs.documents[chunk.doc]


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda c: _write_doc(c, "doc-9.txt", seed=9, paragraphs=4), id="add"),
        pytest.param(lambda c: _write_doc(c, "doc-2.txt", seed=22, paragraphs=2), id="change-shorter"),
        pytest.param(lambda c: _write_doc(c, "doc-0.txt", seed=20, paragraphs=7), id="change-longer"),
        pytest.param(lambda c: (c / "doc-1.txt").unlink(), id="remove"),
    ],
)
def test_an_incremental_update_searches_as_a_fresh_build(corpus_settings: Settings, embedder: KeywordEmbedder,
                                                         tmp_path: Path, edit) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    build_index(corpus_settings, embedder)
    edit(corpus_settings.corpus_dir)
    report = build_index(corpus_settings, embedder)
    assert report.write_mode == "incremental", report.full_reason
    _assert_same_as_fresh(corpus_settings, embedder, tmp_path)


def test_repeated_updates_then_compaction_search_as_a_fresh_build(
    corpus_settings: Settings, embedder: KeywordEmbedder, tmp_path: Path
) -> None:
    build_index(corpus_settings, embedder)
    modes = []
    for step in range(8):
        _write_doc(corpus_settings.corpus_dir, f"doc-{step % 3}.txt", seed=100 + step, paragraphs=3 + step % 2)
        if step == 3:
            _write_doc(corpus_settings.corpus_dir, "doc-new.txt", seed=7, paragraphs=2)
        report = build_index(corpus_settings, embedder)
        modes.append(report.write_mode)
        if report.write_mode == "full":
            assert "removed chunks" in report.full_reason
        data = load_index(corpus_settings.index_dir)
        live = int(data.sentence_offsets[-1])
        # Unreferenced sentence rows never pass the compaction fraction.
        assert (data.sentence_vectors.shape[0] - live) / data.sentence_vectors.shape[0] <= update.COMPACT_FRACTION
    assert modes[0] == "incremental" and "full" in modes and modes.index("full") > 0
    _assert_same_as_fresh(corpus_settings, embedder, tmp_path)
    assert load_index(corpus_settings.index_dir).sentence_starts is None or modes[-1] == "incremental"


def test_chunks_of_removed_and_changed_documents_are_never_returned(
    corpus_settings: Settings, embedder: KeywordEmbedder
) -> None:
    for i in range(10, 14):  # more documents: what is removed below stays under the compaction fraction
        _write_doc(corpus_settings.corpus_dir, f"doc-{i}.txt", seed=i, paragraphs=4)
    build_index(corpus_settings, embedder)
    old = {c.chunk_id for c in load_index(corpus_settings.index_dir).chunks if c.doc in ("doc-1.txt", "doc-4.txt")}
    (corpus_settings.corpus_dir / "doc-1.txt").unlink()
    _write_doc(corpus_settings.corpus_dir, "doc-4.txt", seed=44, paragraphs=1)
    assert build_index(corpus_settings, embedder).write_mode == "incremental"
    assistant = Assistant.load(settings=corpus_settings, embedder=embedder)
    for mode in MODES:
        for q in QUERIES:
            assert not old & {h.chunk.chunk_id for h in assistant.search(q, top_k=1000, mode=mode)}
    data = load_index(corpus_settings.index_dir)
    assert data.vectors.ntotal == len(data.chunks) == data.lexical.num_docs
    assert "doc-1.txt" not in data.documents and not old & {c.chunk_id for c in data.chunks}


def test_an_update_reads_no_chunk_of_an_unchanged_document(
    corpus_settings: Settings, embedder: KeywordEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_index(corpus_settings, embedder)
    monkeypatch.setattr(chunkstore, "FULL_CHECK_CHUNKS", 0)  # the load-time check of small indexes reads them all
    decoded: list[str] = []
    chunk_from = chunkstore.ChunkStore.chunk_from

    def counting(self, row, doc, *args):  # type: ignore[no-untyped-def]
        decoded.append(doc)
        return chunk_from(self, row, doc, *args)

    values = chunkstore.decode
    decoded_values: list[int] = []
    monkeypatch.setattr(chunkstore.ChunkStore, "chunk_from", counting)
    monkeypatch.setattr(chunkstore, "decode", lambda rows: decoded_values.append(len(rows)) or values(rows))
    documents: list[str] = []
    document = chunkstore.ChunkStore.document
    monkeypatch.setattr(
        chunkstore.ChunkStore, "document", lambda self, name: documents.append(name) or document(self, name)
    )
    _write_doc(corpus_settings.corpus_dir, "doc-3.txt", seed=33, paragraphs=2)
    _write_doc(corpus_settings.corpus_dir, "doc-8.txt", seed=8, paragraphs=2)
    report = build_index(corpus_settings, embedder)
    assert report.write_mode == "incremental" and report.changed == ["doc-3.txt"] and report.added == ["doc-8.txt"]
    # Only the changed document's old chunks are read (their terms leave the answerer's statistics).
    assert set(decoded) <= {"doc-3.txt"} and decoded_values == [] and documents == []


def test_an_update_reports_what_a_full_build_reports(corpus_settings: Settings, embedder: KeywordEmbedder,
                                                     tmp_path: Path) -> None:  # fmt: skip
    build_index(corpus_settings, embedder)
    _write_doc(corpus_settings.corpus_dir, "doc-9.txt", seed=9, paragraphs=4)
    (corpus_settings.corpus_dir / "doc-2.txt").unlink()
    report = build_index(corpus_settings, embedder)
    fresh = build_index(_fresh(corpus_settings, tmp_path), embedder)
    assert report.write_mode == "incremental"
    for field in ("documents", "chunks", "mean_tokens", "max_tokens", "flagged"):
        assert getattr(report, field) == getattr(fresh, field), field


def test_a_big_removal_compacts_instead(corpus_settings: Settings, embedder: KeywordEmbedder, tmp_path: Path) -> None:
    build_index(corpus_settings, embedder)
    for name in ("doc-2.txt", "doc-4.txt", "doc-5.txt"):
        (corpus_settings.corpus_dir / name).unlink()
    report = build_index(corpus_settings, embedder)
    assert report.write_mode == "full" and "removed chunks" in report.full_reason
    assert load_index(corpus_settings.index_dir).sentence_starts is None
    _assert_same_as_fresh(corpus_settings, embedder, tmp_path)


@pytest.mark.parametrize(
    ("count", "dropped", "new"),
    [
        (10, [], 3),
        (10, [2, 3], 2),
        (10, [2, 3, 9], 1),
        (10, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 0),
        (5, [4], 0),
        (6, [0, 5], 0),
        (8, [1, 2], 5),
        (0, [], 2),
    ],
)
def test_row_plans_keep_rows_contiguous(count: int, dropped: list[int], new: int) -> None:
    plan = update.plan_rows(count, np.asarray(dropped, dtype=np.int64), new)
    assert plan.count == count - len(dropped) + new
    kept = plan.remap[plan.remap >= 0]
    assert sorted([*kept.tolist(), *plan.rows.tolist()]) == list(range(plan.count))
    assert all(plan.remap[d] == -1 for d in dropped)
    assert all(plan.remap[a] == b for a, b in plan.moves)
    assert all(plan.remap[r] == r for r in range(count) if r not in dropped and r not in dict(plan.moves))


def test_an_approximate_index_is_updated_without_retraining(
    corpus_settings: Settings, embedder: KeywordEmbedder, tmp_path: Path
) -> None:
    settings = dataclasses.replace(corpus_settings, ann_threshold=16)
    for i in range(10, 18):  # enough chunks to train 16 lists
        _write_doc(settings.corpus_dir, f"doc-{i}.txt", seed=i, paragraphs=4)
    build_index(settings, embedder)
    before = load_index(settings.index_dir)
    assert before.manifest.vector_index["kind"] == "ivf-sq8"
    stored = {c.chunk_id: before.vectors.reconstruct(i) for i, c in enumerate(before.chunks)}
    removed = {c.chunk_id for c in before.chunks if c.doc == "doc-0.txt"}
    _write_doc(settings.corpus_dir, "doc-0.txt", seed=50, paragraphs=1)  # fewer chunks: rows move down
    report = build_index(settings, embedder)
    assert report.write_mode == "incremental", report.full_reason
    after = load_index(settings.index_dir)
    info = after.manifest.vector_index
    assert info["training"] == "reused from the previous build" and info["changed_since_training"] > 0
    faiss.extract_index_ivf(after.vectors).nprobe = info["nlist"]  # every list: the exact answer over the codes
    for i, chunk in enumerate(after.chunks):
        assert chunk.chunk_id not in removed
        if chunk.chunk_id in stored:  # unchanged chunks keep their stored codes, wherever their row went
            np.testing.assert_array_equal(after.vectors.reconstruct(i), stored[chunk.chunk_id])
    for q in QUERIES:
        vector = embedder.embed_query(q).reshape(1, -1)
        scores, ids = after.vectors.search(vector, 5)
        for score, row in zip(scores[0], ids[0], strict=True):
            assert abs(float(score) - float(vector[0] @ after.vectors.reconstruct(int(row)))) < 1e-4
    fresh = _fresh(settings, tmp_path)
    build_index(fresh, embedder)
    got, want = _results(settings, embedder), _results(fresh, embedder)
    for q in QUERIES:  # BM25 does not depend on the vector index: equal to the fresh build's
        assert got[("bm25", q)].keys() == want[("bm25", q)].keys()


def _builds(settings: Settings) -> Iterator[Path]:
    yield from (settings.index_dir / "builds").iterdir()


def test_a_failed_update_leaves_the_previous_index_and_no_temporary_build(
    corpus_settings: Settings, embedder: KeywordEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_index(corpus_settings, embedder)
    pointer = (corpus_settings.index_dir / "CURRENT").read_text()
    _write_doc(corpus_settings.corpus_dir, "doc-9.txt", seed=9, paragraphs=2)

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("disk full")

    monkeypatch.setattr(chunkstore, "update_store", broken)
    with pytest.raises(OSError):
        build_index(corpus_settings, embedder)
    assert (corpus_settings.index_dir / "CURRENT").read_text() == pointer
    assert not [p for p in _builds(corpus_settings) if p.name.startswith(".tmp")]
    assert "doc-9.txt" not in load_index(corpus_settings.index_dir).documents


@pytest.mark.slow
def test_with_the_real_model_an_update_searches_as_a_full_build(
    tmp_path: Path, real_embedder, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The real (int8 ONNX) model's vectors depend slightly on the batch a text is embedded in (dynamic
    quantisation: cosine 0.996 between a sentence embedded alone and in a batch), so a fresh build's vectors differ
    from those an earlier build kept. The update is therefore compared with a full write from the same previous
    index (the same vectors) in every mode, and with a fresh build in BM25, which does not depend on the model."""
    corpus = write_small_corpus(tmp_path / "corpus")
    beta = (corpus / "2023-05-02_beta.txt").read_text(encoding="utf-8")
    (corpus / "2023-05-02_beta.txt").unlink()
    for i in range(3):
        _write_doc(corpus, f"doc-{i}.txt", seed=i, paragraphs=3)
    settings = Settings.from_env(environ={}, corpus_dir=corpus, index_dir=tmp_path / "index")
    build_index(settings, real_embedder)
    shutil.copytree(settings.index_dir, tmp_path / "full")
    (corpus / "2023-05-02_beta.txt").write_text(beta, encoding="utf-8")  # added
    _write_doc(corpus, "doc-1.txt", seed=11, paragraphs=2)  # changed
    report = build_index(settings, real_embedder)
    assert report.write_mode == "incremental" and report.added == ["2023-05-02_beta.txt"]
    full = dataclasses.replace(settings, index_dir=tmp_path / "full")
    monkeypatch.setattr(update, "COMPACT_FRACTION", -1.0)  # every update a full write (a compaction)
    assert build_index(full, real_embedder).write_mode == "full"
    got, want = _results(settings, real_embedder), _results(full, real_embedder)
    fresh = _fresh(settings, tmp_path)
    build_index(fresh, real_embedder)
    lexical = _results(fresh, real_embedder)
    for key, expected in want.items():
        assert got[key].keys() == expected.keys(), key
        ids = sorted(expected)
        np.testing.assert_allclose([got[key][i] for i in ids], [expected[i] for i in ids], rtol=1e-5, atol=1e-6)
        if key[0] == "bm25":
            assert lexical[key] == pytest.approx(got[key], rel=1e-5)
    hits = Assistant.load(settings=settings, embedder=real_embedder).search(
        "Who implements the Talent Partnership in Pakistan?", top_k=1, mode="hybrid"
    )
    assert hits[0].chunk.doc == "2023-05-02_beta.txt"
