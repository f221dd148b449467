"""Run gold questions through several systems and score them: `assistant eval` / `python eval/benchmark.py`.

Only `GoldQuestion.question` reaches a system. Answers, keys, evidence and document names are read after the
system has answered, to score it.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from assistant.answer.verify import best_similarity, check_support
from assistant.config import Settings
from assistant.core import Assistant
from assistant.errors import ConfigError
from assistant.evaluation import metrics as m
from assistant.evaluation.gold import GoldQuestion, gold_sha256, load_gold
from assistant.evaluation.systems import (
    RETRIEVAL_DEPTH,
    AssistantSystem,
    LangChainBaseline,
    System,
    SystemAnswer,
    langchain_embeddings,
)
from assistant.index.embedder import Embedder, create_embedder, resolve_model_path
from assistant.ingest.sentences import split_sentences

SYSTEMS = ("assistant", "dense-only", "bm25-only", "llm", "langchain-baseline")
THRESHOLDS = (0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.40, 0.50, 0.60)  # on the answerability probability
PACKAGES = (
    "assistant", "torch", "sentence-transformers", "faiss-cpu", "bm25s", "numpy", "langchain-core",
    "langchain-community", "langchain-text-splitters", "langchain-huggingface", "langchain-openai",
)  # fmt: skip

Progress = Callable[[str, int, int], None]  # (label, done, total)


def default_systems(settings: Settings) -> list[str]:
    """Every system that can run here: `llm` only when an LLM provider is configured."""
    return [s for s in SYSTEMS if s != "llm" or settings.llm_configured]


@dataclass
class QuestionResult:
    """One system's answer to one gold question, with its scores."""

    question: GoldQuestion
    system: str
    answer: SystemAnswer
    relevant: list[bool]  # per retrieved chunk
    keys_found: list[str]
    correct: bool  # answerable: answered with every key; unanswerable: abstained
    f1: float
    words: int
    citation: m.CitationScore
    cited_support: dict[int, bool]  # marker -> supports at least one sentence citing it
    verbatim: list[bool]  # per citation

    @property
    def relevant_rank(self) -> int | None:
        return next((i for i, hit in enumerate(self.relevant, start=1) if hit), None)

    def to_dict(self) -> dict[str, Any]:
        a, q = self.answer, self.question
        return {
            "id": q.id,
            "type": q.type,
            "system": self.system,
            "question": q.question,
            "answer": a.text,
            "abstained": a.abstained,
            "notice": a.notice,
            "citations": [
                {
                    "marker": c.marker,
                    "doc": c.doc,
                    "chunk_id": c.chunk_id,
                    "quote": c.quote,
                    "supported": self.cited_support.get(c.marker, False),
                    "verbatim": verbatim,
                }
                for c, verbatim in zip(a.citations, self.verbatim, strict=True)
            ],
            "retrieved_chunk_ids": [r.chunk_id for r in a.retrieved],
            "relevant_rank": self.relevant_rank,
            "keys_found": self.keys_found,
            "correct": self.correct,
            "token_f1": round(self.f1, 4),
            "timings_ms": {k: round(v, 2) for k, v in a.timings_ms.items()},
        }


@dataclass
class Evaluation:
    gold_path: Path
    gold: list[GoldQuestion]
    settings: Settings
    systems: list[str]
    results: list[QuestionResult]
    build_s: dict[str, float | None]
    curves: dict[str, list[dict[str, float]]]  # system -> [{threshold, noans_abstain_rate, ...}]
    environment: dict[str, Any] = field(default_factory=dict)
    assistant: Assistant | None = None  # the loaded assistant (cross-validation reuses its index in memory)

    def for_system(self, name: str) -> list[QuestionResult]:
        return [r for r in self.results if r.system == name]

    def summary(self, name: str, questions: Sequence[QuestionResult] | None = None) -> dict[str, float | None]:
        """The headline metrics of one system (optionally over a subset of its results)."""
        rows = list(self.for_system(name) if questions is None else questions)
        answerable = [r for r in rows if r.question.answerable]
        ranks = [r.relevant_rank for r in answerable]
        answered = [r for r in rows if not r.answer.abstained]
        citation = [r.citation for r in answered]
        pairs, backed = sum(c.citations for c in citation), sum(c.supporting_citations for c in citation)
        sentences, covered = sum(c.sentences for c in citation), sum(c.supported_sentences for c in citation)
        verbatim = [v for r in rows for v in r.verbatim]
        noans, hasans = m.abstention_rates([r.answer.abstained for r in rows], [r.question.answerable for r in rows])
        total = [r.answer.timings_ms["total"] for r in rows]
        has_noans = any(not r.question.answerable for r in rows)
        stages = {
            f"{stage}_ms_p{q}": m.percentile([r.answer.timings_ms[stage] for r in rows], q)
            for stage in ("retrieve", "answer")
            for q in (50, 95)
        }
        return {
            "questions": len(rows),
            "recall@1": m.recall_at(ranks, 1) if answerable else None,
            "recall@5": m.recall_at(ranks, 5) if answerable else None,
            "recall@10": m.recall_at(ranks, 10) if answerable else None,
            "mrr@10": m.mrr_at(ranks, 10) if answerable else None,
            "ndcg@10": m.mean([m.ndcg_at(r.relevant, 10) for r in answerable]) if answerable else None,
            "context_chars@5": m.mean([sum(len(x.text) for x in r.answer.retrieved[:5]) for r in rows]),
            "answer_key_accuracy": m.mean([float(r.correct) for r in answerable]) if answerable else None,
            "token_f1": m.mean([r.f1 for r in answerable]) if answerable else None,
            "answer_words_mean": m.mean([r.words for r in answered if r.question.answerable]),
            "citation_precision": backed / pairs if pairs else None,
            "citation_recall": covered / sentences if sentences else None,
            "out_of_range_markers": sum(c.out_of_range for c in citation),
            "quotes_verbatim": m.mean([float(v) for v in verbatim]) if verbatim else None,
            "noans_abstain_rate": noans if has_noans else None,
            "hasans_false_abstain_rate": hasans if answerable else None,
            "latency_ms_p50": m.percentile(total, 50),
            "latency_ms_p95": m.percentile(total, 95),
            **stages,
            "build_s": self.build_s.get(name),
        }


class SupportJudge:
    """`check_support` with embedding similarity, as the answerer itself verifies; embeddings are cached."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._vectors: dict[str, np.ndarray] = {}

    def _embed(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            self._vectors.update(zip(missing, self.embedder.embed_documents(missing), strict=True))
        return np.stack([self._vectors[t] for t in texts])

    def __call__(self, sentence: str, passage: str) -> bool:
        parts = [passage[a:b] for a, b in split_sentences(passage)] or [passage]
        similarity = best_similarity(self._embed([m.strip_markers(sentence)])[0], self._embed(parts))
        return check_support(sentence, passage, similarity).supported


def score(
    question: GoldQuestion, system: str, answer: SystemAnswer, judge: SupportJudge, sources: dict[str, str]
) -> QuestionResult:
    """Score one answer against its gold question (the only place gold fields are read)."""
    relevant = m.relevance([r.text for r in answer.retrieved], question.evidence) if question.answerable else []
    found = m.keys_found(answer.text, question.answer_keys) if not answer.abstained else []
    if question.answerable:
        correct = not answer.abstained and len(found) == len(question.answer_keys)
        f1 = 0.0 if answer.abstained else m.token_f1(answer.text, question.answer)
    else:
        correct, f1 = answer.abstained, float(answer.abstained)
    passages = {c.marker: c.passage for c in answer.citations}
    sentences = [] if answer.abstained else m.cited_statements(answer.text)
    supports = functools.cache(judge.__call__)
    citation = m.score_citations(sentences, passages, supports)
    backing = {n: any(supports(s, passages[n]) for s, markers in sentences if n in markers) for n in passages}
    verbatim = [m.is_verbatim(c.quote, sources.get(c.doc, "")) for c in answer.citations]
    return QuestionResult(
        question=question,
        system=system,
        answer=answer,
        relevant=relevant,
        keys_found=found,
        correct=correct,
        f1=f1,
        words=m.answer_words(answer.text),
        citation=citation,
        cited_support=backing,
        verbatim=verbatim,
    )


def build_systems(
    names: Sequence[str],
    settings: Settings,
    *,
    top_k: int | None,
    embedder: Embedder | None = None,
    baseline_embeddings: Any = None,
    index_dir: Path | None = None,
    progress: Progress | None = None,
) -> tuple[dict[str, System], Assistant]:
    """Build (or open) what the requested systems need. The assistant's index is built fresh in
    `settings.index_dir` unless `index_dir` names an existing one to reuse (then build_s is None)."""
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown:
        raise ConfigError(f"Unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}.")
    if "llm" in names and not settings.llm_configured:
        raise ConfigError(
            "The llm system needs a configured LLM: set ASSISTANT_LLM_PROVIDER and ASSISTANT_LLM_MODEL "
            "(see README, LLM mode), or leave llm out of --systems."
        )
    embedder = embedder or create_embedder(settings)
    build_s: float | None = None
    if index_dir is None:
        started = time.perf_counter()
        Assistant.build(settings, embedder=embedder, progress=_stage(progress, "building the assistant's index"))
        build_s = time.perf_counter() - started
    else:
        settings = settings.replace(index_dir=index_dir)
    assistant = Assistant.load(settings=settings, embedder=embedder)
    systems: dict[str, System] = {}
    variants = {
        "assistant": {},
        "dense-only": {"search_mode": "dense"},
        "bm25-only": {"search_mode": "bm25"},
        "llm": {"mode": "llm"},
    }
    for name in names:
        if name in variants:
            systems[name] = AssistantSystem(name, assistant, build_s, top_k=top_k, **variants[name])
        elif name == "langchain-baseline":
            if progress:
                progress("building the LangChain baseline", 0, 1)
            started = time.perf_counter()  # model load included, as in the assistant's build
            embeddings = baseline_embeddings or langchain_embeddings(str(resolve_model_path(settings.embedding_model)))
            baseline = LangChainBaseline(assistant.data.documents, embeddings)
            baseline.build_s = time.perf_counter() - started
            systems[name] = baseline
            if progress:
                progress("building the LangChain baseline", 1, 1)
    return {n: systems[n] for n in names}, assistant


def _stage(progress: Progress | None, label: str) -> Callable[[str, int, int], None] | None:
    if progress is None:
        return None
    return lambda stage, done, total: progress(f"{label}: {stage}", done, total)


def evaluate(
    gold_path: Path,
    *,
    settings: Settings | None = None,
    systems: Sequence[str] | None = None,
    top_k: int | None = None,
    index_dir: Path | None = None,
    embedder: Embedder | None = None,
    baseline_embeddings: Any = None,
    thresholds: Sequence[float] = THRESHOLDS,
    progress: Progress | None = None,
) -> Evaluation:
    """Validate the gold file, build the systems, answer every question with each, and score the answers.

    With `index_dir` None the assistant's index is built in a temporary directory (the real one is untouched).

    Raises:
        AssistantError: a bad gold line (with its line number and field), an unknown system, a missing LLM.
    """
    gold = load_gold(gold_path)  # validated before anything is built
    settings = settings or Settings.from_env()
    names = list(dict.fromkeys(systems or default_systems(settings)))
    with tempfile.TemporaryDirectory(prefix="assistant-eval-") as tmp:
        built, assistant = build_systems(
            names,
            settings.replace(index_dir=Path(tmp) / "index"),
            top_k=top_k,
            embedder=embedder,
            baseline_embeddings=baseline_embeddings,
            index_dir=index_dir,
            progress=progress,
        )
        judge = SupportJudge(assistant.embedder)
        sources = {name: doc.text for name, doc in assistant.data.documents.items()}
        results: list[QuestionResult] = []
        total = len(gold) * len(built)
        done = 0
        for name, system in built.items():
            system.run(gold[0].question)  # warm-up: latency is measured warm, as in use
            for q in gold:
                results.append(score(q, name, system.run(q.question), judge, sources))
                done += 1
                if progress:
                    progress("answering", done, total)
        curves = _abstention_curves(built, gold, thresholds, progress)
        evaluation = Evaluation(
            gold_path=gold_path,
            gold=gold,
            settings=assistant.settings,
            systems=names,
            results=results,
            build_s={name: s.build_s for name, s in built.items()},
            curves=curves,
            assistant=assistant,
        )
    evaluation.environment = environment(gold_path, evaluation.settings, assistant)
    return evaluation


def _abstention_curves(
    systems: dict[str, System], gold: list[GoldQuestion], thresholds: Sequence[float], progress: Progress | None
) -> dict[str, list[dict[str, float]]]:
    """Abstain rates as the extractive threshold moves (SQuAD 2.0's no-answer threshold curve)."""
    swept = {n: s for n, s in systems.items() if isinstance(s, AssistantSystem) and s.has_threshold}
    curves: dict[str, list[dict[str, float]]] = {}
    total, done = len(swept) * len(thresholds) * len(gold), 0
    for name, system in swept.items():
        points = []
        for threshold in thresholds:
            flags = []
            for q in gold:
                flags.append(system.abstains(q.question, threshold))
                done += 1
                if progress:
                    progress("abstention curve", done, total)
            noans, hasans = m.abstention_rates(flags, [q.answerable for q in gold])
            points.append({"threshold": threshold, "noans_abstain_rate": noans, "hasans_false_abstain_rate": hasans})
        curves[name] = points
    return curves


def environment(gold_path: Path, settings: Settings, assistant: Assistant) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    config = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in dataclasses.asdict(settings).items()
        if k != "llm_api_key"  # never written to a report
    }
    config["index_dir"] = "(temporary)" if "assistant-eval-" in config["index_dir"] else config["index_dir"]
    return {
        "gold": {"path": str(gold_path), "sha256": gold_sha256(gold_path)},
        "settings": config,
        "retrieval_depth": RETRIEVAL_DEPTH,
        "index": {
            "documents": len(assistant.data.documents),
            "chunks": len(assistant.data.chunks),
            "model": settings.embedding_model,
        },
        "versions": versions,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
