"""A question with a conversation history is parsed by spaCy once, and answered as before."""

from __future__ import annotations

from typing import Any

import pytest

from assistant import Assistant, Settings
from assistant.answer import question as question_module
from assistant.index.builder import build_index
from tests.conftest import KeywordEmbedder


def test_a_question_with_a_history_is_parsed_once(
    settings: Settings, embedder: KeywordEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_index(settings, embedder)
    assistant = Assistant.load(settings=settings, embedder=embedder)
    parsed: list[str] = []
    nlp = question_module.pipeline()

    def counting(text: str) -> Any:
        parsed.append(text)
        return nlp(text)

    monkeypatch.setattr(question_module, "pipeline", lambda: counting)
    question_module._parse.cache_clear()
    history = [{"question": "How many persons were relocated?"}]
    alone = assistant.answer("Which agency implements the Talent Partnership in Pakistan?", history=history)
    assert len(parsed) == 1  # the follow-up check's parse is the analysis's too
    assert question_module.analyse(alone.standalone_question) == question_module.analyse(alone.question)
    parsed.clear()
    follow = assistant.answer("and how many of them came from Cyprus?", history=history)
    assert follow.standalone_question != follow.question
    assert len(parsed) == 2  # a follow-up is analysed with the earlier question's words added: another text


def test_the_cached_parse_gives_the_same_analysis_as_a_fresh_one() -> None:
    text = "How many persons were relocated under the voluntary solidarity mechanism in 2023?"
    question_module._parse.cache_clear()
    first = question_module.analyse(text)
    assert question_module.is_follow_up(text) is False
    cached = question_module.analyse(text)
    question_module._parse.cache_clear()
    assert first == cached == question_module.analyse(text)
