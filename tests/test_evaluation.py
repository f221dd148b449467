"""The evaluation harness: metric functions on hand-made cases, gold validation, and whole runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from assistant import Settings
from assistant.cli import main as cli
from assistant.errors import AssistantError, ConfigError
from assistant.evaluation import metrics as m
from assistant.evaluation.gold import load_gold
from assistant.evaluation.harness import evaluate
from assistant.evaluation.report import PLOTS, write_report

# --- metrics: one table of cases per function ------------------------------------------------------------


@pytest.mark.parametrize(
    ("evidence", "text", "expected"),
    [
        ("6012 persons have been relocated", "Up to now, 6012 persons have been relocated.", True),
        ("6012 persons  have\nbeen relocated", "6012 <b>persons</b> have been relocated", True),  # spacing, markup
        ("6012 PERSONS", "6012 persons", True),  # case
        ("6012 persons have been relocated", "6013 persons have been relocated", False),
        # Crosses a chunk boundary: 5 of 8 words (62%) including a run of 5 in a row.
        ("one two three four five six seven eight", "one two three four five", True),
        ("one two three four five six seven eight", "one two three four", False),  # 50%: too little
        ("one two three four five six seven eight", "one two three five four six", False),  # no 5-word run
        ("short quote", "a short text", False),
    ],
)
def test_evidence_in_text(evidence: str, text: str, expected: bool) -> None:
    assert m.evidence_in_text(evidence, text) is expected


@pytest.mark.parametrize(
    ("texts", "evidence", "rank"),
    [
        (["a b", "the key fact", "key fact again"], ["key fact"], 2),
        (["x", "y"], ["key fact"], None),
        (["second quote", "first quote"], ["first quote", "second quote"], 1),  # any quote counts
        ([], ["anything"], None),
    ],
)
def test_first_relevant_rank(texts: list[str], evidence: list[str], rank: int | None) -> None:
    assert m.first_relevant_rank(texts, evidence) == rank


@pytest.mark.parametrize(
    ("ranks", "k", "recall", "mrr"),
    [
        ([1, 2, None, 6], 1, 0.25, 0.25),
        ([1, 2, None, 6], 5, 0.5, (1 + 0.5) / 4),
        ([1, 2, None, 6], 10, 0.75, (1 + 0.5 + 1 / 6) / 4),
        ([None, None], 10, 0.0, 0.0),
        ([], 10, 0.0, 0.0),
    ],
)
def test_recall_and_mrr(ranks: list[int | None], k: int, recall: float, mrr: float) -> None:
    assert m.recall_at(ranks, k) == pytest.approx(recall)
    assert m.mrr_at(ranks, k) == pytest.approx(mrr)


@pytest.mark.parametrize(
    ("relevant", "k", "expected"),
    [
        ([True, False, False], 10, 1.0),
        ([False, False, True], 10, 0.5),  # 1/log2(4) against an ideal of 1
        ([False, True, True], 10, (1 / math.log2(3) + 0.5) / (1 + 1 / math.log2(3))),
        ([False, False, False], 10, 0.0),
        ([False, False, True], 2, 0.0),  # beyond k
        ([], 10, 0.0),
    ],
)
def test_ndcg(relevant: list[bool], k: int, expected: float) -> None:
    assert m.ndcg_at(relevant, k) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([10.0, 20.0, 30.0], 50, 20.0), ([10.0, 20.0], 50, 15.0), ([1.0, 2.0, 3.0, 4.0, 5.0], 95, 4.8), ([], 50, 0.0)],
)
def test_percentile(values: list[float], q: float, expected: float) -> None:
    assert m.percentile(values, q) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("answer", "keys", "found"),
    [
        ("Relocated: 6012 persons [1].", ["6012", "persons"], ["6012", "persons"]),
        ("The ANTWERP conference on 19 and 20\nMarch.", ["Antwerp", "20 March"], ["Antwerp", "20 March"]),
        ("the Commission’s report", ["Commission's report"], ["Commission's report"]),  # quote styles
        ("6012 [1] persons", ["6012 persons"], ["6012 persons"]),  # markers inside a key's span are ignored
        ("GIZ implements it.", ["ICMPD", "GIZ"], ["GIZ"]),
        ("anything", [], []),
    ],
)
def test_keys_found(answer: str, keys: list[str], found: list[str]) -> None:
    assert m.keys_found(answer, keys) == found


@pytest.mark.parametrize(
    ("text", "words"),
    [("Six words are in this answer. [1]", 6), ("A – dash [2][3] and 12.5 %", 4), ("", 0), ("[1]", 0)],
)
def test_answer_words(text: str, words: int) -> None:
    assert m.answer_words(text) == words


@pytest.mark.parametrize(
    ("prediction", "reference", "f1"),
    [
        ("It was planned in Antwerp.", "It was planned in Antwerp.", 1.0),
        ("Antwerp [1]", "The conference was in Antwerp", 2 * (1 * 0.25) / (1 + 0.25)),  # P=1, R=1/4
        ("Brussels", "Antwerp", 0.0),
        ("the a an", "the", 1.0),  # both empty after normalisation
        ("", "Antwerp", 0.0),
    ],
)
def test_token_f1(prediction: str, reference: str, f1: float) -> None:
    assert m.token_f1(prediction, reference) == pytest.approx(f1)


@pytest.mark.parametrize(
    ("text", "statements"),
    [
        ("Mr. Shotter spoke. He said 4.5 million. [1]", [("Mr. Shotter spoke. He said 4.5 million.", [1])]),
        ("A [1] B [2][3] C", [("A", [1]), ("B", [2, 3]), ("C", [])]),
        ("A [1] [2]", [("A", [1, 2])]),
        ("No citation at all.", [("No citation at all.", [])]),
        ("A [1] .", [("A", [1])]),  # trailing punctuation is not a statement
    ],
)
def test_cited_statements(text: str, statements: list[tuple[str, list[int]]]) -> None:
    assert m.cited_statements(text) == statements


def _supports(sentence: str, passage: str) -> bool:
    return sentence.lower() in passage.lower()


@pytest.mark.parametrize(
    ("statements", "passages", "expected"),
    [
        # (sentences, supported sentences, citations, supporting citations, out of range)
        ([("alpha", [1])], {1: "Alpha beta"}, (1, 1, 1, 1, 0)),
        ([("alpha", [1, 2])], {1: "Alpha", 2: "gamma"}, (1, 1, 2, 1, 0)),  # one good citation is enough
        ([("alpha", [1]), ("delta", [])], {1: "alpha"}, (2, 1, 1, 1, 0)),  # uncited sentence
        ([("alpha", [3])], {1: "alpha"}, (1, 0, 1, 0, 1)),  # out-of-range marker
        ([], {}, (0, 0, 0, 0, 0)),
    ],
)
def test_score_citations(statements: list, passages: dict[int, str], expected: tuple[int, ...]) -> None:  # type: ignore[type-arg]
    score = m.score_citations(statements, passages, _supports)
    got = (score.sentences, score.supported_sentences, score.citations, score.supporting_citations, score.out_of_range)
    assert got == expected
    assert score.precision == (expected[3] / expected[2] if expected[2] else 0.0)
    assert score.recall == (expected[1] / expected[0] if expected[0] else 0.0)


@pytest.mark.parametrize(
    ("quote", "source", "expected"),
    [
        ("6012 persons", "Up to now 6012\n persons were relocated", True),
        ("6012 persons", "Up to now 6012 <b>persons</b>", True),
        ("6013 persons", "6012 persons", False),
        ("  ", "anything", False),
    ],
)
def test_is_verbatim(quote: str, source: str, expected: bool) -> None:
    assert m.is_verbatim(quote, source) is expected


@pytest.mark.parametrize(
    ("abstained", "answerable", "rates"),
    [
        ([True, False, True, False], [False, False, True, True], (0.5, 0.5)),
        ([True, True], [False, False], (1.0, 0.0)),
        ([False, False, False], [True, True, True], (0.0, 0.0)),
    ],
)
def test_abstention_rates(abstained: list[bool], answerable: list[bool], rates: tuple[float, float]) -> None:
    assert m.abstention_rates(abstained, answerable) == pytest.approx(rates)


# --- gold files ------------------------------------------------------------------------------------------

GOOD = {
    "id": "Q1",
    "question": "How many persons have been relocated?",
    "answer": "6012 persons.",
    "answer_keys": ["6012"],
    "evidence": ["6012 persons have been relocated"],
    "doc": "2024-01-10_alpha.md",
    "type": "numeric",
}
NOANS = {
    "id": "Q9",
    "question": "What is the budget of the Mars mission?",
    "answer": "",
    "answer_keys": [],
    "evidence": [],
    "doc": None,
    "type": "unanswerable",
}


def _write_gold(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", ":2: not valid JSON"),
        ([1, 2], ":2: each line must be a JSON object"),
        ({**GOOD, "id": "Q2", "question": " "}, ":2: field 'question'"),
        ({k: v for k, v in GOOD.items() if k != "answer_keys"} | {"id": "Q2"}, ":2: field 'answer_keys'"),
        ({**GOOD, "id": "Q2", "evidence": "a quote"}, ":2: field 'evidence' must be a list"),
        ({**GOOD, "id": "Q2", "type": "trivia"}, ":2: field 'type' must be one of"),
        ({**GOOD, "id": "Q2", "doc": None}, ":2: field 'doc' must be null exactly when"),
        ({**GOOD, "id": "Q2", "evidence": []}, ":2: field 'evidence' must hold at least one"),
        ({**GOOD}, ":2: field 'id' repeats 'Q1' from line 1"),
    ],
)
def test_a_bad_gold_line_is_named_with_its_line_and_field(tmp_path: Path, bad: object, message: str) -> None:
    path = _write_gold(tmp_path / "gold.jsonl", [GOOD, bad, NOANS])
    with pytest.raises(AssistantError, match=message.replace("(", r"\(")):
        load_gold(path)


def test_the_dev_gold_file_is_valid() -> None:
    gold = load_gold(Path(__file__).resolve().parent.parent / "eval" / "gold" / "dev.jsonl")
    assert len({q.id for q in gold}) == len(gold) >= 50
    assert sum(not q.answerable for q in gold) >= 30  # near misses, most of them


# --- whole runs on a small corpus (keyword embedder; LangChain's deterministic fake embeddings) -------------


def _fake_lc_embeddings():  # type: ignore[no-untyped-def]
    from langchain_core.embeddings import DeterministicFakeEmbedding

    return DeterministicFakeEmbedding(size=32)


@pytest.fixture
def small_gold(tmp_path: Path) -> Path:
    rows = [
        GOOD,
        {
            "id": "Q2",
            "question": "Who will implement the Talent Partnership in Pakistan?",
            "answer": "GIZ.",
            "answer_keys": ["GIZ"],
            "evidence": ["The Talent Partnership in Pakistan will be implemented by GIZ."],
            "doc": "2023-05-02_beta.txt",
            "type": "factoid",
        },
        {
            "id": "Q3",
            "question": "How much did the Commission approve for smart borders?",
            "answer": "EUR 52.1 million.",
            "answer_keys": ["52.1 million"],
            "evidence": ["The Commission approved EUR 52.1 million for smart borders."],
            "doc": "2024-01-10_alpha.md",
            "type": "numeric",
        },
        NOANS,
    ]
    return _write_gold(tmp_path / "gold.jsonl", rows)


def _run(gold: Path, settings: Settings, embedder, systems=("assistant", "bm25-only", "langchain-baseline")):  # type: ignore[no-untyped-def]
    return evaluate(
        gold,
        settings=settings,
        systems=list(systems),
        embedder=embedder,
        baseline_embeddings=_fake_lc_embeddings(),
        thresholds=(0.2, 0.5, 1.0),
    )


def test_a_run_scores_every_system_and_writes_the_report(tmp_path: Path, small_gold: Path, settings, embedder) -> None:  # type: ignore[no-untyped-def]
    seen: list[tuple[str, int, int]] = []
    evaluation = evaluate(
        small_gold,
        settings=settings,
        systems=["assistant", "bm25-only", "langchain-baseline"],
        embedder=embedder,
        baseline_embeddings=_fake_lc_embeddings(),
        thresholds=(0.2, 0.5, 1.0),
        progress=lambda label, done, total: seen.append((label, done, total)),
    )
    assert ("answering", 12, 12) in seen
    assert not (tmp_path / "index").exists()  # the assistant's index was built in a temporary directory
    written = write_report(evaluation, tmp_path / "out")
    assert {p.name for p in written} == {"report.json", "report.md", *PLOTS.values()}
    assert all(p.stat().st_size > 0 for p in written)

    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["gold"]["sha256"] and report["versions"]["faiss-cpu"]
    assert "llm_api_key" not in report["settings"]
    assert set(report["systems"]) == {"assistant", "bm25-only", "langchain-baseline"}
    keys = {
        "recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "context_chars@5", "answer_key_accuracy",
        "token_f1", "answer_words_mean", "citation_precision", "citation_recall", "quotes_verbatim",
        "noans_abstain_rate", "hasans_false_abstain_rate", "latency_ms_p50", "latency_ms_p95", "build_s",
    }  # fmt: skip
    assert keys <= set(report["systems"]["assistant"])
    rows = report["questions"]
    assert len(rows) == 12
    assert {"id", "type", "system", "answer", "abstained", "citations", "retrieved_chunk_ids", "relevant_rank",
            "keys_found", "correct"} <= set(rows[0])  # fmt: skip

    # The keyword embedder + BM25 find these easy questions; the assistant answers all three and quotes verbatim.
    ours = report["systems"]["assistant"]
    assert ours["recall@5"] == 1.0 and ours["answer_key_accuracy"] == 1.0 and ours["quotes_verbatim"] == 1.0
    assert ours["noans_abstain_rate"] == 1.0 and ours["hasans_false_abstain_rate"] == 0.0
    assert report["systems"]["langchain-baseline"]["noans_abstain_rate"] == 0.0  # it never abstains
    assert [p["threshold"] for p in report["abstention_curves"]["assistant"]] == [0.2, 0.5, 1.0]
    assert "langchain-baseline" not in report["abstention_curves"]  # no threshold to move
    # A threshold above any possible confidence abstains on everything.
    assert report["abstention_curves"]["assistant"][-1]["hasans_false_abstain_rate"] == 1.0

    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| assistant |" in markdown and "## By question type" in markdown
    failed = [r for r in rows if not r["correct"]]
    for row in failed:  # every failure is listed with what was expected
        assert f"**{row['id']}**" in markdown


def test_gold_fields_never_reach_the_systems(tmp_path: Path, small_gold: Path, settings, embedder) -> None:  # type: ignore[no-untyped-def]
    """Scramble everything but the questions: every system must answer and retrieve exactly the same."""
    rows = [json.loads(line) for line in small_gold.read_text().splitlines()]
    for row in rows:
        if row["doc"]:
            row.update(answer="nothing", answer_keys=["zzz"], evidence=["no such words anywhere"], doc="other.txt")
    scrambled = _write_gold(tmp_path / "scrambled.jsonl", rows)

    def outputs(gold: Path) -> list[tuple[str, str, bool, tuple[str, ...]]]:
        evaluation = _run(gold, settings, embedder)
        return [(r.system, r.answer.text, r.answer.abstained, tuple(x.chunk_id for x in r.answer.retrieved))
                for r in evaluation.results]  # fmt: skip

    assert outputs(small_gold) == outputs(scrambled)


def test_a_bad_gold_file_stops_before_anything_is_built(tmp_path: Path, settings, embedder) -> None:  # type: ignore[no-untyped-def]
    bad = _write_gold(tmp_path / "gold.jsonl", [GOOD, {**GOOD, "id": "Q2", "type": "trivia"}])
    with pytest.raises(AssistantError, match=r"gold\.jsonl:2: field 'type'"):
        _run(bad, settings, embedder)
    assert embedder.embedded == []


def test_unknown_or_unconfigured_systems_are_refused(small_gold: Path, settings, embedder) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=r"Unknown system.*choose from"):
        _run(small_gold, settings, embedder, systems=["assistant", "gpt-5"])
    with pytest.raises(ConfigError, match="ASSISTANT_LLM_PROVIDER"):
        _run(small_gold, settings, embedder, systems=["llm"])


def test_cli_eval_reports_a_bad_gold_line_and_exits_non_zero(tmp_path: Path) -> None:
    bad = _write_gold(tmp_path / "gold.jsonl", [GOOD, "{oops"])
    result = CliRunner().invoke(cli, ["eval", "--gold", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "gold.jsonl:2: not valid JSON" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cli_eval_with_the_real_model_and_baseline(tmp_path: Path, small_gold: Path, small_corpus: Path) -> None:
    """End to end through the CLI: real MiniLM for both the assistant and LangChain's HuggingFaceEmbeddings."""
    env = {"ASSISTANT_CORPUS_DIR": str(small_corpus), "ASSISTANT_CHUNK_MAX_TOKENS": "120"}
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["eval", "--gold", str(small_gold), "--out", str(out), "--systems", "assistant,langchain-baseline"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["index"]["documents"] == 2
    for name in ("assistant", "langchain-baseline"):
        assert report["systems"][name]["recall@5"] == 1.0
        assert report["systems"][name]["build_s"] > 0
    assert report["systems"]["assistant"]["answer_key_accuracy"] == 1.0
    assert "| langchain-baseline |" in result.output


def test_the_llm_system_is_scored_and_its_invented_sentences_count_against_it(
    small_gold: Path, settings: Settings, embedder
) -> None:  # type: ignore[no-untyped-def]
    from tests.llm_server import ScriptedLLM, serve

    with serve() as url:
        configured = settings.replace(llm_provider="openai", llm_model="scripted", llm_base_url=url)
        reply = ("Up to 25 November, 6012 persons have been relocated under the mechanism [1]. "
                 "They were all flown to the Moon by the mechanism [1].")  # fmt: skip
        ScriptedLLM.replies = [reply] * 10
        evaluation = evaluate(small_gold, settings=configured, embedder=embedder, thresholds=(0.5,),
                              systems=["assistant", "llm"])  # fmt: skip
    assert ScriptedLLM.requests  # the llm system really called the server
    relocated = next(r for r in evaluation.for_system("llm") if r.question.id == "Q1")
    assert relocated.answer.text.startswith("Up to 25 November")
    assert (relocated.citation.citations, relocated.citation.supporting_citations) == (2, 1)
    assert (relocated.citation.sentences, relocated.citation.supported_sentences) == (2, 1)
    ours, llm = evaluation.summary("assistant"), evaluation.summary("llm")
    assert ours["citation_precision"] == 1.0
    assert llm["citation_precision"] is not None and llm["citation_precision"] < 1.0
    assert "llm" not in evaluation.curves  # the threshold curve is for extractive answers
