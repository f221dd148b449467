"""The answerer's term statistics stored with the build (assistant.index.termstats) against counting at load."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from assistant import IndexCorruptError, Settings
from assistant.answer.extractive import SentenceScorer
from assistant.answer.text import content_terms
from assistant.index import termstats
from assistant.index.builder import build_index
from assistant.index.store import IndexData, _checksum, load_index, read_manifest
from tests.conftest import KeywordEmbedder


def _counted_at_load(data: IndexData) -> tuple[dict[str, float], list[set[str]], dict[str, int], float]:
    """What SentenceScorer.__init__ computed before the statistics were stored (copied from that version)."""
    position = {c.chunk_id: i for i, c in enumerate(data.chunks)}
    df: dict[str, int] = {}
    chunk_terms: list[set[str]] = []
    for chunk in data.chunks:
        terms = set(content_terms(f"{chunk.section} {chunk.text}"))
        chunk_terms.append(terms)
        for t in terms:
            df[t] = df.get(t, 0) + 1
    n = max(1, len(data.chunks))
    return {t: math.log(1 + n / f) for t, f in df.items()}, chunk_terms, position, math.log(1 + n)


def _assert_same_as_counted(data: IndexData) -> None:
    assert termstats.load(data) is not None  # served from the stored files, not counted again
    scorer = SentenceScorer(data)
    idf, chunk_terms, position, unknown = _counted_at_load(data)
    assert {t: scorer.idf(t) for t in idf} == idf  # exactly equal floats: the weights were fitted on these
    assert all(scorer.in_corpus(t) for t in idf) and not scorer.in_corpus("zzzunseen")
    assert set(scorer._df) == set(idf)
    assert scorer.idf("zzzunseen") == unknown
    assert [scorer.chunk_terms(i) for i in range(len(data.chunks))] == chunk_terms
    assert {cid: scorer.position[cid] for cid in position} == position
    assert scorer.position.get("not-a-chunk-id") is None


def _write_docs(corpus: Path, count: int) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    topics = ["visas", "returns", "asylum", "borders", "relocation", "funding", "readmission", "talent"]
    for i in range(count):
        topic = topics[i % len(topics)]
        (corpus / f"doc{i}.md").write_text(
            f"# Report {i} on {topic}\n\n## {topic.title()} figures\n\nIn 202{i % 10}, {100 + i} cases of {topic} "
            f"were handled by agency {i}.\n\n## Outlook\n\nThe {topic} work continues with partner {i}.\n",
            encoding="utf-8",
        )


def test_stored_statistics_equal_counting_at_load(settings: Settings, embedder: KeywordEmbedder) -> None:
    build_index(settings, embedder)
    data = load_index(settings.index_dir)
    assert set(termstats.FILES) <= set(data.manifest.artifacts)
    _assert_same_as_counted(data)


@pytest.mark.slow
def test_stored_statistics_equal_counting_at_load_on_the_real_corpus(real_index: Path) -> None:
    _assert_same_as_counted(load_index(real_index))


def test_update_counts_only_changed_chunks_and_equals_a_full_count(
    tmp_path: Path, embedder: KeywordEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = tmp_path / "corpus"
    _write_docs(corpus, 12)
    settings = Settings.from_env(environ={}, corpus_dir=corpus, index_dir=tmp_path / "index", chunk_max_tokens=64)
    build_index(settings, embedder)
    (corpus / "doc3.md").write_text("# Report three\n\nA wholly new text about smart borders in 2031.\n")
    (corpus / "doc5.md").unlink()
    _write_docs(tmp_path / "more", 13)
    (corpus / "doc12.md").write_text((tmp_path / "more" / "doc12.md").read_text())
    previous = load_index(settings.index_dir)
    counted: list[int] = []
    original = termstats.chunk_terms

    def counting(chunk):  # type: ignore[no-untyped-def]
        counted.append(1)
        return original(chunk)

    monkeypatch.setattr(termstats, "chunk_terms", counting)
    report = build_index(settings, embedder)
    monkeypatch.undo()
    data = load_index(settings.index_dir)
    assert report.changed == ["doc3.md"] and report.added == ["doc12.md"] and report.removed == ["doc5.md"]
    left = [c for c in previous.chunks if c.doc in {"doc3.md", "doc5.md"}]
    came = [c for c in data.chunks if c.doc in {"doc3.md", "doc12.md"}]
    assert len(counted) == len(left) + len(came) < len(data.chunks)  # in proportion to the change
    stored = termstats.load(data)
    assert stored is not None and stored.df == termstats.compute(data.chunks).df
    _assert_same_as_counted(data)


def test_damaged_statistics_file_is_refused(settings: Settings, embedder: KeywordEmbedder) -> None:
    build_index(settings, embedder)
    build_dir = read_manifest(settings.index_dir)[1]
    path = build_dir / termstats.TERMS
    path.write_text(path.read_text().replace('"df":{', '"df":{"extra":1,'))
    with pytest.raises(IndexCorruptError, match=r"terms\.json"):
        load_index(settings.index_dir)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda raw: raw["df"].update({next(iter(raw["df"])): 0}), id="zero-frequency"),
        pytest.param(lambda raw: raw.update(chunks=raw["chunks"] + 1), id="wrong-chunk-count"),
        pytest.param(lambda raw: raw.update(format=99), id="unknown-format"),
    ],
)
def test_inconsistent_statistics_with_a_matching_checksum_are_refused(
    settings: Settings, embedder: KeywordEmbedder, damage: object
) -> None:
    build_index(settings, embedder)
    build_dir = read_manifest(settings.index_dir)[1]
    raw = json.loads((build_dir / termstats.TERMS).read_text())
    damage(raw)  # type: ignore[operator]
    _rewrite(build_dir, termstats.TERMS, json.dumps(raw))
    data = load_index(settings.index_dir)
    with pytest.raises(IndexCorruptError, match="answer statistics"):
        SentenceScorer(data)


def test_unsorted_chunk_ids_are_refused(settings: Settings, embedder: KeywordEmbedder) -> None:
    build_index(settings, embedder)
    build_dir = read_manifest(settings.index_dir)[1]
    ids = np.load(build_dir / termstats.IDS)
    with (build_dir / termstats.IDS).open("wb") as fh:
        np.save(fh, ids[::-1], allow_pickle=False)
    _rewrite(build_dir, termstats.IDS, None)
    with pytest.raises(IndexCorruptError, match="not sorted"):
        SentenceScorer(load_index(settings.index_dir))


def test_a_build_without_statistics_is_counted_at_load(settings: Settings, embedder: KeywordEmbedder) -> None:
    build_index(settings, embedder)
    build_dir = read_manifest(settings.index_dir)[1]
    manifest = json.loads((build_dir / "manifest.json").read_text())
    for name in termstats.FILES:
        del manifest["artifacts"][name]
    (build_dir / "manifest.json").write_text(json.dumps(manifest))
    data = load_index(settings.index_dir)
    assert termstats.load(data) is None
    scorer = SentenceScorer(data)
    idf, _, position, _ = _counted_at_load(data)
    assert {t: scorer.idf(t) for t in idf} == idf and dict(scorer.position) == position


def test_positions_find_ids_by_binary_search_and_the_last_of_a_repeated_id() -> None:
    ids = np.array([b"a", b"b", b"b", b"cc"], dtype="S2")
    positions = termstats.Positions(ids, np.array([3, 0, 2, 1], dtype=np.int64))
    assert positions["a"] == 3 and positions["b"] == 2 and positions["cc"] == 1
    assert positions.get("c") is None and positions.get("ccc") is None and positions.get("") is None
    assert list(positions) == ["a", "b", "cc"]


def _rewrite(build_dir: Path, name: str, text: str | None) -> None:
    """Replace a file and record its new checksum, as a careful forger would (only the content check is left)."""
    if text is not None:
        (build_dir / name).write_text(text)
    manifest = json.loads((build_dir / "manifest.json").read_text())
    manifest["artifacts"][name] = _checksum(build_dir / name)
    (build_dir / "manifest.json").write_text(json.dumps(manifest))
