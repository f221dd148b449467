"""Writing chunks.sqlite (assistant.index.chunkstore reads it): a whole store, or a copy patched by an update."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from assistant.nlp import Value, encode
from assistant.types import Chunk, Document

FILE = "chunks.sqlite"


def write_store(path: Path, documents: Mapping[str, Document], chunks: Sequence[Chunk],
                values: Sequence[Sequence[Value]], spans: np.ndarray) -> None:  # fmt: skip
    """Write the store in one transaction; the caller publishes the directory it is in.

    `spans`: (chunks, 2) first and past-the-last sentence row of each chunk (or the chunks + 1 cumulative offsets).
    """
    if len(values) != len(chunks):
        raise ValueError(f"{len(values)} parse rows for {len(chunks)} chunks")
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    try:
        # A fresh file in a private build directory: no journal needed (a crash discards the directory).
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("CREATE TABLE chunks(row INTEGER PRIMARY KEY, doc TEXT NOT NULL, date TEXT NOT NULL, "
                    "nsent INTEGER NOT NULL, data TEXT NOT NULL, vals TEXT NOT NULL)")  # fmt: skip
        con.execute("CREATE TABLE documents(doc_id TEXT PRIMARY KEY, length INTEGER NOT NULL, data TEXT NOT NULL)")
        con.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        _insert(con, range(len(chunks)), chunks, values, documents)
        con.execute("CREATE INDEX chunks_doc ON chunks(doc)")  # the builder's reuse of unchanged documents
        con.execute("INSERT INTO meta VALUES ('sentence_spans', ?)", (_spans_blob(spans),))
        con.commit()
    finally:
        con.close()
    _fsync(path)


def update_store(path: Path, *, drop_docs: Sequence[str], moves: Sequence[tuple[int, int]], rows: Sequence[int],
                 documents: Mapping[str, Document], chunks: Sequence[Chunk], values: Sequence[Sequence[Value]],
                 spans: np.ndarray) -> None:  # fmt: skip
    """Edit a private copy of a build's store in place, in one transaction (assistant.index.update).

    Deletes the chunks and records of `drop_docs`, renumbers each moved chunk (old row, new row), inserts
    `chunks` at `rows` and `documents`, and replaces the sentence spans. Only the rows named are touched.
    """
    con = sqlite3.connect(path)
    try:
        # A copy in a private build directory: no journal needed (a crash discards the directory).
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.executemany("DELETE FROM chunks WHERE doc = ?", ((d,) for d in drop_docs))
        con.executemany("DELETE FROM documents WHERE doc_id = ?", ((d,) for d in drop_docs))
        con.executemany("UPDATE chunks SET row = ? WHERE row = ?", ((new, old) for old, new in moves))
        _insert(con, rows, chunks, values, documents)
        con.execute("UPDATE meta SET value = ? WHERE key = 'sentence_spans'", (_spans_blob(spans),))
        con.commit()
    finally:
        con.close()
    _fsync(path)


def _insert(con: sqlite3.Connection, rows: Iterable[int], chunks: Sequence[Chunk], values: Sequence[Sequence[Value]],
            documents: Mapping[str, Document]) -> None:  # fmt: skip
    if len(values) != len(chunks):
        raise ValueError(f"{len(values)} parse rows for {len(chunks)} chunks")
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    con.executemany(
        "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?)",
        ((row, c.doc, c.date, len(c.sentences), dumps(_record(c)), dumps(encode([list(v)])[0]))
         for row, c, v in zip(rows, chunks, values, strict=True)),
    )  # fmt: skip
    docs = ((d.doc_id, len(d.text), dumps(asdict(d))) for d in documents.values())
    con.executemany("INSERT INTO documents VALUES (?, ?, ?)", docs)


def _spans_blob(spans: np.ndarray) -> bytes:
    spans = np.asarray(spans, dtype=np.int64)
    if spans.ndim == 1:  # cumulative offsets of a contiguous build
        spans = np.stack([spans[:-1], spans[1:]], axis=1)
    return np.ascontiguousarray(spans, dtype="<i8").tobytes()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _record(c: Chunk) -> dict[str, Any]:
    """Chunk.to_dict(), written out: dataclasses.asdict recurses through every Sentence and took most of the
    time of writing 10^5 chunks. tests/test_chunkstore.py checks the two agree."""
    return {
        "chunk_id": c.chunk_id, "doc": c.doc, "title": c.title, "date": c.date, "section": c.section,
        "page": c.page, "text": c.text, "start": c.start, "end": c.end,
        "sentences": [[s.start, s.end, s.doc_start, s.doc_end] for s in c.sentences],
        "tokens": c.tokens, "flagged": list(c.flagged),
    }  # fmt: skip
