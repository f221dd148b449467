"""The Milvus backend end to end against a real milvus-lite server process on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from assistant import (
    Assistant,
    ConfigError,
    Filters,
    IndexCorruptError,
    IndexMissingError,
    Settings,
    StoreError,
)
from assistant.cli import main
from assistant.index.milvus_schema import parse_store
from assistant.index.milvus_store import MilvusIndex
from assistant.index.store import sentence_offsets
from assistant.retrieve_milvus import LazySentenceVectors, milvus_filter
from tests.conftest import ROOT, KeywordEmbedder
from tests.milvus_server import MilvusLiteServer, free_port

ALPHA, BETA = "2024-01-10_alpha.md", "2023-05-02_beta.txt"


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusLiteServer]:
    """One milvus-lite server for the session: data in a temporary directory, stopped at the end."""
    server = MilvusLiteServer(tmp_path_factory.mktemp("milvus") / "data").start()
    yield server
    server.stop()


@pytest.fixture
def milvus_settings(settings: Settings, milvus_server: MilvusLiteServer) -> Settings:
    """The small corpus, in a collection of its own on the session's server."""
    return settings.replace(store=f"{milvus_server.url}/t_{uuid.uuid4().hex[:12]}", store_timeout=20.0)


def _rows(settings: Settings) -> list[dict[str, object]]:
    store = MilvusIndex(parse_store(settings.store, corpus_dir=settings.corpus_dir), timeout=5.0)
    return list(store._scan(store.target.collection, "", ["pk", "doc", "key", "chunk_id"]))


def test_index_search_filter_and_answer_over_a_real_server(
    milvus_settings: Settings, embedder: KeywordEmbedder
) -> None:
    report = Assistant.build(milvus_settings, embedder=embedder)
    assert report.wrote and sorted(report.added) == [BETA, ALPHA] and report.documents == 2
    assistant = Assistant.load(settings=milvus_settings, embedder=embedder)
    assert set(assistant.data.documents) == {ALPHA, BETA} and len(assistant.data.chunks) == report.chunks

    for mode in ("hybrid", "dense", "bm25"):
        hits = assistant.search("Who implements the Talent Partnership in Pakistan?", mode=mode, top_k=2)
        assert hits[0].chunk.doc == BETA and "GIZ" in hits[0].chunk.text, mode
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    only_alpha = assistant.search("Talent Partnership Pakistan", filters=Filters(docs=(ALPHA,)))
    assert only_alpha and {h.chunk.doc for h in only_alpha} == {ALPHA}
    assert {h.chunk.doc for h in assistant.search("relocated", filters=Filters(date_to="2023-12"))} == {BETA}
    assert {h.chunk.doc for h in assistant.search("relocated", filters=Filters(date_from="2024"))} == {ALPHA}

    lazy = assistant.retriever.sentence_vectors  # type: ignore[attr-defined]
    assert lazy.computed == 0  # searching embeds no sentences; answering embeds those of its passages only
    answer = assistant.answer("How many persons have been relocated under the mechanism?")
    assert (
        0
        < lazy.computed
        <= sum(len(h.chunk.sentences) for h in answer.hits) + max(len(c.sentences) for c in assistant.data.chunks)
    )
    assert not answer.abstained and "6012" in answer.text
    citation = answer.citations[0]
    assert citation.doc == ALPHA and citation.supported
    assert citation.quote in " ".join(assistant.data.documents[ALPHA].text.split())


def test_reindex_replaces_a_changed_document_and_drops_a_removed_one(
    milvus_settings: Settings, embedder: KeywordEmbedder
) -> None:
    Assistant.build(milvus_settings, embedder=embedder)
    before = _rows(milvus_settings)
    embedder.embedded.clear()
    assert not Assistant.build(milvus_settings, embedder=embedder).wrote and embedder.embedded == []

    (milvus_settings.corpus_dir / ALPHA).write_text("# Alpha\n\nA wholly new text about visa reciprocity.\n")
    report = Assistant.build(milvus_settings, embedder=embedder)
    assert report.changed == [ALPHA] and report.unchanged == [BETA]
    assert all("visa" in text or "Alpha" in text for text in embedder.embedded)  # beta was not re-embedded
    rows = _rows(milvus_settings)
    assert len({r["pk"] for r in rows}) == len(rows) == report.chunks  # no duplicates, no leftovers
    assert {r["pk"] for r in rows if r["doc"] == BETA} == {r["pk"] for r in before if r["doc"] == BETA}
    assert not {r["pk"] for r in rows if r["doc"] == ALPHA} & {r["pk"] for r in before if r["doc"] == ALPHA}
    assistant = Assistant.load(settings=milvus_settings, embedder=embedder)
    assert "visa" in assistant.search("visa reciprocity", top_k=1)[0].chunk.text
    assert not any("6012" in c.text for c in assistant.data.chunks)

    (milvus_settings.corpus_dir / BETA).unlink()
    report = Assistant.build(milvus_settings, embedder=embedder)
    assert report.removed == [BETA] and {r["doc"] for r in _rows(milvus_settings)} == {ALPHA}
    assert set(Assistant.load(settings=milvus_settings, embedder=embedder).data.documents) == {ALPHA}


def test_another_model_is_refused_with_the_rebuild_command(
    milvus_settings: Settings, embedder: KeywordEmbedder
) -> None:
    Assistant.build(milvus_settings, embedder=embedder)
    other = KeywordEmbedder(fingerprint="keyword-v2")
    for attempt in (lambda: Assistant.load(settings=milvus_settings, embedder=other),
                    lambda: Assistant.build(milvus_settings, embedder=other)):  # fmt: skip
        with pytest.raises(IndexCorruptError, match=r"assistant index --store milvus://.* --rebuild"):
            attempt()
    assert Assistant.build(milvus_settings, embedder=other, rebuild=True).wrote
    assert Assistant.load(settings=milvus_settings, embedder=other).search("GIZ", top_k=1)


def test_missing_collection_names_the_index_command(milvus_settings: Settings, embedder: KeywordEmbedder) -> None:
    with pytest.raises(IndexMissingError, match=r"Run `assistant index --store milvus://127\.0\.0\.1:\d+/t_"):
        Assistant.load(settings=milvus_settings, embedder=embedder)


def test_a_collection_with_another_schema_is_refused_and_never_dropped(
    milvus_settings: Settings, embedder: KeywordEmbedder
) -> None:
    from pymilvus import MilvusClient

    target = parse_store(milvus_settings.store, corpus_dir=milvus_settings.corpus_dir)
    client = MilvusClient(target.uri)
    client.create_collection(target.collection, dimension=8)
    client.insert(target.collection, [{"id": 1, "vector": [0.1] * 8}])
    for attempt in (lambda: Assistant.load(settings=milvus_settings, embedder=embedder),
                    lambda: Assistant.build(milvus_settings, embedder=embedder, rebuild=True)):  # fmt: skip
        with pytest.raises(IndexCorruptError, match=r"not written by this assistant.*ASSISTANT_STORE"):
            attempt()
    assert client.get(target.collection, ids=[1])  # the other program's data is untouched


def test_unreachable_server_fails_quickly_with_advice(settings: Settings, embedder: KeywordEmbedder) -> None:
    unreachable = settings.replace(store=f"milvus://127.0.0.1:{free_port()}/nothing", store_timeout=2.0)
    started = time.monotonic()
    with pytest.raises(StoreError, match="ASSISTANT_STORE") as caught:
        Assistant.load(settings=unreachable, embedder=embedder)
    assert time.monotonic() - started < 20  # bounded: a hang guard, not a speed target
    assert "unset ASSISTANT_STORE" in str(caught.value)


def test_a_server_that_never_answers_times_out(settings: Settings, embedder: KeywordEmbedder) -> None:
    """A listener that accepts connections and says nothing (a hung server): the timeout bounds the wait."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hung = settings.replace(store=f"milvus://127.0.0.1:{silent.getsockname()[1]}/x", store_timeout=2.0)
        started = time.monotonic()
        with pytest.raises(StoreError, match="ASSISTANT_STORE_TIMEOUT=2 s"):
            Assistant.load(settings=hung, embedder=embedder)
        assert time.monotonic() - started < 20  # bounded: a hang guard, not a speed target


def test_server_killed_mid_session_gives_a_clear_error(
    tmp_path: Path, settings: Settings, embedder: KeywordEmbedder
) -> None:
    server = MilvusLiteServer(tmp_path / "own").start()
    try:
        own = settings.replace(store=f"{server.url}/killed", store_timeout=30.0)
        Assistant.build(own, embedder=embedder)
        own = own.replace(store_timeout=3.0)
        assistant = Assistant.load(settings=own, embedder=embedder)
        assert assistant.search("GIZ", top_k=1)
        server.kill()
        started = time.monotonic()
        with pytest.raises(StoreError, match=r"milvus://127\.0\.0\.1:\d+/killed \(ASSISTANT_STORE\)"):
            assistant.answer("Who implements the Talent Partnership?")
        assert time.monotonic() - started < 20  # bounded: a hang guard, not a speed target
        with pytest.raises(StoreError):
            Assistant.build(own, embedder=embedder, rebuild=True)
    finally:
        server.stop()


def test_credentials_never_go_in_the_store_setting() -> None:
    with pytest.raises(ConfigError, match="ASSISTANT_MILVUS_TOKEN") as caught:
        Settings.from_env(environ={"ASSISTANT_STORE": "milvus://root:s3cret@127.0.0.1:19530/x"})
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "uri", "collection"),
    [
        pytest.param("milvus://127.0.0.1:19530/docs", "http://127.0.0.1:19530", "docs", id="full"),
        pytest.param("milvus://db.internal", "http://db.internal:19530", "assistant_corpus", id="defaults"),
        pytest.param("milvus+https://zilliz.example:443/c_1", "https://zilliz.example:443", "c_1", id="tls"),
    ],
)
def test_parse_store(url: str, uri: str, collection: str, tmp_path: Path) -> None:
    target = parse_store(url, corpus_dir=tmp_path / "corpus")
    assert (target.uri, target.collection) == (uri, collection)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("faiss://x", id="scheme"),
        pytest.param("milvus://h:99999/x", id="port"),
        pytest.param("milvus://h:1/bad-name", id="collection-name"),
    ],
)
def test_parse_store_refuses(url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        parse_store(url, corpus_dir=tmp_path)


@pytest.mark.parametrize(
    ("filters", "expr"),
    [
        pytest.param(None, "", id="none"),
        pytest.param(Filters(docs=("a.md", 'q"uote.txt')), '(doc in ["a.md", "q\\"uote.txt"])', id="docs"),
        pytest.param(Filters(date_from="2024-03"), '(date != "" and date_end >= "2024-03")', id="from"),
        pytest.param(Filters(date_to="2024"), '(date != "" and date <= "2024-12-31")', id="to-year"),
    ],
)
def test_filters_become_milvus_expressions(filters: Filters | None, expr: str) -> None:
    assert milvus_filter(filters) == expr


def test_lazy_sentence_vectors_match_embedding_every_sentence(settings: Settings, embedder: KeywordEmbedder) -> None:
    from assistant.index.builder import build_index
    from assistant.index.store import load_index

    build_index(settings, embedder)
    data = load_index(settings.index_dir)
    lazy = LazySentenceVectors(data.chunks, sentence_offsets(data.chunks), embedder)
    assert lazy.shape == data.sentence_vectors.shape
    for i in range(len(data.chunks)):
        rows = data.sentence_rows(i)
        # The FAISS folder stores sentence vectors as float16 (about 3 decimal digits).
        np.testing.assert_allclose(lazy[rows], data.sentence_vectors[rows], atol=1e-3)
        np.testing.assert_allclose(lazy[rows.start], data.sentence_vectors[rows.start], atol=1e-3)
    np.testing.assert_allclose(lazy[0 : lazy.shape[0]], data.sentence_vectors, atol=1e-3)


@pytest.mark.slow  # the CLI loads the real model (twice: one process per command in use)
def test_cli_index_and_search_with_store(milvus_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_CORPUS_DIR", str(milvus_settings.corpus_dir))
    monkeypatch.setenv("ASSISTANT_STORE_TIMEOUT", "5")
    runner = CliRunner()
    missing = runner.invoke(main, ["search", "GIZ", "--store", milvus_settings.store])
    assert missing.exit_code == 1 and f"Run `assistant index --store {milvus_settings.store}`" in missing.output
    built = runner.invoke(main, ["index", "--store", milvus_settings.store])
    assert built.exit_code == 0 and "2 documents" in built.output and milvus_settings.store in built.output
    found = runner.invoke(main, ["search", "Who implements the Talent Partnership?", "--store", milvus_settings.store,
                                 "--top-k", "1", "--json"])  # fmt: skip
    assert found.exit_code == 0 and "GIZ" in found.output


@pytest.fixture(scope="session")
def real_milvus(milvus_server: MilvusLiteServer, real_embedder) -> Settings:  # type: ignore[no-untyped-def]
    """The real corpus indexed with the real model into the session's Milvus server, once."""
    settings = Settings.from_env(environ={}, corpus_dir=ROOT / "corpus", store=f"{milvus_server.url}/real_minilm")
    report = Assistant.build(settings, embedder=real_embedder)
    assert report.documents == 5 and not report.skipped
    return settings


@pytest.mark.slow
def test_real_model_over_milvus_matches_faiss(real_milvus: Settings, real_embedder, real_index: Path) -> None:  # type: ignore[no-untyped-def]
    """The real corpus and MiniLM: the same chunks and the same top hits as the FAISS index, and cited answers."""
    milvus = Assistant.load(settings=real_milvus, embedder=real_embedder)
    faiss = Assistant.load(real_index, settings=real_milvus.replace(store=""), embedder=real_embedder)
    assert [c.chunk_id for c in milvus.data.chunks] == [c.chunk_id for c in faiss.data.chunks]
    for query in ("return and reintegration of migrants", "border management funding", "asylum applications"):
        dense = [[h.chunk.chunk_id for h in a.search(query, mode="dense", top_k=3)] for a in (milvus, faiss)]
        # int8 activations are quantised per batch, so a chunk embedded in another batch moves by ~1e-3 and
        # near-ties may swap: the same neighbours, not necessarily in the same order.
        assert dense[0][0] in dense[1] and len(set(dense[0]) & set(dense[1])) >= 2, query
        # The same terms and BM25 formula; ties and Milvus' segment statistics may reorder the tail.
        bm25 = [[h.chunk.chunk_id for h in a.search(query, mode="bm25", top_k=3)] for a in (milvus, faiss)]
        assert bm25[0][0] == bm25[1][0] and len(set(bm25[0]) & set(bm25[1])) >= 2, query
        answer = milvus.answer(query)
        assert answer.abstained or all(c.supported for c in answer.citations)


@pytest.mark.slow
def test_dev_gold_parity_between_milvus_and_faiss(real_milvus: Settings, real_embedder, real_index: Path) -> None:  # type: ignore[no-untyped-def]
    """recall@5 and answer-key accuracy on the dev gold through Milvus within 0.03 of the FAISS backend."""
    from assistant.evaluation import metrics as m
    from assistant.evaluation.gold import load_gold

    gold = [q for q in load_gold(ROOT / "eval" / "gold" / "dev.jsonl") if q.answerable]
    scores = {}
    for name, assistant in (
        ("milvus", Assistant.load(settings=real_milvus, embedder=real_embedder)),
        ("faiss", Assistant.load(real_index, settings=real_milvus.replace(store=""), embedder=real_embedder)),
    ):
        ranks, correct = [], []
        for q in gold:
            answer = assistant.answer(q.question)
            ranks.append(m.first_relevant_rank([h.chunk.text for h in answer.hits], q.evidence))
            correct.append(not answer.abstained and len(m.keys_found(answer.text, q.answer_keys)) == len(q.answer_keys))
        scores[name] = (m.recall_at(ranks, 5), sum(correct) / len(correct))
    print(f"parity (recall@5, answer-key accuracy): {scores}")  # shown with pytest -s
    (milvus_recall, milvus_accuracy), (faiss_recall, faiss_accuracy) = scores["milvus"], scores["faiss"]
    assert abs(milvus_recall - faiss_recall) <= 0.03, scores
    assert abs(milvus_accuracy - faiss_accuracy) <= 0.03, scores


def test_eval_runs_the_same_gold_over_milvus(
    tmp_path: Path, milvus_settings: Settings, embedder: KeywordEmbedder
) -> None:
    import json

    from assistant.evaluation.harness import evaluate

    gold = tmp_path / "gold.jsonl"
    rows = [
        {"id": "Q1", "question": "Who will implement the Talent Partnership in Pakistan?", "answer": "GIZ.",
         "answer_keys": ["GIZ"], "evidence": ["The Talent Partnership in Pakistan will be implemented by GIZ."],
         "doc": BETA, "type": "factoid"},
        {"id": "Q2", "question": "How much did the Commission approve for smart borders?", "answer": "EUR 52.1m.",
         "answer_keys": ["52.1 million"], "evidence": ["The Commission approved EUR 52.1 million for smart borders."],
         "doc": ALPHA, "type": "numeric"},
    ]  # fmt: skip
    gold.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    evaluation = evaluate(gold, settings=milvus_settings, systems=["assistant"], embedder=embedder, thresholds=(0.5,))
    assert evaluation.settings.store == milvus_settings.store
    summary = evaluation.summary("assistant")
    assert summary["recall@5"] == 1.0 and summary["answer_key_accuracy"] == 1.0
    assert evaluation.environment["settings"]["store"] == milvus_settings.store
