"""Plain-dict caches in front of a loaded build's lazy chunk, value and document collections, for the answerer.

A loaded build reads chunks, parse values and documents from SQLite on demand (assistant.index.chunkstore),
behind a thread-safe LRU cache. The answerer reads them hundreds of times per question (every candidate
sentence's text, heading check and neighbour), and the LRU's lock and bookkeeping made up about a third of
the answering stage on the dev questions (eval/bench_answer.py; README "Performance and scale"). A dict
lookup is atomic across the server's threads and a fraction of that cost; emptied when full, the cache stays
bounded (a question touches tens of chunks). Collections already in memory (lists, dicts) are used as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, overload

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
SIZE = 16384


class Memo(dict[K, T]):
    """`memo[key]` is `compute(key)`, computed on the first read and kept; emptied when `size` keys are held.

    Emptied rather than LRU: a hit is one dict lookup (in C, atomic across the server's threads), and a refill
    after emptying costs one question a few milliseconds. Shared by the caches here and the answerer's.
    """

    def __init__(self, compute: Callable[[K], T], size: int = SIZE) -> None:
        super().__init__()
        self._compute = compute
        self._size = size

    def __missing__(self, key: K) -> T:
        value = self._compute(key)
        if len(self) >= self._size:
            self.clear()
        self[key] = value
        return value


class CachedSequence(Sequence[T]):
    def __init__(self, inner: Sequence[T], size: int = SIZE) -> None:
        self._inner = inner
        self._items: Memo[int, T] = Memo(inner.__getitem__, size)

    def __len__(self) -> int:
        return len(self._inner)

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[T]: ...
    def __getitem__(self, index: int | slice) -> T | Sequence[T]:
        return self._inner[index] if isinstance(index, slice) else self._items[index]

    def __iter__(self) -> Iterator[T]:
        return iter(self._inner)

    def __getattr__(self, name: str) -> Any:  # the store's own extras (of_doc, filter_keys, ...)
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._inner, name)


class CachedMapping(Mapping[str, T]):
    def __init__(self, inner: Mapping[str, T], size: int = 64) -> None:  # whole document texts: keep few
        self._inner = inner
        self._items: Memo[str, T] = Memo(inner.__getitem__, size)

    def __getitem__(self, key: str) -> T:
        return self._items[key]

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
