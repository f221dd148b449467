"""Turn chosen source units into a cited answer, check every citation, and decide when to abstain."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from assistant.answer.extractive import SentenceScorer, Unit, select, trim, type_match
from assistant.answer.question import QuestionInfo
from assistant.answer.text import collapse, has_figure, numbers
from assistant.answer.verify import check_support
from assistant.types import ABSTAIN_TEXT, AnswerSentence, Citation, Hit

SEE_ALSO = 3  # closest passages listed with an abstention
# The best unit holding the figure/date asked for must score at least this share of the best unit overall
# (dev gold: answerable questions >= 0.93, unanswerable ones 0.78-0.81; README "Answering").
ANCHOR_RATIO = 0.88
RIVAL_SCORE = 0.8  # a figure from another document counts as a competing answer above this share of the best
_MONTH_NAMES = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


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
            Citation(
                i,
                chunk.doc,
                chunk.title,
                chunk.date,
                chunk.section,
                chunk.page,
                chunk.chunk_id,
                quote,
                round(float(hit.score), 4),
                False,
            )
        )
    return Draft(ABSTAIN_TEXT, tuple(citations), (), True, reason, confidence)


def confidence_of(units: Sequence[Unit], question: QuestionInfo) -> tuple[float, Unit | None]:
    """How well the best candidate answers, and that candidate (None when none holds what is asked).

    For a "how many" or "when" question only a unit with a figure or date can answer. When the units
    that fit the question best hold none, and the best one that does scores well below them, the
    documents talk about the topic without giving the figure: the usual shape of an unanswerable
    question here ("what budget was set aside for X" where X is described but never costed).
    """
    if not units:
        return 0.0, None
    needs = question.wants & {"figure", "date"}
    for unit in units:
        if not needs or type_match(replace(question, wants=needs), unit.text) >= 1:
            if unit.score < ANCHOR_RATIO * units[0].score:
                return unit.score, None
            return unit.score, unit
    return 0.0, None


def extractive_answer(
    question: QuestionInfo,
    query_vector: np.ndarray,
    hits: Sequence[Hit],
    scorer: SentenceScorer,
    *,
    threshold: float,
) -> Draft:
    units = [u for u in scorer.units(question, query_vector, hits) if not any(scorer.data.chunks[ci].is_flagged(j) for ci, j in u.members)]  # fmt: skip  # noqa: E501  (issue 12: never quote instruction-like text)
    confidence, anchor = confidence_of(units, question)
    if anchor is None or confidence < threshold:
        if anchor is None and units:
            asked = " or ".join(sorted(question.wants & {"figure", "date"}))
            reason = f"the passages closest to the question do not give the {asked} it asks for"
        else:
            reason = f"no passage matches the question closely enough (confidence {confidence:.2f} < {threshold:.2f})"
        return abstention(hits, reason, confidence)
    # The anchor leads; other units join only when they add something.
    ordered = [anchor] + [u for u in units if u is not anchor]
    chosen = select(ordered, question, scorer)
    framed = _order_conflicts(chosen, ordered, question, scorer)
    texts: list[str] = []
    citations: list[Citation] = []
    sentences: list[AnswerSentence] = []
    for marker, (unit, frame) in enumerate(framed, start=1):
        body = trim(unit, question)
        quote, _, _ = quote_span(scorer, unit, body if body != unit.text else None)
        sentence = f"{frame}{body}"
        citation = citation_for(unit, marker, sentence, quote)
        citations.append(citation)
        sentences.append(AnswerSentence(sentence, (marker,), citation.supported))
        texts.append(f"{sentence} [{marker}]")
    return Draft(" ".join(texts), tuple(citations), tuple(sentences), False, None, confidence)


def _order_conflicts(
    chosen: list[Unit], ranked: list[Unit], question: QuestionInfo, scorer: SentenceScorer
) -> list[tuple[Unit, str]]:
    """When documents of different dates give different figures for what is asked, lead with the newest.

    Only for figure questions that do not pin a date or period themselves ("by late November 2024" asks
    for that moment, not the latest). The older figure stays, framed as earlier, with its own citation.
    """
    plain = [(u, "") for u in chosen]
    if "figure" not in question.wants or question.pins_time or not chosen:
        return plain
    lead = chosen[0]
    if not has_figure(lead.text, question.numbers, ordinals=question.ordinal):
        return plain
    rival = None
    for unit in ranked[1:12]:
        if unit.hit.chunk.doc == lead.hit.chunk.doc or unit.hit.chunk.date == lead.hit.chunk.date:
            continue
        if unit.score < RIVAL_SCORE * lead.score or not has_figure(
            unit.text, question.numbers, ordinals=question.ordinal
        ):
            continue
        # Only a figure said about the same thing competes: the question words next to both figures overlap.
        lead_near = set().union(*scorer.windows(question, lead.text))
        if not lead_near & set().union(*scorer.windows(question, unit.text)):
            continue
        lead_numbers = numbers(lead.text) - question.numbers
        if not (numbers(unit.text) - question.numbers) or (numbers(unit.text) - question.numbers) == lead_numbers:
            continue
        rival = unit
        break
    if rival is None:
        return plain
    newer, older = sorted((lead, rival), key=lambda u: u.hit.chunk.date, reverse=True)
    framed = [
        (newer, f"As of {human_date(newer.hit.chunk.date)}: "),
        (older, f"Earlier ({human_date(older.hit.chunk.date)}): "),
    ]
    return framed
