from __future__ import annotations

from pathlib import Path

from assistant.ingest.chunker import ChunkerSettings
from assistant.ingest.markup import collapse_ws, normalize_for_match
from assistant.ingest.pipeline import ingest_file
from assistant.types import Chunk
from tests.conftest import KeywordEmbedder

HEADER = "Action\tLead actor(s)\tStatus\tWay ahead incl. timeline\tComments\n"
TABLE = (
    "**NOTE**\n\n"
    + HEADER
    + "<i><b>I. Preventing irregular departures</b></i>\t\t\t\t\n"
    + "<b>1. Strengthen engagement with countries of origin</b>\tCommission, MS\tOngoing\t"
    + "<ul><li>- Support the PROTECT programme.</li><li>- Roll out EASTEAMS.</li></ul>\t"
    + "<ul><li>- Kick-off took place on 26 September 2023. It organised a regional gathering of countries of "
    + "origin, transit and</li></ul>\n\n"
    + HEADER
    + "\t\t\t\t<p>destination on 26-27 April 2024 in Islamabad.</p>\n"
    + "<b>5. Continue support for the establishment of the International</b>\tCommission\tOngoing\t\t"
    + "<ul><li>- Implementation started on 1 April 2024.</li></ul>\n\n"
    + HEADER
    + "Migration Cooperation Centre in Istanbul\t\t\t\t\n"
)


def _chunks(tmp_path: Path, name: str, text: str, max_tokens: int = 120) -> list[Chunk]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    embedder = KeywordEmbedder()
    result = ingest_file(path, metadata={}, count_tokens=embedder.count_tokens, settings=ChunkerSettings(max_tokens))
    return result.chunks


def test_table_rows_keep_their_column_labels_and_drop_repeated_headers(tmp_path: Path) -> None:
    chunks = _chunks(tmp_path, "table.txt", TABLE)
    row = [c for c in chunks if "1. Strengthen" in c.text]
    assert row, [c.text for c in chunks]
    assert all("Status: Ongoing" in c.text for c in row)
    assert all(c.section.endswith("I. Preventing irregular departures") for c in row)
    assert not any(c.text.startswith("Action\tLead") or "Lead actor(s)\tStatus" in c.text for c in chunks)


def test_a_row_continued_after_a_page_break_stays_with_its_row(tmp_path: Path) -> None:
    chunks = _chunks(tmp_path, "table.txt", TABLE)
    continued = next(c for c in chunks if "destination on 26-27 April" in c.text)
    assert "Action: 1. Strengthen engagement" in continued.text
    istanbul = [c for c in chunks if "Istanbul" in c.text]
    assert istanbul and all("Action: 5. Continue support" in c.text for c in istanbul)
    assert not any(c.section.endswith("Istanbul") for c in chunks)


def test_headings_form_the_section_path_and_open_the_first_chunk(tmp_path: Path) -> None:
    text = "# Report\n\n## Funding\n\nThe Commission approved EUR 52.1 million.\n\n## Returns\n\nReturns rose.\n"
    chunks = _chunks(tmp_path, "doc.md", text)
    funding = next(c for c in chunks if "52.1" in c.text)
    assert funding.section == "Report > Funding"
    assert funding.text.startswith("Report\nFunding\n")  # headings with nothing between them all open it
    assert next(c for c in chunks if "Returns rose" in c.text).section == "Report > Returns"


def test_consecutive_headings_and_trailing_headings_lose_no_words(tmp_path: Path) -> None:
    # Slide decks turn one-line items into headings; every word must still be in some chunk.
    text = (
        "# Round table - outcomes\n\n---\n\nMixed operations to cut charter costs\n\n---\n\n"
        "## Use of the post arrival package\n\n## Joint REACT initiative\n\n## Revision of the data policy\n"
    )
    chunks = _chunks(tmp_path, "slides.md", text)
    joined = " ".join(c.text for c in chunks)
    for phrase in ("post arrival package", "Joint REACT initiative", "Revision of the data policy", "charter costs"):
        assert phrase in joined


def test_lists_stay_with_their_lead_in(tmp_path: Path) -> None:
    filler = " ".join(f"Sentence number {i} is here." for i in range(12))
    text = f"{filler}\n\nThe priorities are:\n- first item\n- second item\n- third item\n"
    chunks = _chunks(tmp_path, "list.md", text, max_tokens=80)
    lead = next(c for c in chunks if "The priorities are:" in c.text)
    assert "first item" in lead.text and "third item" in lead.text


def test_chunks_respect_the_budget_and_start_on_sentence_boundaries(tmp_path: Path) -> None:
    body = " ".join(f"Member State number {i} reported {i * 10} arrivals in the period." for i in range(60))
    chunks = _chunks(tmp_path, "long.txt", f"Title line\n\n{body}\n", max_tokens=90)
    assert len(chunks) > 3
    embedder = KeywordEmbedder()
    from assistant.ingest.chunker import embedding_text

    assert all(embedder.count_tokens([embedding_text(c)])[0] <= 90 for c in chunks)
    assert all(c.text.split("\n")[-1].startswith("Member State") for c in chunks[1:])


def test_an_overlong_sentence_is_cut_only_because_it_exceeds_the_budget(tmp_path: Path) -> None:
    sentence = "The plan covers " + ", ".join(f"measure {i}" for i in range(150)) + "."
    chunks = _chunks(tmp_path, "huge.txt", sentence + "\n", max_tokens=100)
    assert len(chunks) > 1
    assert collapse_ws(" ".join(c.text for c in chunks)).replace(" ,", ",").count("measure") == 150


def test_sentence_spans_point_at_verbatim_document_text(tmp_path: Path) -> None:
    path = tmp_path / "table.txt"
    path.write_text(TABLE, encoding="utf-8")
    embedder = KeywordEmbedder()
    result = ingest_file(path, metadata={}, count_tokens=embedder.count_tokens, settings=ChunkerSettings(120))
    raw = normalize_for_match(TABLE)
    for chunk in result.chunks:
        for sentence in chunk.sentences:
            words = chunk.sentence_text(sentence)
            assert collapse_ws(result.document.text[sentence.doc_start : sentence.doc_end]) == words
            assert normalize_for_match(words) in raw
    ids = [c.chunk_id for c in result.chunks]
    assert len(ids) == len(set(ids))
