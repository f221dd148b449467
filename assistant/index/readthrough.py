"""Plain-dict caches in front of a loaded build's lazy chunk, value and document collections, for the answerer.

A loaded build reads chunks, parse values and documents from SQLite on demand (assistant.index.chunkstore),
behind a thread-safe LRU cache. The answerer reads them hundreds of times per question (every candidate
sentence's text, heading check and neighbour), and the LRU's lock and bookkeeping made up about a third of
the answering stage on the dev questions (eval/bench_answer.py; README "Performance and scale"). A dict
lookup is atomic across the server's threads and a fraction of that cost; emptied when full, the cache stays
bounded (a question touches tens of chunks). Collections already in memory (lists, dicts) are used as they are.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar, overload

T = TypeVar("T")
SIZE = 16384


class CachedSequence(Sequence[T]):
    def __init__(self, inner: Sequence[T], size: int = SIZE) -> None:
        self._inner = inner
        self._items: dict[int, T] = {}
        self._size = size

    def __len__(self) -> int:
        return len(self._inner)

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[T]: ...
    def __getitem__(self, index: int | slice) -> T | Sequence[T]:
        if isinstance(index, slice):
            return self._inner[index]
        found = self._items.get(index)
        if found is None:
            found = self._inner[index]
            if len(self._items) >= self._size:
                self._items.clear()
            self._items[index] = found
        return found

    def __iter__(self) -> Iterator[T]:
        return iter(self._inner)

    def __getattr__(self, name: str) -> Any:  # the store's own extras (of_doc, filter_keys, ...)
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._inner, name)


class CachedMapping(Mapping[str, T]):
    def __init__(self, inner: Mapping[str, T], size: int = 64) -> None:  # whole document texts: keep few
        self._inner = inner
        self._items: dict[str, T] = {}
        self._size = size

    def __getitem__(self, key: str) -> T:
        found = self._items.get(key)
        if found is None:
            found = self._inner[key]
            if len(self._items) >= self._size:
                self._items.clear()
            self._items[key] = found
        return found

    def __contains__(self, key: object) -> bool:
        return key in self._inner

    def __iter__(self) -> Iterator[str]:
        return iter(self._inner)

    def __len__(self) -> int:
        return len(self._inner)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._inner, name)


def read_through(data: Any) -> Any:
    """`data` (an IndexData) with cached chunks, values and documents when they are read lazily; else `data`."""
    import dataclasses

    if isinstance(data.chunks, list) and isinstance(data.documents, dict):
        return data
    return dataclasses.replace(
        data,
        chunks=data.chunks if isinstance(data.chunks, list) else CachedSequence(data.chunks),
        values=data.values if isinstance(data.values, list) else CachedSequence(data.values),
        documents=data.documents if isinstance(data.documents, dict) else CachedMapping(data.documents),
    )
