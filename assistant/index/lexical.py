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

from assistant.index import npyio

META = "bm25.json"
ARRAYS = ("bm25_data.npy", "bm25_indices.npy", "bm25_indptr.npy")
# What an incremental update needs to rescore (LexicalIndex.updated): the raw term frequency of each posting, in
# the order of bm25_data, and each chunk's length in terms. Memory-mapped and never read by queries.
UPDATE_ARRAYS = ("bm25_tf.npy", "bm25_doclen.npy")
FILES = (META, *ARRAYS, *UPDATE_ARRAYS)
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
    tf: np.ndarray | None = None  # float32 raw term frequency of each posting (same order as data)
    doc_len: np.ndarray | None = None  # float32 (num_docs,) terms per document

    @classmethod
    def build(cls, texts: Iterable[str], *, batch: int = BUILD_BATCH) -> LexicalIndex:
        """BM25 over `texts`, tokenised `batch` texts at a time, scored as bm25s's "lucene" method scores.

        Written with numpy rather than through `bm25s.BM25.index`: bm25s holds every document as a Python list
        of token ids and fills its matrix in a Python loop per document, which peaked at 9 GB (of the 9.0 GB
        build) at 10^6 chunks. Here a batch's tokens become (document, term, count) arrays at once, so the
        build holds three small arrays per posting; tests check the scores against bm25s's own.
        """
        from bm25s.stopwords import STOPWORDS_EN

        tokeniser = _Tokeniser(frozenset(STOPWORDS_EN), {})
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        lengths: list[np.ndarray] = []
        num_docs = 0
        for group in _batched(texts, batch):
            doc_ids, term_ids, counts, sizes = tokeniser.postings(group, first_doc=num_docs)
            parts.append((doc_ids, term_ids, counts))
            lengths.append(sizes)
            num_docs += len(group)
        if not num_docs:
            empty = (np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(1, np.int64))
            return cls({}, tokeniser.stopwords, *empty, num_docs=0, tf=np.zeros(0, np.float32),
                       doc_len=np.zeros(0, np.float32))  # fmt: skip
        doc_ids = np.concatenate([p[0] for p in parts])
        term_ids = np.concatenate([p[1] for p in parts])
        tf = np.concatenate([p[2] for p in parts])
        del parts
        doc_len = np.concatenate(lengths).astype(np.float32)
        data = _impacts(tf, term_ids, doc_ids, doc_len, len(tokeniser.vocab))
        order = np.lexsort((doc_ids, -data, term_ids))  # by term, then impact (highest first), then document
        df = np.bincount(term_ids, minlength=len(tokeniser.vocab))
        del term_ids
        return cls(
            vocab=tokeniser.vocab,
            stopwords=tokeniser.stopwords,
            data=data[order],
            indices=doc_ids[order],
            indptr=np.concatenate([[0], np.cumsum(df)]).astype(np.int64),
            num_docs=num_docs,
            impact_ordered=True,
            tf=tf[order],
            doc_len=doc_len,
        )

    def updated(self, remap: np.ndarray, texts: list[str], rows: np.ndarray) -> LexicalIndex:
        """This index after an incremental update, scored exactly as `build` would score the new collection.

        `remap` gives each current row its row in the new collection (-1: removed); `texts` are the new chunks
        and `rows` their rows. Only the new texts are tokenised; the stored term frequencies and lengths of the
        others are moved with numpy, then every posting is rescored with the new N, df and average length (the
        statistics of the whole collection change with any document, so every impact does; that is arithmetic
        over the arrays, not a pass over the texts). Postings keep their order within a term except for terms
        longer than POSTING_CAP, which are re-sorted by impact so a capped query still reads the best prefix.
        """
        if self.tf is None or self.doc_len is None:
            raise ValueError("this BM25 index has no term frequencies; it cannot be updated")
        remap = np.asarray(remap, dtype=np.int64)
        num_docs = int((remap >= 0).sum()) + len(texts)
        tokeniser = _Tokeniser(self.stopwords, dict(self.vocab))
        new_docs, new_terms, new_tf, sizes = tokeniser.postings(texts, first_doc=0)
        new_docs = np.asarray(rows, dtype=np.int64)[new_docs].astype(np.int32)
        old_terms = np.repeat(np.arange(len(self.vocab), dtype=np.int32), np.diff(np.asarray(self.indptr)))
        old_docs = remap[np.asarray(self.indices)]
        keep = old_docs >= 0
        kept_terms, kept_docs, kept_tf = old_terms[keep], old_docs[keep].astype(np.int32), np.asarray(self.tf)[keep]
        del old_terms, old_docs, keep
        # The kept postings are grouped by term already: insert each new one after its term's (linear, no sort).
        order = np.argsort(new_terms, kind="stable")
        at = np.searchsorted(kept_terms, new_terms[order], side="right")
        term_ids = np.insert(kept_terms, at, new_terms[order])
        doc_ids = np.insert(kept_docs, at, new_docs[order])
        tf = np.insert(kept_tf, at, new_tf[order])
        del kept_terms, kept_docs, kept_tf
        doc_len = np.zeros(num_docs, dtype=np.float32)
        live = remap >= 0
        doc_len[remap[live]] = np.asarray(self.doc_len)[live]
        doc_len[np.asarray(rows, dtype=np.int64)] = sizes
        data = _impacts(tf, term_ids, doc_ids, doc_len, len(tokeniser.vocab))
        df = np.bincount(term_ids, minlength=len(tokeniser.vocab))
        indptr = np.concatenate([[0], np.cumsum(df)]).astype(np.int64)
        for t in np.flatnonzero(df > POSTING_CAP).tolist():
            a, b = int(indptr[t]), int(indptr[t + 1])
            best = np.lexsort((doc_ids[a:b], -data[a:b]))
            data[a:b], doc_ids[a:b], tf[a:b] = data[a:b][best], doc_ids[a:b][best], tf[a:b][best]
        return LexicalIndex(tokeniser.vocab, self.stopwords, data, doc_ids, indptr, num_docs, self.token_pattern,
                            impact_ordered=True, tf=tf, doc_len=doc_len)  # fmt: skip

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
        if self.tf is None or self.doc_len is None:
            raise ValueError("a BM25 index is saved with its term frequencies (LexicalIndex.build makes them)")
        arrays = (self.data, self.indices, self.indptr, self.tf, self.doc_len)
        for name, array in zip((*ARRAYS, *UPDATE_ARRAYS), arrays, strict=True):
            with (directory / name).open("wb") as fh:
                np.save(fh, array, allow_pickle=False)

    @classmethod
    def load(cls, directory: Path, *, mmap: bool = True) -> LexicalIndex:
        meta = json.loads((directory / META).read_text(encoding="utf-8"))
        data, indices, indptr = (npyio.load(directory / name, mmap=mmap) for name in ARRAYS)
        tf, doc_len = (npyio.load(directory / name) for name in UPDATE_ARRAYS)
        vocab = {word: i for i, word in enumerate(meta["vocab"])}
        if len(indptr) != len(vocab) + 1 or len(data) != len(indices) or int(indptr[-1]) != len(data):
            raise ValueError(f"BM25 arrays do not match their vocabulary ({len(vocab)} terms, {len(data)} postings)")
        if len(tf) != len(data) or len(doc_len) != int(meta["num_docs"]):
            raise ValueError(f"BM25 term frequencies ({len(tf)}) or lengths ({len(doc_len)}) do not match the index")
        return cls(vocab, frozenset(meta["stopwords"]), data, indices, indptr, int(meta["num_docs"]),
                   meta["token_pattern"], bool(meta.get("impact_ordered", False)), tf, doc_len)  # fmt: skip

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


class _Tokeniser:
    """Texts to (document, term, count) postings as bm25s tokenises them, growing `vocab` (stem -> term id)."""

    def __init__(self, stopwords: frozenset[str], vocab: dict[str, int]) -> None:
        self.stopwords = stopwords
        self.vocab = vocab
        self.word_term: dict[str, int] = {}  # word -> id of its stem
        self.split = re.compile(TOKEN_PATTERN).findall
        self.stem = _stemmer().stemWords

    def postings(self, texts: list[str], *, first_doc: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per posting its document (first_doc + position), term and count, sorted by document then term; and
        each text's length in terms."""
        words = [[w for w in self.split(text.lower()) if w not in self.stopwords] for text in texts]
        new = list({w for doc in words for w in doc if w not in self.word_term})
        for word, root in zip(new, self.stem(new), strict=True):
            self.word_term[word] = self.vocab.setdefault(root, len(self.vocab))
        sizes = np.fromiter((len(doc) for doc in words), dtype=np.int64, count=len(words))
        terms = np.fromiter((self.word_term[w] for doc in words for w in doc), dtype=np.int64, count=int(sizes.sum()))
        docs = np.repeat(np.arange(first_doc, first_doc + len(words), dtype=np.int64), sizes)
        # One key per (document, term), sorted by document then term; its count is the term frequency.
        keys, counts = np.unique((docs << 32) | terms, return_counts=True)
        return (keys >> 32).astype(np.int32), (keys & 0xFFFFFFFF).astype(np.int32), counts.astype(np.float32), sizes


def _impacts(tf: np.ndarray, term_ids: np.ndarray, doc_ids: np.ndarray, doc_len: np.ndarray, terms: int) -> np.ndarray:
    """BM25 ("lucene") score of each posting, from the collection's N, df and average length.

    The average is taken in float64 over integer lengths, so it is exact and the same whatever the row order
    (an updated index and a fresh build of the same chunks then score every posting alike, to the bit).
    """
    num_docs = len(doc_len)
    df = np.bincount(term_ids, minlength=terms)
    idf = np.log(1 + (num_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
    avg = float(doc_len.sum(dtype=np.float64) / num_docs) if num_docs else 1.0
    out = tf / (K1 * ((1 - B) + B * doc_len[doc_ids] / (avg or 1.0)) + tf)
    out *= idf[term_ids]
    return out.astype(np.float32, copy=False)


def _batched(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(texts)
    while group := list(itertools.islice(it, size)):
        yield group


def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")
