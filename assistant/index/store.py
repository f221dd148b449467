"""The index on disk: a FAISS file, JSON metadata and a manifest of checksums. Never pickle.

Layout of an index directory:
    CURRENT                 {"build": "<id>"}; replaced atomically, so readers see the old or the new build
    builds/<id>/manifest.json
    builds/<id>/vectors.faiss   chunk vectors (inner product over L2-normalised vectors): exact, or IVF-SQ8
                                above Settings.ann_threshold chunks (assistant.index.ann; manifest "vector_index")
    builds/<id>/sentences.npy   one float16 vector per chunk sentence, in chunk order (for answering; plain .npy,
                                written and read with allow_pickle=False, memory-mapped when loaded)
    builds/<id>/chunks.sqlite   chunk metadata and text, per chunk its entities and figures with the words they
                                are bound to (spaCy, parsed once at build time; see assistant.nlp), and the
                                documents' metadata and clean text (for verbatim quotes): one SQLite file read
                                lazily, row by row (assistant.index.chunkstore), so 10^6 chunks load in no time
    builds/<id>/bm25*.{json,npy} the lexical index (assistant.index.lexical), memory-mapped when loaded
    builds/<id>/terms.json, chunk_ids.npy, chunk_rows.npy   the answerer's term frequencies and chunk-id lookup
                                (assistant.index.termstats), so answering needs no pass over the chunks at load

A build is either written whole (write_index) or made from the previous build by an incremental update
(assistant.index.update: copy, patch the rows of the documents that changed, publish the same way).

A build is written into its own directory and only then published by replacing CURRENT, so a crash or
Ctrl-C mid-build leaves the previous index usable. After publishing, builds older than the previous one are
removed: the previous build stays, so a reader that read CURRENT just before the switch can still load it
(and a reader that loses that race anyway retries once with the new CURRENT).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import IndexCorruptError, IndexMissingError
from assistant.index import chunkstore, npyio, termstats
from assistant.index.lexical import FILES as LEXICAL_FILES
from assistant.index.lexical import LexicalIndex
from assistant.index.validate import check_manifest, read_json
from assistant.nlp import Value
from assistant.types import Chunk, Document

# 4: chunks, parse values and documents in chunks.sqlite (was chunks.json, parse.json, documents.json).
# 5: incremental updates (assistant.index.update): sentence spans per chunk instead of cumulative offsets, the
#    BM25 term frequencies and lengths (bm25_tf.npy, bm25_doclen.npy).
FORMAT_VERSION = 5
CURRENT = "CURRENT"
BUILDS = "builds"
ARTIFACTS = ("vectors.faiss", "sentences.npy", chunkstore.FILE)
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
    # A loaded build reads these lazily from chunks.sqlite (chunkstore.DocumentMapping / ChunkSequence);
    # other stores (Milvus) pass a dict and a list.
    documents: Mapping[str, Document]
    chunks: Sequence[Chunk]
    vectors: Any  # faiss.Index
    path: Path
    sentence_vectors: np.ndarray  # (total sentences, dim): chunk i's sentences are rows sentence_rows(i)
    sentence_offsets: np.ndarray  # (chunks + 1,) start row of each chunk's sentences
    values: Sequence[tuple[Value, ...]] = field(default_factory=list)  # per chunk: entities/figures, bindings
    lexical: Any = None  # LexicalIndex stored with the build (None for a build written without one)
    # Where each chunk's sentences start in sentence_vectors when they are not contiguous in chunk order (a build
    # made by an incremental update); None: sentence_offsets[i].
    sentence_starts: np.ndarray | None = None

    def sentence_rows(self, chunk_index: int) -> slice:
        start, end = int(self.sentence_offsets[chunk_index]), int(self.sentence_offsets[chunk_index + 1])
        if self.sentence_starts is None:
            return slice(start, end)
        first = int(self.sentence_starts[chunk_index])
        return slice(first, first + end - start)


def sentence_offsets(chunks: Sequence[Chunk]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum([len(c.sentences) for c in chunks])]).astype(np.int64)


def index_exists(index_dir: Path) -> bool:
    return (index_dir / CURRENT).exists()


def write_index(
    index_dir: Path,
    manifest: Manifest,
    documents: Mapping[str, Document],
    chunks: Sequence[Chunk],
    vectors: np.ndarray,
    sentence_vectors: np.ndarray,
    values: Sequence[Sequence[Value]],
    *,
    lexical: Any = None,
    ann_threshold: int = DEFAULT_ANN_THRESHOLD,
    reuse_from: IndexData | None = None,
    changed: int | None = None,
) -> Path:
    """Write a complete build beside the current one, then publish it atomically.

    `reuse_from` (the loaded previous build) and `changed` (how many chunks are new since) let an approximate
    vector index keep its training (assistant.index.ann.reusable).
    """
    import faiss

    from assistant.index.ann import build_vector_index

    tmp, build_id = new_build_dir(index_dir)
    try:
        index, manifest.vector_index = build_vector_index(
            vectors.reshape(-1, manifest.dimension), threshold=ann_threshold, changed=changed,
            previous=reuse_from.vectors if reuse_from is not None else None,
            previous_info=reuse_from.manifest.vector_index if reuse_from is not None else None,
        )  # fmt: skip
        faiss.write_index(index, str(tmp / "vectors.faiss"))
        # float16 halves the largest artifact (cosine error ~1e-3, far below what separates sentences).
        with (tmp / "sentences.npy").open("wb") as fh:
            np.save(fh, np.asarray(sentence_vectors, dtype=np.float16), allow_pickle=False)
        chunkstore.write_store(tmp / chunkstore.FILE, documents, chunks, values, sentence_offsets(chunks))
        names = list(ARTIFACTS)
        if lexical is not None:
            lexical.save(tmp)
            names += LEXICAL_FILES
        names += termstats.write(tmp, chunks, previous=reuse_from)  # the answerer's idf and id lookup
        return publish(index_dir, tmp, build_id, manifest, names)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def new_build_dir(index_dir: Path) -> tuple[Path, str]:
    """A private directory for a build being written, and the id it will be published under."""
    builds = index_dir / BUILDS
    builds.mkdir(parents=True, exist_ok=True)
    build_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    tmp = builds / f".tmp-{build_id}"
    tmp.mkdir()
    return tmp, build_id


def publish(index_dir: Path, tmp: Path, build_id: str, manifest: Manifest, names: Sequence[str]) -> Path:
    """Checksum the artifacts `names` in `tmp` into the manifest, then make `tmp` the current build atomically.

    The caller removes `tmp` when this raises. Builds older than the previous one are removed afterwards.
    """
    previous = _pointed_build(index_dir)
    manifest.artifacts = {name: _checksum(tmp / name) for name in names}
    _write_json(tmp / "manifest.json", asdict(manifest))
    _fsync_dir(tmp)
    final = index_dir / BUILDS / build_id
    os.replace(tmp, final)
    pointer = index_dir / f".{CURRENT}.{build_id}"
    _write_json(pointer, {"build": build_id})
    os.replace(pointer, index_dir / CURRENT)  # the atomic switch
    _fsync_dir(index_dir)
    _remove_stale_builds(index_dir, keep={build_id, previous})
    return final


def read_manifest(index_dir: Path) -> tuple[Manifest, Path]:
    build_dir = _current_build(index_dir)
    where = index_dir
    data = check_manifest(read_json(build_dir / "manifest.json", where), where)
    if data["format_version"] != FORMAT_VERSION:
        raise IndexCorruptError(
            f"The index in {index_dir} has format {data['format_version']}; this version reads format "
            f"{FORMAT_VERSION}. {REBUILD_HINT}"
        )
    return Manifest(**data), build_dir


def load_index(index_dir: Path, *, expect_fingerprint: str | None = None) -> IndexData:
    """Load and verify an index; refuse (IndexCorruptError) anything damaged or mismatched.

    A build can be published while this reads the previous one; when loading fails and CURRENT meanwhile
    names another build, the load is tried once more with that build.
    """
    seen = _pointed_build(index_dir)
    try:
        return _load_once(index_dir, expect_fingerprint)
    except (IndexCorruptError, IndexMissingError):
        now = _pointed_build(index_dir)
        if now is None or now == seen:
            raise
    return _load_once(index_dir, expect_fingerprint)


def _load_once(index_dir: Path, expect_fingerprint: str | None) -> IndexData:
    import faiss

    from assistant.index.ann import configure_loaded

    manifest, build_dir = read_manifest(index_dir)
    if expect_fingerprint is not None and manifest.embedding_fingerprint != expect_fingerprint:
        raise IndexCorruptError(
            f"The index in {index_dir} was built with embedding model {manifest.embedding_model!r} "
            f"(fingerprint {manifest.embedding_fingerprint}), but the configured model has fingerprint "
            f"{expect_fingerprint}. {REBUILD_HINT}"
        )
    # Only names this code writes: a tampered manifest must not make the loader read other paths.
    lexical_names = LEXICAL_FILES if LEXICAL_FILES[0] in manifest.artifacts else ()
    stats_names = termstats.FILES if termstats.FILES[0] in manifest.artifacts else ()
    for name in dict.fromkeys([*ARTIFACTS, *lexical_names, *stats_names]):
        expected = manifest.artifacts.get(name)
        path = build_dir / name
        if expected is None or not path.is_file():
            raise IndexCorruptError(f"The index in {index_dir} is missing {name}. {REBUILD_HINT}")
        try:
            actual = _checksum(path, sampled=path.stat().st_size > SAMPLED_CHECK_BYTES)
        except OSError as exc:
            raise IndexCorruptError(f"{name} in {index_dir} cannot be read ({exc}). {REBUILD_HINT}") from exc
        if any(actual[key] != expected.get(key) for key in actual):
            raise IndexCorruptError(
                f"{name} in {index_dir} is damaged or truncated ({actual['bytes']} bytes, expected "
                f"{expected['bytes']}; checksum differs). {REBUILD_HINT}"
            )
    store = chunkstore.open_store(build_dir / chunkstore.FILE, index_dir, manifest.files)
    chunks, values = chunkstore.ChunkSequence(store), chunkstore.ValueSequence(store)
    documents = chunkstore.DocumentMapping(store)
    try:
        vectors = configure_loaded(faiss.read_index(str(build_dir / "vectors.faiss")), manifest.vector_index)
        sentence_vectors = npyio.load(build_dir / "sentences.npy")
        lexical = LexicalIndex.load(build_dir) if LEXICAL_FILES[0] in manifest.artifacts else None
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        store.close()
        raise IndexCorruptError(f"The index in {index_dir} cannot be read ({exc}). {REBUILD_HINT}") from exc
    if vectors.ntotal != len(chunks) or vectors.d != manifest.dimension or len(chunks) != manifest.chunk_count:
        store.close()
        raise IndexCorruptError(
            f"The index in {index_dir} is inconsistent ({vectors.ntotal} vectors of dimension {vectors.d}, "
            f"{len(chunks)} chunks, manifest says {manifest.chunk_count} of dimension {manifest.dimension}). "
            f"{REBUILD_HINT}"
        )
    offsets, starts = store.offsets, store.starts
    contiguous = bool(np.array_equal(starts, offsets[:-1]))
    if (
        sentence_vectors.dtype not in (np.float16, np.float32)
        or sentence_vectors.ndim != 2
        or sentence_vectors.shape[1] != manifest.dimension
        or sentence_vectors.shape[0] < store.sentence_rows_needed
        or (contiguous and sentence_vectors.shape[0] != int(offsets[-1]))
    ):
        store.close()
        raise IndexCorruptError(
            f"The index in {index_dir} has {sentence_vectors.shape} sentence vectors for {int(offsets[-1])} "
            f"sentences. {REBUILD_HINT}"
        )
    if lexical is not None and lexical.num_docs != len(chunks):
        store.close()
        raise IndexCorruptError(
            f"The index in {index_dir} has a BM25 index of {lexical.num_docs} chunks for {len(chunks)}. {REBUILD_HINT}"
        )
    return IndexData(manifest, documents, chunks, vectors, build_dir, sentence_vectors, offsets, values, lexical,
                     None if contiguous else starts)  # fmt: skip


def _pointed_build(index_dir: Path) -> str | None:
    """The build id CURRENT names, or None when it is absent or unreadable (no error: used for comparisons)."""
    try:
        build = json.loads((index_dir / CURRENT).read_text(encoding="utf-8")).get("build")
    except (OSError, ValueError, AttributeError):
        return None
    return build if isinstance(build, str) else None


def _current_build(index_dir: Path) -> Path:
    pointer = index_dir / CURRENT
    if not pointer.exists():
        raise IndexMissingError(f"No index found in {index_dir}. Run `assistant index` to build it.")
    try:
        data = json.loads(pointer.read_text(encoding="utf-8"))
        build_id = data["build"] if isinstance(data, dict) else None
    except (OSError, ValueError, KeyError) as exc:
        raise IndexCorruptError(f"{pointer} is unreadable ({exc}). {REBUILD_HINT}") from exc
    if not isinstance(build_id, str) or not build_id or "/" in build_id or "\\" in build_id or "\x00" in build_id:
        raise IndexCorruptError(f"{pointer} does not name a build ({build_id!r}). {REBUILD_HINT}")
    build_dir = index_dir / BUILDS / build_id
    if build_id.startswith(".") or not build_dir.is_dir():
        raise IndexCorruptError(f"The index build {build_id!r} named in {pointer} is missing. {REBUILD_HINT}")
    return build_dir


def _remove_stale_builds(index_dir: Path, keep: set[str | None]) -> None:
    for child in (index_dir / BUILDS).iterdir():
        if child.name not in keep:
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
