"""BM25 built once at index time and stored as plain arrays; queried without importing bm25s or scipy.

The index is bm25s's "lucene" scoring, precomputed per term and document (an eager sparse matrix), built here
in batches with numpy (`LexicalIndex.build`: bounded memory at 10^6 chunks) and checked against bm25s in tests.
The matrix is stored as three .npy arrays in CSC layout (per term: the documents that contain it and their
scores) plus a JSON file with the vocabulary, stopwords and token pattern, so loading is a memory map and a
query is one `np.bincount` over the posting lists of its terms. Why not bm25s at query time: importing it
pulls in scipy and tqdm (about 0.5 s of the cold start), and its scorer adds postings with `np.add.at`,
several times slower than `bincount` on the long posting lists of a 10^6-chunk index.

The query is tokenised as bm25s tokenises documents (lower case, the same regex, stopwords removed, then
PyStemmer's English stemmer); tests check the scores against bm25s's own.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

META = "bm25.json"
ARRAYS = ("bm25_data.npy", "bm25_indices.npy", "bm25_indptr.npy")
FILES = (META, *ARRAYS)
TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # bm25s's default (scikit-learn's CountVectorizer pattern)
K1, B = 1.5, 0.75  # bm25s's defaults, "lucene" scoring
BUILD_BATCH = 50_000
# A query reads at most this many postings per term, the highest-scoring first (postings are stored in impact
# order). At 10^6 synthetic chunks common terms have hundreds of thousands of postings; such a term has a low idf,
# so its lower-impact postings move the top candidates little. Measured there (eval/bench_scale.py --step bm25):
# BM25 p95 24.8 ms exact, 16.5 / 13.2 / 8.4 ms at caps 200k / 100k / 50k, whose top 10 agree with exact scoring
# 0.969 / 0.923 / 0.884 of the time. Below POSTING_CAP chunks nothing changes.
POSTING_CAP = 200_000


@dataclass
class LexicalIndex:
    vocab: dict[str, int]
    stopwords: frozenset[str]
    data: np.ndarray  # float32 BM25 score of (term, document), grouped by term
    indices: np.ndarray  # int32 document of each entry
    indptr: np.ndarray  # int64 (terms + 1,) start of each term's postings
    num_docs: int
    token_pattern: str = TOKEN_PATTERN
    impact_ordered: bool = False  # each term's postings by score, highest first (so a prefix is its best)

    @classmethod
    def build(cls, texts: Iterable[str], *, batch: int = BUILD_BATCH) -> LexicalIndex:
        """BM25 over `texts`, tokenised `batch` texts at a time, scored as bm25s's "lucene" method scores.

        Written with numpy rather than through `bm25s.BM25.index`: bm25s holds every document as a Python list
        of token ids and fills its matrix in a Python loop per document, which peaked at 9 GB (of the 9.0 GB
        build) at 10^6 chunks. Here a batch's tokens become (document, term, count) arrays at once, so the
        build holds three small arrays per posting; tests check the scores against bm25s's own.
        """
        from bm25s.stopwords import STOPWORDS_EN

        stopwords = frozenset(STOPWORDS_EN)
        split = re.compile(TOKEN_PATTERN).findall
        stem = _stemmer().stemWords
        word_term: dict[str, int] = {}  # word -> id of its stem
        vocab: dict[str, int] = {}  # stem -> id
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        lengths: list[np.ndarray] = []
        num_docs = 0
        for group in _batched(texts, batch):
            words = [[w for w in split(text.lower()) if w not in stopwords] for text in group]
            new = list({w for doc in words for w in doc if w not in word_term})
            for word, root in zip(new, stem(new), strict=True):
                word_term[word] = vocab.setdefault(root, len(vocab))
            sizes = np.fromiter((len(doc) for doc in words), dtype=np.int64, count=len(words))
            terms = np.fromiter((word_term[w] for doc in words for w in doc), dtype=np.int64, count=int(sizes.sum()))
            docs = np.repeat(np.arange(num_docs, num_docs + len(words), dtype=np.int64), sizes)
            # One key per (document, term), sorted by document then term; its count is the term frequency.
            keys, counts = np.unique((docs << 32) | terms, return_counts=True)
            parts.append(
                ((keys >> 32).astype(np.int32), (keys & 0xFFFFFFFF).astype(np.int32), counts.astype(np.float32))
            )
            lengths.append(sizes)
            num_docs += len(words)
        if not num_docs:
            empty = (np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(1, np.int64))
            return cls({}, stopwords, *empty, num_docs=0)
        doc_ids = np.concatenate([p[0] for p in parts])
        term_ids = np.concatenate([p[1] for p in parts])
        tf = np.concatenate([p[2] for p in parts])
        del parts
        doc_len = np.concatenate(lengths).astype(np.float32)
        df = np.bincount(term_ids, minlength=len(vocab))
        idf = np.log(1 + (num_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        avg = float(doc_len.mean()) or 1.0
        tf /= K1 * ((1 - B) + B * doc_len[doc_ids] / avg) + tf  # in place: tf becomes the tf component
        tf *= idf[term_ids]
        order = np.lexsort((doc_ids, -tf, term_ids))  # by term, then impact (highest first), then document
        del term_ids
        return cls(
            vocab=vocab,
            stopwords=stopwords,
            data=tf[order],
            indices=doc_ids[order],
            indptr=np.concatenate([[0], np.cumsum(df)]).astype(np.int64),
            num_docs=num_docs,
            impact_ordered=True,
        )

    def save(self, directory: Path) -> None:
        words = sorted(self.vocab, key=self.vocab.__getitem__)
        meta = {
            "num_docs": self.num_docs,
            "token_pattern": self.token_pattern,
            "stopwords": sorted(self.stopwords),
            "vocab": words,  # term id = position
            "scoring": "bm25s lucene k1=1.5 b=0.75",
            "impact_ordered": self.impact_ordered,
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
                   meta["token_pattern"], bool(meta.get("impact_ordered", False)))  # fmt: skip

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

    def scores(self, query: str, *, cap: int | None = POSTING_CAP) -> np.ndarray:
        """BM25 score of every document for `query` (zeros when no query word is in the index).

        With `cap` (and impact-ordered postings) a term contributes only its `cap` best postings; None: exact.
        """
        terms = self.query_terms(query)
        if not terms:
            return np.zeros(self.num_docs, dtype=np.float32)
        limit = cap if cap is not None and self.impact_ordered else None
        spans = [(int(self.indptr[t]), int(self.indptr[t + 1])) for t in terms]
        if limit is not None:
            spans = [(a, min(b, a + limit)) for a, b in spans]
        docs = np.concatenate([self.indices[a:b] for a, b in spans])
        weights = np.concatenate([self.data[a:b] for a, b in spans])
        return np.bincount(docs, weights=weights, minlength=self.num_docs).astype(np.float32)


def _batched(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(texts)
    while group := list(itertools.islice(it, size)):
        yield group


def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")
