from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import assistant
from assistant.cli import main
from assistant.config import Settings
from assistant.errors import ConfigError
from assistant.tokens import count_tokens, truncate_to_tokens
from tests.conftest import ROOT


def test_public_api_is_small_and_sorted() -> None:
    assert assistant.__all__ == sorted(assistant.__all__)
    assert all(hasattr(assistant, name) for name in assistant.__all__)


def test_tiktoken_counts_offline_with_cl100k() -> None:
    assert count_tokens("hello world") == 2
    assert count_tokens("") == 0
    assert count_tokens(truncate_to_tokens("one two three four five", 3)) == 3


def test_settings_read_the_environment_and_reject_bad_values() -> None:
    settings = Settings.from_env(environ={"ASSISTANT_TOP_K": "7", "ASSISTANT_SEARCH_MODE": "bm25"})
    assert (settings.top_k, settings.search_mode) == (7, "bm25")
    with pytest.raises(ConfigError, match="ASSISTANT_TOP_K"):
        Settings.from_env(environ={"ASSISTANT_TOP_K": "many"})
    with pytest.raises(ConfigError, match="search_mode"):
        Settings.from_env(environ={"ASSISTANT_SEARCH_MODE": "magic"})


def test_an_unknown_embedding_model_is_a_clear_error(tmp_path: Path) -> None:
    from assistant.index.embedder import SentenceTransformerEmbedder

    with pytest.raises(ConfigError, match="ASSISTANT_EMBEDDING_MODEL"):
        SentenceTransformerEmbedder("no-such-model-package")


def test_cli_search_without_an_index_explains_what_to_do(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["search", "relocation", "--index-dir", str(tmp_path / "none")])
    assert result.exit_code == 1 and "assistant index" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("qid", ["SP-03", "SP-06", "CM-02", "EM-10", "RR-19", "EM-09"])
def test_real_model_hybrid_search_ranks_the_evidence_first(real_index: Path, real_embedder, qid: str) -> None:  # type: ignore[no-untyped-def]
    from assistant import Assistant
    from assistant.evaluation.gold import load_gold
    from assistant.evaluation.metrics import first_relevant_rank

    question = next(q for q in load_gold(ROOT / "eval" / "gold" / "dev.jsonl") if q.id == qid)
    engine = Assistant.load(real_index, embedder=real_embedder)
    hits = engine.search(question.question, top_k=5)
    assert first_relevant_rank([h.chunk.text for h in hits], question.evidence) == 1
    assert hits[0].chunk.doc == question.doc


@pytest.mark.slow
def test_cli_search_json_has_the_documented_shape(real_index: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["search", "EES and ETIAS smart borders funding", "--json", "--top-k", "3", "--index-dir", str(real_index)],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["query"] == "EES and ETIAS smart borders funding" and len(data["hits"]) == 3
    hit = data["hits"][0]
    assert set(hit) == {"rank", "score", "doc", "title", "date", "section", "page", "chunk_id", "text"}
    assert hit["rank"] == 1 and hit["doc"].endswith(".txt") and hit["page"] is None


@pytest.mark.slow
def test_cli_index_reports_an_up_to_date_index(real_index: Path) -> None:
    result = CliRunner().invoke(main, ["index", "--index-dir", str(real_index)])
    assert result.exit_code == 0, result.output
    assert "up to date: 5 documents" in result.output


@pytest.mark.slow
def test_cli_ask_prints_a_cited_answer_or_json(real_index: Path) -> None:
    args = ["ask", "How much EU funding supports border surveillance on Türkiye's eastern border with Iran?"]
    args += ["--index-dir", str(real_index)]
    text = CliRunner().invoke(main, args)
    assert text.exit_code == 0, text.output
    assert "220 million" in text.output and "Sources:" in text.output and "[1] " in text.output
    data = json.loads(CliRunner().invoke(main, [*args, "--json"]).output)
    assert {"question", "text", "citations", "abstained", "reason", "mode", "timings_ms", "hits"} <= set(data)
    assert set(data["citations"][0]) == {
        "marker", "doc", "title", "date", "section", "page", "chunk_id", "quote", "score", "supported", "reason",
        "quotes",
    }  # fmt: skip
    bad_doc = CliRunner().invoke(main, [*args, "--doc", "nope.pdf"])
    assert bad_doc.exit_code != 0 and "nope.pdf" in bad_doc.output and "Indexed documents" in bad_doc.output


@pytest.mark.slow
@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Which EU agency runs the focus group on migrant smuggling for judicial actors?", "Eurojust"),
        ("When was the EUR 100 million budget support agreement with Mauritania signed?", "14 November"),
    ],
)
def test_real_model_answers_quote_the_source_verbatim(
    real_index: Path, real_embedder, question: str, expected: str
) -> None:  # type: ignore[no-untyped-def]
    from assistant.core import Assistant
    from assistant.ingest.markup import normalize_for_match

    settings = Settings.from_env(environ={}, corpus_dir=ROOT / "corpus", index_dir=real_index)
    loaded = Assistant.load(settings=settings, embedder=real_embedder)
    answer = loaded.answer(question)
    assert not answer.abstained and expected in answer.text
    for c in answer.citations:
        source = normalize_for_match((ROOT / "corpus" / c.doc).read_text(encoding="utf-8"))
        assert normalize_for_match(c.quote) in source and c.supported
    unanswerable = loaded.answer("What is the boiling point of mercury on Venus?")
    assert unanswerable.abstained and unanswerable.citations  # see-also passages
    assert unanswerable.reason and "Venus" in unanswerable.reason  # says what is missing
