"""Retrieval from a Milvus server: the same `search()` and `Hit`s as `Retriever`, so answering is unchanged.

Hybrid search is one Milvus `hybrid_search`: a dense request (inner product over the L2-normalised chunk
vectors) and a BM25 request (Milvus' full-text `Function` over the stemmed chunk text), each with the filters
as a Milvus expression, fused by Milvus' RRFRanker. Fusion is by rank, not by score, because BM25 scores are
not comparable across servers and segments: Milvus Lite returns them negated (its distances sort ascending)
and computes IDF per segment, so "score / best score" (the FAISS backend's default) would mix scales that
change as rows are written. Ranks do not change under either effect.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from assistant.config import Settings
from assistant.errors import IndexCorruptError
from assistant.index.embedder import Embedder
from assistant.index.milvus_schema import date_end, lexical_texts, parse_store
from assistant.index.milvus_store import MilvusIndex
from assistant.index.store import FORMAT_VERSION, IndexData, Manifest, sentence_offsets
from assistant.retrieve import Filters
from assistant.types import Chunk, Hit

SLACK = 10  # extra hits asked for, in case rows of a document being rewritten right now must be dropped
CACHED_CHUNKS = 4096  # chunks whose sentence vectors stay cached


class LazySentenceVectors:
    """The rows of `IndexData.sentence_vectors`, embedded when first read, for retrieved passages only.

    Indexed like the FAISS backend's (n sentences, dim) array (an int or a slice of global sentence rows)
    and returns real arrays, so the answerer reads it unchanged. The retriever names its hits with `expect`;
    the first read of a missing passage then embeds the sentences of every expected passage in one batch, so
    answering pays one model call per question and a plain search pays none.
    """

    def __init__(self, chunks: Sequence[Chunk], offsets: np.ndarray, embedder: Embedder) -> None:
        self._chunks = chunks
        self._offsets = offsets
        self._embedder = embedder
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.shape = (int(offsets[-1]), embedder.dimension)
        self.computed = 0  # sentences embedded so far (the benchmark reads it)
        self._expected: list[int] = []

    def __len__(self) -> int:
        return self.shape[0]

    def expect(self, chunk_indices: Iterable[int]) -> None:
        """Passages the answerer is about to read: embedded together on the first read of any of them."""
        self._expected = list(chunk_indices)

    def prefetch(self, chunk_indices: Iterable[int]) -> None:
        with self._lock:
            missing = [ci for ci in dict.fromkeys(chunk_indices) if ci not in self._cache]
            if not missing:
                return
            texts = [self._chunks[ci].sentence_text(s) for ci in missing for s in self._chunks[ci].sentences]
            vectors = self._embedder.embed_documents(texts) if texts else np.zeros((0, self.shape[1]), np.float32)
            self.computed += len(texts)
            row = 0
            for ci in missing:
                n = len(self._chunks[ci].sentences)
                self._remember(ci, np.asarray(vectors[row : row + n], dtype=np.float32))
                row += n

    def _remember(self, ci: int, rows: np.ndarray) -> None:
        self._cache[ci] = rows
        self._cache.move_to_end(ci)
        while len(self._cache) > CACHED_CHUNKS:
            self._cache.popitem(last=False)

    def _rows(self, ci: int) -> np.ndarray:
        with self._lock:
            if ci in self._cache:
                self._cache.move_to_end(ci)
                return self._cache[ci]
        self.prefetch([ci, *self._expected])
        with self._lock:
            return self._cache[ci]

    def _chunk_of(self, row: int) -> int:
        return int(np.searchsorted(self._offsets, row, side="right")) - 1

    def __getitem__(self, item: int | slice) -> np.ndarray:
        if isinstance(item, slice):
            start, stop, step = item.indices(self.shape[0])
            rows = range(start, stop, step)
            if not rows:
                return np.zeros((0, self.shape[1]), dtype=np.float32)
            first, last = self._chunk_of(rows[0]), self._chunk_of(rows[-1])
            block = np.concatenate([self._rows(ci) for ci in range(first, last + 1)])
            base = int(self._offsets[first])
            return block[[r - base for r in rows]]
        row = int(item)
        if not 0 <= row < self.shape[0]:
            raise IndexError(row)
        ci = self._chunk_of(row)
        return self._rows(ci)[row - int(self._offsets[ci])]


def milvus_filter(filters: Filters | None) -> str:
    """`Filters` as a Milvus boolean expression (the same rule as `Filters.allows`)."""
    if filters is None or filters.empty:
        return ""
    parts = []
    if filters.docs:
        parts.append(f"doc in [{', '.join(json.dumps(d) for d in filters.docs)}]")
    if filters.date_from:
        parts.append(f'date != "" and date_end >= {json.dumps(filters.date_from)}')
    if filters.date_to:
        parts.append(f'date != "" and date <= {json.dumps(date_end(filters.date_to))}')
    return " and ".join(f"({p})" for p in parts)


class MilvusRetriever:
    """Dense, BM25 and hybrid search in a Milvus collection, returning the loaded snapshot's chunks."""

    def __init__(
        self,
        store: MilvusIndex,
        embedder: Embedder,
        chunks: Sequence[Chunk],
        row_keys: Sequence[str],
        sentence_vectors: LazySentenceVectors,
        *,
        rrf_k: int = 60,
        candidates: int = 50,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.chunks = chunks
        self.rrf_k = rrf_k
        self.candidates = candidates
        self.sentence_vectors = sentence_vectors
        self._position = {pk: i for i, pk in enumerate(row_keys)}

    def search(
        self,
        query: str,
        *,
        top_k: int,
        mode: str,
        filters: Filters | None = None,
        vector: np.ndarray | None = None,
    ) -> list[Hit]:
        """Rank chunks for `query`; `vector` is its embedding when the caller already has it."""
        from pymilvus import AnnSearchRequest, RRFRanker

        if not self.chunks:
            return []
        expr = milvus_filter(filters)
        limit = top_k + SLACK
        pool = max(self.candidates, limit)
        name = self.store.target.collection
        words = lexical_texts([query])[0] if mode in ("bm25", "hybrid") else ""
        if mode != "bm25" and vector is None:
            vector = self.embedder.embed_query(query)
        dense = np.asarray(vector, dtype=np.float32).tolist() if vector is not None else None
        dense_params = {"metric_type": "IP", "params": {"ef": max(64, pool)}}
        bm25_params = {"metric_type": "BM25"}
        timeout = self.store.timeout
        if mode == "bm25" and not words:
            return []
        if mode == "bm25":
            results = self.store.search(
                lambda c: c.search(
                    name,
                    data=[words],
                    anns_field="sparse",
                    limit=limit,
                    filter=expr,
                    search_params=bm25_params,
                    timeout=timeout,
                )
            )
        elif mode == "dense" or not words:
            results = self.store.search(
                lambda c: c.search(
                    name,
                    data=[dense],
                    anns_field="vector",
                    limit=limit,
                    filter=expr,
                    search_params=dense_params,
                    timeout=timeout,
                )
            )
        else:
            requests = [
                AnnSearchRequest(data=[dense], anns_field="vector", param=dense_params, limit=pool, expr=expr or None),
                AnnSearchRequest(data=[words], anns_field="sparse", param=bm25_params, limit=pool, expr=expr or None),
            ]
            results = self.store.search(
                lambda c: c.hybrid_search(name, requests, RRFRanker(self.rrf_k), limit=limit, timeout=timeout)
            )
        found: list[tuple[int, float]] = []
        for hit in results[0] if results else []:
            index = self._position.get(_key(hit))
            if index is not None:  # else a row written after this snapshot was loaded, or an old version
                # BM25 scores are positive; Milvus Lite returns them negated (ascending distances).
                score = abs(float(hit["distance"])) if mode == "bm25" else float(hit["distance"])
                found.append((index, score))
        found = found[:top_k]
        self.sentence_vectors.expect(i for i, _ in found)  # embedded in one batch if the answerer reads them
        return [Hit(rank=r, score=s, chunk=self.chunks[i]) for r, (i, s) in enumerate(found, start=1)]


def _key(hit: Any) -> str:
    for name in ("pk", "id"):
        try:
            return str(hit[name])
        except (KeyError, TypeError):
            continue
    return str(getattr(hit, "id", ""))


def open_milvus(settings: Settings, embedder: Embedder) -> tuple[IndexData, MilvusRetriever]:
    """Connect, check the manifest against the model, and load the snapshot the answerer reads.

    Raises:
        StoreError: the server cannot be reached or a request failed within the timeout.
        IndexMissingError: no index in the collection yet.
        IndexCorruptError: another schema, another model, or an incomplete document.
    """
    target = parse_store(settings.store, corpus_dir=settings.corpus_dir)
    store = MilvusIndex(target, timeout=settings.store_timeout)
    stored = store.manifest()
    store.check_model(stored, fingerprint=embedder.fingerprint)
    if int(stored.get("dimension", -1)) != embedder.dimension:
        raise IndexCorruptError(
            f"Collection {target.collection!r} holds vectors of another size. {target.rebuild_hint}"
        )
    store.load()
    documents, chunks, row_keys, keys = store.snapshot()
    offsets = sentence_offsets(chunks)
    lazy = LazySentenceVectors(chunks, offsets, embedder)
    counts: dict[str, int] = {}
    for chunk in chunks:
        counts[chunk.doc] = counts.get(chunk.doc, 0) + 1
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        created_at=str(stored.get("updated_at") or stored.get("created_at") or ""),
        embedding_model=str(stored.get("embedding_model", "")),
        embedding_fingerprint=str(stored.get("embedding_fingerprint", "")),
        dimension=int(stored["dimension"]),
        chunker=dict(stored.get("chunker") or {}),
        files={
            d.doc_id: {"sha256": d.sha256, "key": keys[d.doc_id], "chunks": counts.get(d.doc_id, 0)}
            for d in documents.values()
        },
    )
    # The answerer indexes sentence_vectors like an array; the lazy rows behave as one (see its docstring).
    data = IndexData(manifest, documents, chunks, None, Path(target.collection), cast(np.ndarray, lazy), offsets)
    # No index-time parse in Milvus mode yet: the answerer falls back to its pattern-based value checks.
    retriever = MilvusRetriever(
        store, embedder, chunks, row_keys, lazy, rrf_k=settings.rrf_k, candidates=settings.fusion_candidates
    )
    return data, retriever
