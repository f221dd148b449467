"""What the chat page relies on: highlighting, safe Markdown, export, upload checks, the feedback log."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from assistant.errors import AssistantError
from assistant.feedback import _SCHEMA, FeedbackLog
from assistant.present import answer_markdown, by_passage, conversation_markdown, md_escape, passage_html, quote_spans
from assistant.types import ABSTAIN_TEXT, Answer, AnswerSentence, Citation
from assistant.uploads import UploadError, safe_name, save_upload, sniff


def _citation(marker: int, quote: str, *, supported: bool = True) -> Citation:
    return Citation(marker, "2024-01-10_alpha.md", "Alpha report", "2024-01-10", "Relocation", 3, f"c{marker}", quote,
                    0.9, supported)  # fmt: skip


def _answer(sentences: list[AnswerSentence], citations: list[Citation], *, abstained: bool = False) -> Answer:
    parts = [f"{s.text} " + "".join(f"[{m}]" for m in s.markers) for s in sentences]
    text = ABSTAIN_TEXT if abstained else " ".join(parts)
    return Answer("How many were relocated?", text, tuple(citations), abstained, None, (), "extractive", {},
                  tuple(sentences))  # fmt: skip


@pytest.mark.parametrize(
    ("passage", "quote", "marked"),
    [
        ("Up to 25 November, 6012 persons\nhave been relocated.", "6012 persons have been relocated.",
         ["6012 persons\nhave been relocated."]),
        ("First part of it. Middle. Last words are here.", "First part of it … Last words are here.",
         ["First part of it", "Last words are here."]),
        ("Nothing matches here at all.", "Some other quoted words", []),
        ("a b c", "b", []),  # too short to be telling
    ],
)  # fmt: skip
def test_quote_spans(passage: str, quote: str, marked: list[str]) -> None:
    assert [passage[a:b] for a, b in quote_spans(passage, quote)] == marked


def test_passage_html_escapes_and_highlights() -> None:
    passage = "<script>alert(1)</script> costs $5 and $6.\nThe fund holds EUR 7.5 million for borders."
    out = passage_html(passage, "The fund holds EUR 7.5 million for borders.")
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "$" not in out and "&#36;5" in out  # no LaTeX in Streamlit's Markdown
    assert "<br><mark>The fund holds EUR 7.5 million for borders.</mark>" in out


def test_several_quotes_of_one_passage_are_all_highlighted_and_grouped() -> None:
    passage = "First sentence here. Second one. Third sentence is also quoted."
    out = passage_html(passage, "Third sentence is also quoted.", "First sentence here.")
    assert out == ('<div class="passage"><mark>First sentence here.</mark> Second one. '
                   "<mark>Third sentence is also quoted.</mark></div>")  # fmt: skip
    one, other = _citation(1, "a"), _citation(2, "c")
    two = dataclasses.replace(_citation(3, "b"), chunk_id=one.chunk_id)  # another sentence of passage [1]
    assert by_passage([one, other, two]) == [[one, two], [other]]


def test_md_escape_shows_text_literally() -> None:
    assert md_escape("*bold* _x_ [link](y) $5 :smile: # h") == (
        "\\*bold\\* \\_x\\_ \\[link\\]\\(y\\) \\$5 \\:smile\\: \\# h"
    )


def test_answer_markdown_marks_unsupported_sentences() -> None:
    answer = _answer(
        [AnswerSentence("6012 persons were relocated.", (1,), True), AnswerSentence("All from Mars.", (2,), False)],
        [_citation(1, "6012 persons"), _citation(2, "Most came from Cyprus.", supported=False)],
    )
    out = answer_markdown(answer)
    assert "6012 persons were relocated\\. \\[1\\]" in out
    assert ":orange-background[All from Mars\\.] \\[2\\] :orange[(not supported by its sources)]" in out


def test_conversation_markdown_has_questions_answers_and_sources() -> None:
    good = _answer([AnswerSentence("6012 persons were relocated.", (1,), True)], [_citation(1, "6012 persons")])
    silent = _answer([], [_citation(1, "Most came from Cyprus.")], abstained=True)
    out = conversation_markdown([good, silent], title="Chat")
    assert out.startswith("# Chat\n")
    assert "## 1. How many were relocated?" in out and "## 2. How many were relocated?" in out
    assert "6012 persons were relocated. [1]" in out
    assert '- [1] Alpha report · 2024-01-10 · Relocation · p. 3 — 2024-01-10_alpha.md\n  > "6012 persons"' in out
    assert f"> {ABSTAIN_TEXT}" in out and "Closest passages (see also):" in out


# --- uploads ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "kind"),
    [(b"%PDF-1.7 ...", "pdf"), (b"<!DOCTYPE html><p>x</p>", "html"), (b"  <html>", "html"), (b"# Title\n", "text"),
     (b"plain \xc3\xa9", "text"), (b"\x89PNG\r\n\x1a\n\x00\x00", None), (b"caf\xe9 latin-1 text", "text")],
)  # fmt: skip
def test_sniff_judges_by_content(data: bytes, kind: str | None) -> None:
    assert sniff(data) == kind


@pytest.mark.parametrize(
    ("name", "clean"),
    [("../../etc/passwd.txt", "passwd.txt"), ("C:\\Users\\me\\note.md", "note.md"),
     ("my memo (v2).md", "my-memo-v2.md"), (".hidden.txt", "hidden.txt")],
)  # fmt: skip
def test_safe_name(name: str, clean: str) -> None:
    assert safe_name(name) == clean


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("note.docx", b"text", "only .htm, .html, .markdown, .md, .pdf, .txt files"),
        ("note.txt", b"", "is empty"),
        ("big.txt", b"x" * 2000, "limit is 0 MB"),
        ("fake.pdf", b"Just text", "named .pdf but its content is TEXT"),
        ("report.txt", b"%PDF-1.4 something", "named .txt but its content is PDF"),
        ("image.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary file"),
        ("broken.pdf", b"%PDF-1.4\nnot really a pdf", "not a readable PDF"),
        ("tags.html", b"<html><body><script>x</script></body></html>", "no text"),
        ("2024-01-10_alpha.md", b"# Another alpha\n\nText.", "already in the corpus"),
    ],
)
def test_a_bad_upload_is_refused_and_changes_nothing(small_corpus: Path, name: str, data: bytes, message: str) -> None:
    before = {p.name: p.read_bytes() for p in small_corpus.iterdir()}
    with pytest.raises(UploadError, match=message.replace("(", r"\(").replace(".", r"\.")):
        save_upload(name, data, small_corpus, max_bytes=1000)
    assert {p.name: p.read_bytes() for p in small_corpus.iterdir()} == before


def test_a_good_upload_is_saved_under_a_safe_name(small_corpus: Path) -> None:
    path = save_upload("../Gamma memo.md", b"# Gamma\n\nThe Gamma fund holds EUR 7.5 million.\n", small_corpus)
    assert path == small_corpus / "Gamma-memo.md" and path.read_bytes().startswith(b"# Gamma")
    assert not [p for p in small_corpus.iterdir() if p.name.startswith(".upload-")]


# --- feedback log ----------------------------------------------------------------------------------------


def _record(path: Path, worker: int, count: int) -> None:
    log = FeedbackLog(path)
    for i in range(count):
        log.record(session=f"w{worker}", question=f"q{worker}-{i}", answer="a", citations=[{"marker": 1}],
                   rating=i % 2, comment=f"c{i}")  # fmt: skip


def test_feedback_round_trips(tmp_path: Path) -> None:
    log = FeedbackLog(tmp_path / "index" / "feedback.sqlite3")
    assert log.entries() == []
    row_id = log.record(session="s", question="How many?", answer="6012 [1]", citations=[{"marker": 1, "doc": "a"}],
                        rating=1, comment="  spot on ", mode="extractive")  # fmt: skip
    (entry,) = log.entries()
    assert (entry.id, entry.rating, entry.comment) == (row_id, 1, "spot on")
    assert entry.citations == [{"marker": 1, "doc": "a"}]
    with pytest.raises(ValueError, match="rating"):
        log.record(session="s", question="q", answer="a", citations=[], rating=5)


def test_feedback_from_many_writers_at_once_is_all_kept(tmp_path: Path) -> None:
    path = tmp_path / "feedback.sqlite3"
    threads = [threading.Thread(target=_record, args=(path, w, 25)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with ProcessPoolExecutor(max_workers=2) as pool:  # separate processes, as with several server workers
        list(pool.map(_record, [path] * 2, [10, 11], [40, 40]))
    entries = FeedbackLog(path).entries()
    assert len(entries) == 6 * 25 + 2 * 40
    assert len({e.question for e in entries}) == len(entries)


def test_a_feedback_writer_waits_out_a_lock_sqlite_answers_at_once(tmp_path: Path) -> None:
    # Another writer holds the write lock on a file not yet in WAL mode. Switching it to WAL from a read lock is
    # SQLite's deadlock case: "database is locked" at once, without its busy wait (the CI failure of the test
    # above). The log must retry until the other writer is done, not drop the entry.
    path = tmp_path / "feedback.sqlite3"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute(_SCHEMA)
    other.execute("BEGIN IMMEDIATE")
    other.execute(
        "INSERT INTO feedback (created, session, question, answer, citations, rating) "
        "VALUES ('', 's', 'q1', 'a', '[]', 1)"
    )
    release = threading.Timer(0.4, lambda: other.execute("COMMIT"))
    release.start()
    try:
        FeedbackLog(path, timeout=10).record(session="s", question="q2", answer="a", citations=[], rating=1)
    finally:
        release.join()
        other.close()
    assert [e.question for e in FeedbackLog(path).entries()] == ["q1", "q2"]


def test_an_unwritable_feedback_log_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(AssistantError, match="Cannot open the feedback log"):
        FeedbackLog(blocker / "feedback.sqlite3").record(session="s", question="q", answer="a", citations=[], rating=1)
