"""Turn chosen source units into a cited answer, check every citation, and decide when to abstain."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from assistant.answer.extractive import SentenceScorer, Unit, select, trim
from assistant.answer.features import answerability_row, holds_asked_value
from assistant.answer.model import RETRAIN
from assistant.answer.question import QuestionInfo
from assistant.answer.text import collapse, content_terms, numbers
from assistant.answer.verify import check_support
from assistant.errors import ModelError
from assistant.types import ABSTAIN_TEXT, AnswerSentence, Citation, Hit

SEE_ALSO = 3  # closest passages listed with an abstention
RIVAL_SHARE = 0.6  # a figure from another document competes when its unit scores this share of the best
_MONTH_NAMES = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
    "November", "December",
]  # fmt: skip
_KIND_NAMES = {"money": "amount", "percent": "percentage", "figure": "figure", "date": "date", "place": "place",
               "person": "name", "org": "organisation", "reason": "reason"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Draft:
    """An answer before timings and hits are attached."""

    text: str
    citations: tuple[Citation, ...]
    sentences: tuple[AnswerSentence, ...]
    abstained: bool
    reason: str | None
    confidence: float


def human_date(date: str) -> str:
    """'2024-12' -> 'December 2024', '2024-03-12' -> '12 March 2024'."""
    parts = date.split("-")
    try:
        if len(parts) == 3:
            return f"{int(parts[2])} {_MONTH_NAMES[int(parts[1]) - 1]} {parts[0]}"
        if len(parts) == 2:
            return f"{_MONTH_NAMES[int(parts[1]) - 1]} {parts[0]}"
    except (ValueError, IndexError):
        pass
    return date


def quote_span(scorer: SentenceScorer, unit: Unit, fragment: str | None = None) -> tuple[str, int, int]:
    """The verbatim document text behind a unit (or behind `fragment`, a part of it)."""
    first_chunk = scorer.data.chunks[unit.members[0][0]]
    last_chunk = scorer.data.chunks[unit.members[-1][0]]
    doc = scorer.data.documents[first_chunk.doc]
    start = first_chunk.sentences[unit.members[0][1]].doc_start
    end = last_chunk.sentences[unit.members[-1][1]].doc_end
    if fragment:
        # The document may break lines where the chunk has a space: match the words with any whitespace.
        tokens = fragment.replace("…", " ").split()
        pattern = r"\s+".join(re.escape(t) for t in tokens)
        found = re.search(pattern, doc.text[start:end]) if tokens else None
        if found:
            start, end = start + found.start(), start + found.end()
    return collapse(doc.text[start:end]), start, end


def citation_for(unit: Unit, marker: int, sentence: str, quote: str) -> Citation:
    chunk = unit.hit.chunk
    support = check_support(sentence, quote)
    return Citation(
        marker=marker,
        doc=chunk.doc,
        title=chunk.title,
        date=chunk.date,
        section=chunk.section,
        page=chunk.page,
        chunk_id=chunk.chunk_id,
        quote=quote,
        score=support.score,
        supported=support.supported,
    )


def abstention(hits: Sequence[Hit], reason: str, confidence: float) -> Draft:
    """The plain 'not in the documents' answer, with the closest passages as see-also citations."""
    citations = []
    for i, hit in enumerate(hits[:SEE_ALSO], start=1):
        chunk = hit.chunk
        first = chunk.sentences[0] if chunk.sentences else None
        quote = collapse(chunk.sentence_text(first)) if first else collapse(chunk.text[:200])
        citations.append(
            Citation(i, chunk.doc, chunk.title, chunk.date, chunk.section, chunk.page, chunk.chunk_id, quote,
                     round(float(hit.score), 4), False)
        )  # fmt: skip
    return Draft(f"{ABSTAIN_TEXT} {reason}", tuple(citations), (), True, reason, confidence)


def missing_reason(question: QuestionInfo, scorer: SentenceScorer) -> str:
    """Say what the documents lack: the thing asked about, or the value asked for about it."""
    asked = question.focus[0] if question.focus else next(
        (_KIND_NAMES[k] for k in ("money", "percent", "figure", "date", "place", "person", "org", "reason")
         if k in question.wants), "answer")  # fmt: skip
    names = list(question.constraint_names)
    if names:
        # "Mention" is judged over the whole corpus vocabulary, not only the passages retrieved.
        absent = [n for n in names if not all(scorer.in_corpus(t) for t in content_terms(n))]
        present = [n for n in names if n not in absent]
        if absent and not present:
            return f"The documents do not mention {_join(absent)}."
        if absent:
            return f"The documents mention {_join(present)} but not {_join(absent)}."
        return (
            f"The documents mention {_join(present)} but give no {asked} for {'it' if len(present) == 1 else 'them'}."
        )
    return f"The closest passages do not give the {asked} asked about."


def _join(names: Sequence[str]) -> str:
    quoted = [f"“{n}”" for n in names[:3]]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def answerability(question: QuestionInfo, units: Sequence[Unit], scorer: SentenceScorer) -> float:
    """Probability (learned) that the retrieved passages answer the question."""
    if not units or scorer.model is None:
        return 0.0
    row = answerability_row(question, [u.features for u in units], [u.score for u in units])
    x = np.array([row[n] for n in scorer.model.answerability.features])
    return float(scorer.model.answerability.probability(x)[0])


def extractive_answer(
    question: QuestionInfo,
    query_vector: np.ndarray,
    hits: Sequence[Hit],
    scorer: SentenceScorer,
    *,
    threshold: float | None = None,
) -> Draft:
    """Quote the units that answer, one marker per passage; or abstain, saying what is missing.

    `threshold` overrides the learned abstention threshold (the evaluation's abstention curve sweeps it).
    """
    if scorer.model is None:
        raise ModelError(f"No answer scorer is loaded. {RETRAIN}")
    units = scorer.units(question, query_vector, hits)
    confidence = answerability(question, units, scorer)
    # Written as a rule, not learned: a named thing that no passage of the corpus mentions cannot be what any
    # passage answers about, and the gold has no such question to learn it from (its near misses all name
    # things the documents do mention).
    unknown = [n for n in question.proper_names if not all(scorer.in_corpus(t) for t in content_terms(n))]
    if unknown:
        return abstention(hits, f"The documents do not mention {_join(unknown)}.", confidence)
    limit = scorer.model.threshold if threshold is None and scorer.model is not None else (threshold or 0.0)
    if not units or confidence < limit:
        return abstention(hits, missing_reason(question, scorer), confidence)
    chosen = select(units, question, scorer)
    framed = _order_conflicts(chosen, units, question)
    markers: dict[str, int] = {}
    quotes: dict[str, list[str]] = {}  # verbatim document text per passage
    marks: dict[str, list[str]] = {}  # what the page highlights in the passage
    first_unit: dict[str, Unit] = {}
    texts: list[str] = []
    sentences: list[AnswerSentence] = []
    for unit, frame in framed:
        chunk_id = unit.hit.chunk.chunk_id
        marker = markers.setdefault(chunk_id, len(markers) + 1)
        first_unit.setdefault(chunk_id, unit)
        body = trim(unit, question)
        quote, _, _ = quote_span(scorer, unit, body if body != unit.text else None)
        quotes.setdefault(chunk_id, []).append(quote)
        marks.setdefault(chunk_id, []).extend(_highlights(scorer, unit, quote))
        sentence = f"{frame}{body}"
        support = check_support(sentence, quote)
        sentences.append(AnswerSentence(sentence, (marker,), support.supported))
        texts.append(f"{sentence} [{marker}]")
    citations = []
    for chunk_id, marker in markers.items():
        joined = " … ".join(quotes[chunk_id])
        cited = [s for s in sentences if marker in s.markers]
        citation = citation_for(first_unit[chunk_id], marker, " ".join(s.text for s in cited), joined)
        citations.append(replace(citation, quote=quotes[chunk_id][0], quotes=tuple(marks[chunk_id])))
    return Draft(" ".join(texts), tuple(citations), tuple(sentences), False, None, confidence)


def _highlights(scorer: SentenceScorer, unit: Unit, quote: str) -> list[str]:
    """What to mark in the passage: the quote, or for a table row each cell (the passage puts column labels
    between the cells, so the row's verbatim text is not one stretch of the passage)."""
    ci, j = unit.members[0]
    if len(unit.members) > 1 and len(scorer.row(ci, j)) > 1 and all(c == ci for c, _ in unit.members):
        return [scorer.text(ci, k) for _, k in unit.members]
    return [quote]


def _order_conflicts(chosen: list[Unit], ranked: Sequence[Unit], question: QuestionInfo) -> list[tuple[Unit, str]]:
    """When documents of different dates give different figures for what is asked, lead with the newest.

    Only for figure questions that do not pin a date or period themselves ("by late November 2024" asks
    for that moment, not the latest). The rival is a close candidate from another, differently dated
    document whose figure is bound to the same words; the older figure stays, framed as earlier.
    """
    plain = [(u, "") for u in chosen]
    if "figure" not in question.wants or question.pins_time or not chosen:
        return plain
    lead = chosen[0]
    if not holds_asked_value(question, lead.text):
        return plain
    lead_numbers = numbers(lead.text) - question.numbers
    rival = None
    for unit in ranked[:12]:
        a, b = lead.hit.chunk, unit.hit.chunk
        if unit is lead or a.doc == b.doc or a.date == b.date or not (a.date and b.date):
            continue
        if unit.score < RIVAL_SHARE * lead.score or not holds_asked_value(question, unit.text):
            continue
        if unit.features.get("bound_question", 0.0) < lead.features.get("bound_question", 0.0) * 0.5:
            continue  # its figure is about something else
        if (numbers(unit.text) - question.numbers) in (set(), lead_numbers):
            continue
        rival = unit
        break
    if rival is None:
        return plain
    newer, older = sorted((lead, rival), key=lambda u: u.hit.chunk.date, reverse=True)
    rest = [(u, "") for u in chosen[1:] if u is not rival and not u.overlaps(rival)]
    return [
        (newer, f"As of {human_date(newer.hit.chunk.date)}: "),
        (older, f"Earlier ({human_date(older.hit.chunk.date)}): "),
        *rest,
    ]
