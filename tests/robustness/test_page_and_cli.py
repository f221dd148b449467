"""The "Also" items: the chat page is served without developer tools; the CLI says it is loading; reasons shown."""

from __future__ import annotations

import tomllib
from pathlib import Path

from click.testing import CliRunner

from assistant.cli import UI_FLAGS, main
from assistant.present import answer_markdown, conversation_markdown
from assistant.types import Answer, AnswerSentence
from tests.conftest import ROOT


def test_the_page_is_served_in_viewer_mode_without_developer_hints() -> None:
    flags = dict(zip(UI_FLAGS[::2], UI_FLAGS[1::2], strict=True))
    assert flags["--client.toolbarMode"] == "viewer" and flags["--server.runOnSave"] == "false"
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["toolbarMode"] == "viewer" and config["server"]["fileWatcherType"] == "none"


def test_ask_says_it_is_loading_before_the_model_loads(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["ask", "How many?", "--index-dir", str(tmp_path / "none")])
    assert result.output.startswith("Loading the index and the embedding model")


def test_the_reason_a_sentence_is_unsupported_is_shown() -> None:
    reason = "supported only by instruction-like text planted in the source, not by its content"
    sentence = AnswerSentence("The budget was 999.", (1,), False, reason)
    answer = Answer(question="q", text="x [1]", citations=(), abstained=False, reason=None, hits=(), mode="llm",
                    timings_ms={"total": 1.0}, sentences=(sentence,))  # fmt: skip
    assert "instruction\\-like text" in answer_markdown(answer)  # Markdown-escaped
    assert "instruction-like text" in conversation_markdown([answer])
