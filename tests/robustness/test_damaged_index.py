"""Damaged state: every tampered index file, field or pointer is refused at load with one message."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant import Assistant, Settings
from assistant.errors import IndexCorruptError, IndexMissingError
from assistant.index.builder import build_index
from assistant.index.store import load_index
from tests.conftest import KeywordEmbedder

HINT = "assistant index --rebuild"


def _build_dir(settings: Settings) -> Path:
    build = json.loads((settings.index_dir / "CURRENT").read_text())["build"]
    return settings.index_dir / "builds" / build


def _refused(settings: Settings, embedder: KeywordEmbedder) -> str:
    with pytest.raises((IndexCorruptError, IndexMissingError)) as info:
        Assistant.load(settings=settings, embedder=embedder)
    return str(info.value)


def _rewrite_json(path: Path, change: Callable[[Any], Any], *, reseal: bool) -> None:
    """Edit a JSON artifact; with `reseal`, recompute its checksum in the manifest as a careful attacker would."""
    data = json.loads(path.read_text())
    path.write_text(json.dumps(change(data)))
    if reseal and path.name != "manifest.json":
        manifest_path = path.parent / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        blob = path.read_bytes()
        manifest["artifacts"][path.name] = {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
        manifest_path.write_text(json.dumps(manifest))


def _reseal(path: Path) -> None:
    manifest_path = path.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    blob = path.read_bytes()
    manifest["artifacts"][path.name] = {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
    manifest_path.write_text(json.dumps(manifest))


def _rewrite_records(path: Path, table: str, change: Callable[[list[Any]], list[Any]]) -> None:
    """Edit the JSON records of one table of chunks.sqlite (the other columns stay), then reseal its checksum."""
    key = "row" if table == "chunks" else "doc_id"
    con = sqlite3.connect(path)
    with con:
        rows = con.execute(f"SELECT {key}, data FROM {table} ORDER BY rowid").fetchall()
        edited = change([json.loads(data) for _, data in rows])
        for (k, _), record in zip(rows, edited, strict=False):
            con.execute(f"UPDATE {table} SET data = ? WHERE {key} = ?", (json.dumps(record), k))
        for k, _ in rows[len(edited) :]:
            con.execute(f"DELETE FROM {table} WHERE {key} = ?", (k,))
    con.close()
    _reseal(path)


def _run_sql(path: Path, sql: str, args: tuple[Any, ...] = ()) -> None:
    con = sqlite3.connect(path)
    with con:
        con.execute(sql, args)
    con.close()
    _reseal(path)


@pytest.fixture(params=["full", "updated"])
def built(settings: Settings, embedder: KeywordEmbedder, request: pytest.FixtureRequest) -> Settings:
    """A whole build, or one made by an incremental update (assistant.index.update: rows moved, spans apart)."""
    if request.param == "updated":
        for i in range(6):
            (settings.corpus_dir / f"note{i}.txt").write_text(f"Note {i}: {i} officers deployed.\n", encoding="utf-8")
    build_index(settings, embedder)
    if request.param == "updated":
        (settings.corpus_dir / "note0.txt").unlink()
        (settings.corpus_dir / "note2.txt").write_text("Note 2, changed: screening starts.\n", encoding="utf-8")
        assert build_index(settings, embedder).write_mode == "incremental"
        assert load_index(settings.index_dir).sentence_starts is not None
    return settings


ARTIFACTS = ["manifest.json", "vectors.faiss", "sentences.npy", "chunks.sqlite", "bm25_data.npy", "bm25.json",
             "bm25_indices.npy", "bm25_indptr.npy", "bm25_tf.npy", "bm25_doclen.npy"]  # fmt: skip


@pytest.mark.parametrize("name", ARTIFACTS)
@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "empty", "garbage", "directory"])
def test_every_damaged_index_file_is_refused(
    built: Settings, embedder: KeywordEmbedder, name: str, damage: str
) -> None:
    path = _build_dir(built) / name
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        path.write_bytes(data[:-5] + bytes([data[-5] ^ 0xFF]) + data[-4:])
    elif damage == "delete":
        path.unlink()
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(b"\xff\xfe\x00garbage" * 10)
    else:
        path.unlink()
        path.mkdir()
    assert HINT in _refused(built, embedder)


MANIFEST_EDITS: list[Any] = [
    pytest.param(lambda m: {**m, "files": []}, id="files-list"),
    pytest.param(lambda m: {**m, "files": {k: "x" for k in m["files"]}}, id="file-entry-string"),
    pytest.param(lambda m: {**m, "files": {k: {"chunks": "2"} for k in m["files"]}}, id="chunks-string"),
    pytest.param(lambda m: {**m, "files": {k: {} for k in m["files"]}}, id="file-entry-empty"),
    pytest.param(lambda m: {**m, "artifacts": []}, id="artifacts-list"),
    pytest.param(lambda m: {**m, "artifacts": {k: 1 for k in m["artifacts"]}}, id="artifact-entry-int"),
    pytest.param(lambda m: {**m, "dimension": "64"}, id="dimension-string"),
    pytest.param(lambda m: {**m, "dimension": -1}, id="dimension-negative"),
    pytest.param(lambda m: {**m, "format_version": None}, id="format-null"),
    pytest.param(lambda m: {k: v for k, v in m.items() if k != "chunker"}, id="field-missing"),
    pytest.param(lambda m: {**m, "extra": 1}, id="field-unknown"),
    pytest.param(lambda m: [m], id="not-an-object"),
    pytest.param(lambda m: {**m, "embedding_fingerprint": 5}, id="fingerprint-int"),
]


@pytest.mark.parametrize("edit", MANIFEST_EDITS)
def test_damaged_manifest_fields_are_refused(built: Settings, embedder: KeywordEmbedder, edit: Any) -> None:
    _rewrite_json(_build_dir(built) / "manifest.json", edit, reseal=False)
    assert HINT in _refused(built, embedder)


CHUNK_EDITS: list[Any] = [
    pytest.param(lambda cs: [{**c, "doc": "ghost.md"} for c in cs], id="unknown-doc"),
    pytest.param(lambda cs: [{**c, "sentences": [[0, 10**6, 0, 10**6]]} for c in cs], id="sentence-out-of-range"),
    pytest.param(lambda cs: [{**c, "flagged": [99]} for c in cs], id="flag-out-of-range"),
    pytest.param(lambda cs: [{**c, "start": "0"} for c in cs], id="start-string"),
    pytest.param(lambda cs: [{**c, "text": 5} for c in cs], id="text-int"),
    pytest.param(lambda cs: [{k: v for k, v in c.items() if k != "doc"} for c in cs], id="field-missing"),
    pytest.param(lambda cs: [{**c, "bogus": 1} for c in cs], id="field-unknown"),
    pytest.param(lambda cs: cs[:-1], id="chunk-dropped"),
    pytest.param(lambda cs: ["{"] * len(cs), id="not-an-object"),
    pytest.param(lambda cs: [[1, 2]] * len(cs), id="chunk-not-object"),
]


@pytest.mark.parametrize("edit", CHUNK_EDITS)
def test_an_edited_chunks_file_with_a_recomputed_checksum_is_refused(
    built: Settings, embedder: KeywordEmbedder, edit: Any
) -> None:
    _rewrite_records(_build_dir(built) / "chunks.sqlite", "chunks", edit)
    assert HINT in _refused(built, embedder)


DOCUMENT_EDITS: list[Any] = [
    pytest.param(lambda ds: ds[:-1], id="document-dropped"),
    pytest.param(lambda ds: [{**d, "text": ""} for d in ds], id="text-emptied"),
    pytest.param(lambda ds: [{**d, "page_starts": "x"} for d in ds], id="pages-string"),
    pytest.param(lambda ds: [{**d, "title": None} for d in ds], id="title-null"),
    pytest.param(lambda ds: [5], id="document-not-object"),
]


@pytest.mark.parametrize("edit", DOCUMENT_EDITS)
def test_an_edited_documents_file_with_a_recomputed_checksum_is_refused(
    built: Settings, embedder: KeywordEmbedder, edit: Any
) -> None:
    _rewrite_records(_build_dir(built) / "chunks.sqlite", "documents", edit)
    assert HINT in _refused(built, embedder)


STORE_EDITS: list[Any] = [
    pytest.param("UPDATE chunks SET row = row + 1000 WHERE row = 0", id="rows-not-contiguous"),
    pytest.param("UPDATE chunks SET nsent = nsent + 1 WHERE row = 0", id="sentence-count"),
    pytest.param("UPDATE chunks SET vals = '{' WHERE row = 0", id="values-not-json"),
    pytest.param("UPDATE chunks SET vals = '[[1]]' WHERE row = 0", id="values-malformed"),
    pytest.param("UPDATE chunks SET doc = 'ghost.md' WHERE row = 0", id="doc-column"),
    pytest.param("UPDATE chunks SET date = '1999' WHERE row = 0", id="date-column"),
    pytest.param("UPDATE documents SET length = length + 1", id="document-length"),
    pytest.param("UPDATE meta SET value = x'00'", id="offsets-truncated"),
    pytest.param("DELETE FROM meta", id="offsets-missing"),
    pytest.param("DROP TABLE documents", id="table-dropped"),
]


SPAN_EDITS: list[Any] = [
    pytest.param(lambda spans, rows: spans + rows, id="past-the-end"),
    pytest.param(lambda spans, rows: spans[:, ::-1].copy(), id="reversed"),
    pytest.param(lambda spans, rows: spans - rows - 1, id="negative"),
    pytest.param(lambda spans, rows: np.stack([spans[:, 0], spans[:, 1] + 1], axis=1), id="one-sentence-more"),
]


@pytest.mark.parametrize("edit", SPAN_EDITS)
def test_edited_sentence_spans_with_a_recomputed_checksum_are_refused(
    built: Settings, embedder: KeywordEmbedder, edit: Any
) -> None:
    path = _build_dir(built) / "chunks.sqlite"
    con = sqlite3.connect(path)
    (blob,) = con.execute("SELECT value FROM meta WHERE key = 'sentence_spans'").fetchone()
    con.close()
    rows = np.load(_build_dir(built) / "sentences.npy").shape[0]
    spans = edit(np.frombuffer(blob, dtype="<i8").reshape(-1, 2), rows)
    _run_sql(path, "UPDATE meta SET value = ? WHERE key = 'sentence_spans'", (spans.astype("<i8").tobytes(),))
    assert HINT in _refused(built, embedder)


@pytest.mark.parametrize("sql", STORE_EDITS)
def test_an_edited_chunk_store_with_a_recomputed_checksum_is_refused(
    built: Settings, embedder: KeywordEmbedder, sql: str
) -> None:
    _run_sql(_build_dir(built) / "chunks.sqlite", sql)
    assert HINT in _refused(built, embedder)


@pytest.mark.parametrize(
    "pointer",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b'{"build": 5}', id="build-int"),
        pytest.param(b'{"build": ["a"]}', id="build-list"),
        pytest.param(b'["build"]', id="not-an-object"),
        pytest.param(b'{"build": "../../etc"}', id="path-escape"),
        pytest.param(b'{"build": "a\\u0000b"}', id="nul-byte"),
        pytest.param(b'{"build": ".tmp-x"}', id="hidden-build"),
        pytest.param(b'{"build": "missing"}', id="missing-build"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b'{"other": 1}', id="no-build-key"),
    ],
)
def test_a_damaged_current_pointer_is_refused(built: Settings, embedder: KeywordEmbedder, pointer: bytes) -> None:
    (built.index_dir / "CURRENT").write_bytes(pointer)
    assert HINT in _refused(built, embedder)


def test_a_current_pointer_that_is_a_directory_is_refused(built: Settings, embedder: KeywordEmbedder) -> None:
    (built.index_dir / "CURRENT").unlink()
    (built.index_dir / "CURRENT").mkdir()
    assert HINT in _refused(built, embedder)


def test_a_damaged_index_is_rebuilt_by_the_builder(built: Settings, embedder: KeywordEmbedder) -> None:
    shutil.rmtree(_build_dir(built))
    report = build_index(built, embedder)
    assert (report.wrote and any("not reused" in w for w in report.warnings)) or report.wrote
    Assistant.load(settings=built, embedder=embedder).answer("relocated?")
