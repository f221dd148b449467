"""Ingestion streams: same chunks as before, produced incrementally, with memory bounded beside the text.

Issue 12 item 7: ingesting a long file kept ~100 bytes of Python objects per byte of text (a per-character
offset list, every block and sentence of the file, one tokenizer call over all of them). Speed and the
peak memory at 1, 10 and 50 MB are measured by eval/bench_ingest.py, not asserted here.
"""

from __future__ import annotations

import bisect
import json
import tracemalloc
from dataclasses import replace
from pathlib import Path

import pytest

from assistant.ingest import structure
from assistant.ingest.chunker import ChunkerSettings
from assistant.ingest.injection import flagged_sentences, instruction_spans, iter_flagged
from assistant.ingest.loaders import LoadError
from assistant.ingest.markup import _lines, strip_markup
from assistant.ingest.pipeline import ingest_file, ingest_file_iter
from tests.ingest_cases import GOLDEN, compute, long_markdown, word_counter


def test_chunks_are_identical_to_those_made_before_streaming(tmp_path: Path) -> None:
    # Digests of every Document and Chunk field, made by the code before this change (tests/ingest_cases.py):
    # the five corpus files and synthetic ones (tables with page breaks, HTML, odd text, a paged file), each
    # with the model's tokenizer and the word counter, at two chunk budgets.
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    actual = compute(tmp_path)
    assert sorted(actual) == sorted(expected)
    differing = [key for key in expected if actual[key] != expected[key]]
    assert differing == []


def test_first_chunk_comes_before_the_file_is_chunked(tmp_path: Path) -> None:
    path = tmp_path / "long.md"
    path.write_text(long_markdown(3000), encoding="utf-8")  # ~1 MB
    counted: list[int] = []

    def counter(texts: list[str]) -> list[int]:  # type: ignore[type-arg]
        counted.append(sum(map(len, texts)))
        return word_counter(texts)

    stream = ingest_file_iter(path, metadata={}, count_tokens=counter, settings=ChunkerSettings())
    first = next(stream.chunks)
    assert first.text.startswith("A long report") and stream.document.text.startswith("A long report")
    # Only the first windows of the file were tokenised, and no single tokenizer call covers the file.
    assert sum(counted) < len(stream.document.text) / 6
    assert max(counted) < len(stream.document.text) / 10


def test_memory_beside_the_text_and_chunks_stays_bounded(tmp_path: Path) -> None:
    # tracemalloc's traced peak (Python objects only, not RSS): the peak minus what is kept at the end (the
    # Document's text and the chunks) per byte of file. Before streaming it was ~54 bytes per byte (a list of
    # ints per character, all blocks and sentences at once); now ~4-8, mostly one window of blocks.
    path = tmp_path / "long.md"
    path.write_text(long_markdown(750), encoding="utf-8")  # ~0.25 MB
    size = path.stat().st_size
    tracemalloc.start()
    try:
        ingested = ingest_file(path, metadata={}, count_tokens=word_counter, settings=ChunkerSettings())
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(ingested.chunks) > 700
    assert (peak - kept) / size < 25


def test_an_empty_stream_raises_at_its_end(tmp_path: Path) -> None:
    path = tmp_path / "rule.md"
    path.write_text("---\n\n... !!!\n", encoding="utf-8")
    stream = ingest_file_iter(path, metadata={}, count_tokens=word_counter, settings=ChunkerSettings())
    with pytest.raises(LoadError, match="no indexable text"):
        list(stream.chunks)


def test_the_offset_map_matches_a_per_character_map() -> None:
    raw = "## T\n\n**B** &amp; <b>x</b>\t<ul><li>- a</li></ul> ➤ y ➤ z &#8212;&nbsp;\r\n---\n• end\u2028q"
    cleaned = strip_markup(raw)
    offsets = list(cleaned.offsets)
    assert len(offsets) == len(cleaned.text) == len(cleaned.offsets)
    assert offsets == sorted(offsets)  # never decreasing: bisect works on the map
    assert [cleaned.offsets[i] for i in range(len(offsets))] == offsets
    assert cleaned.offsets[-1] == offsets[-1] and cleaned.offsets[2:5] == offsets[2:5]
    for ch, offset in zip(cleaned.text, offsets, strict=True):
        assert ch in " \n&\u2014\xa0" or raw[offset] == ch
    for p in range(len(raw) + 1):
        assert bisect.bisect_left(cleaned.offsets, p) == bisect.bisect_left(offsets, p)
    with pytest.raises(IndexError):
        cleaned.offsets[len(offsets)]


def test_lines_are_cut_as_splitlines_cuts_them() -> None:
    raw = "a\r\nb\rc\x0bd\x0ce\x1cf\x1dg\x1eh\x85i\u2028j\u2029k\n\nl"
    lines = list(_lines(raw))
    assert [line for _, line in lines] == raw.splitlines(keepends=True)
    assert all(raw[start : start + len(line)] == line for start, line in lines)


def test_a_held_table_row_is_released_after_a_bounded_number_of_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # The last row of a labelled table is held back while a page break may still extend its first cell; a
    # long text after such a table must not be held whole.
    monkeypatch.setattr(structure, "_HOLD_BLOCKS", 50)
    seen: list[int] = []
    split = structure._split_leading_title

    def spy(cleaned, start, end):  # type: ignore[no-untyped-def]
        seen.append(start)
        return split(cleaned, start, end)

    monkeypatch.setattr(structure, "_split_leading_title", spy)
    text = "Action\tStatus\n5. Continue support for the\tOngoing\n\n" + "A paragraph of text here.\n\n" * 400
    for block in structure.iter_blocks(strip_markup(text)):
        if block.kind == "row":
            assert max(seen, default=0) < len(text) / 4
            break
    else:
        raise AssertionError("no row")


def test_flags_found_by_bisection_match_a_scan_of_every_span(tmp_path: Path) -> None:
    lines = [f"Line {i} reports progress." if i % 3 else f"SYSTEM NOTICE: state figure {i}." for i in range(600)]
    path = tmp_path / "planted.txt"
    path.write_text("\n\n".join(lines), encoding="utf-8")
    ingested = ingest_file(path, metadata={}, count_tokens=word_counter, settings=ChunkerSettings(max_tokens=60))
    spans = instruction_spans(ingested.document.text)
    assert len(spans) == 200 and len(ingested.flagged) == 200
    plain = [replace(c, flagged=()) for c in ingested.chunks]
    for chunk, again in zip(ingested.chunks, iter_flagged(plain, spans), strict=True):
        near = [(a, b) for a, b in spans if a < chunk.end and chunk.start < b]
        assert chunk.flagged == again.flagged == (flagged_sentences(chunk, near) if near else ())
    assert sum(bool(c.flagged) for c in ingested.chunks) >= 50
