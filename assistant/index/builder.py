"""Incremental index build: re-embed only new or changed files, drop deleted ones, publish atomically."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from filelock import FileLock, Timeout

from assistant.config import Settings
from assistant.errors import AssistantError, IndexCorruptError
from assistant.index.embedder import Embedder
from assistant.index.lexical import LexicalIndex
from assistant.index.store import (
    FORMAT_VERSION,
    IndexData,
    Manifest,
    index_exists,
    load_index,
    sentence_offsets,
    write_index,
)
from assistant.index.update import full_build_reason, update_index
from assistant.index.vectors import CHUNK_VECTORS, ChunkVectors
from assistant.ingest.chunker import ChunkerSettings, embedding_text
from assistant.ingest.loaders import LoadError, file_sha256
from assistant.ingest.pipeline import discover, ingest_file, load_metadata
from assistant.nlp import PARSE_FORMAT, ParseJob, Value
from assistant.types import Chunk, Document

# (stage, done, total): stages are "files", "embed"; the CLI and the UI draw their own bars from it.
Progress = Callable[[str, int, int], None]
# Bump when chunk text or what is embedded changes (ingest.chunker): forces re-chunking and re-embedding.
# 4: chunks carry `flagged` (instruction-like sentences, assistant.ingest.injection).
TEXT_FORMAT = 4
LOCK_FILE = ".build.lock"
LOCK_WAIT_SECONDS = 1800.0  # a second build waits this long for the first, then gives up with advice


@dataclass
class BuildReport:
    documents: int = 0
    chunks: int = 0
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # file -> reason (also refused links, special files)
    flagged: dict[str, list[str]] = field(default_factory=dict)  # file -> instruction-like sentences (shortened)
    waited_seconds: float = 0.0  # time spent waiting for another build of the same index to finish
    warnings: list[str] = field(default_factory=list)
    embedded_chunks: int = 0
    embedded_sentences: int = 0
    seconds: float = 0.0
    wrote: bool = False
    # How the build was written: "full" (every chunk written) or "incremental" (assistant.index.update: only the
    # changed documents' rows); `full_reason` says why a build that had a previous one was written in full.
    write_mode: str = ""
    full_reason: str = ""
    mean_tokens: float = 0.0
    max_tokens: int = 0
    # Seconds per stage: "tokenise" (read, chunk, count word pieces), "encode_sentences" (and pool chunk vectors),
    # "bm25" (lexical index), "write" (vectors, metadata, checksums); model loading falls in the first encode.
    timings: dict[str, float] = field(default_factory=dict)


def chunker_settings(settings: Settings) -> ChunkerSettings:
    return ChunkerSettings(max_tokens=settings.chunk_max_tokens)


def build_index(
    settings: Settings,
    embedder: Embedder,
    *,
    paths: Iterable[Path] | None = None,
    rebuild: bool = False,
    progress: Progress | None = None,
) -> BuildReport:
    """Bring the index in `settings.index_dir` in line with the files under `paths` (default: the corpus).

    The index afterwards holds exactly those files. Unchanged files keep their chunks and vectors; a file
    that cannot be loaded is reported in `skipped` and left out, and everything else is still indexed.
    Builds of one index run one at a time (a file lock): a second build waits for the first, reporting the
    stage "waiting", and then finds the index up to date or updates it.
    """
    started = time.perf_counter()
    tick = progress or (lambda stage, done, total: None)
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(settings.index_dir / LOCK_FILE))
    waited = 0.0
    try:
        lock.acquire(timeout=0)
    except Timeout:
        tick("waiting", 0, 1)
        try:
            lock.acquire(timeout=LOCK_WAIT_SECONDS)
        except Timeout as exc:
            raise AssistantError(
                f"Another build of {settings.index_dir} has been running for over {LOCK_WAIT_SECONDS / 60:.0f} "
                "minutes; wait for it to finish (or stop it) and run `assistant index` again."
            ) from exc
        tick("waiting", 1, 1)
        waited = time.perf_counter() - started
    try:
        report = _build_locked(settings, embedder, paths=paths, rebuild=rebuild, tick=tick, started=started)
    finally:
        lock.release()
    report.waited_seconds = round(waited, 3)
    return report


def _build_locked(
    settings: Settings,
    embedder: Embedder,
    *,
    paths: Iterable[Path] | None,
    rebuild: bool,
    tick: Progress,
    started: float,
) -> BuildReport:
    report = BuildReport()
    roots = list(paths) if paths else [settings.corpus_dir]
    for root in roots:
        if not root.exists():
            report.skipped[str(root)] = "does not exist"
    files = discover(roots, refused=report.skipped)
    metadata = load_metadata(settings.corpus_dir)
    chunk_cfg = chunker_settings(settings)
    chunker_json = {**asdict(chunk_cfg), "text_format": TEXT_FORMAT, "parse_format": PARSE_FORMAT,
                    "chunk_vectors": CHUNK_VECTORS}  # fmt: skip

    previous = None if rebuild else _load_previous(settings, embedder, report)
    if previous is not None and previous.manifest.chunker != chunker_json:
        report.warnings.append("chunker settings changed: re-chunking every file")
        previous = None

    # Content hash per file, covering its metadata entry too (a new title must reach the chunks).
    keys: dict[str, tuple[Path, str]] = {}
    for path in files:
        if path.name in keys:
            report.skipped[str(path)] = f"has the same file name as {keys[path.name][0]}; rename one of them"
            continue
        try:
            keys[path.name] = (path, _file_key(path, metadata.get(path.name)))
        except OSError as exc:
            report.skipped[str(path)] = f"cannot be read ({exc.strerror or exc})"

    old_files = previous.manifest.files if previous else {}
    if (
        previous is not None
        and not report.skipped
        and set(old_files) == set(keys)
        and all(old_files[name].get("key") == key for name, (_, key) in keys.items())
    ):
        report.unchanged = sorted(keys)
        _fill_counts(report, old_files)
        report.seconds = time.perf_counter() - started
        return report

    stage_started = time.perf_counter()
    documents: dict[str, Document] = {}  # the new and changed documents (a full build adds the unchanged ones)
    fresh: dict[str, list[Chunk]] = {}
    new_chunks: list[Chunk] = []
    file_entries: dict[str, dict[str, object]] = {}
    for done, (name, (path, key)) in enumerate(sorted(keys.items()), start=1):
        tick("files", done - 1, len(keys))
        if previous is not None and old_files.get(name, {}).get("key") == key and name in previous.documents:
            # Nothing of an unchanged document is read here: an incremental update never touches its rows.
            file_entries[name] = dict(old_files[name])
            report.unchanged.append(name)
        else:
            try:
                ingested = ingest_file(path, metadata=metadata, count_tokens=embedder.count_tokens, settings=chunk_cfg)
            except LoadError as exc:
                report.skipped[str(path)] = exc.reason
                continue
            report.warnings.extend(ingested.warnings)
            documents[name] = ingested.document
            fresh[name] = ingested.chunks
            new_chunks.extend(ingested.chunks)
            (report.changed if name in old_files else report.added).append(name)
            file_entries[name] = {"sha256": ingested.document.sha256, "key": key, **_file_stats(name, ingested.chunks)}
    tick("files", len(keys), len(keys))
    report.removed = sorted(set(old_files) - set(keys))

    # Entities and figures with the words they are bound to, for the answerer: parsed once, here, in a worker
    # process that runs while the chunks and sentences are embedded (spaCy then costs little wall time).
    parse_job = ParseJob([c.text for c in new_chunks])
    try:
        # Each sentence is embedded for answering (sentence selection and citation checks then cost a dot product
        # at question time instead of a model call) and each chunk's vector pooled from its sentences' (vectors.py).
        stage_started = _lap(report, "tokenise", stage_started)
        embedded = ChunkVectors(_beside_worker(embedder) if parse_job.in_worker else embedder, new_chunks, tick)
        stage_started = _lap(report, "encode_sentences", stage_started)
        tick("parse", 0, 1)
        new_values = parse_job.result()
    finally:
        parse_job.close()  # a failed embedding must not leave the worker parsing
    tick("parse", 1, 1)
    # With a worker this is only the wait for it after the embedding (its own time overlaps the encode stage).
    stage_started = _lap(report, "parse", stage_started)
    report.embedded_chunks = len(new_chunks)
    report.embedded_sentences = embedded.distinct_sentences
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        embedding_model=embedder.name,
        embedding_fingerprint=embedder.fingerprint,
        dimension=embedder.dimension,
        chunker=chunker_json,
        files={name: dict(entry) for name, entry in file_entries.items()},
        build_seconds=round(time.perf_counter() - started, 3),
    )
    drop = sorted(set(old_files) - set(report.unchanged))  # removed, changed, or now refused (skipped)
    if previous is not None:
        report.full_reason = full_build_reason(
            previous, drop_docs=drop, new_chunks=len(new_chunks), new_sentences=len(embedded.sentence_rows),
            threshold=settings.ann_threshold,
        )  # fmt: skip
    if previous is not None and not report.full_reason:
        # Only the changed documents' rows are written (assistant.index.update); the rest is copied as bytes.
        update_index(settings.index_dir, previous, manifest, drop_docs=drop, documents=documents, chunks=new_chunks,
                     vectors=embedded.chunks, sentence_vectors=embedded.unique[embedded.sentence_rows],
                     values=[tuple(v) for v in new_values], lexical_texts=[embedding_text(c) for c in new_chunks],
                     timings=report.timings)  # fmt: skip
        report.write_mode = "incremental"
    else:
        _write_full(settings, manifest, previous, report, documents, fresh, new_chunks, embedded, new_values)
        report.write_mode = "full"
    report.wrote = True
    _fill_counts(report, manifest.files)
    report.seconds = time.perf_counter() - started
    return report


def _write_full(
    settings: Settings,
    manifest: Manifest,
    previous: IndexData | None,
    report: BuildReport,
    documents: dict[str, Document],
    fresh: dict[str, list[Chunk]],
    new_chunks: list[Chunk],
    embedded: ChunkVectors,
    new_values: Sequence[Sequence[Value]],
) -> None:
    """Assemble every chunk (the unchanged ones decoded from the previous build) and write a whole build."""
    stage_started = time.perf_counter()
    chunks: list[Chunk] = []
    doc_rows: dict[str, np.ndarray] = {}  # an unchanged document's rows in the previous build, in its order
    for name in sorted(manifest.files):
        if name in fresh:
            chunks.extend(fresh[name])
        elif previous is not None:
            documents[name] = previous.documents[name]
            doc_rows[name], doc_chunks = _previous_chunks(previous, name)
            chunks.extend(doc_chunks)
    documents = {name: documents[name] for name in sorted(documents)}
    unchanged = set(report.unchanged)
    old_vectors, old_sentences = _vectors_by_doc(previous, doc_rows) if previous else ({}, {})
    old_values = _values_by_doc(previous, doc_rows) if previous else {}
    dimension = manifest.dimension
    by_id = {c.chunk_id + c.doc: i for i, c in enumerate(new_chunks)}
    matrix = np.zeros((len(chunks), dimension), dtype=np.float32)
    offsets = sentence_offsets(chunks)
    sentence_matrix = np.zeros((int(offsets[-1]), dimension), dtype=np.float16)
    values: list[tuple[Value, ...]] = []
    old_value_rows = {name: iter(rows) for name, rows in old_values.items()}
    old_rows = {name: iter(vec) for name, vec in old_vectors.items()}
    old_sentence_rows = {name: iter(vec) for name, vec in old_sentences.items()}
    for row, chunk in enumerate(chunks):
        rows = slice(int(offsets[row]), int(offsets[row + 1]))
        if chunk.doc in unchanged:
            matrix[row] = next(old_rows[chunk.doc])
            for r in range(rows.start, rows.stop):
                sentence_matrix[r] = next(old_sentence_rows[chunk.doc])
            values.append(next(old_value_rows[chunk.doc]))
        else:
            i = by_id[chunk.chunk_id + chunk.doc]
            matrix[row] = embedded.chunks[i]
            values.append(tuple(new_values[i]))
            sentence_matrix[rows] = embedded.sentences_of(i)
    stage_started = _lap(report, "assemble", stage_started)
    lexical = LexicalIndex.build([embedding_text(c) for c in chunks])
    stage_started = _lap(report, "bm25", stage_started)
    write_index(settings.index_dir, manifest, documents, chunks, matrix, sentence_matrix, values, lexical=lexical,
                ann_threshold=settings.ann_threshold, reuse_from=previous, changed=len(new_chunks))  # fmt: skip
    _lap(report, "write", stage_started)


def _beside_worker(embedder: Embedder) -> Embedder:
    """The encoder to run while the parse worker has a core: one thread fewer than the cores this process may use.

    Left at one thread per core, the encoder's threads and the worker contend for every core, the worker gets a
    fraction of one and the build then waits for it: on this 2-core machine, idle, `assistant index --rebuild`
    took 26.3 s (encode 15.7 s, then 9.2 s waiting for the parse) against 18.0 s with the encoder on one thread
    (encode 16.1 s, parse wait 0.7 s). A backend without the option (torch) is left as it is.
    """
    with_threads = getattr(embedder, "with_threads", None)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cast(Embedder, with_threads(max(1, cores - 1))) if with_threads is not None else embedder


def _load_previous(settings: Settings, embedder: Embedder, report: BuildReport) -> IndexData | None:
    if not index_exists(settings.index_dir):
        return None
    try:
        return load_index(settings.index_dir, expect_fingerprint=embedder.fingerprint)
    except IndexCorruptError as exc:
        report.warnings.append(f"previous index not reused ({exc}); rebuilding from scratch")
        return None
    except AssistantError:
        return None


def _vectors_by_doc(
    previous: IndexData, doc_rows: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The previous build's chunk vectors and sentence vectors of these documents' rows (in the rows' order)."""
    total = previous.vectors.ntotal
    if previous.manifest.vector_index.get("kind", "flat") != "flat":
        import faiss

        faiss.extract_index_ivf(previous.vectors).make_direct_map()  # IVF lists: reconstruct needs the map
    all_vectors = previous.vectors.reconstruct_n(0, total) if total else np.zeros((0, previous.manifest.dimension))
    chunk_rows: dict[str, np.ndarray] = {}
    sentence_rows: dict[str, np.ndarray] = {}
    offsets = previous.sentence_offsets
    # After an incremental update a chunk's sentences start where sentence_starts says, not at its offset.
    first = previous.sentence_starts if previous.sentence_starts is not None else offsets[:-1]
    for doc, rows in doc_rows.items():
        chunk_rows[doc] = all_vectors[rows]
        # Every sentence row of these chunks, in order, as one index array (not a slice per chunk).
        sizes = offsets[rows + 1] - offsets[rows]
        starts = np.repeat(first[rows] - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)
        sentence_rows[doc] = np.asarray(previous.sentence_vectors[starts + np.arange(int(sizes.sum()))])
    return chunk_rows, sentence_rows


def _previous_chunks(previous: IndexData, name: str) -> tuple[np.ndarray, list[Chunk]]:
    """An unchanged document's rows and chunks in the previous build, in document order."""
    # A loaded build's chunks come from SQLite (chunkstore): one indexed query, not a scan per document.
    of_doc = getattr(previous.chunks, "of_doc_rows", None)
    if of_doc is not None:
        rows, chunks = of_doc(name)
        return np.asarray(rows, dtype=np.int64), chunks
    found = [(row, c) for row, c in enumerate(previous.chunks) if c.doc == name]
    return np.asarray([r for r, _ in found], dtype=np.int64), [c for _, c in found]


def _values_by_doc(previous: IndexData, doc_rows: dict[str, np.ndarray]) -> dict[str, list[tuple[Value, ...]]]:
    values = list(previous.values)  # one streamed pass, then picked by row
    return {doc: [values[r] for r in rows.tolist()] for doc, rows in doc_rows.items()}


def _lap(report: BuildReport, stage: str, since: float) -> float:
    now = time.perf_counter()
    report.timings[stage] = round(report.timings.get(stage, 0.0) + now - since, 3)
    return now


def _file_key(path: Path, meta: dict[str, str] | None) -> str:
    digest = hashlib.sha256(file_sha256(path).encode())
    digest.update(json.dumps(meta or {}, sort_keys=True).encode())
    return digest.hexdigest()


def _flagged(chunks: Sequence[Chunk]) -> dict[str, list[str]]:
    """Instruction-like sentences per file, shortened, each once (a table row's key cells repeat)."""
    found: dict[str, dict[int, str]] = {}
    for chunk in chunks:
        for j in chunk.flagged:
            s = chunk.sentences[j]
            text = " ".join(chunk.sentence_text(s).split())
            found.setdefault(chunk.doc, {})[s.doc_start] = text if len(text) <= 100 else text[:99] + "…"
    return {doc: list(by_start.values()) for doc, by_start in sorted(found.items())}


def _file_stats(name: str, chunks: Sequence[Chunk]) -> dict[str, object]:
    """What the report says of a file, kept in its manifest entry so later builds need not read its chunks."""
    return {
        "chunks": len(chunks),
        "tokens": sum(c.tokens for c in chunks),
        "max_tokens": max((c.tokens for c in chunks), default=0),
        "flagged": _flagged(chunks).get(name, []),
    }


def _fill_counts(report: BuildReport, files: dict[str, dict[str, Any]]) -> None:
    report.documents = len(files)
    report.chunks = sum(int(entry.get("chunks", 0)) for entry in files.values())
    if report.chunks:
        report.mean_tokens = round(sum(int(entry.get("tokens", 0)) for entry in files.values()) / report.chunks, 1)
        report.max_tokens = max(int(entry.get("max_tokens", 0)) for entry in files.values())
    report.flagged = {name: list(entry["flagged"]) for name, entry in sorted(files.items()) if entry.get("flagged")}
