"""Incremental index build into Milvus: write new or changed documents, delete removed ones, keep the rest.

The same files, content keys, chunking and chunk embeddings as the FAISS build (assistant.index.builder);
what differs is where rows go. Sentence vectors are not stored: the Milvus backend embeds the sentences of
the retrieved passages when it answers (README "Scale out" has the measurements behind that choice).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

from assistant.config import Settings
from assistant.errors import IndexCorruptError
from assistant.index.builder import TEXT_FORMAT, BuildReport, Progress, _file_key, chunker_settings
from assistant.index.embedder import Embedder
from assistant.index.milvus_schema import now, parse_store
from assistant.index.milvus_store import MilvusIndex
from assistant.index.vectors import CHUNK_VECTORS, ChunkVectors
from assistant.ingest.loaders import LoadError
from assistant.ingest.pipeline import discover, ingest_file, load_metadata


def build_milvus(
    settings: Settings,
    embedder: Embedder,
    *,
    paths: Iterable[Path] | None = None,
    rebuild: bool = False,
    progress: Progress | None = None,
) -> BuildReport:
    """Bring the Milvus collection named by `settings.store` in line with the files under `paths`.

    Raises:
        StoreError: the server is unreachable or a request failed (what was written so far is consistent:
            each document switches to its new version in one step, and a rerun finishes the job).
        IndexCorruptError: the collection belongs to something else, or was built with another model
            (rebuild with `--rebuild`).
    """
    started = time.perf_counter()
    report = BuildReport()
    tick = progress or (lambda stage, done, total: None)
    target = parse_store(settings.store, corpus_dir=settings.corpus_dir)
    store = MilvusIndex(target, timeout=settings.store_timeout)
    chunker_json = {**asdict(chunker_settings(settings)), "text_format": TEXT_FORMAT, "chunk_vectors": CHUNK_VECTORS}
    manifest = {
        "embedding_model": embedder.name,
        "embedding_fingerprint": embedder.fingerprint,
        "dimension": embedder.dimension,
        "chunker": chunker_json,
        "created_at": now(),
    }
    rewrite_all = False
    if store.exists() and rebuild:
        if not store.owned():
            store.manifest()  # raises the "not written by this assistant" error: never drop someone else's data
        store.drop()
    if store.exists():
        stored = store.manifest()
        store.check_model(stored, fingerprint=embedder.fingerprint)
        if int(stored.get("dimension", -1)) != embedder.dimension:
            raise IndexCorruptError(
                f"Collection {target.collection!r} holds vectors of another size. {target.rebuild_hint}"
            )
        if stored.get("chunker") != chunker_json:
            report.warnings.append("chunker settings changed: re-chunking every file")
            rewrite_all = True
        manifest["created_at"] = stored.get("created_at", manifest["created_at"])
    else:
        store.create(manifest)
    store.load()

    roots = list(paths) if paths else [settings.corpus_dir]
    for root in roots:
        if not root.exists():
            report.skipped[str(root)] = "does not exist"
    metadata = load_metadata(settings.corpus_dir)
    keys: dict[str, tuple[Path, str]] = {}
    for path in discover(roots):
        if path.name in keys:
            report.skipped[str(path)] = f"has the same file name as {keys[path.name][0]}; rename one of them"
            continue
        try:
            keys[path.name] = (path, _file_key(path, metadata.get(path.name)))
        except OSError as exc:
            report.skipped[str(path)] = f"cannot be read ({exc.strerror or exc})"

    heads = store.heads()
    chunks = 0
    for done, (name, (path, key)) in enumerate(sorted(keys.items()), start=1):
        tick("files", done - 1, len(keys))
        if not rewrite_all and heads.get(name, {}).get("key") == key:
            report.unchanged.append(name)
            chunks += int(heads[name]["meta"]["chunks"])
            continue
        try:
            ingested = ingest_file(
                path, metadata=metadata, count_tokens=embedder.count_tokens, settings=chunker_settings(settings)
            )
        except LoadError as exc:
            report.skipped[str(path)] = exc.reason
            continue
        report.warnings.extend(ingested.warnings)
        vectors = ChunkVectors(embedder, ingested.chunks, tick).chunks  # pooled as the FAISS build pools them
        store.write_document(ingested.document, key, ingested.chunks, vectors)
        (report.changed if name in heads else report.added).append(name)
        report.embedded_chunks += len(ingested.chunks)
        chunks += len(ingested.chunks)
    tick("files", len(keys), len(keys))
    report.removed = sorted(set(heads) - set(keys))
    # A file that failed to load this time keeps no rows either: the index holds exactly what was read.
    failed = [n for n, (path, _) in keys.items() if str(path) in report.skipped and n in heads]
    for name in report.removed + failed:
        store.remove_document(name)
    if report.added or report.changed or report.removed or failed or rewrite_all:
        store.remove_orphans(store.heads())
        store.set_manifest({**manifest, "updated_at": now()})
        store.flush()
        report.wrote = True
    report.documents = len(report.unchanged) + len(report.added) + len(report.changed)
    report.chunks = chunks
    report.seconds = time.perf_counter() - started
    return report
