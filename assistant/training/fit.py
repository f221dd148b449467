"""Training data from the gold evidence, and the fit of both logistic models with their threshold.

Labels: a candidate unit is positive when it quotes (part of) a gold evidence quote. The answerability model
is fitted on *out-of-fold* unit scores (cross-fitting over documents), so that it learns from scores like
those it will see on new questions rather than from the unit model's in-sample confidence. The abstention
threshold is the highest that keeps wrongly abstained answerable questions at or below `max_false_abstain`
on out-of-fold answerability probabilities.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assistant.answer.extractive import Unit
from assistant.answer.features import ANSWERABILITY_FEATURES, UNIT_FEATURES, answerability_row
from assistant.answer.model import WEIGHTS_PATH, AnswerModel, Logistic, fingerprint
from assistant.answer.question import QuestionInfo, analyse
from assistant.core import Assistant
from assistant.evaluation.gold import GoldQuestion, gold_sha256, load_gold
from assistant.evaluation.metrics import evidence_in_text
from assistant.types import Hit

RETRIEVAL_DEPTH = 10  # kept per question for recall@k in cross-validation

MAX_FALSE_ABSTAIN = 0.05
C_UNIT = 1.0
# Cross-validated (grouped by document): answerability AUC 0.63 vs 0.62 at C=1, and 0.27 vs 0.15 of the
# unanswerable questions abstained at 5% false abstention.
C_ANSWERABILITY = 0.1
Progress = Callable[[str, int, int], None]


@dataclass
class Example:
    """One gold question with its candidate units, their features and labels."""

    gold: GoldQuestion
    info: QuestionInfo
    units: list[Unit]
    labels: np.ndarray  # 1 where the unit quotes gold evidence
    hit_score: float
    top_doc: str | None  # document of the best hit (the fold of an unanswerable question)
    vector: np.ndarray | None = None  # the query embedding
    hits: tuple[Hit, ...] = ()  # retrieved to RETRIEVAL_DEPTH; answering reads the first top_k

    @property
    def matrix(self) -> np.ndarray:
        if not self.units:
            return np.zeros((0, len(UNIT_FEATURES)))
        return np.array([[u.features[n] for n in UNIT_FEATURES] for u in self.units], dtype=np.float64)

    @property
    def group(self) -> str:
        return self.gold.doc or self.top_doc or "(none)"


@dataclass
class TrainReport:
    questions: int
    units: int
    positives: int
    threshold: float
    seconds: float
    path: Path | None = None
    coefficients: dict[str, dict[str, float]] = field(default_factory=dict)


def is_evidence(unit_text: str, evidence: Sequence[str]) -> bool:
    """The unit quotes gold evidence: it contains a quote, or (most of) it lies inside one."""
    for quote in evidence:
        if evidence_in_text(quote, unit_text):
            return True
        words = unit_text.split()
        if len(words) >= 3 and evidence_in_text(unit_text, quote, min_run=min(5, len(words))):
            return True
    return False


def collect(assistant: Assistant, gold: Sequence[GoldQuestion], progress: Progress | None = None) -> list[Example]:
    """Retrieve and build candidates for every gold question, exactly as answering does."""
    examples = []
    for i, q in enumerate(gold):
        query = assistant.clean_query(q.question)  # exactly as answering cleans it
        vector = assistant.embedder.embed_query(query)
        deep = assistant.retriever.search(query, top_k=max(RETRIEVAL_DEPTH, assistant.settings.top_k), mode="hybrid",
                                          vector=vector)  # fmt: skip
        hits = deep[: assistant.settings.top_k]
        info = analyse(query)
        units = assistant.scorer.candidates(info, vector, hits)
        labels = np.array([float(q.answerable and is_evidence(u.text, q.evidence)) for u in units])
        top = float(hits[0].score) if hits else 0.0
        examples.append(Example(q, info, units, labels, top, hits[0].chunk.doc if hits else None, vector, tuple(deep)))
        if progress:
            progress("features", i + 1, len(gold))
    return examples


def _fit_logistic(x: np.ndarray, y: np.ndarray, names: Sequence[str], c: float, *, balanced: bool = False) -> Logistic:
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    if len(set(y.tolist())) < 2:  # nothing to separate: a constant model at the base rate
        p = float(np.clip(y.mean() if len(y) else 0.5, 1e-3, 1 - 1e-3))
        return Logistic(tuple(names), mean, scale, np.zeros(len(names)), float(np.log(p / (1 - p))))
    # Balanced class weights help the unit ranker (few positives per question) but would shift the
    # answerability probabilities away from the base rate: that one stays unweighted, so it is calibrated.
    model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced" if balanced else None, solver="lbfgs")
    model.fit((x - mean) / scale, y)
    return Logistic(tuple(names), mean, scale, model.coef_[0].astype(np.float64), float(model.intercept_[0]))


def fit_unit_model(examples: Sequence[Example]) -> Logistic:
    rows = [e.matrix for e in examples if e.gold.answerable and len(e.units)]
    labels = [e.labels for e in examples if e.gold.answerable and len(e.units)]
    x = np.concatenate(rows) if rows else np.zeros((0, len(UNIT_FEATURES)))
    y = np.concatenate(labels) if labels else np.zeros(0)
    return _fit_logistic(x, y, UNIT_FEATURES, C_UNIT, balanced=True)


def _answerability_x(example: Example, unit_model: Logistic) -> np.ndarray:
    probs = unit_model.probability(example.matrix) if len(example.units) else np.zeros(0)
    row = answerability_row(example.info, [u.features for u in example.units], list(probs))
    return np.array([row[n] for n in ANSWERABILITY_FEATURES])


def _out_of_fold_answerability_x(examples: Sequence[Example]) -> np.ndarray:
    """Answerability features of each example, from a unit model that did not see its document."""
    groups = sorted({e.group for e in examples})
    out = np.zeros((len(examples), len(ANSWERABILITY_FEATURES)))
    for g in groups:
        inner = fit_unit_model([e for e in examples if e.group != g]) if len(groups) > 1 else fit_unit_model(examples)
        for i, e in enumerate(examples):
            if e.group == g:
                out[i] = _answerability_x(e, inner)
    return out


def _threshold(probabilities: np.ndarray, answerable: np.ndarray, max_false_abstain: float) -> float:
    """The highest threshold that abstains on at most `max_false_abstain` of the answerable questions."""
    scores = np.sort(probabilities[answerable.astype(bool)])
    if not len(scores):
        return 0.5
    allowed = int(np.floor(max_false_abstain * len(scores)))  # questions we may wrongly abstain on
    return float(max(0.0, scores[allowed] - 1e-6)) if allowed < len(scores) else float(scores[-1])


def fit_model(examples: Sequence[Example], *, max_false_abstain: float = MAX_FALSE_ABSTAIN) -> AnswerModel:
    """Both models and the threshold, from gold examples (see the module docstring)."""
    unit = fit_unit_model(examples)
    x = _out_of_fold_answerability_x(examples)
    y = np.array([float(e.gold.answerable) for e in examples])
    answerability = _fit_logistic(x, y, ANSWERABILITY_FEATURES, C_ANSWERABILITY)
    # The threshold comes from answerability probabilities the model did not fit on (nested over documents).
    groups = sorted({e.group for e in examples})
    held_out = np.zeros(len(examples))
    for g in groups:
        mask = np.array([e.group == g for e in examples])
        if len(groups) > 1 and len(set(y[~mask].tolist())) > 1:
            inner = _fit_logistic(x[~mask], y[~mask], ANSWERABILITY_FEATURES, C_ANSWERABILITY)
        else:
            inner = answerability
        held_out[mask] = inner.probability(x[mask])
    threshold = _threshold(held_out, y, max_false_abstain)
    return AnswerModel(unit, answerability, threshold, {})


def train(
    assistant: Assistant,
    gold_path: Path,
    *,
    out: Path | None = WEIGHTS_PATH,
    examples: Sequence[Example] | None = None,
    progress: Progress | None = None,
) -> tuple[AnswerModel, TrainReport]:
    """Fit the answer scorer on a gold file and (unless `out` is None) write it as JSON.

    `examples` are the gold file's collected candidates when the caller already has them (cross-validation
    after training reuses them).
    """
    started = time.perf_counter()
    gold = load_gold(gold_path)
    examples = list(examples) if examples is not None else collect(assistant, gold, progress)
    model = fit_model(examples)
    model = AnswerModel(
        model.unit,
        model.answerability,
        model.threshold,
        {
            "gold_sha256": gold_sha256(gold_path),
            "questions": len(gold),
            "index_fingerprint": hashlib.sha256(
                "".join(sorted(c.chunk_id for c in assistant.data.chunks)).encode()
            ).hexdigest()[:16],
            "features_fingerprint": fingerprint(),
            "max_false_abstain": MAX_FALSE_ABSTAIN,
        },
    )
    if out is not None:
        model.save(out)
    units = sum(len(e.units) for e in examples)
    report = TrainReport(
        questions=len(gold),
        units=units,
        positives=int(sum(e.labels.sum() for e in examples)),
        threshold=model.threshold,
        seconds=time.perf_counter() - started,
        path=out,
        coefficients={
            "unit": dict(zip(model.unit.features, map(float, model.unit.coef), strict=True)),
            "answerability": dict(zip(model.answerability.features, map(float, model.answerability.coef), strict=True)),
        },
    )
    return model, report
