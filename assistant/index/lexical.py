"""BM25 built once at index time and stored as plain arrays; queried without importing bm25s or scipy.

bm25s builds the index (its "lucene" scoring, precomputed per term and document: an eager sparse matrix).
The matrix is stored as three .npy arrays in CSC layout (per term: the documents that contain it and their
scores) plus a JSON file with the vocabulary, stopwords and token pattern, so loading is a memory map and a
query is one `np.bincount` over the posting lists of its terms. Why not bm25s at query time: importing it
pulls in scipy and tqdm (about 0.5 s of the cold start), and its scorer adds postings with `np.add.at`,
several times slower than `bincount` on the long posting lists of a 10^6-chunk index.

The query is tokenised as bm25s tokenises documents (lower case, the same regex, stopwords removed, then
PyStemmer's English stemmer); tests check the scores against bm25s's own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

META = "bm25.json"
ARRAYS = ("bm25_data.npy", "bm25_indices.npy", "bm25_indptr.npy")
FILES = (META, *ARRAYS)
TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # bm25s's default (scikit-learn's CountVectorizer pattern)


@dataclass
class LexicalIndex:
    vocab: dict[str, int]
    stopwords: frozenset[str]
    data: np.ndarray  # float32 BM25 score of (term, document), grouped by term
    indices: np.ndarray  # int32 document of each entry
    indptr: np.ndarray  # int64 (terms + 1,) start of each term's postings
    num_docs: int
    token_pattern: str = TOKEN_PATTERN

    @classmethod
    def build(cls, texts: list[str]) -> LexicalIndex:
        import bm25s
        from bm25s.stopwords import STOPWORDS_EN

        stemmer = _stemmer()
        retriever = bm25s.BM25()
        if texts:
            tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
            retriever.index(tokens, show_progress=False)
            scores = retriever.scores
            return cls(
                # bm25s appends an empty token with no postings; no query word can match it.
                vocab={str(k): int(v) for k, v in retriever.vocab_dict.items() if k != ""},
                stopwords=frozenset(STOPWORDS_EN),
                data=np.asarray(scores["data"], dtype=np.float32),
                indices=np.asarray(scores["indices"], dtype=np.int32),
                indptr=np.asarray(scores["indptr"], dtype=np.int64),
                num_docs=int(scores["num_docs"]),
            )
        empty = (np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(1, np.int64))
        return cls({}, frozenset(STOPWORDS_EN), *empty, num_docs=0)

    def save(self, directory: Path) -> None:
        words = sorted(self.vocab, key=self.vocab.__getitem__)
        meta = {
            "num_docs": self.num_docs,
            "token_pattern": self.token_pattern,
            "stopwords": sorted(self.stopwords),
            "vocab": words,  # term id = position
            "scoring": "bm25s lucene k1=1.5 b=0.75",
        }
        (directory / META).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        for name, array in zip(ARRAYS, (self.data, self.indices, self.indptr), strict=True):
            with (directory / name).open("wb") as fh:
                np.save(fh, array, allow_pickle=False)

    @classmethod
    def load(cls, directory: Path, *, mmap: bool = True) -> LexicalIndex:
        meta = json.loads((directory / META).read_text(encoding="utf-8"))
        data, indices, indptr = (
            np.load(directory / name, allow_pickle=False, mmap_mode="r" if mmap else None) for name in ARRAYS
        )
        vocab = {word: i for i, word in enumerate(meta["vocab"])}
        if len(indptr) != len(vocab) + 1 or len(data) != len(indices) or int(indptr[-1]) != len(data):
            raise ValueError(f"BM25 arrays do not match their vocabulary ({len(vocab)} terms, {len(data)} postings)")
        return cls(vocab, frozenset(meta["stopwords"]), data, indices, indptr, int(meta["num_docs"]),
                   meta["token_pattern"])  # fmt: skip

    @cached_property
    def _split(self) -> Any:
        return re.compile(self.token_pattern).findall

    @cached_property
    def _stem(self) -> Any:
        return _stemmer().stemWords

    def query_terms(self, query: str) -> list[int]:
        """Term ids of the query's words that the index knows (repeats kept, as bm25s scores them)."""
        words = [w for w in self._split(query.lower()) if w not in self.stopwords]
        return [self.vocab[w] for w in self._stem(words) if w in self.vocab]

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for `query` (zeros when no query word is in the index)."""
        terms = self.query_terms(query)
        if not terms:
            return np.zeros(self.num_docs, dtype=np.float32)
        spans = [(int(self.indptr[t]), int(self.indptr[t + 1])) for t in terms]
        docs = np.concatenate([self.indices[a:b] for a, b in spans])
        weights = np.concatenate([self.data[a:b] for a, b in spans])
        return np.bincount(docs, weights=weights, minlength=self.num_docs).astype(np.float32)


def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")
