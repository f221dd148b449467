"""The answerer's read-through caches in front of a loaded build's lazy collections."""

from __future__ import annotations

from assistant import Settings
from assistant.answer.extractive import SentenceScorer
from assistant.index.builder import build_index
from assistant.index.readthrough import CachedSequence, read_through
from assistant.index.store import load_index
from tests.conftest import KeywordEmbedder


class Counting(list[int]):
    reads = 0

    def __getitem__(self, index):  # type: ignore[no-untyped-def,override]
        self.reads += 1
        return super().__getitem__(index)

    def extra(self) -> str:
        return "from the store"


def test_a_cached_sequence_reads_each_item_once_and_stays_bounded() -> None:
    inner = Counting(range(10))
    cached = CachedSequence(inner, size=4)
    assert [cached[i] for i in range(10)] == list(range(10)) and [cached[9], cached[9]] == [9, 9]
    assert len(cached._items) <= 4 and inner.reads == 10
    assert len(cached) == 10 and list(cached) == list(range(10)) and cached[2:4] == [2, 3]
    assert cached.extra() == "from the store"


def test_the_scorer_reads_a_loaded_build_through_caches_with_the_same_records(
    settings: Settings, embedder: KeywordEmbedder
) -> None:
    build_index(settings, embedder)
    data = load_index(settings.index_dir)
    scorer = SentenceScorer(data)
    assert isinstance(scorer.data.chunks, CachedSequence)
    assert list(scorer.data.chunks) == list(data.chunks)
    assert [scorer.data.chunks[i] for i in range(len(data.chunks))] == list(data.chunks)
    assert [scorer.data.values[i] for i in range(len(data.values))] == list(data.values)
    assert {k: scorer.data.documents[k] for k in data.documents} == dict(data.documents)
    in_memory = read_through(data)
    plain = type(data)(**{**vars(in_memory), "chunks": list(data.chunks), "documents": dict(data.documents),
                          "values": list(data.values)})  # fmt: skip
    assert read_through(plain) is plain  # collections already in memory are used as they are
