"""The sidebar's document list: titles and dates from the store, without reading the documents' texts."""

from __future__ import annotations

import pytest

from assistant import Settings
from assistant.catalog import DocumentInfo, list_documents
from assistant.index.builder import build_index
from assistant.index.store import load_index
from tests.conftest import KeywordEmbedder


def test_documents_are_listed_without_reading_their_records(
    settings: Settings, embedder: KeywordEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_index(settings, embedder)
    data = load_index(settings.index_dir)
    expected = sorted(
        (DocumentInfo(d.doc_id, d.title, d.date, d.reference) for d in data.documents.values()),
        key=lambda d: (d.date, d.doc_id),
    )

    def no_record(name: str) -> None:
        raise AssertionError(f"read the whole record of {name}")

    monkeypatch.setattr(data.documents.store, "document", no_record)  # type: ignore[attr-defined]
    assert list_documents(data.documents) == expected
    assert [d.doc_id for d in expected] == ["2023-05-02_beta.txt", "2024-01-10_alpha.md"]


def test_documents_of_another_store_are_listed_from_the_mapping(settings: Settings, embedder: KeywordEmbedder) -> None:
    build_index(settings, embedder)
    plain = dict(load_index(settings.index_dir).documents)  # what the Milvus store passes
    assert [d.doc_id for d in list_documents(plain)] == ["2023-05-02_beta.txt", "2024-01-10_alpha.md"]
