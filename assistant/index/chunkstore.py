"""Chunk text, metadata, parse values and document texts in one SQLite file, read lazily. Never pickle.

At 10^6 chunks a JSON file read whole costs tens of seconds and gigabytes at load, so a build keeps these in
`chunks.sqlite` (the stdlib's sqlite3; every record is a JSON text, as before) and a loaded index reads only
the rows it touches: `ChunkSequence` (len, index by row, iteration in row order) and `DocumentMapping` stand
in for the list and dict the rest of the code uses, with a small LRU cache in front of the file.

Layout:
    chunks(row INTEGER PRIMARY KEY, doc TEXT, date TEXT, nsent INTEGER, data TEXT, vals TEXT)
        row = position in the build (the FAISS id); data = Chunk.to_dict() as JSON; vals = the chunk's
        entities/figures (assistant.nlp.encode) as JSON; doc, date and nsent repeat fields of data for queries
        that must not read the texts (search filters, load checks)
    documents(doc_id TEXT PRIMARY KEY, length INTEGER, data TEXT)   data = the Document as JSON
    meta(key TEXT PRIMARY KEY, value BLOB)   "sentence_spans": int64 little-endian bytes, per chunk row the
        first and past-the-last row of its sentences in sentences.npy (contiguous and in order after a full
        build; after an incremental update (assistant.index.update) new chunks' sentences are appended and
        rows of removed chunks are left unreferenced until the next full build)

Readers open the file read-only and immutable (`mode=ro&immutable=1`: a published build never changes, so
SQLite takes no locks and never writes beside it). One connection is shared by the Streamlit server's
threads behind a lock: lookups are single-row reads by primary key, far shorter than the lock's cost matters.

Checks: the file is an artifact in the manifest (checksummed like the others). What a checksum cannot catch
(records edited by hand and checksummed again) is checked per record when it is read, and for small indexes
(<= FULL_CHECK_CHUNKS) for every record at load; at load, always: row ids contiguous, per-document counts
against the manifest, the documents against the manifest's files and the sentence offsets against the rows.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

import numpy as np

from assistant.index.chunkstore_write import FILE as FILE
from assistant.index.chunkstore_write import _record as _record
from assistant.index.chunkstore_write import update_store as update_store
from assistant.index.chunkstore_write import write_store as write_store
from assistant.index.validate import check_chunk, corrupt, parse_document
from assistant.nlp import Value, decode
from assistant.types import Chunk, Document

FULL_CHECK_CHUNKS = 20_000  # below this, every record is checked at load (a fraction of a second)
CACHE_SIZE = 4096
_BATCH = 2048


K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


class _Lru(Generic[K, V]):
    """A bounded least-recently-used cache, safe across the server's threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[K]:
        with self._lock:
            return iter(list(self._items))

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            if len(self._items) > self.size:
                self._items.popitem(last=False)


class ChunkStore:
    """A read-only connection to a build's chunks.sqlite, shared by threads."""

    def __init__(self, path: Path, where: Path) -> None:
        self.path = path
        self.where = where
        try:
            self._con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True,
                                        check_same_thread=False)  # fmt: skip
        except sqlite3.Error as exc:
            raise corrupt(where, f"{FILE} cannot be opened ({exc})") from exc
        self._lock = threading.Lock()
        self._chunks: _Lru[int, Chunk] = _Lru(CACHE_SIZE)
        # The answerer reads the values of every candidate passage for every question: cached like the chunks.
        self._values: _Lru[int, tuple[Value, ...]] = _Lru(CACHE_SIZE)
        self._docs: _Lru[str, Document] = _Lru(64)  # whole document texts: keep few
        self.lengths: dict[str, int] = {}
        self.count = 0
        self.offsets = np.zeros(1, dtype=np.int64)
        self.starts = np.zeros(0, dtype=np.int64)
        self.sentence_rows_needed = 0

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._con.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise corrupt(self.where, f"{FILE} cannot be read ({exc.__class__.__name__}: {exc})") from exc

    def open_checked(self, files: Mapping[str, Mapping[str, Any]]) -> None:
        """Load-time checks that cost one pass over small columns, never over the texts."""
        rows = self.query("SELECT doc_id, length FROM documents")
        self.lengths = {d: n for d, n in rows if isinstance(d, str) and isinstance(n, int) and n >= 0}
        if len(self.lengths) != len(rows) or set(self.lengths) != set(files):
            raise corrupt(self.where, f"the manifest's files and {FILE} list different documents")
        (count, low, high), *_ = self.query("SELECT count(*), min(row), max(row) FROM chunks")
        if count and (low != 0 or high != count - 1):
            raise corrupt(self.where, f"{FILE} has chunk rows {low}..{high} for {count} chunks")
        counts = dict(self.query("SELECT doc, count(*) FROM chunks GROUP BY doc"))
        for name, entry in files.items():
            if counts.pop(name, 0) != entry["chunks"]:
                raise corrupt(self.where, f"{name} has another number of chunks than the manifest says")
        if counts:
            raise corrupt(self.where, f"a chunk belongs to unknown document {next(iter(counts))!r}")
        blob = self.query("SELECT value FROM meta WHERE key = 'sentence_spans'")
        if len(blob) != 1 or not isinstance(blob[0][0], bytes) or len(blob[0][0]) != 16 * count:
            raise corrupt(self.where, f"{FILE} has no sentence spans for {count} chunks")
        spans = np.frombuffer(blob[0][0], dtype="<i8").astype(np.int64).reshape(count, 2)
        sizes = spans[:, 1] - spans[:, 0]
        if count and (spans.min() < 0 or (sizes < 0).any()):
            raise corrupt(self.where, f"{FILE} has malformed sentence spans")
        # offsets: where each chunk's sentences would start in a contiguous build (their count is what matters);
        # starts: where they are in sentences.npy
        self.count, self.starts = int(count), spans[:, 0].copy()
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.sentence_rows_needed = int(spans[:, 1].max()) if count else 0
        if count <= FULL_CHECK_CHUNKS:
            offsets = self.offsets
            for row, chunk in enumerate(ChunkSequence(self)):
                if len(chunk.sentences) != offsets[row + 1] - offsets[row]:
                    raise corrupt(self.where, f"chunk {chunk.chunk_id!r} has another number of sentences")
            for _ in ValueSequence(self):  # decoding is the check
                pass
            docs = DocumentMapping(self)
            for name in self.lengths:
                docs[name]

    # ------------------------------------------------------------ records, checked as they are read

    def chunk_from(self, row: int, doc: Any, date: Any, nsent: Any, data: Any) -> Chunk:
        try:
            record = json.loads(data)
            chunk = Chunk.from_dict(record) if isinstance(record, dict) else None
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise corrupt(self.where, f"chunk record {row} is malformed ({exc.__class__.__name__})") from exc
        if chunk is None or chunk.doc != doc or chunk.date != date or len(chunk.sentences) != nsent:
            raise corrupt(self.where, f"chunk record {row} is malformed")
        length = self.lengths.get(chunk.doc) if isinstance(chunk.doc, str) else None
        if length is None:
            raise corrupt(self.where, f"a chunk belongs to unknown document {chunk.doc!r}")
        check_chunk(chunk, length, self.where)
        return chunk

    def chunk(self, row: int) -> Chunk:
        cached = self._chunks.get(row)
        if cached is not None:
            return cached
        found = self.query("SELECT doc, date, nsent, data FROM chunks WHERE row = ?", (row,))
        if not found:
            raise corrupt(self.where, f"{FILE} has no chunk {row}")
        chunk = self.chunk_from(row, *found[0])
        self._chunks.put(row, chunk)
        return chunk

    def values(self, row: int) -> tuple[Value, ...]:
        cached = self._values.get(row)
        if cached is not None:
            return cached
        found = self.query("SELECT vals FROM chunks WHERE row = ?", (row,))
        try:
            values = decode([json.loads(found[0][0])])[0]
        except (IndexError, TypeError, KeyError, ValueError, AttributeError) as exc:
            raise corrupt(self.where, f"the parse values of chunk {row} are malformed") from exc
        self._values.put(row, values)
        return values

    def document(self, name: str) -> Document | None:
        cached = self._docs.get(name)
        if cached is not None:
            return cached
        if name not in self.lengths:
            return None
        found = self.query("SELECT data FROM documents WHERE doc_id = ?", (name,))
        try:
            doc = parse_document(json.loads(found[0][0]), self.where)
        except (IndexError, TypeError, ValueError) as exc:
            raise corrupt(self.where, f"the record of document {name!r} is malformed") from exc
        if doc.doc_id != name or len(doc.text) != self.lengths[name]:
            raise corrupt(self.where, f"the record of document {name!r} does not match its entry")
        self._docs.put(name, doc)
        return doc


class _Rows(Sequence[T]):
    """A per-row view of the store: indexing (negative indexes and slices too) reads through `_read`."""

    def __init__(self, store: ChunkStore) -> None:
        self.store = store

    def _read(self, row: int) -> T:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.store.count

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.store.count))]
        row = int(index) + (self.store.count if index < 0 else 0)
        if not 0 <= row < self.store.count:
            raise IndexError(index)
        return self._read(row)


class ChunkSequence(_Rows[Chunk]):
    """The chunks of a build by row, read from SQLite when first needed."""

    def __init__(self, store: ChunkStore) -> None:
        super().__init__(store)
        self._keys: tuple[np.ndarray, list[tuple[str, str]]] | None = None

    def _read(self, row: int) -> Chunk:
        return self.store.chunk(row)

    def __iter__(self) -> Iterator[Chunk]:
        # In row order, in batches, past the cache: a full pass must not evict what the server is using.
        for start in range(0, self.store.count, _BATCH):
            rows = self.store.query("SELECT row, doc, date, nsent, data FROM chunks WHERE row >= ? AND row < ? "
                                    "ORDER BY row", (start, start + _BATCH))  # fmt: skip
            for row in rows:
                yield self.store.chunk_from(*row)

    def of_doc(self, doc: str) -> list[Chunk]:
        """One document's chunks, in order (the builder's reuse of an unchanged document): one indexed query."""
        return self.of_doc_rows(doc)[1]

    def of_doc_rows(self, doc: str) -> tuple[list[int], list[Chunk]]:
        """One document's rows and chunks, in the document's order."""
        rows = self.store.query("SELECT row, doc, date, nsent, data FROM chunks WHERE doc = ? ORDER BY row", (doc,))
        # After an incremental update a document's rows need not be in its order (assistant.index.update).
        found = sorted(
            ((self.store.chunk_from(*r), r[0]) for r in rows), key=lambda cr: (cr[0].start, cr[0].end, cr[1])
        )
        return [r for _, r in found], [c for c, _ in found]

    def rows_of(self, docs: Iterable[str]) -> np.ndarray:
        """The rows of these documents' chunks, from the doc column (no record is read)."""
        found: list[int] = []
        for doc in docs:
            found.extend(r for (r,) in self.store.query("SELECT row FROM chunks WHERE doc = ?", (doc,)))
        return np.asarray(sorted(found), dtype=np.int64)

    def docs(self) -> list[str]:
        """The document of every row, from the doc column (the builder groups a previous build's rows by it)."""
        codes, pairs = self.filter_keys()
        names = [d for d, _ in pairs]
        return [names[c] for c in codes.tolist()]

    def filter_keys(self) -> tuple[np.ndarray, list[tuple[str, str]]]:
        """Per row, a code into the distinct (document, date) pairs: search filters without reading texts.

        Read from the doc and date columns once, then kept (4 bytes a row). A record whose columns disagree
        with its JSON is refused when the record itself is read.
        """
        if self._keys is None:
            pairs: dict[tuple[str, str], int] = {}
            rows = self.store.query("SELECT doc, date FROM chunks ORDER BY row")
            codes = np.fromiter((pairs.setdefault((d, t), len(pairs)) for d, t in rows), np.int32, len(rows))
            if not all(isinstance(d, str) and isinstance(t, str) for d, t in pairs):
                raise corrupt(self.store.where, f"{FILE} has a document or date that is not text")
            self._keys = (codes, list(pairs))
        return self._keys


class ValueSequence(_Rows[tuple[Value, ...]]):
    """Per chunk row, its entities and figures (assistant.nlp), read when first needed."""

    def _read(self, row: int) -> tuple[Value, ...]:
        return self.store.values(row)

    def __iter__(self) -> Iterator[tuple[Value, ...]]:
        for start in range(0, self.store.count, _BATCH):
            rows = self.store.query("SELECT row, vals FROM chunks WHERE row >= ? AND row < ? ORDER BY row",
                                    (start, start + _BATCH))  # fmt: skip
            for row, vals in rows:
                try:
                    yield decode([json.loads(vals)])[0]
                except (TypeError, KeyError, ValueError, AttributeError) as exc:
                    raise corrupt(self.store.where, f"the parse values of chunk {row} are malformed") from exc


class DocumentMapping(Mapping[str, Document]):
    """Documents by id; their (possibly long) texts are read when first needed."""

    def __init__(self, store: ChunkStore) -> None:
        self.store = store

    def __getitem__(self, name: str) -> Document:
        doc = self.store.document(name) if isinstance(name, str) else None
        if doc is None:
            raise KeyError(name)
        return doc

    def __contains__(self, name: object) -> bool:
        return name in self.store.lengths

    def __iter__(self) -> Iterator[str]:
        return iter(self.store.lengths)

    def __len__(self) -> int:
        return len(self.store.lengths)


def open_store(path: Path, where: Path, files: Mapping[str, Mapping[str, Any]]) -> ChunkStore:
    store = ChunkStore(path, where)
    try:
        store.open_checked(files)
    except BaseException:
        store.close()
        raise
    return store
