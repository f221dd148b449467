"""The chat page: Streamlit's AppTest for the page logic, and a real Chromium for one end-to-end question."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from assistant.feedback import FEEDBACK_FILE, FeedbackLog
from tests.llm_server import ScriptedLLM, serve

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "ui" / "app.py"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts"
LLM_VARIABLES = ("ASSISTANT_MODE", "ASSISTANT_LLM_PROVIDER", "ASSISTANT_LLM_MODEL", "ASSISTANT_LLM_BASE_URL")

pytestmark = pytest.mark.slow  # the real embedding model answers every question here


@pytest.fixture
def page_env(tmp_path: Path, small_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A fresh corpus and an index folder with nothing built yet, wired through the environment."""
    index_dir = tmp_path / "index"
    monkeypatch.setenv("ASSISTANT_CORPUS_DIR", str(small_corpus))
    monkeypatch.setenv("ASSISTANT_INDEX_DIR", str(index_dir))
    monkeypatch.setenv("ASSISTANT_CHUNK_MAX_TOKENS", "120")
    for name in LLM_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return {"corpus": small_corpus, "index": index_dir}


def _app():  # type: ignore[no-untyped-def]
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def _ask(at, question: str):  # type: ignore[no-untyped-def]
    at.chat_input[0].set_value(question).run()
    assert not at.exception, at.exception
    return at


def _answers(at) -> list[str]:  # type: ignore[no-untyped-def]
    return [" ".join(m.value for m in msg.markdown) for msg in at.chat_message if msg.name == "assistant"]


def _sources(at) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.label for e in at.expander if e.label.startswith("[")]


def test_first_visit_builds_the_index_and_a_question_gets_a_cited_answer(page_env: dict[str, Path]) -> None:
    at = _app()
    assert (page_env["index"] / "CURRENT").exists()  # built on first visit
    assert any("2 documents" in m.value for m in at.sidebar.markdown)
    assert len([b for b in at.button if b.key and b.key.startswith("example-")]) >= 1  # newcomers get examples

    _ask(at, "How many persons have been relocated under the mechanism?")
    answer = _answers(at)[-1]
    assert "6012" in answer and "\\[1\\]" in answer
    sources = _sources(at)
    assert sources and "Alpha report" in sources[0]
    passages = [m.value for e in at.expander if e.label.startswith("[") for m in e.markdown]
    assert any("<mark>" in p and "6012" in p for p in passages)  # the quoted words are highlighted


def test_an_example_question_can_be_clicked(page_env: dict[str, Path]) -> None:
    at = _app()
    example = next(b for b in at.button if b.key and b.key.startswith("example-"))
    example.click().run()
    assert not at.exception
    user = [m.markdown[0].value for m in at.chat_message if m.name == "user"]
    assert len(user) == 1 and len(_answers(at)) == 1
    assert not any(b.key and b.key.startswith("example-") for b in at.button)  # examples make way for the chat


def test_a_damaged_index_is_a_short_error_naming_the_fix(page_env: dict[str, Path]) -> None:
    _app()  # builds it
    for path in (page_env["index"] / "builds").glob("*/vectors.faiss"):
        path.write_bytes(path.read_bytes()[:100])
    (page_env["index"] / "CURRENT").write_text((page_env["index"] / "CURRENT").read_text() + " ")  # a new key
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=180).run()
    assert not at.exception
    assert at.error and "assistant index --rebuild" in at.error[0].value


def test_a_document_with_a_malformed_date_does_not_break_the_page(page_env: dict[str, Path]) -> None:
    (page_env["corpus"] / "metadata.json").write_text(json.dumps({"2024-01-10_alpha.md": {"date": "2024-13-45"}}))
    at = _app()  # no exception, no error: the date range just leaves that document out
    assert at.sidebar.date_input
    _ask(at, "How many persons have been relocated under the mechanism?")
    assert "6012" in _answers(at)[-1]


def test_a_follow_up_uses_the_conversation(page_env: dict[str, Path]) -> None:
    at = _app()
    _ask(at, "Who will implement the Talent Partnership in Pakistan?")
    assert "GIZ" in _answers(at)[-1]
    _ask(at, "When does it start?")
    searched = [c.value for c in at.caption if c.value.startswith("Searched for:")]
    assert searched and "Talent Partnership" in searched[-1]
    assert "2025" in _answers(at)[-1]
    assert len(_answers(at)) == 2

    next(b for b in at.button if b.label == "New conversation").click().run()
    assert _answers(at) == []


def test_the_document_filter_narrows_the_sources(page_env: dict[str, Path]) -> None:
    at = _app()
    at.multiselect[0].set_value(["2024-01-10_alpha.md"]).run()
    _ask(at, "Who will implement the Talent Partnership in Pakistan and when does it start?")
    sources = _sources(at)
    assert sources and all("Alpha report" in s for s in sources)


def test_an_unanswerable_question_shows_the_abstention(page_env: dict[str, Path]) -> None:
    at = _app()
    _ask(at, "What is the boiling point of water on Mars?")
    assert any("don't answer this" in w.value for w in at.warning)
    assert not any("\\[1\\]" in a for a in _answers(at))


def test_feedback_is_written_to_the_log(page_env: dict[str, Path]) -> None:
    at = _app()
    _ask(at, "How much did the Commission approve for smart borders?")
    at.feedback[0].set_value(0).run()
    next(t for t in at.text_input if t.label == "Comment (optional)").set_value("Figure is from 2024")
    next(b for b in at.button if b.label == "Send feedback").click().run()
    assert not at.exception and not at.error
    entries = FeedbackLog(page_env["index"] / FEEDBACK_FILE).entries()
    assert len(entries) == 1
    entry = entries[0]
    assert entry.rating == 0 and entry.comment == "Figure is from 2024"
    assert "smart borders" in entry.question and "52.1" in entry.answer
    assert entry.citations and entry.citations[0]["doc"] == "2024-01-10_alpha.md"
    assert any("feedback was saved" in c.value for c in at.caption)


def test_uploads_are_checked_by_content_and_indexed(page_env: dict[str, Path]) -> None:
    at = _app()
    before = sorted(p.name for p in page_env["corpus"].iterdir())
    uploader = at.sidebar.get("file_uploader")[0]
    uploader.set_value(("fake.pdf", b"Just text pretending to be a PDF.", "application/pdf")).run()
    next(b for b in at.button if b.label.startswith("Add to the corpus")).click().run()
    assert any("named .pdf but its content is TEXT" in e.value for e in at.error)
    assert sorted(p.name for p in page_env["corpus"].iterdir()) == before  # nothing else changed

    uploader = at.sidebar.get("file_uploader")[0]
    note = b"# Gamma memo\n\nThe Gamma fund for border equipment holds EUR 7.5 million.\n"
    uploader.set_value(("gamma memo.md", note, "text/markdown")).run()
    next(b for b in at.button if b.label.startswith("Add to the corpus")).click().run()
    assert any("Added gamma-memo.md" in s.value for s in at.success), [e.value for e in at.error]
    at.run()
    assert any("3 documents" in m.value for m in at.sidebar.markdown)
    _ask(at, "How much does the Gamma fund for border equipment hold?")
    assert "7.5 million" in _answers(at)[-1]


def _llm_env(monkeypatch: pytest.MonkeyPatch, base_url: str, **extra: str) -> None:
    variables = {"ASSISTANT_LLM_PROVIDER": "openai", "ASSISTANT_LLM_MODEL": "scripted",
                 "ASSISTANT_LLM_BASE_URL": base_url, "ASSISTANT_MODE": "llm", **extra}  # fmt: skip
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def test_llm_mode_streams_then_shows_the_verified_answer(page_env: dict[str, Path], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with serve() as url:
        _llm_env(monkeypatch, url)
        ScriptedLLM.replies = [
            "Up to 25 November, 6012 persons have been relocated under the mechanism [1]. "
            "All of them were flown to the Moon by Frontex [1]."
        ]
        at = _app()
        assert at.sidebar.radio[0].value == "llm"
        _ask(at, "How many persons have been relocated under the mechanism?")
        assert ScriptedLLM.requests and ScriptedLLM.requests[-1]["stream"] is True
    answer = _answers(at)[-1]
    assert "6012 persons have been relocated" in answer
    assert ":orange-background[All of them were flown to the Moon by Frontex\\.]" in answer  # failed verification
    assert any("not supported by their sources" in c.value for c in at.caption)


def test_a_failing_llm_endpoint_shows_a_notice_and_the_extractive_answer(
    page_env: dict[str, Path], monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    _llm_env(monkeypatch, dead, ASSISTANT_LLM_TIMEOUT="5")
    at = _app()
    _ask(at, "How many persons have been relocated under the mechanism?")
    assert at.info and "extractive" in at.info[0].value.lower()
    assert "6012" in _answers(at)[-1]
    assert not at.error


# --- a real browser ----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer {url} within {timeout:.0f} s")


def test_a_real_browser_asks_a_question_and_reads_the_highlighted_source(real_index: Path, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: run `apt-get install -y chromium` (make test does it).")
    from playwright.sync_api import expect, sync_playwright

    # A question the page must answer with a quote; the test is about the page, not about answer quality.
    row = {
        "question": "When was the EUR 100 million budget support agreement with Mauritania signed?",
        "answer_keys": ["14 November"],
        "evidence": ["signed by the EU on 14 November"],
    }
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in LLM_VARIABLES}
    env.update(ASSISTANT_INDEX_DIR=str(real_index), ASSISTANT_CORPUS_DIR=str(ROOT / "corpus"), HOME=str(tmp_path))
    command = [
        sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", "127.0.0.1",
        "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    log = (tmp_path / "streamlit.log").open("wb")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", server)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=str(CHROMIUM),
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.goto(f"http://127.0.0.1:{port}/", timeout=60_000)
                box = page.get_by_placeholder("Ask about the documents…")
                box.wait_for(timeout=90_000)
                box.fill(row["question"])
                box.press("Enter")
                page.locator('[data-testid="stExpander"] summary', has_text="[1]").first.wait_for(timeout=90_000)
                answer = page.locator('[data-testid="stChatMessage"]').last
                for key in row["answer_keys"]:
                    expect(answer).to_contain_text(key)
                sources = page.locator('[data-testid="stExpander"] summary', has_text="[")
                for i in range(sources.count()):
                    sources.nth(i).click()
                expect(page.locator(".passage mark").first).to_be_visible(timeout=10_000)
                marked = [" ".join(t.split()) for t in page.locator(".passage mark").all_inner_texts()]
                body = " ".join(page.inner_text("body").split())
                assert marked and all(m in body for m in marked)
                # The sentence that answers is among the highlighted quotes.
                assert any(" ".join(e.split()) in m for e in row["evidence"] for m in marked), marked
                page.screenshot(path=str(ARTIFACTS / "ui-answer.png"), full_page=True)
            finally:
                browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    shutil.copy(tmp_path / "streamlit.log", ARTIFACTS / "streamlit.log")


def test_assistant_ui_serves_the_page_and_stops_on_sigterm(page_env: dict[str, Path]) -> None:
    port = _free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("assistant")), "ui", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", server)
    finally:
        server.terminate()
        assert server.wait(timeout=15) is not None  # the server itself got the signal and stopped
