"""Chunk vectors pooled from sentence vectors (assistant.index.vectors)."""

from __future__ import annotations

import numpy as np
import pytest

from assistant import Settings
from assistant.index import builder, vectors
from assistant.index.builder import build_index
from assistant.index.vectors import POOL_POWER, ChunkVectors
from assistant.ingest.chunker import embedding_text
from assistant.types import Chunk, Sentence
from tests.conftest import KeywordEmbedder


def _chunk(cid: str, sentences: list[str]) -> Chunk:
    text, spans = "", []
    for s in sentences:
        start = len(text)
        text += s + " "
        spans.append(Sentence(start, start + len(s), start, start + len(s)))
    return Chunk(chunk_id=cid, doc="d.txt", title="Title", date="", section="Head", page=None, text=text.strip(),
                 start=0, end=len(text), sentences=tuple(spans), tokens=10)  # fmt: skip


def _progress(stage: str, done: int, total: int) -> None:
    pass


def test_a_chunk_vector_is_its_sentences_weighted_by_length_and_normalised() -> None:
    embedder = KeywordEmbedder()
    chunk = _chunk("a", ["Frontex returned people.", "The budget of the action is large and was agreed in May."])
    pooled = ChunkVectors(embedder, [chunk], _progress)
    sentence_vectors = embedder.embed_documents([chunk.sentence_text(s) for s in chunk.sentences])
    weights = np.array([(s.end - s.start) ** POOL_POWER for s in chunk.sentences], dtype=np.float32)
    expected = (sentence_vectors * weights[:, None]).sum(0)
    expected /= np.linalg.norm(expected)
    assert pooled.chunks.shape == (1, embedder.dimension)
    np.testing.assert_allclose(pooled.chunks[0], expected, atol=2e-3)  # sentence vectors are kept as float16
    np.testing.assert_allclose(pooled.sentences_of(0), sentence_vectors, atol=1e-3)
    # No chunk text is embedded: only its sentences.
    assert all(t in [chunk.sentence_text(s) for s in chunk.sentences] for t in embedder.embedded)


def test_a_sentence_repeated_across_chunks_is_embedded_once_and_each_chunk_gets_its_own_rows() -> None:
    embedder = KeywordEmbedder()
    chunks = [_chunk("a", ["Shared line.", "Only in a."]), _chunk("b", ["Only in b.", "Shared line."])]
    pooled = ChunkVectors(embedder, chunks, _progress)
    assert pooled.distinct_sentences == 3 and sorted(embedder.embedded) == ["Only in a.", "Only in b.", "Shared line."]
    np.testing.assert_array_equal(pooled.sentences_of(0)[0], pooled.sentences_of(1)[1])
    assert not np.allclose(pooled.chunks[0], pooled.chunks[1])


@pytest.mark.parametrize("block", [1, 2, 3, 4096])
def test_chunks_without_sentences_are_embedded_whole_wherever_they_fall_in_a_pooling_block(
    monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    chunks = [_chunk("a", ["First one."]), _chunk("e1", []), _chunk("b", ["Second one.", "More."]), _chunk("e2", [])]
    reference = ChunkVectors(KeywordEmbedder(), chunks, _progress).chunks  # one block
    monkeypatch.setattr(vectors, "_POOL_BLOCK", block)
    embedder = KeywordEmbedder()
    pooled = ChunkVectors(embedder, chunks, _progress)
    np.testing.assert_allclose(np.linalg.norm(pooled.chunks, axis=1), 1.0, atol=1e-5)
    for i in (1, 3):  # a chunk with no sentence (none come from the chunker) falls back to its whole text
        np.testing.assert_allclose(pooled.chunks[i], embedder.embed_documents([embedding_text(chunks[i])])[0])
    # The pooled rows do not depend on how the chunks were split into blocks.
    np.testing.assert_allclose(pooled.chunks, reference, atol=1e-6)


class _ThreadedEmbedder(KeywordEmbedder):
    """A keyword embedder that, like the ONNX one, can hand out a copy limited to some threads."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[int] = []

    def with_threads(self, threads: int) -> KeywordEmbedder:
        self.asked.append(threads)
        return self


class _WorkerParse:
    """ParseJob as when its worker process runs (the real worker is tested in test_index.py)."""

    in_worker = True

    def __init__(self, texts: list[str], **_: object) -> None:
        self.texts = texts

    def result(self) -> list[list[object]]:
        return [[] for _ in self.texts]

    def close(self) -> None:
        pass


@pytest.mark.parametrize(("in_worker", "expected"), [(True, [1]), (False, [])])
def test_the_build_encodes_on_one_core_fewer_while_the_parse_worker_runs(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, in_worker: bool, expected: list[int]
) -> None:
    monkeypatch.setattr(_WorkerParse, "in_worker", in_worker)
    monkeypatch.setattr(builder, "ParseJob", _WorkerParse)
    monkeypatch.setattr(builder.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    embedder = _ThreadedEmbedder()
    report = build_index(settings, embedder)
    assert report.wrote and embedder.asked == expected
