"""The learned answerer: question analysis, slot binding, training, weights checks, abstention reasons, CV folds."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from assistant import Assistant, Settings, nlp
from assistant.answer.model import WEIGHTS_PATH, load_model
from assistant.answer.question import analyse
from assistant.errors import ModelError
from assistant.index.builder import build_index
from assistant.nlp import ParseJob, parse_chunks
from assistant.training import collect, cross_validate, fold_of, train
from assistant.training.fit import is_evidence
from tests.conftest import KeywordEmbedder


@pytest.mark.parametrize(
    ("question", "wants", "focus", "constraints"),
    [
        pytest.param("How many fishermen were trained in 2022?", {"figure"}, ("fisherman",), ("2022",), id="count"),
        pytest.param(
            "What budget does the KORALI project have?",
            {"figure", "money"},
            ("budget",),
            ("korali",),
            id="money-of-a-named-project",
        ),
        pytest.param(
            "When was the harbour agreement with Norland signed?",
            {"date"},
            ("agreement",),
            ("norland",),
            id="date-of-an-event",
        ),
        pytest.param("In which city was the summit held?", {"place"}, ("city",), (), id="place-noun"),
        pytest.param("Which agencies run the helpdesk?", {"org", "list"}, ("agency",), (), id="plural-organisations"),
        pytest.param("What share of requests were granted?", {"figure", "percent"}, ("share",), (), id="percent"),
        pytest.param("Why did the board suspend the scheme?", {"reason"}, (), (), id="reason"),
        pytest.param("Is the pilot still running?", {"yesno"}, (), (), id="yes-no"),
    ],
)
def test_question_analysis_reads_type_focus_and_constraints(
    question: str, wants: set[str], focus: tuple[str, ...], constraints: tuple[str, ...]
) -> None:
    info = analyse(question)
    assert set(info.wants) == wants
    assert info.focus[: len(focus)] == focus
    assert info.constraints == constraints


def test_two_part_questions_ask_for_both_parts() -> None:
    info = analyse("When did the mission start, and where was it based?")
    assert {"date", "place"} <= set(info.wants) and info.parts == 2


@pytest.mark.parametrize(
    ("sentence", "value", "bound_to"),
    [
        pytest.param(
            "The KORALI project has a budget of EUR 3.4 million.", "EUR 3.4 million", "budget", id="of-budget"
        ),
        pytest.param("Some 7400 fishermen were trained by the coast guard.", "7400", "fisherman", id="nummod"),
        pytest.param("The board signed the harbour agreement on 3 May 2021.", "3 May 2021", "sign", id="date-verb"),
    ],
)
def test_values_are_bound_to_the_words_they_are_about(sentence: str, value: str, bound_to: str) -> None:
    (values,) = parse_chunks([sentence])
    found = [v for v in values if sentence[v.start : v.end] == value or value in sentence[v.start : v.end]]
    assert found, [(sentence[v.start : v.end], v.label) for v in values]
    assert any(bound_to in v.bound for v in found), [(sentence[v.start : v.end], v.bound) for v in found]


def test_a_parse_in_a_worker_process_gives_what_an_in_process_parse_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [
        "The KORALI project has a budget of EUR 3.4 million.",
        "Some 7400 fishermen were trained by the coast guard in 2022.",
        "The board signed the harbour agreement with Norland on 3 May 2021.",
    ]
    monkeypatch.setattr(nlp, "WORKER_MIN_TEXTS", 1)
    job = ParseJob(texts)
    assert job.in_worker
    assert job.result() == parse_chunks(texts)
    # A worker that dies (killed, out of memory) costs time, not the build: the parse runs here instead.
    job = ParseJob(texts)
    processes = list(job._pool._processes.values())
    assert processes
    for process in processes:
        process.kill()
    assert job.result() == parse_chunks(texts)


def test_a_build_that_fails_while_embedding_stops_its_parse_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing

    class Failing(KeywordEmbedder):
        def embed_documents(self, texts: list[str]) -> np.ndarray:
            raise RuntimeError("embedding failed")

    (tmp_path / "corpus").mkdir()
    for name, text in DOCS.items():
        (tmp_path / "corpus" / name).write_text(text, encoding="utf-8")
    settings = Settings.from_env(environ={}, corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index")
    monkeypatch.setattr(nlp, "WORKER_MIN_TEXTS", 1)
    with pytest.raises(RuntimeError, match="embedding failed"):
        build_index(settings, Failing())
    assert multiprocessing.active_children() == []


# A small corpus written for these tests: three documents with figures, dates and names about different things.
DOCS = {
    "2021-05-03_harbours.md": (
        "# Harbour programme\n\n## KORALI\n\nThe KORALI project has a budget of EUR 3.4 million. It trains port staff "
        "in Norland.\n\n## Sibling project\n\nThe LUMEN project has a budget of EUR 9.9 million. Its partner is the "
        "Maritime Office.\n\n## Agreement\n\nThe board signed the harbour agreement with Norland on 3 May 2021. "
        "The agreement covers four ports.\n"
    ),
    "2022-02-01_training.md": (
        "# Training report\n\n## Fishermen\n\nSome 7400 fishermen were trained in 2022 by the coast guard. Training "
        "lasted two weeks.\n\n## Summit\n\nThe regional summit was held in Port Avel. Ministers from six countries "
        "attended.\n\n## Helpdesk\n\nThe helpdesk is run by the Maritime Office and the Port Authority.\n"
    ),
    "2023-09-15_reviews.md": (
        "# Review note\n\n## Requests\n\nIn 2023, 62% of requests were granted. Most requests came from small "
        "ports.\n\n## Suspension\n\nThe board suspended the scheme because the audit found missing receipts. A new "
        "audit is planned.\n\n## Pilot\n\nThe pilot started on 1 March 2023 in the northern ports.\n"
    ),
}
GOLD = [
    ("What budget does the KORALI project have?", ["EUR 3.4 million"], "The KORALI project has a budget", 0),
    ("What budget does the LUMEN project have?", ["9.9"], "The LUMEN project has a budget of EUR 9.9 million", 0),
    ("Who is the partner of the LUMEN project?", ["Maritime Office"], "Its partner is the Maritime Office", 0),
    ("When was the harbour agreement with Norland signed?", ["3 May 2021"], "signed the harbour agreement", 0),
    ("How many ports does the harbour agreement cover?", ["four"], "The agreement covers four ports", 0),
    ("How many fishermen were trained in 2022?", ["7400"], "Some 7400 fishermen were trained", 1),
    ("How long did the fishermen's training last?", ["two weeks"], "Training lasted two weeks", 1),
    ("In which city was the regional summit held?", ["Port Avel"], "The regional summit was held in Port Avel", 1),
    ("Who runs the helpdesk?", ["Maritime Office"], "The helpdesk is run by the Maritime Office", 1),
    ("What share of requests were granted in 2023?", ["62%"], "In 2023, 62% of requests were granted", 2),
    ("Why did the board suspend the scheme?", ["audit"], "because the audit found missing receipts", 2),
    ("When did the pilot start?", ["1 March 2023"], "The pilot started on 1 March 2023", 2),
    ("Where did the pilot start?", ["northern ports"], "in the northern ports", 2),
    ("How many ministers attended the summit?", ["six"], "Ministers from six countries attended", 1),
]
UNANSWERABLE = [
    "What budget does the ORCA project have?",
    "When was the fisheries agreement with Westmark signed?",
    "How many auditors work for the board?",
    "What is the budget of the Port Avel summit?",
]


def _write_gold(path: Path) -> Path:
    names = list(DOCS)
    rows = [
        {"id": f"T-{i}", "question": q, "answer": keys[0], "answer_keys": keys, "evidence": [evidence],
         "doc": names[doc], "type": "factoid"}
        for i, (q, keys, evidence, doc) in enumerate(GOLD)
    ] + [
        {"id": f"U-{i}", "question": q, "answer": "not in the documents", "answer_keys": [], "evidence": [],
         "doc": None, "type": "unanswerable"}
        for i, q in enumerate(UNANSWERABLE)
    ]  # fmt: skip
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Assistant, Path, Path]:
    root = tmp_path_factory.mktemp("model")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in DOCS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    settings = Settings.from_env(environ={}, corpus_dir=corpus, index_dir=root / "index", chunk_max_tokens=64)
    embedder = KeywordEmbedder()
    build_index(settings, embedder)
    assistant = Assistant.load(settings=settings, embedder=embedder, load_weights=False)
    gold = _write_gold(root / "gold.jsonl")
    weights = root / "weights.json"
    model, _ = train(assistant, gold, out=weights)
    assistant.scorer.model = model
    return assistant, gold, weights


def test_training_writes_weights_that_load_and_rank_the_planted_answer_first(
    trained: tuple[Assistant, Path, Path],
) -> None:
    assistant, _, weights = trained
    model = load_model(weights)
    assert model.unit.features and 0.0 <= model.threshold <= 1.0
    assistant.scorer.model = model
    answer = assistant.answer("How many fishermen were trained in 2022?")
    assert not answer.abstained and "7400" in answer.text
    assert answer.citations[0].quote.startswith("Some 7400 fishermen")
    assert answer.confidence is not None and 0.0 <= answer.confidence <= 1.0


def test_training_is_deterministic(trained: tuple[Assistant, Path, Path], tmp_path: Path) -> None:
    assistant, gold, weights = trained
    again = tmp_path / "again.json"
    train(assistant, gold, out=again)
    assert again.read_bytes() == weights.read_bytes()


def test_a_value_bound_to_a_sibling_does_not_answer(trained: tuple[Assistant, Path, Path]) -> None:
    assistant, _, _ = trained
    info = analyse("What budget does the ORCA project have?")
    vector = assistant.embedder.embed_query(info.text)
    hits = assistant.retriever.search(info.text, top_k=5, mode="hybrid", vector=vector)
    units = assistant.scorer.candidates(info, vector, hits)
    korali = next(u for u in units if "KORALI project has a budget" in u.text)
    assert korali.features["bound_focus"] == 1.0  # the amount is bound to "budget" ...
    assert korali.features["constraints_unit"] == 0.0  # ... but not of the project asked about


def test_abstention_says_what_is_missing(trained: tuple[Assistant, Path, Path]) -> None:
    assistant, _, _ = trained
    answered = assistant.answer("What budget does the KORALI project have?")
    missing = assistant.answer("What budget does the ORCA project have?")
    assert missing.confidence is not None and answered.confidence is not None
    assert missing.confidence < answered.confidence
    # The threshold learned from 14 questions is loose; a configured one applies as given.
    strict = copy.copy(assistant)
    strict.settings = assistant.settings.replace(abstain_threshold=0.5)
    answer = strict.answer("What budget does the ORCA project have?")
    assert answer.abstained
    assert answer.reason is not None and "ORCA" in answer.reason
    assert answer.citations and not any(c.supported for c in answer.citations)  # see-also passages only


def test_sentences_from_one_passage_share_one_marker(trained: tuple[Assistant, Path, Path]) -> None:
    assistant, _, _ = trained
    answer = assistant.answer("What budget does the KORALI project have?")
    chunk_ids = [c.chunk_id for c in answer.citations]
    assert len(chunk_ids) == len(set(chunk_ids))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.unlink(), id="missing"),
        pytest.param(lambda p: p.write_text("{not json", encoding="utf-8"), id="not-json"),
        pytest.param(
            lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "fingerprint": "x"})), id="other-features"
        ),
        pytest.param(lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "version": 99})), id="version"),
        pytest.param(
            lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "unit": {"features": []}})), id="truncated"
        ),
    ],
)
def test_bad_weights_are_refused_naming_make_train(
    trained: tuple[Assistant, Path, Path], tmp_path: Path, damage
) -> None:  # type: ignore[no-untyped-def]
    _, _, weights = trained
    copy = tmp_path / "weights.json"
    copy.write_bytes(weights.read_bytes())
    damage(copy)
    with pytest.raises(ModelError, match="make train"):
        load_model(copy)


def test_the_committed_weights_match_the_code() -> None:
    model = load_model(WEIGHTS_PATH)
    assert model.meta.get("questions", 0) >= 100


def test_evidence_labels_and_document_folds(trained: tuple[Assistant, Path, Path]) -> None:
    assistant, gold, _ = trained
    from assistant.evaluation.gold import load_gold

    questions = load_gold(gold)
    examples = collect(assistant, questions)
    assert all(e.labels.sum() >= 1 for e in examples if e.gold.answerable)
    assert all(e.labels.sum() == 0 for e in examples if not e.gold.answerable)
    folds = {fold_of(e) for e in examples}
    assert folds == set(DOCS)  # unanswerable questions join the fold of their closest document
    assert is_evidence("Some 7400 fishermen were trained in 2022 by the coast guard.", ["7400 fishermen were trained"])


def test_cross_validation_holds_out_each_document(trained: tuple[Assistant, Path, Path]) -> None:
    assistant, gold, _ = trained
    from assistant.evaluation.gold import load_gold

    before = assistant.scorer.model
    report = cross_validate(assistant, load_gold(gold))
    assert set(report.folds) == set(DOCS) and sum(report.folds.values()) == len(GOLD) + len(UNANSWERABLE)
    assert assistant.scorer.model is before
    assert report.summary["questions"] == len(GOLD) + len(UNANSWERABLE)
    assert np.isfinite(report.summary["answer_key_accuracy"])
