"""The answerer's corpus statistics, computed once at build time and stored with the build. Never pickle.

The extractive answerer weighs a question's words by their inverse document frequency over the chunks and
finds the chunk a hit came from by its id. Computed at load, both walked every chunk: at 10^6 chunks that
is minutes and gigabytes (a set of terms per chunk). A build therefore writes:

    terms.json        {"format": 1, "chunks": N, "df": {stemmed content term: number of chunks using it}}
    chunk_ids.npy     every chunk id (UTF-8, fixed-width bytes), sorted; ties in row order
    chunk_rows.npy    int64: the row of each id above (so an id is found by binary search, memory-mapped)

All three are artifacts in the manifest (checksummed at write, verified at load like the other files);
`load` also checks their shape and refuses (IndexCorruptError) anything inconsistent. A chunk's own term set
is not stored: the answerer computes it for the few candidate chunks a question touches (`chunk_terms`).

The terms of a chunk are a function of its section and text, and so is its id (assistant.ingest.chunker:
a digest of document, occurrence, section and text). An update therefore takes the previous build's
frequencies and only subtracts the chunks whose ids left and adds those that came (`write(previous=...)`):
work in proportion to the change, with the same numbers as a full count (tests/test_termstats.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.answer.text import content_terms
from assistant.errors import IndexCorruptError
from assistant.index import npyio
from assistant.types import Chunk

if TYPE_CHECKING:
    from assistant.index.store import IndexData

FORMAT = 1
TERMS = "terms.json"
IDS = "chunk_ids.npy"
ROWS = "chunk_rows.npy"
FILES = (TERMS, IDS, ROWS)
REBUILD_HINT = "Run `assistant index --rebuild` to build a fresh index."


def chunk_terms(chunk: Chunk) -> set[str]:
    """The stemmed content terms of a chunk: its section path and its text (what the answerer's idf counts)."""
    return set(content_terms(f"{chunk.section} {chunk.text}"))


class Positions(Mapping[str, int]):
    """chunk id -> row, by binary search in a sorted (memory-mapped) id array; a repeated id maps to its last row
    (as the dict this replaces did)."""

    def __init__(self, ids: np.ndarray, rows: np.ndarray) -> None:
        self._ids = ids
        self._rows = rows

    def __getitem__(self, key: str) -> int:
        if not isinstance(key, str):
            raise KeyError(key)
        raw = key.encode("utf-8")
        # numpy would cut a longer key to the array's width (and a trailing NUL is dropped): neither is an id here.
        if not raw or len(raw) > self._ids.dtype.itemsize or raw.endswith(b"\0"):
            raise KeyError(key)
        i = int(np.searchsorted(self._ids, np.array(raw, dtype=self._ids.dtype), side="right")) - 1
        if i < 0 or bytes(self._ids[i]) != raw:
            raise KeyError(key)
        return int(self._rows[i])

    def __iter__(self) -> Iterator[str]:
        previous = None
        for raw in self._ids:
            if raw != previous:
                yield bytes(raw).decode("utf-8")
            previous = raw

    def __len__(self) -> int:
        return len(self._ids)


@dataclass(frozen=True)
class TermStats:
    chunks: int  # the N of the idf
    df: dict[str, int]  # term -> number of chunks whose terms include it
    positions: Mapping[str, int]  # chunk id -> row


def compute(chunks: Sequence[Chunk]) -> TermStats:
    """Count over every chunk (a build without stored statistics: another store, an in-memory index)."""
    df: dict[str, int] = {}
    positions: dict[str, int] = {}
    for row, chunk in enumerate(chunks):
        positions[chunk.chunk_id] = row
        for term in chunk_terms(chunk):
            df[term] = df.get(term, 0) + 1
    return TermStats(len(chunks), df, positions)


def write(directory: Path, chunks: Sequence[Chunk], *, previous: IndexData | None = None) -> list[str]:
    """Write the statistics of `chunks` (in row order) into a build directory; return the file names written.

    With `previous` (the loaded build this one updates) only the chunks whose ids differ are counted.
    """
    ids = [c.chunk_id for c in chunks]
    df = _updated(previous, ids, chunks) if previous is not None else None
    if df is None:
        df = compute(chunks).df
    encoded = np.array([i.encode("utf-8") for i in ids], dtype=f"S{max((len(i.encode()) for i in ids), default=1)}")
    order = np.argsort(encoded, kind="stable")  # stable: a repeated id's rows stay ascending, the last wins
    _write_files(directory, encoded[order], order.astype(np.int64), df)
    return list(FILES)


def write_update(
    directory: Path,
    previous: IndexData,
    *,
    remap: np.ndarray,
    rows: np.ndarray,
    dropped: Sequence[int],
    chunks: Sequence[Chunk],
) -> list[str]:
    """The statistics of an incremental update (assistant.index.update) without reading the unchanged chunks.

    The previous build's frequencies minus the terms of its `dropped` rows plus those of the new `chunks`; its id
    table with every row relabelled by `remap` (-1: dropped) and the new chunks' ids at `rows`. Returns the file
    names written, or [] when the previous build has no usable statistics (the answerer then counts at load).
    """
    try:
        old = load(previous)
    except IndexCorruptError:
        return []
    if old is None or not isinstance(old.positions, Positions):
        return []
    df = dict(old.df)
    for row in dropped:
        for term in chunk_terms(previous.chunks[int(row)]):
            left = df.get(term, 0) - 1
            if left < 0:
                return []  # the stored counts do not match the chunks: leave the counting to the answerer
            if left:
                df[term] = left
            else:
                del df[term]
    for chunk in chunks:
        for term in chunk_terms(chunk):
            df[term] = df.get(term, 0) + 1
    old_ids, old_rows = np.asarray(old.positions._ids), np.asarray(old.positions._rows, dtype=np.int64)
    now = np.asarray(remap, dtype=np.int64)[old_rows]
    kept = now >= 0
    encoded = [c.chunk_id.encode("utf-8") for c in chunks]
    width = max(1, old_ids.dtype.itemsize, *(len(e) for e in encoded))
    ids = np.concatenate([old_ids[kept].astype(f"S{width}"), np.array(encoded, dtype=f"S{width}")])
    all_rows = np.concatenate([now[kept], np.asarray(rows, dtype=np.int64)])
    order = np.lexsort((all_rows, ids))  # by id, a repeated id's rows ascending: as `write` orders them
    _write_files(directory, ids[order], all_rows[order], df)
    return list(FILES)


def _write_files(directory: Path, ids: np.ndarray, rows: np.ndarray, df: dict[str, int]) -> None:
    with (directory / IDS).open("wb") as fh:
        np.save(fh, ids, allow_pickle=False)
    with (directory / ROWS).open("wb") as fh:
        np.save(fh, rows, allow_pickle=False)
    with (directory / TERMS).open("w", encoding="utf-8") as fh:
        json.dump({"format": FORMAT, "chunks": len(rows), "df": dict(sorted(df.items()))}, fh,
                  ensure_ascii=False, separators=(",", ":"))  # fmt: skip
        fh.flush()
        os.fsync(fh.fileno())


def _updated(previous: IndexData, ids: list[str], chunks: Sequence[Chunk]) -> dict[str, int] | None:
    """The previous build's frequencies with the chunks that left subtracted and the new ones added, or None
    when a full count is as cheap or the previous build has no usable statistics."""
    try:
        old = load(previous)
    except IndexCorruptError:
        return None
    if old is None or not isinstance(old.positions, Positions) or len(set(ids)) != len(ids):
        return None
    old_ids = old.positions._ids
    if len(old_ids) > 1 and bool((old_ids[1:] == old_ids[:-1]).any()):
        return None  # repeated ids: which copy left is ambiguous
    now = set(ids)
    left = [int(old.positions._rows[i]) for i, raw in enumerate(old_ids.tolist()) if raw.decode("utf-8") not in now]
    before = {raw.decode("utf-8") for raw in old_ids.tolist()}
    came = [row for row, i in enumerate(ids) if i not in before]
    if len(left) + len(came) > len(ids) // 2:
        return None
    df = dict(old.df)
    for row in left:
        for term in chunk_terms(previous.chunks[row]):
            df[term] -= 1
            if not df[term]:
                del df[term]
    for row in came:
        for term in chunk_terms(chunks[row]):
            df[term] = df.get(term, 0) + 1
    return df


def load(data: IndexData) -> TermStats | None:
    """The stored statistics of a loaded build, or None when it has none (written by another store or version).

    The files' checksums were verified by load_index (they are manifest artifacts); this checks their content.
    """
    artifacts = getattr(data.manifest, "artifacts", None) or {}
    if not all(name in artifacts for name in FILES):
        return None
    where = data.path

    def bad(what: str) -> IndexCorruptError:
        return IndexCorruptError(f"The answer statistics in {where} are damaged ({what}). {REBUILD_HINT}")

    try:
        raw: Any = json.loads((where / TERMS).read_text(encoding="utf-8"))
        ids = npyio.load(where / IDS)
        rows = npyio.load(where / ROWS)
    except (OSError, ValueError) as exc:
        raise bad(str(exc)) from exc
    n = len(data.chunks)
    if not isinstance(raw, dict) or raw.get("format") != FORMAT or raw.get("chunks") != n:
        raise bad(f"{TERMS} does not describe {n} chunks")
    df = raw.get("df")
    if not isinstance(df, dict) or not all(type(f) is int and 0 < f <= n for f in df.values()):
        raise bad(f"{TERMS} has a frequency that is not a count of chunks")
    if ids.ndim != 1 or ids.dtype.kind != "S" or len(ids) != n or rows.shape != (n,) or rows.dtype != np.int64:
        raise bad(f"{IDS} / {ROWS} do not hold {n} chunk ids")
    if n and (int(rows.min()) < 0 or int(rows.max()) >= n or bool((ids[1:] < ids[:-1]).any())):
        raise bad(f"{IDS} is not sorted or {ROWS} names a row outside the index")
    return TermStats(n, df, Positions(ids, rows))


def for_index(data: IndexData) -> TermStats:
    """The stored statistics when the build has them, else counted over its chunks."""
    return load(data) or compute(data.chunks)
