"""The stored BM25 index scores exactly as bm25s does, survives a save/load round trip and is memory-mapped."""

from __future__ import annotations

from pathlib import Path

import bm25s
import numpy as np
import pytest
import Stemmer

from assistant.index.builder import build_index
from assistant.index.lexical import LexicalIndex
from assistant.index.store import load_index

TEXTS = [
    "Up to 25 November, 6012 persons have been relocated under the Voluntary Solidarity Mechanism.",
    "The Commission approved EUR 52.1 million for smart borders (EES and ETIAS).",
    "The Talent Partnership in Pakistan will be implemented by GIZ; relocations are not part of it.",
    "Returns rose sharply in the second half of the year, and returning persons were counselled.",
    "",
    "Relocating, relocated, relocation: the same stem thrice.",
]
QUERIES = [
    "How many persons were relocated?",
    "smart borders funding EES",
    "returns returns returns",  # repeated words count each time, as in bm25s
    "the of and",  # only stopwords
    "zeppelin",  # unknown word
    "Pakistan's Talent Partnerships",
]


def _reference(texts: list[str], query: str) -> np.ndarray:
    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    tokens = bm25s.tokenize([query], stopwords="en", stemmer=stemmer, show_progress=False, return_ids=False)
    words = [w for w in tokens[0] if w in retriever.vocab_dict] if tokens else []
    if not words:
        return np.zeros(len(texts), dtype=np.float32)
    return np.asarray(retriever.get_scores(words), dtype=np.float32)


@pytest.mark.parametrize("query", QUERIES)
def test_scores_match_bm25s(query: str, tmp_path: Path) -> None:
    index = LexicalIndex.build(TEXTS)
    np.testing.assert_allclose(index.scores(query), _reference(TEXTS, query), rtol=1e-5, atol=1e-6)
    index.save(tmp_path)
    loaded = LexicalIndex.load(tmp_path)
    assert isinstance(loaded.data, np.memmap)
    np.testing.assert_allclose(loaded.scores(query), index.scores(query), rtol=1e-6)


def test_a_build_in_many_batches_scores_as_bm25s_over_the_whole() -> None:
    rng = np.random.default_rng(5)
    words = [*" ".join(TEXTS).split(), "Relocations", "relocate", "the", "of", "EUR"]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(0, 30)))) for _ in range(300)]
    index = LexicalIndex.build(iter(texts), batch=17)  # any iterable, 18 batches
    assert index.num_docs == 300
    for query in [*QUERIES, "relocated persons EUR million", "Relocations relocate"]:
        np.testing.assert_allclose(index.scores(query), _reference(texts, query), rtol=1e-5, atol=1e-6)


def test_a_posting_cap_keeps_each_terms_best_postings() -> None:
    texts = [f"relocation {'relocation ' * (i % 5)}filler{i} words here" for i in range(40)]
    index = LexicalIndex.build(texts)
    exact = index.scores("relocation", cap=None)
    capped = index.scores("relocation", cap=8)
    assert np.count_nonzero(capped) == 8 and np.count_nonzero(exact) == 40
    kept = np.flatnonzero(capped)
    np.testing.assert_allclose(capped[kept], exact[kept])
    assert capped[kept].min() >= np.sort(exact)[-8]  # the 8 highest-scoring postings
    np.testing.assert_allclose(
        index.scores("relocation filler3", cap=100), index.scores("relocation filler3", cap=None)
    )


def test_an_empty_collection_scores_nothing(tmp_path: Path) -> None:
    index = LexicalIndex.build([])
    assert index.scores("anything").shape == (0,)
    index.save(tmp_path)
    assert LexicalIndex.load(tmp_path).num_docs == 0


def test_the_build_stores_bm25_and_the_load_uses_it(settings, embedder) -> None:  # type: ignore[no-untyped-def]
    report = build_index(settings, embedder)
    assert "bm25" in report.timings
    data = load_index(settings.index_dir, expect_fingerprint=embedder.fingerprint)
    assert data.lexical is not None and data.lexical.num_docs == len(data.chunks)
    assert {"bm25.json", "bm25_data.npy"} <= set(data.manifest.artifacts)


def _postings(index: LexicalIndex) -> dict[tuple[str, int], float]:
    words = sorted(index.vocab, key=index.vocab.__getitem__)
    out = {}
    for t, word in enumerate(words):
        for j in range(int(index.indptr[t]), int(index.indptr[t + 1])):
            out[(word, int(index.indices[j]))] = float(index.data[j])
    return out


def test_an_updated_index_scores_every_posting_as_a_fresh_build(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.index import lexical
    from assistant.index.update import plan_rows

    monkeypatch.setattr(lexical, "POSTING_CAP", 8)  # long posting lists are re-sorted by impact after an update
    rng = np.random.default_rng(11)
    words = [*" ".join(TEXTS).split(), "Relocations", "zeppelins", "visa", "visas", "the"]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(0, 25)))) for _ in range(120)]
    new = [" ".join(rng.choice([*words, "brandnew"], size=int(rng.integers(1, 25)))) for _ in range(9)]
    index = LexicalIndex.build(texts)
    plan = plan_rows(len(texts), rng.choice(len(texts), size=14, replace=False), len(new))
    updated = index.updated(plan.remap, new, plan.rows)
    final = [""] * plan.count
    for row, text in enumerate(texts):
        if plan.remap[row] >= 0:
            final[plan.remap[row]] = text
    for row, text in zip(plan.rows.tolist(), new, strict=True):
        final[row] = text
    fresh = LexicalIndex.build(final)
    got, want = _postings(updated), _postings(fresh)
    assert got == want  # the same (term, chunk) postings with the same float32 score, to the bit
    assert updated.num_docs == fresh.num_docs and np.array_equal(updated.doc_len, fresh.doc_len)
    for query in [*QUERIES, "brandnew visas", "zeppelins relocated"]:
        np.testing.assert_allclose(updated.scores(query, cap=None), fresh.scores(query, cap=None), rtol=1e-6)
    for t in range(len(updated.vocab)):  # a capped query reads the best postings of a long list first
        a, b = int(updated.indptr[t]), int(updated.indptr[t + 1])
        if b - a > lexical.POSTING_CAP:
            assert (np.diff(updated.data[a:b]) <= 0).all()
