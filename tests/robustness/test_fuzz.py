"""Property-based fuzzing: any question, filter, history, file or LLM reply gives an answer or our own error.

Bounded by the hypothesis profile: "ci" (default, in `make test`) or "fuzz" (`make fuzz`). Every input is
timed (conftest.timed) so `make fuzz` can report inputs tried, failures and p99 latency.
"""

from __future__ import annotations

import string
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from assistant import Answer, Assistant
from assistant.answer.verify import check_support, split_answer
from assistant.errors import AssistantError
from assistant.ingest.chunker import ChunkerSettings
from assistant.ingest.loaders import LoadError
from assistant.ingest.pipeline import ingest_file
from assistant.retrieve import Filters
from assistant.uploads import UploadError, safe_name, save_upload
from tests.conftest import KeywordEmbedder
from tests.robustness.fuzzstats import timed

# Text with the characters that broke things: surrogates, controls, markup, markers, long runs.
ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()), max_size=300)  # surrogates included
TRICKY = st.sampled_from(
    ["\ud800", "\x00", "[1]", "<!--", "<script>", "...", "-", "--", "#", "|", "\t", "\n", "&amp;", "**", "é", "€"]
)
QUESTIONS = st.one_of(
    ANY_TEXT,
    st.lists(st.one_of(TRICKY, st.text(string.ascii_letters + " ", max_size=12)), max_size=40).map("".join),
    st.sampled_from(["How many persons were relocated?", "smart borders", "-x", "?" * 3000]),
)
DATES = st.one_of(st.none(), st.text(max_size=12), st.integers(), st.sampled_from(["2024", "2024-01", "2023-05-02"]))
DOCS = st.one_of(st.lists(st.text(max_size=20), max_size=3), st.just(["2024-01-10_alpha.md"]), st.integers())


@given(question=QUESTIONS)
def test_any_question_gets_an_answer_or_our_error(small_assistant: Assistant, question: str) -> None:
    def run() -> None:
        try:
            answer = small_assistant.answer(question)
        except AssistantError:
            return
        assert isinstance(answer, Answer)
        answer.to_dict()
        answer.text.encode("utf-8")

    timed("answer(question)", run)


@given(question=QUESTIONS, docs=DOCS, date_from=DATES, date_to=DATES)
def test_any_filter_gets_hits_or_our_error(
    small_assistant: Assistant, question: str, docs: object, date_from: object, date_to: object
) -> None:
    def run() -> None:
        try:
            filters = Filters(docs=docs, date_from=date_from, date_to=date_to)  # type: ignore[arg-type]
            small_assistant.search(question, filters=filters)
        except AssistantError:
            return

    timed("search(filters)", run)


HISTORY_ITEM = st.one_of(
    QUESTIONS,
    st.fixed_dictionaries({"question": QUESTIONS}),
    st.tuples(QUESTIONS, st.text(max_size=30)),
    st.integers(),
    st.none(),
)


@given(question=QUESTIONS, history=st.lists(HISTORY_ITEM, max_size=6))
def test_any_history_gets_an_answer_or_our_error(small_assistant: Assistant, question: str, history: list) -> None:  # type: ignore[type-arg]
    def run() -> None:
        try:
            answer = small_assistant.answer(question, history=history)
        except AssistantError:
            return
        assert len(answer.standalone_question) <= small_assistant.settings.max_query_chars

    timed("answer(history)", run)


@given(reply=st.one_of(ANY_TEXT, st.lists(st.one_of(TRICKY, QUESTIONS), max_size=30).map(" ".join)))
def test_any_llm_reply_is_verified_or_replaced(small_assistant: Assistant, reply: str) -> None:
    def run() -> None:
        split_answer(reply)
        check_support(reply, "Up to 25 November, 6012 persons have been relocated.")
        model = FakeListChatModel(responses=[reply or " "])
        assistant = Assistant(
            small_assistant.settings, small_assistant.embedder, small_assistant.data, chat_model=model
        )
        answer = assistant.answer("How many persons were relocated?", mode="llm")
        assert all(1 <= m <= len(answer.citations) for s in answer.sentences for m in s.markers)

    timed("llm reply", run)


FILE_BYTES = st.one_of(
    st.binary(max_size=2000),
    ANY_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.lists(st.one_of(TRICKY, QUESTIONS), max_size=60).map(lambda parts: "\n".join(parts).encode("utf-8", "replace")),
    ANY_TEXT.map(lambda t: t.encode("utf-16", "surrogatepass")),
)
SUFFIX = st.sampled_from([".txt", ".md", ".html", ".pdf"])


@given(data=FILE_BYTES, suffix=SUFFIX)
def test_any_file_is_indexed_or_skipped_with_a_reason(tmp_path_factory, data: bytes, suffix: str) -> None:  # type: ignore[no-untyped-def]
    path: Path = tmp_path_factory.mktemp("fuzzfile") / f"doc{suffix}"
    path.write_bytes(data)
    embedder = KeywordEmbedder()

    def run() -> None:
        try:
            result = ingest_file(path, metadata={}, count_tokens=embedder.count_tokens, settings=ChunkerSettings(120))
        except LoadError as exc:
            assert exc.reason
            return
        # The passage itself fits the budget (a title and headings, capped in characters, come on top).
        assert all(n <= 120 for n in embedder.count_tokens([c.text for c in result.chunks]))
        for chunk in result.chunks:
            for s in chunk.sentences:
                assert 0 <= s.doc_start <= s.doc_end <= len(result.document.text)

    timed("ingest(file)", run)


@given(name=st.text(max_size=400), data=FILE_BYTES)
def test_any_upload_name_is_saved_safely_or_refused(tmp_path_factory, name: str, data: bytes) -> None:  # type: ignore[no-untyped-def]
    corpus: Path = tmp_path_factory.mktemp("uploads")

    def run() -> None:
        clean = safe_name(name)
        assert len(clean.encode("utf-8", "surrogatepass")) <= 255 and "/" not in clean
        try:
            saved = save_upload(name, data, corpus)
        except UploadError:
            assert [p for p in corpus.iterdir() if not p.name.startswith(".")] == []
            return
        assert saved.parent == corpus and saved.exists()

    timed("upload(name, bytes)", run)
