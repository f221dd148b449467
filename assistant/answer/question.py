"""What a question asks for (a figure, a date, a name, a place, a list) and follow-ups made standalone."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from assistant.answer.text import (
    MONTH,
    QUESTION_NOISE,
    YEAR,
    collapse,
    content_terms,
    numbers,
)

_FIGURE = re.compile(
    r"\bhow (?:many|much|big|large|long|often|far)\b|\bwhat (?:percentage|share|proportion|number|amount|sum|"
    r"budget|figure|value|total)\b|\bwhich (?:numbered|number)\b|\bnumber of\b|\bwhat (?:is|was) the (?:total|"
    r"budget|amount|value|number|cost)\b|\bwhich anniversary\b|\bhow much (?:money|funding)\b",
    re.IGNORECASE,
)
_DATE = re.compile(
    r"(?:^|[,;]\s*|\b(?:and|or|until|till|from|since|by|as of|but)\s+)when\b|\bwhat (?:date|year|day|month|time)\b|"
    r"\bwhich (?:date|year|day|month)\b|\bsince (?:when|what)\b|"
    r"\bin what year\b|\bon what date\b|\btime slot\b|\bwhat time\b|\bhow soon\b",
    re.IGNORECASE,
)
_PLACE = re.compile(r"^\s*where\b|\bwhere (?:and|was|is|were|did|will)\b|\bin which (?:city|place)\b", re.IGNORECASE)
_NAME = re.compile(
    r"^\s*who\b|\bwho (?:is|was|are|were|will|runs|implements)\b|\bwhich (?:organi[sz]ation|agency|body|partner|"
    r"institution|company|ngo|entity|country|member state|authority|official|referral|system|directorate)\b|"
    r"\bwhat (?:organi[sz]ation|agency|body|referral|system|mechanism|instrument|tool|programme|initiative)\b|"
    r"\bin which country\b|\bwhich \w+ (?:country|agency|organi[sz]ation)\b",
    re.IGNORECASE,
)
_LIST = re.compile(
    r"\bwhich (?:\w+ ){0,3}(?:countries|member states|partners|organi[sz]ations|agencies|measures|actions|"
    r"steps|priorities|projects|states|routes|files|instruments|outcomes)\b|\bwhat (?:\w+ ){0,3}(?:measures|"
    r"outcomes|steps|actions|priorities|results|elements|components|areas|countries|partners|files)\b|"
    r"\b(?:list|name) the\b",
    re.IGNORECASE,
)
# A follow-up leans on the conversation: it refers back ("them", "it", "that scheme") or continues ("and ...").
_FOLLOW_UP = re.compile(
    r"^\s*(?:and|but|also|so|what about|how about|and what|then)\b|\b(?:them|they|their|it|its|those|these|that|this"
    r"|he|she|his|her|there|the same|the latter|the former)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class QuestionInfo:
    text: str
    wants: frozenset[str]  # subset of {"figure", "date", "name", "place", "list"}
    terms: tuple[str, ...]  # stemmed content words
    numbers: frozenset[str]  # figures in the question itself (never evidence of an answer)
    pins_time: bool  # names a date or period, so older figures are not "superseded"
    ordinal: bool = False  # asks "which anniversary / which round": an ordinal ("third") is the figure
    years: frozenset[str] = frozenset()  # years the question names ("the 2026-2027 Plan")


def analyse(question: str) -> QuestionInfo:
    wants = set()
    heads = question_heads(question)
    for kind, pattern in (("figure", _FIGURE), ("date", _DATE), ("place", _PLACE), ("name", _NAME), ("list", _LIST)):
        if any(_asks(pattern, head) for head in heads):
            wants.add(kind)
    terms = tuple(dict.fromkeys(content_terms(question, extra_stop=QUESTION_NOISE)))
    pins = bool(MONTH.search(question) or YEAR.search(question))
    ordinal = bool(re.search(r"\bwhich (?:anniversary|round|edition|meeting|time|report|numbered)\b", question, re.I))
    years = frozenset(YEAR.findall(question))
    return QuestionInfo(collapse(question), frozenset(wants), terms, frozenset(numbers(question)), pins, ordinal, years)


def question_heads(question: str) -> list[str]:
    """The opening words of each clause: where a question says what it asks for.

    "What criterion decides which Member State examines ..." asks for a criterion, not a country; only
    the first words of the question and of each clause after "and", a comma or a semicolon are read.
    """
    clauses = re.split(r"[,;]|\s[-–]\s|\band\b", question)
    return [" ".join(clause.split()[:7]) for clause in clauses if clause.strip()]


def _asks(pattern: re.Pattern[str], head: str) -> bool:
    # The question word must open the clause (at most one word before it: "Roughly how many", "In which").
    second_word = re.match(r"\s*\S+\s+\S+", head)
    limit = second_word.end() - len(second_word.group().split()[-1]) if second_word else 0
    return any(m.start() <= limit for m in pattern.finditer(head))


def history_questions(history: Iterable[Any] | None) -> list[str]:
    """Earlier questions from a history given as Answers, {"question": ...} mappings, (q, a) pairs or strings."""
    out = []
    for turn in history or ():
        if isinstance(turn, str):
            out.append(turn)
        elif isinstance(turn, Mapping):
            if turn.get("role") in (None, "user") and isinstance(turn.get("question", turn.get("content")), str):
                out.append(turn.get("question", turn.get("content")))
        elif isinstance(turn, Sequence) and turn and isinstance(turn[0], str):
            out.append(turn[0])
        elif isinstance(getattr(turn, "question", None), str):
            out.append(turn.question)
    return [q for q in out if q and q.strip()]


def is_follow_up(question: str) -> bool:
    return bool(_FOLLOW_UP.search(question)) or len(content_terms(question, extra_stop=QUESTION_NOISE)) <= 2


def standalone(question: str, history: Iterable[Any] | None) -> str:
    """Carry the previous question's subject into a follow-up ("and how many of them were minors?").

    The extractive mode has no language model to rewrite the question, so it appends the earlier
    question's content words the follow-up does not already contain; retrieval and scoring then see both.
    A question that stands on its own is returned unchanged.
    """
    previous = history_questions(history)
    if not previous or not is_follow_up(question):
        return collapse(question)
    last = previous[-1]
    own = set(content_terms(question))
    carried = [w for w in re.findall(r"[\w'’-]+", last) if content_terms(w) and content_terms(w)[0] not in own]
    carried = [w for w in carried if content_terms(w, extra_stop=QUESTION_NOISE)]
    if not carried:
        return collapse(question)
    return collapse(f"{question} ({' '.join(dict.fromkeys(carried))})")
