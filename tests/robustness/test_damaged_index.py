"""Damaged state: every tampered index file, field or pointer is refused at load with one message."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from assistant import Assistant, Settings
from assistant.errors import IndexCorruptError, IndexMissingError
from assistant.index.builder import build_index
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


@pytest.fixture
def built(settings: Settings, embedder: KeywordEmbedder) -> Settings:
    build_index(settings, embedder)
    return settings


ARTIFACTS = ["manifest.json", "vectors.faiss", "sentences.npy", "chunks.json", "documents.json"]


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
    pytest.param(lambda cs: {"chunks": cs}, id="not-a-list"),
    pytest.param(lambda cs: [[1, 2]] * len(cs), id="chunk-not-object"),
]


@pytest.mark.parametrize("edit", CHUNK_EDITS)
def test_an_edited_chunks_file_with_a_recomputed_checksum_is_refused(
    built: Settings, embedder: KeywordEmbedder, edit: Any
) -> None:
    _rewrite_json(_build_dir(built) / "chunks.json", edit, reseal=True)
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
    _rewrite_json(_build_dir(built) / "documents.json", edit, reseal=True)
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
