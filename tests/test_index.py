from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from assistant import Assistant, IndexCorruptError, IndexMissingError, QueryError, Settings
from assistant.index.builder import build_index
from assistant.index.store import CURRENT, load_index, read_manifest
from tests.conftest import KeywordEmbedder


def _build_dir(settings: Settings) -> Path:
    return read_manifest(settings.index_dir)[1]


def test_reindex_skips_unchanged_files(settings: Settings, embedder: KeywordEmbedder) -> None:
    first = build_index(settings, embedder)
    assert first.wrote and first.documents == 2 and len(first.added) == 2
    embedder.embedded.clear()
    second = build_index(settings, embedder)
    assert not second.wrote and embedder.embedded == [] and second.chunks == first.chunks


def test_reindex_embeds_only_changed_and_new_files_and_drops_deleted(
    settings: Settings, embedder: KeywordEmbedder
) -> None:
    build_index(settings, embedder)
    before = {c.chunk_id: c for c in load_index(settings.index_dir).chunks}
    (settings.corpus_dir / "2024-01-10_alpha.md").write_text("# Alpha\n\nA wholly new text about visas.\n")
    (settings.corpus_dir / "2023-05-02_beta.txt").unlink()
    (settings.corpus_dir / "gamma.txt").write_text("Gamma covers readmission cooperation.\n")
    embedder.embedded.clear()
    report = build_index(settings, embedder)
    assert report.changed == ["2024-01-10_alpha.md"] and report.added == ["gamma.txt"]
    assert report.removed == ["2023-05-02_beta.txt"]
    data = load_index(settings.index_dir)
    assert {c.doc for c in data.chunks} == {"2024-01-10_alpha.md", "gamma.txt"}
    assert not any("6012" in c.text or "GIZ" in c.text for c in data.chunks)  # no stale chunk
    assert len({c.chunk_id for c in data.chunks}) == len(data.chunks)  # no duplicate
    assert all("visas" in t or "readmission" in t or "Alpha" in t for t in embedder.embedded)
    assert data.vectors.ntotal == len(data.chunks)
    assert set(before).isdisjoint({c.chunk_id for c in data.chunks if c.doc == "2024-01-10_alpha.md"})


def test_unchanged_files_keep_their_vectors(settings: Settings, embedder: KeywordEmbedder) -> None:
    build_index(settings, embedder)
    old = load_index(settings.index_dir)
    old_vectors = {c.chunk_id: old.vectors.reconstruct(i) for i, c in enumerate(old.chunks)}
    (settings.corpus_dir / "gamma.txt").write_text("Gamma covers readmission cooperation.\n")
    build_index(settings, embedder)
    new = load_index(settings.index_dir)
    for i, chunk in enumerate(new.chunks):
        if chunk.chunk_id in old_vectors:
            np.testing.assert_array_equal(new.vectors.reconstruct(i), old_vectors[chunk.chunk_id])


def test_a_truncated_vector_file_is_refused(settings: Settings, embedder: KeywordEmbedder) -> None:
    build_index(settings, embedder)
    vectors = _build_dir(settings) / "vectors.faiss"
    vectors.write_bytes(vectors.read_bytes()[:-100])
    with pytest.raises(IndexCorruptError, match="--rebuild"):
        load_index(settings.index_dir)


def test_edited_chunk_metadata_is_refused(settings: Settings, embedder: KeywordEmbedder) -> None:
    build_index(settings, embedder)
    with sqlite3.connect(_build_dir(settings) / "chunks.sqlite") as con:
        con.execute("UPDATE chunks SET data = replace(data, '6012', '9999')")
    con.close()
    with pytest.raises(IndexCorruptError, match="damaged"):
        load_index(settings.index_dir)


def test_an_index_from_another_model_is_refused(settings: Settings, embedder: KeywordEmbedder) -> None:
    build_index(settings, embedder)
    with pytest.raises(IndexCorruptError, match="fingerprint"):
        Assistant.load(settings=settings, embedder=KeywordEmbedder(fingerprint="other-weights"))


def test_an_index_of_another_format_is_refused(settings: Settings, embedder: KeywordEmbedder) -> None:
    build_index(settings, embedder)
    manifest = _build_dir(settings) / "manifest.json"
    data = json.loads(manifest.read_text())
    data["format_version"] = 999
    manifest.write_text(json.dumps(data))
    with pytest.raises(IndexCorruptError, match="format 999"):
        load_index(settings.index_dir)


def test_a_missing_index_says_how_to_build_one(tmp_path: Path, embedder: KeywordEmbedder) -> None:
    with pytest.raises(IndexMissingError, match="assistant index"):
        Assistant.load(tmp_path / "nowhere", embedder=embedder)


class _FailingEmbedder(KeywordEmbedder):
    def embed_documents(self, texts):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt  # as if the person pressed Ctrl-C mid-build


def test_an_interrupted_build_leaves_the_previous_index_usable(settings: Settings, embedder: KeywordEmbedder) -> None:
    build_index(settings, embedder)
    pointer = (settings.index_dir / CURRENT).read_text()
    (settings.corpus_dir / "gamma.txt").write_text("Gamma covers readmission cooperation.\n")
    with pytest.raises(KeyboardInterrupt):
        build_index(settings, _FailingEmbedder())
    assert (settings.index_dir / CURRENT).read_text() == pointer
    assert len(load_index(settings.index_dir).chunks) > 0
    assert not [p for p in (settings.index_dir / "builds").iterdir() if p.name.startswith(".tmp")]


def test_rebuild_after_corruption_recovers(settings: Settings, embedder: KeywordEmbedder) -> None:
    build_index(settings, embedder)
    (_build_dir(settings) / "chunks.sqlite").write_text("[")
    report = build_index(settings, embedder, rebuild=True)
    assert report.wrote and load_index(settings.index_dir).chunks


@pytest.fixture
def loaded(settings: Settings, embedder: KeywordEmbedder) -> Assistant:
    build_index(settings, embedder)
    return Assistant.load(settings=settings, embedder=embedder)


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_search_finds_the_passage_in_every_mode(loaded: Assistant, mode: str) -> None:
    hits = loaded.search("Who implements the Talent Partnership in Pakistan?", top_k=2, mode=mode)
    assert hits[0].chunk.doc == "2023-05-02_beta.txt" and "GIZ" in hits[0].chunk.text
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))


@pytest.mark.parametrize("query", ["", "   \n\t"])
def test_an_empty_query_is_a_clear_error(loaded: Assistant, query: str) -> None:
    with pytest.raises(QueryError, match="empty"):
        loaded.search(query)


def test_a_100kb_query_is_truncated_not_crashed_on(loaded: Assistant) -> None:
    hits = loaded.search("relocated persons " * 6000, top_k=3)
    assert hits and len("relocated persons " * 6000) > 100_000


def test_filters_restrict_documents_and_dates(loaded: Assistant) -> None:
    from assistant import Filters

    only_beta = loaded.search("relocated persons", filters=Filters(docs=("2023-05-02_beta.txt",)))
    assert only_beta and {h.chunk.doc for h in only_beta} == {"2023-05-02_beta.txt"}
    recent = loaded.search("relocated persons", filters=Filters(date_from="2024-01-01"))
    assert recent and {h.chunk.date for h in recent} == {"2024-01-10"}


def test_invalid_top_k_and_mode_are_clear_errors(loaded: Assistant) -> None:
    with pytest.raises(QueryError, match="top_k"):
        loaded.search("relocation", top_k=0)
    with pytest.raises(QueryError, match="mode"):
        loaded.search("relocation", mode="magic")
