"""Hybrid retrieval: FAISS (dense) and BM25 (lexical) over the same chunks, fused by score (or rank)."""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from assistant.errors import QueryError
from assistant.index.embedder import Embedder
from assistant.index.lexical import LexicalIndex
from assistant.index.store import IndexData
from assistant.ingest.chunker import embedding_text
from assistant.types import Chunk, Hit


@dataclass(frozen=True, slots=True)
class Filters:
    """Restrict retrieval to some documents and/or a date range (ISO dates, inclusive; partial allowed)."""

    docs: tuple[str, ...] = ()
    date_from: str | None = None
    date_to: str | None = None

    def __post_init__(self) -> None:
        docs = self.docs
        if isinstance(docs, str) or not isinstance(docs, tuple | list | set | frozenset):
            raise QueryError(f"Filters.docs must be a list of document file names; got {docs!r}.")
        if not all(isinstance(d, str) for d in docs):
            raise QueryError(f"Filters.docs must hold document file names (text); got {list(docs)!r}.")
        object.__setattr__(self, "docs", tuple(docs))
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            if value is not None and not _valid_date(value):
                raise QueryError(
                    f"Filters.{name} must be an ISO date as text (YYYY, YYYY-MM or YYYY-MM-DD); got {value!r}."
                )

    def allows(self, chunk: Chunk) -> bool:
        return self.allows_fields(chunk.doc, chunk.date)

    def allows_fields(self, doc: str, date: str) -> bool:
        if self.docs and doc not in self.docs:
            return False
        if self.date_from and (not date or _date_end(date) < self.date_from):
            return False
        return not (self.date_to and (not date or date > _date_end(self.date_to)))

    @property
    def empty(self) -> bool:
        return not (self.docs or self.date_from or self.date_to)


def _valid_date(value: object) -> bool:
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        return False
    parts = [int(p) for p in value.split("-")]
    if len(parts) > 1 and not 1 <= parts[1] <= 12:
        return False
    if len(parts) > 2:
        try:
            datetime.date(*parts)
        except ValueError:
            return False
    return True


_ISO_DATE = re.compile(r"\d{4}(?:-\d{2}(?:-\d{2})?)?")


def _date_end(date: str) -> str:
    # "2024-12" stands for the whole month: compare against its last possible day.
    return date + "-31" if len(date) == 7 else date + "-12-31" if len(date) == 4 else date


DENSE_ALL = 2000


class Searcher(Protocol):
    """What the Assistant searches with: `Retriever` (FAISS + bm25s) or `MilvusRetriever` (a Milvus server)."""

    def search(
        self, query: str, *, top_k: int, mode: str, filters: Filters | None = None, vector: np.ndarray | None = None
    ) -> list[Hit]: ...


class Retriever:
    """Dense, BM25 and hybrid search over one loaded index."""

    def __init__(self, data: IndexData, embedder: Embedder, *, fusion: str = "score", hybrid_alpha: float = 0.5,
                 rrf_k: int = 60, candidates: int = 50) -> None:  # fmt: skip
        self.data = data
        self.embedder = embedder
        self.chunks = data.chunks
        self.fusion = fusion
        self.alpha = hybrid_alpha
        self.rrf_k = rrf_k
        self.candidates = candidates
        # Stored with the build (memory-mapped); an index written without one gets it built here.
        self.lexical = data.lexical or LexicalIndex.build([embedding_text(c) for c in self.chunks])

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
        allowed = self._allowed(filters)
        if not self.chunks or (allowed is not None and not allowed.any()):
            return []
        # Score fusion needs a dense score for each lexical candidate. A small index scores every chunk; past
        # DENSE_ALL chunks (where turning every score into Python objects costs more than the search) the dense
        # side is a candidate pool and the lexical candidates outside it get their score from their own vector.
        small = len(self.chunks) <= DENSE_ALL or allowed is not None
        pool = len(self.chunks) if small else max(self.candidates, top_k)
        if mode == "dense":
            ranked = self._dense(query, pool, allowed, vector)
        elif mode == "bm25":
            ranked = self._lexical(query, allowed)
        else:
            if vector is None:
                vector = self.embedder.embed_query(query)
            dense, lexical = self._dense(query, pool, allowed, vector), self._lexical(query, allowed)
            if not small:
                seen = {i for i, _ in dense}
                dense += self._dense_scores([i for i, _ in lexical if i not in seen], vector)
            ranked = self._fuse(dense, lexical)
        return [Hit(rank=i + 1, score=score, chunk=self.chunks[idx]) for i, (idx, score) in enumerate(ranked[:top_k])]

    def _allowed(self, filters: Filters | None) -> np.ndarray | None:
        if filters is None or filters.empty:
            return None
        # The chunk store (assistant.index.chunkstore) knows every row's document and date without reading texts.
        keys = getattr(self.chunks, "filter_keys", None)
        if keys is not None:
            codes, pairs = keys()
            return np.array([filters.allows_fields(d, t) for d, t in pairs], dtype=bool)[codes]
        return np.array([filters.allows(c) for c in self.chunks], dtype=bool)

    def _dense(
        self, query: str, pool: int, allowed: np.ndarray | None, vector: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        if vector is None:
            vector = self.embedder.embed_query(query)
        scores, ids = self.data.vectors.search(np.asarray(vector, dtype=np.float32).reshape(1, -1), pool)
        return [(int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True)
                if i >= 0 and (allowed is None or allowed[i])]  # fmt: skip

    def _dense_scores(self, ids: list[int], vector: np.ndarray) -> list[tuple[int, float]]:
        if not ids:
            return []
        stored = self.data.vectors.reconstruct_batch(np.asarray(ids, dtype=np.int64))
        scores = stored @ np.asarray(vector, dtype=np.float32)
        return [(i, float(s)) for i, s in zip(ids, scores, strict=True)]

    def _lexical(self, query: str, allowed: np.ndarray | None) -> list[tuple[int, float]]:
        scores = self.bm25_scores(query)
        if allowed is not None:
            scores = np.where(allowed, scores, -1.0)
        # Only the best `candidates` are needed: partition first (a full sort of 10^6 scores costs ~80 ms).
        keep = np.flatnonzero(scores > 0)
        k = max(self.candidates, 1)
        if len(keep) > k:
            keep = keep[np.argpartition(-scores[keep], k - 1)[:k]]
        order = keep[np.lexsort((keep, -scores[keep]))]  # best first, ties by position (as a stable sort)
        return [(int(i), float(scores[i])) for i in order]

    def bm25_scores(self, query: str) -> np.ndarray:
        return self.lexical.scores(query)

    def _fuse(
        self, dense: Sequence[tuple[int, float]], lexical: Sequence[tuple[int, float]]
    ) -> list[tuple[int, float]]:
        scores: dict[int, float] = {}
        if self.fusion == "rrf":
            for ranked in (dense, lexical):
                for rank, (idx, _) in enumerate(ranked[: self.candidates]):
                    scores[idx] = scores.get(idx, 0.0) + 1.0 / (self.rrf_k + rank + 1)
        else:
            # Convex combination of cosine similarity and BM25 scaled by the query's best BM25 score.
            # On the dev gold it ranks the evidence first far more often than reciprocal-rank fusion
            # (see README, "Retrieval"), because it keeps how much better the best lexical match is.
            top = lexical[0][1] if lexical and lexical[0][1] > 0 else 1.0
            for idx, score in dense:
                scores[idx] = self.alpha * score
            for idx, score in lexical:
                scores[idx] = scores.get(idx, 0.0) + (1 - self.alpha) * score / top
        return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
