"""Features of a candidate answer unit, and of a question's best candidates (for answerability).

Every feature is a number in a small range, computed from the question's parse, the unit's sentences, the
index-time parse of its chunk (entities and figures with the words they are bound to) and retrieval. The
weights that combine them are learned (`assistant train`, answer/model.py); nothing here is tuned by hand.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from assistant.answer.question import QuestionInfo
from assistant.answer.text import YEAR, content_terms, has_date, has_figure, stem

if TYPE_CHECKING:
    from assistant.answer.extractive import SentenceScorer, Unit
    from assistant.nlp import Value

# Which entity labels (spaCy's, plus NUM for a figure it did not label) give a value of each answer type.
TYPE_LABELS: dict[str, frozenset[str]] = {
    "figure": frozenset({"CARDINAL", "QUANTITY", "MONEY", "PERCENT", "NUM"}),
    "money": frozenset({"MONEY"}),
    "percent": frozenset({"PERCENT"}),
    "date": frozenset({"DATE", "TIME"}),
    "person": frozenset({"PERSON"}),
    "org": frozenset({"ORG", "NORP"}),
    "place": frozenset({"GPE", "LOC", "FAC"}),
}
# Words that introduce a reason or a purpose. A closed class of English connectives, so listed, not learned.
_REASON = re.compile(
    r"\b(?:because|since|due to|owing to|in order to|so as to|so that|with a view to|aim(?:s|ed)? (?:to|at)|"
    r"purpose|objective|goal|to ensure|to enable|to support|to help|intended to|designed to|as a result|given)\b",
    re.IGNORECASE,
)
UNIT_FEATURES = (
    "dense", "dense_mean", "lex", "passage_lex", "rank_inv", "passage_score", "type_match", "type_match_typed",
    "bound_focus", "bound_question", "focus_in_unit", "constraints_unit", "constraints_context", "near",
    "words_log", "short", "restates", "first_in_chunk", "heading", "lead_in", "neighbour_lex", "list_items",
    "reason_cue", "other_period", "dense_rank_inv", "lex_rank_inv", "values_log", "table_row",
    "prev_lex", "prev_dense", "next_lex", "next_dense", "event_match", "focus_near", "dense_gap", "lex_gap",
    "bound_focus_typed", "near_typed",
)  # fmt: skip
ANSWERABILITY_FEATURES = (
    "top_prob", "second_prob", "top_type_match", "top_bound_focus", "top_constraints_context",
    "best_constraints_context", "top_lex", "top_passage_lex", "top_dense", "best_dense", "typed",
    "n_constraints", "best_bound_focus_prob", "top_focus_near", "top_event_match", "top_constraints_unit",
    "typed_without_value",
)  # fmt: skip
WINDOW = 8  # words either side of a value in which the question's words count as "near"


def unit_features(
    scorer: SentenceScorer, question: QuestionInfo, unit: Unit, *, top_score: float, sims: dict[tuple[int, int], float]
) -> dict[str, float]:
    """The features of one candidate unit (see UNIT_FEATURES)."""
    ci = unit.chunk_index
    chunk = scorer.data.chunks[ci]
    values = [v for member in unit.members for v in scorer.values_of(*member)]
    typed_values = [v for v in values if _value_type_ok(question, v, scorer.value_text(ci, v))]
    regex_typed = holds_asked_value(question, unit.text)
    type_ok = bool(typed_values) or regex_typed
    asked_lemmas = set(question.focus) | set(question.events)
    asked_stems = set(question.terms)
    bound_focus = 0.0
    bound_question = 0.0
    for v in typed_values:
        bound = {stem(b) for b in v.bound}
        if question.focus_terms and bound & question.focus_terms:
            bound_focus = 1.0
        if asked_stems:
            bound_question = max(bound_question, len(bound & asked_stems) / min(3, len(asked_stems)))
        if asked_lemmas & set(v.bound):
            bound_question = max(bound_question, 0.5)
    context_terms = scorer.chunk_terms(ci) | set(content_terms(chunk.title))
    constraints = set(question.constraints)
    n_words = unit.words
    novelty = len(unit.terms - asked_stems) / len(unit.terms) if unit.terms else 0.0
    members = unit.members
    first_ci, first_j = members[0]
    last_ci, last_j = members[-1]
    prev_terms = scorer.sentence_terms(first_ci, first_j - 1) if first_j > 0 else set()
    has_next = last_j + 1 < len(scorer.data.chunks[last_ci].sentences)
    next_terms = scorer.sentence_terms(last_ci, last_j + 1) if has_next else set()
    neighbours = prev_terms | next_terms
    member_sims = [sims.get(m, 0.0) for m in members]
    events = {stem(e) for e in question.events}
    # The question's words near a value of the asked type ("started on 30 March" for "when did it start").
    windows = _value_windows(unit.text, typed_values, scorer, ci) if question.typed else []
    near = max((scorer.coverage(question, w) for w in windows), default=0.0)
    return {
        "dense": max(member_sims),
        "dense_mean": float(np.mean(member_sims)),
        "lex": scorer.coverage(question, unit.terms),
        "passage_lex": scorer.coverage(question, context_terms),
        "rank_inv": 1.0 / math.sqrt(unit.hit.rank),
        "passage_score": float(unit.hit.score) / top_score if top_score > 0 else 0.0,
        "type_match": float(type_ok),
        "type_match_typed": float(type_ok and question.typed),
        "bound_focus": bound_focus,
        "bound_question": min(1.0, bound_question),
        "focus_in_unit": float(bool(question.focus_terms & unit.terms)),
        "constraints_unit": len(constraints & unit.terms) / len(constraints) if constraints else 1.0,
        "constraints_context": len(constraints & context_terms) / len(constraints) if constraints else 1.0,
        "near": near,
        "words_log": math.log1p(n_words) / 5.0,
        "short": float(n_words < 5),
        "restates": float(bool(unit.terms) and novelty < 0.34),
        "first_in_chunk": float(first_j == 0),
        "heading": float(scorer.is_heading(first_ci, first_j)),
        "lead_in": float(unit.text.rstrip().endswith(":")),
        "neighbour_lex": scorer.coverage(question, neighbours),
        "list_items": min(1.0, (len(members) - 1) / 4.0) * float("list" in question.wants),
        "reason_cue": float(bool(_REASON.search(unit.text))) * float(bool(question.wants & {"reason", "description"})),
        "other_period": float(_other_period(question, unit.text)),
        "dense_rank_inv": 0.0,  # filled in over all candidates (rank_features)
        "lex_rank_inv": 0.0,
        "values_log": math.log1p(len(typed_values)) / 3.0,
        "table_row": float(": " in unit.text[:40]),  # a "Label: value" cell, as tables are chunked
        "prev_lex": scorer.coverage(question, prev_terms),
        "prev_dense": sims.get((first_ci, first_j - 1), 0.0) if first_j > 0 else 0.0,
        "next_lex": scorer.coverage(question, next_terms),
        "next_dense": sims.get((last_ci, last_j + 1), 0.0) if has_next else 0.0,
        "event_match": len(events & unit.terms) / len(events) if events else 0.0,
        "focus_near": float(any(question.focus_terms & w for w in windows)),
        "dense_gap": 0.0,  # filled in over all candidates (rank_features)
        "lex_gap": 0.0,
        "bound_focus_typed": bound_focus * float(question.typed),
        "near_typed": near * float(question.typed),
    }  # fmt: skip


def rank_features(rows: Sequence[dict[str, float]]) -> None:
    """Where each unit stands among the question's candidates by meaning and by words (1/rank, gap to the best)."""
    for key, target, gap in (("dense", "dense_rank_inv", "dense_gap"), ("lex", "lex_rank_inv", "lex_gap")):
        order = sorted(range(len(rows)), key=lambda i: -rows[i][key])
        best = rows[order[0]][key] if order else 0.0
        for rank, i in enumerate(order, start=1):
            rows[i][target] = 1.0 / math.sqrt(rank)
            rows[i][gap] = rows[i][key] - best


def vector(row: dict[str, float], names: Sequence[str]) -> np.ndarray:
    return np.array([row[n] for n in names], dtype=np.float64)


def _value_type_ok(question: QuestionInfo, value: Value, text: str) -> bool:
    label = value.label
    for kind in question.wants:
        labels = TYPE_LABELS.get(kind)
        if labels and label in labels:
            if kind == "figure" and (text in question.numbers or (YEAR.fullmatch(text.strip()) is not None)):
                continue
            if kind == "date" and question.years and YEAR.fullmatch(text.strip()) and text.strip() in question.years:
                continue
            return True
    return False


def holds_asked_value(question: QuestionInfo, text: str) -> bool:
    if question.wants & {"figure", "money", "percent"} and has_figure(
        text, question.numbers, ordinals=question.ordinal
    ):
        return True
    return bool("date" in question.wants and has_date(text, exclude=question.numbers))


def _other_period(question: QuestionInfo, text: str) -> bool:
    if not question.years:
        return False
    found = set(YEAR.findall(text))
    return bool(found) and not (found & question.years)


def _value_windows(text: str, values: Sequence[Value], scorer: SentenceScorer, ci: int) -> list[set[str]]:
    """For each value of the asked type, the content words within WINDOW words either side of it."""
    windows = []
    for v in values:
        value_text = scorer.value_text(ci, v)
        at = text.find(value_text)
        if at >= 0:
            around = text[:at].split()[-WINDOW:] + text[at + len(value_text) :].split()[:WINDOW]
            windows.append(set(content_terms(" ".join(around))))
    return windows


def answerability_row(
    question: QuestionInfo, rows: Sequence[dict[str, float]], probs: Sequence[float]
) -> dict[str, float]:
    """Features of a question's best candidates: does the retrieved evidence hold what it asks?"""
    if not rows:
        return dict.fromkeys(ANSWERABILITY_FEATURES, 0.0)
    order = sorted(range(len(rows)), key=lambda i: -probs[i])
    top = rows[order[0]]
    bound = [probs[i] for i in range(len(rows)) if rows[i]["bound_focus"] > 0 or rows[i]["type_match"] > 0]
    return {
        "top_prob": float(probs[order[0]]),
        "second_prob": float(probs[order[1]]) if len(order) > 1 else 0.0,
        "top_type_match": top["type_match"],
        "top_bound_focus": top["bound_focus"],
        "top_constraints_context": top["constraints_context"],
        "best_constraints_context": max(r["constraints_context"] for r in rows),
        "top_lex": top["lex"],
        "top_passage_lex": top["passage_lex"],
        "top_dense": top["dense"],
        # Not the fused retrieval score: its scale depends on the fusion (score, RRF, Milvus' ranker).
        "best_dense": max(r["dense"] for r in rows),
        "typed": float(question.typed),
        "n_constraints": min(1.0, len(question.constraints) / 4.0),
        "best_bound_focus_prob": max(bound) if bound and question.typed else float(probs[order[0]]),
        "top_focus_near": top["focus_near"],
        "top_event_match": top["event_match"],
        "top_constraints_unit": top["constraints_unit"],
        "typed_without_value": float(question.typed and top["type_match"] == 0),
    }
