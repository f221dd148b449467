"""Chunk and sentence vectors from one pass of the embedding model over the sentences.

The answerer needs a vector per sentence (sentence selection and citation checks cost a dot product at question
time). Encoding each chunk again on top of that was half of the build, so a chunk's vector is pooled from its
sentences' vectors instead: their sum weighted by sentence length ** POOL_POWER, normalised.

Measured on the dev gold (`python eval/bench_pooling.py`; answer figures from `assistant train --cv` on an index
built each way), against chunks encoded whole:

| chunk vectors | hybrid R@1 | dense R@1 | dense R@5 | CV key acc. |
|---|---|---|---|---|
| encoded whole (before) | 0.774 | 0.583 | 0.827 | 0.613 |
| mean of sentences (p = 0) | 0.774 | 0.542 | 0.768 | 0.637 |
| **length ** 0.75 (p = 0.75)** | 0.768 | 0.607 | 0.821 | 0.619 |

p = 0.75 was chosen by dense MRR@10: grouped by document, every fold chose it. The plain mean answers a little
better through our score fusion but loses a tenth of dense recall@5, and retrieval that leans on dense ranks
suffers with it (the Milvus backend fuses by rank: its recall@5 on the dev gold fell to 0.869 against FAISS's
0.935 with the mean, 0.911 with p = 0.75). The opposite direction, sentence vectors cut out of a chunk pass,
loses far more (the issue measured a cosine of 0.77), and a sentence encoded alone is what the answerer compares
with the question.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from assistant.index.embedder import Embedder
from assistant.ingest.chunker import embedding_text
from assistant.types import Chunk

POOL_POWER = 0.75
# Recorded with the chunker settings in the manifest: an index whose chunk vectors were made another way is
# re-embedded by the next build rather than mixed.
CHUNK_VECTORS = f"sentences^{POOL_POWER}"
EMBED_BATCH = 64
_POOL_BLOCK = 4096  # chunks pooled at a time: bounds the float32 copy of their sentence vectors

Progress = Callable[[str, int, int], None]


def embed_texts(
    embedder: Embedder, texts: Sequence[str], tick: Progress, stage: str, *, dtype: type = np.float32
) -> np.ndarray:
    """Vectors of `texts` in input order, computed in length order (batches of similar length pad less)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: np.ndarray = np.zeros((len(texts), embedder.dimension), dtype=dtype)
    batches = max(1, (len(texts) + EMBED_BATCH - 1) // EMBED_BATCH)
    for b in range(0, len(texts), EMBED_BATCH):
        tick(stage, b // EMBED_BATCH, batches)
        rows = order[b : b + EMBED_BATCH]
        out[rows] = embedder.embed_documents([texts[i] for i in rows])
    tick(stage, batches, batches)
    return out


class ChunkVectors:
    """The vectors of a list of chunks: one float32 vector per chunk, one float16 vector per sentence.

    A sentence repeated within or across chunks (a table's key cells, boilerplate) is embedded once:
    `unique` holds one row per distinct sentence text, `sentence_rows` the row of each chunk sentence in order.
    """

    def __init__(self, embedder: Embedder, chunks: Sequence[Chunk], tick: Progress) -> None:
        texts = [c.sentence_text(s) for c in chunks for s in c.sentences]
        distinct = list(dict.fromkeys(texts))
        # float16 from the start: the index stores them so, and a huge file's sentence vectors are its largest array.
        self.unique = embed_texts(embedder, distinct, tick, "sentences", dtype=np.float16)
        row_of = {text: i for i, text in enumerate(distinct)}
        self.sentence_rows = np.fromiter((row_of[t] for t in texts), dtype=np.int64, count=len(texts))
        self.offsets = np.concatenate([[0], np.cumsum([len(c.sentences) for c in chunks])]).astype(np.int64)
        weights = np.fromiter(
            (max(1, s.end - s.start) for c in chunks for s in c.sentences), dtype=np.float32, count=len(texts)
        )
        self.chunks = self._pool(weights**POOL_POWER)
        empty = [i for i, c in enumerate(chunks) if not c.sentences]  # none from the chunker; kept safe anyway
        if empty:
            self.chunks[empty] = embed_texts(embedder, [embedding_text(chunks[i]) for i in empty], tick, "embed")

    @property
    def distinct_sentences(self) -> int:
        return len(self.unique)

    def sentences_of(self, i: int) -> np.ndarray:
        """The sentence vectors of chunk `i`, in order (float16)."""
        return self.unique[self.sentence_rows[int(self.offsets[i]) : int(self.offsets[i + 1])]]

    def _pool(self, weights: np.ndarray) -> np.ndarray:
        n = len(self.offsets) - 1
        out = np.zeros((n, self.unique.shape[1]), dtype=np.float32)
        for lo in range(0, n, _POOL_BLOCK):
            hi = min(n, lo + _POOL_BLOCK)
            start, stop = int(self.offsets[lo]), int(self.offsets[hi])
            if stop == start:
                continue
            block = self.unique[self.sentence_rows[start:stop]].astype(np.float32) * weights[start:stop, None]
            # Sum each chunk's run of rows. Only chunks with rows start a run (reduceat wants increasing starts
            # below the length); an empty chunk between two runs adds no rows to either, and stays zero here.
            has_rows = self.offsets[lo + 1 : hi + 1] > self.offsets[lo:hi]
            out[lo:hi][has_rows] = np.add.reduceat(block, (self.offsets[lo:hi] - start)[has_rows], axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out
