"""Bad input: no crash, no hang. Adversarial megabytes finish in seconds; odd text is cleaned or refused clearly."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from assistant import Answer, Assistant, Settings
from assistant.errors import CorpusError, QueryError
from assistant.index.builder import build_index
from assistant.ingest.chunker import ChunkerSettings
from assistant.ingest.pipeline import ingest_file, load_metadata
from assistant.retrieve import Filters
from tests.conftest import ROOT, KeywordEmbedder

MB = 1_000_000


def _run_bounded(code: str, seconds: float) -> None:
    """Run `code` in a child process that is killed after `seconds` (a regex stuck in C ignores signals)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                              timeout=seconds)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"did not finish within {seconds} s")
    assert done.returncode == 0, done.stderr[-2000:]


# --- 3, 6. linear time on adversarial megabytes -----------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        pytest.param("split_sentences('.' * N)", id="sentences-dots"),
        pytest.param("split_sentences('!?' * (N // 2))", id="sentences-marks"),
        pytest.param("split_sentences('a. ' * (N // 3))", id="sentences-many"),
        pytest.param("_html_to_markup_text('<!--' * (N // 4))", id="html-comments"),
        pytest.param("_html_to_markup_text('<script' * (N // 7))", id="html-scripts"),
        pytest.param("_html_to_markup_text('<h1' * (N // 3))", id="html-headings"),
        pytest.param("_html_to_markup_text('<tr' * (N // 3))", id="html-rows"),
        pytest.param("_html_to_markup_text('<!doctype' * (N // 9))", id="html-doctype"),
        pytest.param("split_answer('a' * N)", id="answer-no-stop"),
        pytest.param("split_answer(' ' * N + 'x')", id="answer-spaces"),
        pytest.param("split_answer('[1]' * (N // 3))", id="answer-markers"),
        pytest.param("split_answer('a. [1]' * (N // 6))", id="answer-sentences"),
        pytest.param("MARKER.sub(' ', ' ' * N + 'x')", id="marker-spaces"),
        pytest.param("instruction_spans('ignore ' * (N // 7))", id="injection-words"),
    ],
)
def test_a_megabyte_of_adversarial_text_takes_seconds(call: str) -> None:
    _run_bounded(
        f"""
        from assistant.ingest.sentences import split_sentences
        from assistant.ingest.loaders import _html_to_markup_text
        from assistant.answer.verify import MARKER, split_answer
        from assistant.ingest.injection import instruction_spans
        N = {MB}
        {call}
        """,
        seconds=30,
    )


@pytest.mark.parametrize(
    "pattern",
    ["." * 50, "<!--", "<b>", "- ", "| a ", "#", "\t", "&amp;", "x" * 80 + "\n", "**", "1. ", "•"],
)
def test_ingesting_a_megabyte_of_a_repeated_pattern_takes_seconds(tmp_path: Path, pattern: str) -> None:
    path = tmp_path / "adversarial.md"
    path.write_text("# T\n\nSome words. " + pattern * (MB // len(pattern)), encoding="utf-8")
    _run_bounded(
        f"""
        from pathlib import Path
        from assistant.ingest.chunker import ChunkerSettings
        from assistant.ingest.loaders import LoadError
        from assistant.ingest.pipeline import ingest_file
        from tests.conftest import KeywordEmbedder
        try:
            ingest_file(Path({str(path)!r}), metadata={{}}, count_tokens=KeywordEmbedder().count_tokens,
                        settings=ChunkerSettings(250))
        except LoadError:
            pass
        """,
        seconds=60,
    )


# --- 8. text without whitespace -----------------------------------------------------------------------------------


def test_text_without_whitespace_is_hard_split_within_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "blob.txt"
    path.write_text("Intro words here.\n\n" + "x7-" * 3000 + "\n", encoding="utf-8")
    embedder = KeywordEmbedder()
    result = ingest_file(path, metadata={}, count_tokens=embedder.count_tokens, settings=ChunkerSettings(120))
    assert len(result.chunks) > 10
    assert max(c.tokens for c in result.chunks) <= 120


# --- 5. surrogates and control characters ----------------------------------------------------------------------------


@pytest.mark.parametrize("question", ["\ud800", "relocated \udcff persons?", "smart\x00 borders\x1b[31m", "\udc80" * 9])
def test_lone_surrogates_and_controls_do_not_crash(small_assistant: Assistant, question: str) -> None:
    answer = small_assistant.answer(question)
    assert isinstance(answer, Answer) and "\ud800" not in answer.question
    small_assistant.search(question)
    assert isinstance(list(small_assistant.stream_answer(question))[-1], Answer)
    answer.to_dict()
    str(answer.text).encode("utf-8")


def test_a_history_with_surrogates_does_not_crash(small_assistant: Assistant) -> None:
    answer = small_assistant.answer("and how many?", history=["How many persons \ud800 were relocated?"])
    answer.standalone_question.encode("utf-8")


def test_invalid_utf8_on_the_command_line_gives_no_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LC_ALL": "C.UTF-8"}
    missing = str(tmp_path / "no-index")
    for args in (["ask", b"caf\xe9 \xff?"], ["search", b"\xff\xfe"], ["ask", "--doc", b"\xff.md", "x"]):
        done = subprocess.run([sys.executable, "-m", "assistant.cli", *args, "--index-dir", missing],
                              env=env, capture_output=True, timeout=60)  # fmt: skip
        assert b"Traceback" not in done.stderr and done.returncode == 1 and b"assistant index" in done.stderr


# --- 9. questions beginning with "-" -------------------------------------------------------------------------


def test_a_question_starting_with_a_dash_goes_after_a_double_dash(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from assistant.cli import main

    result = CliRunner().invoke(main, ["ask", "--index-dir", str(tmp_path / "none"), "--", "-5 % in returns?"])
    assert "No such option" not in result.output and "assistant index" in result.output
    assert "assistant ask --" in " ".join(CliRunner().invoke(main, ["ask", "--help"]).output.split())


# --- 10. follow-ups ---------------------------------------------------------------------------------------------------


def test_a_follow_up_is_cut_to_the_query_limit(small_assistant: Assistant) -> None:
    limit = small_assistant.settings.max_query_chars
    history = [" ".join(f"relocation{i}" for i in range(600))]
    answer = small_assistant.answer("and how many of them?" + " more" * 380, history=history)
    assert len(answer.standalone_question) <= limit


# --- 11. filters ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: Filters(docs=5), id="number-as-docs"),  # type: ignore[arg-type]
        pytest.param(lambda: Filters(docs=(5,)), id="number-as-doc"),  # type: ignore[arg-type]
        pytest.param(lambda: Filters(docs="a.md"), id="string-as-docs"),
        pytest.param(lambda: Filters(date_from=2024), id="integer-date"),  # type: ignore[arg-type]
        pytest.param(lambda: Filters(date_to="not-a-date"), id="not-a-date"),
        pytest.param(lambda: Filters(date_from="2024-13"), id="month-13"),
        pytest.param(lambda: Filters(date_from="2024-02-30"), id="february-30"),
    ],
)
def test_bad_filters_raise_the_projects_error(make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(QueryError, match="Filters"):
        make()


def test_a_filter_that_is_not_a_filters_object_is_refused(small_assistant: Assistant) -> None:
    with pytest.raises(QueryError, match="Filters"):
        small_assistant.answer("relocated?", filters={"docs": ["x"]})  # type: ignore[arg-type]


def test_good_filters_still_work(small_assistant: Assistant) -> None:
    hits = small_assistant.search("relocated", filters=Filters(docs=["2024-01-10_alpha.md"], date_from="2024"))
    assert hits and all(h.chunk.doc == "2024-01-10_alpha.md" for h in hits)


# --- 12. encodings ----------------------------------------------------------------------------------------------------


def test_utf16_and_latin1_files_are_indexed_and_skips_are_named(settings: Settings, embedder: KeywordEmbedder) -> None:
    corpus = settings.corpus_dir
    (corpus / "wide.txt").write_bytes("Frontex deployed 412 officers in Malmö.\n".encode("utf-16"))
    (corpus / "wide-nobom.txt").write_bytes("Frontex trained 37 guards.\n".encode("utf-16-le"))
    (corpus / "latin.txt").write_bytes("Caf\u00e9 policy: 9 naïve résumés were filed.\n".encode("latin-1"))
    (corpus / "blob.txt").write_bytes(bytes(range(256)) * 8)
    report = build_index(settings, embedder)
    assert {"wide.txt", "wide-nobom.txt", "latin.txt"} <= set(report.added)
    assert any(p.endswith("blob.txt") and "binary" in r for p, r in report.skipped.items())
    docs = Assistant.load(settings=settings, embedder=embedder).data.documents
    assert "Malmö" in docs["wide.txt"].text and "résumés" in docs["latin.txt"].text


# --- 13. metadata.json -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "line"),
    [
        pytest.param('{\n  "a.md": {"title": "A"},\n  "b.md": {"title": }\n}', 3, id="syntax"),
        pytest.param('["a.md"]', 1, id="not-an-object"),
        pytest.param('{\n  "a.md": {"title": "A"},\n  "b.md": 5\n}', 3, id="entry-not-an-object"),
        pytest.param('{\n  "a.md": {"title": ["A"]}\n}', 2, id="field-not-text"),
        pytest.param(b'{"a.md": {"title": "\xff"}}', 1, id="not-utf8"),
    ],
)
def test_a_broken_metadata_file_names_the_file_and_line(tmp_path: Path, content: str | bytes, line: int) -> None:
    path = tmp_path / "metadata.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(CorpusError) as info:
        load_metadata(tmp_path)
    assert "metadata.json" in str(info.value) and (f"line {line}" in str(info.value) or "UTF-8" in str(info.value))
