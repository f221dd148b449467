"""The index on disk: a FAISS file, JSON metadata and a manifest of checksums. Never pickle.

Layout of an index directory:
    CURRENT                 {"build": "<id>"}; replaced atomically, so readers see the old or the new build
    builds/<id>/manifest.json
    builds/<id>/vectors.faiss   chunk vectors (inner product over L2-normalised vectors): exact, or IVF-SQ8
                                above Settings.ann_threshold chunks (assistant.index.ann; manifest "vector_index")
    builds/<id>/sentences.npy   one float16 vector per chunk sentence, in chunk order (for answering; plain .npy,
                                written and read with allow_pickle=False, memory-mapped when loaded)
    builds/<id>/chunks.json     chunk metadata and text
    builds/<id>/documents.json  document metadata and clean text (for verbatim quotes)
    builds/<id>/bm25*.{json,npy} the lexical index (assistant.index.lexical), memory-mapped when loaded

A build is written into its own directory and only then published by replacing CURRENT, so a crash or
Ctrl-C mid-build leaves the previous index usable; stale builds are removed after publishing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import IndexCorruptError, IndexMissingError
from assistant.index.lexical import FILES as LEXICAL_FILES
from assistant.index.lexical import LexicalIndex
from assistant.types import Chunk, Document

FORMAT_VERSION = 2
CURRENT = "CURRENT"
BUILDS = "builds"
ARTIFACTS = ("vectors.faiss", "sentences.npy", "chunks.json", "documents.json")
SAMPLED_CHECK_BYTES = 256 << 20
DEFAULT_ANN_THRESHOLD = 50_000
REBUILD_HINT = "Run `assistant index --rebuild` to build a fresh index."


@dataclass
class Manifest:
    format_version: int
    created_at: str
    embedding_model: str
    embedding_fingerprint: str
    dimension: int
    chunker: dict[str, Any]
    files: dict[str, dict[str, Any]]  # doc_id -> {"sha256", "chunks"}
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"sha256", "bytes"}
    build_seconds: float = 0.0
    vector_index: dict[str, Any] = field(default_factory=dict)  # {"kind": "flat"} or the IVF parameters

    @property
    def chunk_count(self) -> int:
        return sum(int(f.get("chunks", 0)) for f in self.files.values())


@dataclass
class IndexData:
    manifest: Manifest
    documents: dict[str, Document]
    chunks: list[Chunk]
    vectors: Any  # faiss.Index
    path: Path
    sentence_vectors: np.ndarray  # (total sentences, dim): chunk i's sentences are rows sentence_rows(i)
    sentence_offsets: np.ndarray  # (chunks + 1,) start row of each chunk's sentences
    lexical: Any = None  # LexicalIndex stored with the build (None for a build written without one)

    def sentence_rows(self, chunk_index: int) -> slice:
        return slice(int(self.sentence_offsets[chunk_index]), int(self.sentence_offsets[chunk_index + 1]))


def sentence_offsets(chunks: list[Chunk]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum([len(c.sentences) for c in chunks])]).astype(np.int64)


def index_exists(index_dir: Path) -> bool:
    return (index_dir / CURRENT).exists()


def write_index(
    index_dir: Path,
    manifest: Manifest,
    documents: dict[str, Document],
    chunks: list[Chunk],
    vectors: np.ndarray,
    sentence_vectors: np.ndarray,
    *,
    lexical: Any = None,
    ann_threshold: int = DEFAULT_ANN_THRESHOLD,
) -> Path:
    """Write a complete build beside the current one, then publish it atomically."""
    import faiss

    from assistant.index.ann import build_vector_index

    builds = index_dir / BUILDS
    builds.mkdir(parents=True, exist_ok=True)
    build_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    tmp = builds / f".tmp-{build_id}"
    tmp.mkdir()
    try:
        index, manifest.vector_index = build_vector_index(vectors.reshape(-1, manifest.dimension),
                                                          threshold=ann_threshold)  # fmt: skip
        faiss.write_index(index, str(tmp / "vectors.faiss"))
        # float16 halves the largest artifact (cosine error ~1e-3, far below what separates sentences).
        with (tmp / "sentences.npy").open("wb") as fh:
            np.save(fh, np.asarray(sentence_vectors, dtype=np.float16), allow_pickle=False)
        _write_json(tmp / "chunks.json", [c.to_dict() for c in chunks])
        _write_json(tmp / "documents.json", [asdict(d) for d in documents.values()])
        names = list(ARTIFACTS)
        if lexical is not None:
            lexical.save(tmp)
            names += LEXICAL_FILES
        manifest.artifacts = {name: _checksum(tmp / name) for name in names}
        _write_json(tmp / "manifest.json", asdict(manifest))
        _fsync_dir(tmp)
        final = builds / build_id
        os.replace(tmp, final)
        pointer = index_dir / f".{CURRENT}.{build_id}"
        _write_json(pointer, {"build": build_id})
        os.replace(pointer, index_dir / CURRENT)  # the atomic switch
        _fsync_dir(index_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_stale_builds(index_dir, keep=build_id)
    return final


def read_manifest(index_dir: Path) -> tuple[Manifest, Path]:
    build_dir = _current_build(index_dir)
    try:
        data = json.loads((build_dir / "manifest.json").read_text(encoding="utf-8"))
        manifest = Manifest(**data)
    except (OSError, ValueError, TypeError) as exc:
        raise IndexCorruptError(f"The index manifest in {build_dir} is unreadable ({exc}). {REBUILD_HINT}") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise IndexCorruptError(
            f"The index in {index_dir} has format {manifest.format_version}; this version reads format "
            f"{FORMAT_VERSION}. {REBUILD_HINT}"
        )
    return manifest, build_dir


def load_index(index_dir: Path, *, expect_fingerprint: str | None = None) -> IndexData:
    """Load and verify an index; refuse (IndexCorruptError) anything damaged or mismatched."""
    import faiss

    from assistant.index.ann import configure_loaded

    manifest, build_dir = read_manifest(index_dir)
    if expect_fingerprint is not None and manifest.embedding_fingerprint != expect_fingerprint:
        raise IndexCorruptError(
            f"The index in {index_dir} was built with embedding model {manifest.embedding_model!r} "
            f"(fingerprint {manifest.embedding_fingerprint}), but the configured model has fingerprint "
            f"{expect_fingerprint}. {REBUILD_HINT}"
        )
    for name in dict.fromkeys([*ARTIFACTS, *manifest.artifacts]):
        expected = manifest.artifacts.get(name)
        path = build_dir / name
        if expected is None or not path.exists():
            raise IndexCorruptError(f"The index in {index_dir} is missing {name}. {REBUILD_HINT}")
        actual = _checksum(path, sampled=path.stat().st_size > SAMPLED_CHECK_BYTES)
        if any(actual[key] != expected.get(key) for key in actual):
            raise IndexCorruptError(
                f"{name} in {index_dir} is damaged or truncated ({actual['bytes']} bytes, expected "
                f"{expected['bytes']}; checksum differs). {REBUILD_HINT}"
            )
    try:
        chunks = [Chunk.from_dict(c) for c in json.loads((build_dir / "chunks.json").read_text(encoding="utf-8"))]
        documents = {
            d["doc_id"]: Document(**{**d, "page_starts": tuple(d["page_starts"])})
            for d in json.loads((build_dir / "documents.json").read_text(encoding="utf-8"))
        }
        vectors = configure_loaded(faiss.read_index(str(build_dir / "vectors.faiss")), manifest.vector_index)
        sentence_vectors = np.load(build_dir / "sentences.npy", allow_pickle=False, mmap_mode="r")
        lexical = LexicalIndex.load(build_dir) if LEXICAL_FILES[0] in manifest.artifacts else None
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise IndexCorruptError(f"The index in {index_dir} cannot be read ({exc}). {REBUILD_HINT}") from exc
    if vectors.ntotal != len(chunks) or vectors.d != manifest.dimension or len(chunks) != manifest.chunk_count:
        raise IndexCorruptError(
            f"The index in {index_dir} is inconsistent ({vectors.ntotal} vectors of dimension {vectors.d}, "
            f"{len(chunks)} chunks, manifest says {manifest.chunk_count} of dimension {manifest.dimension}). "
            f"{REBUILD_HINT}"
        )
    offsets = sentence_offsets(chunks)
    if sentence_vectors.shape != (int(offsets[-1]), manifest.dimension):
        raise IndexCorruptError(
            f"The index in {index_dir} has {sentence_vectors.shape[0]} sentence vectors for {int(offsets[-1])} "
            f"sentences. {REBUILD_HINT}"
        )
    if lexical is not None and lexical.num_docs != len(chunks):
        raise IndexCorruptError(
            f"The index in {index_dir} has a BM25 index of {lexical.num_docs} chunks for {len(chunks)}. {REBUILD_HINT}"
        )
    return IndexData(manifest, documents, chunks, vectors, build_dir, sentence_vectors, offsets, lexical)


def _current_build(index_dir: Path) -> Path:
    pointer = index_dir / CURRENT
    if not pointer.exists():
        raise IndexMissingError(f"No index found in {index_dir}. Run `assistant index` to build it.")
    try:
        build_id = json.loads(pointer.read_text(encoding="utf-8"))["build"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexCorruptError(f"{pointer} is unreadable ({exc}). {REBUILD_HINT}") from exc
    build_dir = index_dir / BUILDS / str(build_id)
    if not build_dir.is_dir() or "/" in str(build_id) or str(build_id).startswith("."):
        raise IndexCorruptError(f"The index build {build_id!r} named in {pointer} is missing. {REBUILD_HINT}")
    return build_dir


def _remove_stale_builds(index_dir: Path, keep: str) -> None:
    for child in (index_dir / BUILDS).iterdir():
        if child.name != keep:
            shutil.rmtree(child, ignore_errors=True)
    for child in index_dir.glob(f".{CURRENT}.*"):
        child.unlink(missing_ok=True)


def _checksum(path: Path, *, sampled: bool | None = None) -> dict[str, Any]:
    """At write time (sampled=None) both the full sha256 and a sampled one; at load time one of them.

    Hashing gigabytes on every load would cost seconds at 10^6 chunks, so files above SAMPLED_CHECK_BYTES
    are checked by size and a hash of 64 evenly spaced MiB blocks (truncation, replacement and most
    corruption); the full hash stays in the manifest for an offline check.
    """
    size = path.stat().st_size
    result: dict[str, Any] = {"bytes": size}
    with path.open("rb") as fh:
        if sampled is not True:
            digest = hashlib.sha256()
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
            result["sha256"] = digest.hexdigest()
        if sampled is not False and size > SAMPLED_CHECK_BYTES:
            digest = hashlib.sha256()
            for i in range(64):
                fh.seek((size - (1 << 20)) * i // 63)
                digest.update(fh.read(1 << 20))
            result["sampled_sha256"] = digest.hexdigest()
    return result


def _write_json(path: Path, data: Any) -> None:
    with path.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, separators=(",", ":"))
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
