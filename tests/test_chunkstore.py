"""The SQLite chunk store: round trip, lazy reads, threads, refusal of damage, and the builder's reuse through it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from assistant import Assistant, IndexCorruptError, Settings
from assistant.index import chunkstore
from assistant.index.builder import build_index
from assistant.index.store import FORMAT_VERSION, load_index
from assistant.types import Chunk, Document, Sentence
from tests.conftest import KeywordEmbedder


def _build_dir(settings: Settings) -> Path:
    return settings.index_dir / "builds" / json.loads((settings.index_dir / "CURRENT").read_text())["build"]


def _synthetic(n: int, per_doc: int = 7) -> tuple[dict[str, Document], list[Chunk]]:
    docs: dict[str, Document] = {}
    chunks: list[Chunk] = []
    for d in range((n + per_doc - 1) // per_doc):
        name = f"doc-{d}.txt"
        parts = [f"Sentence {i} of document {d} says {i * 7}." for i in range(per_doc)]
        text = " ".join(parts)
        docs[name] = Document(name, f"Title {d}", "2024-01-01", "", "0", text, (0,))
        pos = 0
        for i, part in enumerate(parts):
            if len(chunks) == n:
                break
            s = Sentence(0, len(part), pos, pos + len(part))
            chunks.append(Chunk(f"c{d}-{i}", name, f"Title {d}", "2024-01-01", "Part", 1, part, pos, pos + len(part),
                                (s,), 9, ()))  # fmt: skip
            pos += len(part) + 1
    return docs, chunks


def _store(tmp_path: Path, n: int) -> tuple[chunkstore.ChunkStore, dict[str, Document], list[Chunk]]:
    docs, chunks = _synthetic(n)
    offsets = np.arange(n + 1, dtype=np.int64)
    path = tmp_path / chunkstore.FILE
    chunkstore.write_store(path, docs, chunks, [() for _ in chunks], offsets)
    files = {name: {"chunks": sum(c.doc == name for c in chunks)} for name in docs}
    return chunkstore.open_store(path, tmp_path, files), docs, chunks


def test_round_trip_by_row_by_iteration_and_by_document(tmp_path: Path) -> None:
    store, docs, chunks = _store(tmp_path, 50)
    seq, mapping = chunkstore.ChunkSequence(store), chunkstore.DocumentMapping(store)
    assert len(seq) == 50 and seq[0] == chunks[0] and seq[-1] == chunks[-1] and seq[3:6] == chunks[3:6]
    assert list(seq) == chunks
    assert seq.of_doc("doc-2.txt") == [c for c in chunks if c.doc == "doc-2.txt"]
    assert dict(mapping) == docs and "doc-0.txt" in mapping and "ghost" not in mapping
    assert list(chunkstore.ValueSequence(store)) == [()] * 50
    with pytest.raises(IndexError):
        seq[50]
    with pytest.raises(KeyError):
        mapping["ghost"]
    assert store.offsets.tolist() == list(range(51))


def test_reads_are_lazy_and_the_cache_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunkstore, "FULL_CHECK_CHUNKS", 0)
    monkeypatch.setattr(chunkstore, "CACHE_SIZE", 16)
    store, _, chunks = _store(tmp_path, 200)
    seq = chunkstore.ChunkSequence(store)
    assert not store._chunks  # opening read no chunk record
    assert seq[123] == chunks[123] and list(store._chunks) == [123]
    for i in range(100):
        seq[i]
    assert len(store._chunks) == 16
    list(seq)  # a full pass streams past the cache
    assert len(store._chunks) == 16


def test_readers_in_threads_see_the_same_chunks(tmp_path: Path) -> None:
    store, _, chunks = _store(tmp_path, 300)
    seq = chunkstore.ChunkSequence(store)
    errors: list[BaseException] = []

    def read(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for i in rng.integers(0, 300, 400).tolist():
                assert seq[i] == chunks[i]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_readers_never_write_beside_the_file(settings: Settings, embedder: KeywordEmbedder) -> None:
    build_index(settings, embedder)
    path = _build_dir(settings) / chunkstore.FILE
    before = (path.read_bytes(), sorted(p.name for p in path.parent.iterdir()))
    assistant = Assistant.load(settings=settings, embedder=embedder)
    assistant.answer("Who was relocated?")
    assert (path.read_bytes(), sorted(p.name for p in path.parent.iterdir())) == before


def test_damage_past_the_full_check_is_refused_when_the_record_is_read(
    settings: Settings, embedder: KeywordEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_index(settings, embedder)
    path = _build_dir(settings) / chunkstore.FILE
    with sqlite3.connect(path) as con:
        con.execute("UPDATE chunks SET data = json_set(data, '$.start', 10000000) WHERE row = 1")
    con.close()
    manifest_path = path.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    blob = path.read_bytes()
    manifest["artifacts"][path.name] = {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexCorruptError, match="--rebuild"):
        load_index(settings.index_dir)  # small index: every record checked at load
    monkeypatch.setattr(chunkstore, "FULL_CHECK_CHUNKS", 0)
    data = load_index(settings.index_dir)  # large index: checked as read
    assert data.chunks[0].doc
    with pytest.raises(IndexCorruptError, match="--rebuild"):
        data.chunks[1]


def test_an_index_of_the_previous_format_is_refused_with_the_rebuild_hint(
    settings: Settings, embedder: KeywordEmbedder
) -> None:
    build_index(settings, embedder)
    manifest_path = _build_dir(settings) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = FORMAT_VERSION - 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexCorruptError, match=f"format {FORMAT_VERSION - 1}.*--rebuild"):
        load_index(settings.index_dir)


def test_an_incremental_build_reuses_unchanged_documents_through_the_store(
    settings: Settings, embedder: KeywordEmbedder
) -> None:
    build_index(settings, embedder)
    before = load_index(settings.index_dir)
    old = {c.chunk_id: (c, before.values[i]) for i, c in enumerate(before.chunks)}
    (settings.corpus_dir / "gamma.txt").write_text("Gamma covers readmission cooperation with 12 countries.\n")
    report = build_index(settings, embedder)
    assert report.added == ["gamma.txt"] and report.embedded_chunks == 1
    after = load_index(settings.index_dir)
    kept = [(c, after.values[i]) for i, c in enumerate(after.chunks) if c.doc != "gamma.txt"]
    assert kept and all(old[c.chunk_id] == (c, v) for c, v in kept)
    assert after.documents["gamma.txt"].text.startswith("Gamma covers")


def test_search_filters_read_document_and_date_columns_not_texts(
    settings: Settings, embedder: KeywordEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.retrieve import Filters

    build_index(settings, embedder)
    assistant = Assistant.load(settings=settings, embedder=embedder)
    chunks = assistant.data.chunks
    doc = chunks[0].doc
    expected = [c.chunk_id for c in chunks if c.doc == doc]
    monkeypatch.setattr(chunkstore.ChunkStore, "chunk_from", lambda *a: pytest.fail("read a chunk record"))
    allowed = assistant.retriever._allowed(Filters(docs=(doc,)))  # type: ignore[attr-defined]
    monkeypatch.undo()
    assert allowed is not None and [chunks[i].chunk_id for i in np.flatnonzero(allowed)] == expected
    hits = assistant.search("relocated persons", top_k=5, filters=Filters(docs=(doc,)))
    assert hits and all(h.chunk.doc == doc for h in hits)


def test_the_stored_record_is_the_chunks_own_dict() -> None:
    _, chunks = _synthetic(9)
    flagged = dataclasses.replace(chunks[0], flagged=(0,), page=None)
    for chunk in [*chunks, flagged]:
        assert json.dumps(chunkstore._record(chunk)) == json.dumps(chunk.to_dict())
        assert Chunk.from_dict(json.loads(json.dumps(chunkstore._record(chunk)))) == chunk


def test_rows_grouped_by_document_come_from_the_doc_column(tmp_path: Path) -> None:
    store, _, chunks = _store(tmp_path, 40)
    seq = chunkstore.ChunkSequence(store)
    assert seq.docs() == [c.doc for c in chunks]
    codes, pairs = seq.filter_keys()
    assert [pairs[c] for c in codes] == [(c.doc, c.date) for c in chunks]
