"""Answering: question analysis, the support check, extractive answers, abstention, conflicts, follow-ups."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from assistant import Answer, Assistant, Filters, QueryError, Settings
from assistant.answer.question import analyse, standalone
from assistant.answer.text import content_terms, has_date, has_figure, numbers
from assistant.answer.verify import check_support, split_answer
from assistant.index.builder import build_index
from assistant.ingest.markup import normalize_for_match
from assistant.types import ABSTAIN_TEXT
from tests.conftest import KeywordEmbedder


@pytest.mark.parametrize(
    ("question", "wants"),
    [
        ("How many people were relocated in 2024?", {"figure"}),
        ("How much funding was approved for smart borders?", {"figure", "money"}),
        ("When was the agreement with Mauritania signed?", {"date"}),
        ("Where and when was the conference planned?", {"date", "place"}),
        ("Who is implementing the centre, and how is it funded?", {"person", "org", "description"}),
        ("Which countries are due for a Schengen evaluation?", {"list", "place"}),
        ("What were the main outcomes of the round table?", {"list"}),
        ("What is the main limitation of the data when it comes to comparing outcomes?", {"description"}),
        ("What criterion decides which Member State examines an application?", {"description"}),
    ],
)
def test_questions_say_what_kind_of_answer_they_want(question: str, wants: set[str]) -> None:
    assert set(analyse(question).wants) == wants


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("6 012 persons", {"6012"}),
        ("1,141 deployments in 12 Member States", {"1141", "12"}),
        ("EUR 52.1 million", {"52.1"}),
        ("200 000 alerts", {"200000"}),
        ("in 2023, 2024 and 2025", {"2023", "2024", "2025"}),
    ],
)
def test_figures_are_normalised_so_spacing_and_separators_do_not_matter(text: str, expected: set[str]) -> None:
    assert numbers(text) == expected


def test_figure_and_date_detection() -> None:
    assert has_figure("a two-year project") and has_figure("EUR 25 million")
    assert not has_figure("the first EU-wide platform in 2023")  # years and ordinals are not figures
    assert has_figure("the third anniversary", ordinals=True)
    assert has_date("signed on 14 November") and has_date("by 30/06/2024") and has_date("16:00-17:00")
    assert not has_date("in 2024", exclude={"2024"})
    assert content_terms("third-country nationals") == content_terms("third country national")


@pytest.mark.parametrize(
    ("sentence", "passage", "similarity", "supported"),
    [
        ("6012 persons were relocated.", "Up to 25 November, 6 012 persons have been relocated.", None, True),
        ("7000 persons were relocated.", "Up to 25 November, 6012 persons have been relocated.", None, False),
        ("Relocations happened in May.", "Up to 25 November, 6012 persons have been relocated.", None, False),
        ("The Moon is made of cheese.", "Up to 25 November, 6012 persons have been relocated.", 0.1, False),
        ("Member States moved people to help.", "States relocated persons to support members.", 0.8, True),
        ("Member States moved people to help.", "States relocated persons to support members.", 0.2, False),
    ],
)
def test_the_support_check(sentence: str, passage: str, similarity: float | None, supported: bool) -> None:
    assert check_support(sentence, passage, similarity).supported is supported


def test_generated_text_splits_into_sentences_with_their_markers() -> None:
    pieces = split_answer("EUR 52.1 million was approved [1]. It went to 26 applications.[2][3] No source here.")
    assert pieces == [
        ("EUR 52.1 million was approved [1].", [1]),
        ("It went to 26 applications.[2][3]", [2, 3]),
        ("No source here.", []),
    ]


def test_a_follow_up_carries_the_previous_subject() -> None:
    history = [{"question": "How many third-country nationals did the Joint Reintegration Services cover?"}]
    query = standalone("and how many of them were minors?", history)
    assert "minors" in query and "Reintegration" in query
    assert standalone("When was the agreement with Mauritania signed?", history).startswith("When was")


@pytest.fixture
def loaded(settings: Settings, embedder: KeywordEmbedder) -> Assistant:
    build_index(settings, embedder)
    return Assistant.load(settings=settings, embedder=embedder)


def _verbatim(answer: Answer, assistant: Assistant) -> bool:
    return all(
        normalize_for_match(c.quote) in normalize_for_match(assistant.data.documents[c.doc].text)
        for c in answer.citations
    )


def test_an_extractive_answer_quotes_and_cites_the_source(loaded: Assistant) -> None:
    answer = loaded.answer("How many persons have been relocated under the mechanism?")
    assert not answer.abstained and answer.mode == "extractive"
    assert "6012" in answer.text and re.search(r"\[1\]", answer.text)
    first = answer.citations[0]
    assert first.marker == 1 and first.doc == "2024-01-10_alpha.md" and first.supported
    assert "6012 persons have been relocated" in first.quote
    assert _verbatim(answer, loaded) and answer.sentences and all(s.supported for s in answer.sentences)
    assert set(answer.timings_ms) == {"retrieve", "answer", "total"}
    assert json.loads(json.dumps(answer.to_dict()))["citations"][0]["quote"] == first.quote


def test_a_question_the_documents_do_not_answer_is_declined(loaded: Assistant) -> None:
    answer = loaded.answer("What is the boiling point of mercury on Venus?")
    assert answer.abstained and answer.text.startswith(ABSTAIN_TEXT) and answer.reason
    assert answer.reason in answer.text  # what is missing is said, not only that something is
    assert all(not c.supported for c in answer.citations)  # see-also passages, not support


def test_filters_restrict_the_sources(loaded: Assistant) -> None:
    answer = loaded.answer("Who implements the Talent Partnership?", filters=Filters(docs=("2024-01-10_alpha.md",)))
    assert all(h.chunk.doc == "2024-01-10_alpha.md" for h in answer.hits)
    assert all(c.doc == "2024-01-10_alpha.md" for c in answer.citations)


def test_bad_input_is_a_clear_error(loaded: Assistant) -> None:
    with pytest.raises(QueryError, match="empty"):
        loaded.answer("   ")
    with pytest.raises(QueryError, match="mode"):
        loaded.answer("relocation?", mode="poetry")
    with pytest.raises(Exception, match="ASSISTANT_LLM_PROVIDER"):
        loaded.answer("relocation?", mode="llm")


def test_conflicting_figures_lead_with_the_most_recent_document(tmp_path: Path, embedder: KeywordEmbedder) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "2024-03-12_old.md").write_text(
        "# Spring note\n\nMore than 4 000 persons have been relocated under the voluntary solidarity mechanism.\n",
        encoding="utf-8",
    )
    (corpus / "2024-12-01_new.md").write_text(
        "# Winter note\n\nUp to 25 November, 6012 persons have been relocated under the voluntary solidarity "
        "mechanism.\n",
        encoding="utf-8",
    )
    (corpus / "metadata.json").write_text(
        json.dumps({"2024-03-12_old.md": {"date": "2024-03-12"}, "2024-12-01_new.md": {"date": "2024-12-01"}}),
        encoding="utf-8",
    )
    settings = Settings.from_env(environ={}, corpus_dir=corpus, index_dir=tmp_path / "index")
    build_index(settings, embedder)
    assistant = Assistant.load(settings=settings, embedder=embedder)
    answer = assistant.answer("How many persons have been relocated under the voluntary solidarity mechanism?")
    assert answer.text.startswith("As of 1 December 2024:") and "6012" in answer.text.split("[1]")[0]
    assert "4 000" in answer.text.split("[1]")[1] and answer.citations[1].date == "2024-03-12"
    pinned = assistant.answer("How many persons had been relocated by March 2024?")
    assert not pinned.text.startswith("As of")


def test_the_langchain_retriever_and_chain(loaded: Assistant) -> None:
    from assistant.langchain import AssistantRetriever, answer_chain

    docs = AssistantRetriever(assistant=loaded, top_k=2).invoke("Talent Partnership Pakistan")
    assert docs[0].metadata["doc"] == "2023-05-02_beta.txt" and "GIZ" in docs[0].page_content
    assert {"title", "date", "section", "page", "chunk_id", "score"} <= set(docs[0].metadata)
    result = answer_chain(loaded).invoke({"question": "How many persons have been relocated?"})
    assert isinstance(result, Answer) and "6012" in result.text
