"""Leave-one-document-out cross-validation of the answer scorer: the figures the README reports.

Each fold holds out one document's questions (an unanswerable question belongs to the document its best
retrieved passage comes from, so near misses spread over the folds). The scorer is fitted on the other
folds' questions only (threshold included), and the held-out questions are answered by the same
`extractive_answer` that `Assistant.answer` runs, over the same retrieval (collected once per question), and
scored with the evaluation's metric functions (answer keys, abstention, words, verbatim quotes, recall@k).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assistant.answer.compose import extractive_answer
from assistant.core import Assistant
from assistant.evaluation import metrics as m
from assistant.evaluation.gold import GoldQuestion
from assistant.training.fit import Example, collect, fit_model

Progress = Callable[[str, int, int], None]


def fold_of(example: Example) -> str:
    """The fold (a document name) a gold question belongs to."""
    return example.group


@dataclass
class Outcome:
    """One held-out question's answer, scored."""

    gold: GoldQuestion
    text: str
    abstained: bool
    correct: bool
    words: int
    confidence: float
    relevant_rank: int | None
    verbatim: list[bool]
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.gold.id, "type": self.gold.type, "question": self.gold.question, "answer": self.text,
            "abstained": self.abstained, "correct": self.correct, "words": self.words,
            "confidence": round(self.confidence, 4), "relevant_rank": self.relevant_rank,
            "verbatim": self.verbatim, "reason": self.reason,
        }  # fmt: skip


@dataclass
class CVReport:
    folds: dict[str, int]  # document -> questions held out
    outcomes: list[Outcome]
    thresholds: dict[str, float]  # per fold
    seconds: float
    summary: dict[str, Any] = field(default_factory=dict)
    per_type: dict[str, dict[str, Any]] = field(default_factory=dict)
    reliability: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "folds": self.folds,
            "thresholds": {k: round(v, 4) for k, v in self.thresholds.items()},
            "summary": self.summary,
            "per_type": self.per_type,
            "reliability": self.reliability,
            "seconds": round(self.seconds, 1),
            "questions": [o.to_dict() for o in self.outcomes],
        }


def cross_validate(
    assistant: Assistant,
    gold: Sequence[GoldQuestion],
    *,
    examples: Sequence[Example] | None = None,
    progress: Progress | None = None,
) -> CVReport:
    """Grouped (by document) cross-validation of training + answering; the assistant's model is restored."""
    started = time.perf_counter()
    examples = list(examples) if examples is not None else collect(assistant, gold, progress)
    folds = sorted({fold_of(e) for e in examples})
    sources = {name: doc.text for name, doc in assistant.data.documents.items()}
    original = assistant.scorer.model
    outcomes: list[Outcome] = []
    thresholds: dict[str, float] = {}
    counts: dict[str, int] = {}
    try:
        for n, fold in enumerate(folds, start=1):
            model = fit_model([e for e in examples if fold_of(e) != fold])
            thresholds[fold] = model.threshold
            assistant.scorer.model = model
            test = [e for e in examples if fold_of(e) == fold]
            counts[fold] = len(test)
            outcomes.extend(_answer(assistant, e, sources) for e in test)
            if progress:
                progress("cross-validation folds", n, len(folds))
    finally:
        assistant.scorer.model = original
    report = CVReport(counts, outcomes, thresholds, time.perf_counter() - started)
    report.summary = summarise(outcomes)
    by_type: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        by_type[o.gold.type].append(o)
    report.per_type = {t: summarise(os) for t, os in sorted(by_type.items())}
    report.reliability = reliability([o.confidence for o in outcomes], [o.gold.answerable for o in outcomes])
    return report


def _answer(assistant: Assistant, example: Example, sources: dict[str, str]) -> Outcome:
    q = example.gold
    assert example.vector is not None
    hits = list(example.hits[: assistant.settings.top_k])
    draft = extractive_answer(example.info, example.vector, hits, assistant.scorer,
                              threshold=assistant.settings.abstain_threshold)  # fmt: skip
    found = m.keys_found(draft.text, q.answer_keys) if not draft.abstained else []
    correct = (not draft.abstained and len(found) == len(q.answer_keys)) if q.answerable else draft.abstained
    rank = m.first_relevant_rank([h.chunk.text for h in example.hits], q.evidence) if q.answerable else None
    return Outcome(
        gold=q,
        text=draft.text,
        abstained=draft.abstained,
        correct=correct,
        words=m.answer_words(draft.text),
        confidence=float(draft.confidence),
        relevant_rank=rank,
        verbatim=[m.is_verbatim(c.quote, sources.get(c.doc, "")) for c in draft.citations if not draft.abstained],
        reason=draft.reason,
    )


def summarise(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    answerable = [o for o in outcomes if o.gold.answerable]
    unanswerable = [o for o in outcomes if not o.gold.answerable]
    ranks = [o.relevant_rank for o in answerable]
    answered = [o for o in answerable if not o.abstained]
    verbatim = [v for o in outcomes for v in o.verbatim]
    return {
        "questions": len(outcomes),
        "answer_key_accuracy": m.mean([float(o.correct) for o in answerable]) if answerable else None,
        "recall@1": m.recall_at(ranks, 1) if answerable else None,
        "recall@5": m.recall_at(ranks, 5) if answerable else None,
        "noans_abstain_rate": m.mean([float(o.abstained) for o in unanswerable]) if unanswerable else None,
        "hasans_false_abstain_rate": m.mean([float(o.abstained) for o in answerable]) if answerable else None,
        "answer_words_mean": m.mean([o.words for o in answered]) if answered else None,
        "quotes_verbatim": m.mean([float(v) for v in verbatim]) if verbatim else None,
    }


def reliability(confidences: Sequence[float], answerable: Sequence[bool], bins: int = 5) -> list[dict[str, float]]:
    """Reliability diagram rows: mean predicted answerability vs the share actually answerable, per bin."""
    p = np.asarray(confidences, dtype=np.float64)
    y = np.asarray(answerable, dtype=np.float64)
    rows = []
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        mask = (p >= low) & ((p < high) if b < bins - 1 else (p <= high))
        if mask.any():
            rows.append({"low": low, "high": high, "count": int(mask.sum()), "mean_confidence": float(p[mask].mean()),
                         "answerable_share": float(y[mask].mean())})  # fmt: skip
    return rows
