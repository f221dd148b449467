"""The default answerer: pick the source sentences that answer the question and cite each one.

No language model is involved, so every answer sentence is source text and its quote is exact. The work is
in choosing. Each candidate is scored by meaning (its precomputed sentence embedding against the query
vector), by how much of the question's rarer vocabulary it and its passage contain, by its passage's rank,
by whether it holds what the question asks for (a figure, a date, a name, a list), and by how close that
figure or date sits to the question's words ("started on 30 March" answers "when did it start"). A sentence
that means little alone (it starts with "It" or "These", or is a bare table cell) brings its neighbour
along; a list's lead-in brings its items.

Written by hand: sentence selection with these signals is the product's own logic; no library does it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from assistant.answer.question import QuestionInfo
from assistant.answer.text import (
    MONTH,
    NUMBER,
    NUMBER_WORDS,
    NUMERIC_DATE,
    ORDINALS,
    TIME_RANGE,
    YEAR,
    collapse,
    content_terms,
    has_date,
    has_figure,
    names,
    numbers,
    words,
)
from assistant.index.store import IndexData
from assistant.types import Hit

# Weights of the unit score, tuned on the dev gold (a broad plateau of settings scores the same; README).
W_DENSE, W_LEX, W_PASSAGE, W_RANK, W_TYPE, W_NEAR = 0.25, 0.25, 0.15, 0.20, 0.10, 0.15
MAX_UNITS = 3
MAX_WORDS = 80  # a further unit joins only if the answer stays within this many words
FOLLOW_SCORE = 0.8  # ... and if it scores at least this share of the best
NEW_TERMS = 0.05  # ... and adds this share of the question's (idf-weighted) words, or the kind of answer asked
LONG_UNIT_WORDS = 25  # longer units are cut to the clauses that answer
NEAR_DUPLICATE = 0.9  # cosine between two units above which the second adds nothing
NOVELTY = 0.34  # share of a unit's words not already in the question, below which it tells nothing new
WINDOW = 8  # words either side of a figure or date in which the question's words count as "near"
MAX_LIST_ITEMS = 8
MAX_ITEM_WORDS = 25
_ENUMERATION = re.compile(r"^\s*(?:\d{1,2}|[ivx]{1,4}|[a-z])[.)]\s+", re.IGNORECASE)
_ANAPHOR = re.compile(
    r"^(?:it|its|this|these|those|they|their|such|both|he|she|his|her|the latter|the former|there|"
    r"however|moreover|furthermore|in addition|additionally|also|similarly|nevertheless|in this context|"
    r"to this end|as a result|therefore|thus)\b",
    re.IGNORECASE,
)


@dataclass
class Unit:
    """Consecutive sentences (usually of one chunk; a list may run into the next), quoted as one."""

    hit: Hit
    members: list[tuple[int, int]]  # (chunk index, sentence index), in document order
    text: str
    terms: set[str]
    similarity: float
    score: float = 0.0
    type_match: float = 0.0

    @property
    def chunk_index(self) -> int:
        return self.members[0][0]

    @property
    def words(self) -> int:
        return len(self.text.split())

    def key(self) -> tuple[tuple[int, int], ...]:
        return tuple(self.members)

    def overlaps(self, other: Unit) -> bool:
        return bool(set(self.members) & set(other.members))


class SentenceScorer:
    """Per-index state for extractive answering: chunk positions, term weights and sentence terms."""

    def __init__(self, data: IndexData) -> None:
        self.data = data
        self.position = {c.chunk_id: i for i, c in enumerate(data.chunks)}
        df: dict[str, int] = {}
        self._chunk_terms: list[set[str]] = []
        for chunk in data.chunks:
            terms = set(content_terms(f"{chunk.section} {chunk.text}"))
            self._chunk_terms.append(terms)
            for t in terms:
                df[t] = df.get(t, 0) + 1
        n = max(1, len(data.chunks))
        self._idf = {t: math.log(1 + n / f) for t, f in df.items()}
        self._unknown_idf = math.log(1 + n)  # a word the corpus never uses weighs most
        self._sentence_terms: dict[tuple[int, int], set[str]] = {}

    def idf(self, term: str) -> float:
        return self._idf.get(term, self._unknown_idf)

    def text(self, ci: int, j: int) -> str:
        chunk = self.data.chunks[ci]
        return collapse(chunk.sentence_text(chunk.sentences[j]))

    def sentence_terms(self, ci: int, j: int) -> set[str]:
        key = (ci, j)
        if key not in self._sentence_terms:
            self._sentence_terms[key] = set(content_terms(self.text(ci, j)))
        return self._sentence_terms[key]

    def vector(self, unit: Unit) -> np.ndarray:
        rows = np.stack([self.data.sentence_vectors[self.data.sentence_rows(ci).start + j] for ci, j in unit.members])
        vector = rows.mean(axis=0)
        return np.asarray(vector / (float(np.linalg.norm(vector)) or 1.0), dtype=np.float32)

    def coverage(self, question: QuestionInfo, terms: set[str]) -> float:
        total = sum(self.idf(t) for t in question.terms)
        return sum(self.idf(t) for t in question.terms if t in terms) / total if total else 0.0

    def units(self, question: QuestionInfo, query_vector: np.ndarray, hits: Sequence[Hit]) -> list[Unit]:
        """Every candidate unit from the hits, scored, best first."""
        out: dict[tuple[tuple[int, int], ...], Unit] = {}
        asked = set(question.terms)
        for hit in hits:
            ci = self.position.get(hit.chunk.chunk_id)
            if ci is None:
                continue
            rows = self.data.sentence_rows(ci)
            sims = self.data.sentence_vectors[rows] @ query_vector
            passage = self.coverage(question, self._chunk_terms[ci])
            for j in range(len(hit.chunk.sentences)):
                members = self._span(question, ci, j)
                if tuple(members) in out:
                    continue
                texts = [self.text(c, k) for c, k in members]
                terms = set().union(*(self.sentence_terms(c, k) for c, k in members))
                similarity = max(float(sims[k]) if c == ci else 0.0 for c, k in members)
                unit = Unit(hit, members, " ".join(texts), terms, similarity)
                unit.type_match = type_match(question, unit.text)
                unit.score = (
                    W_DENSE * similarity
                    + W_LEX * self.coverage(question, terms)
                    + W_PASSAGE * passage
                    + W_RANK / hit.rank**0.5
                    + W_TYPE * unit.type_match
                    + W_NEAR * self.nearness(question, unit.text)
                )
                if unit.words < 4:
                    unit.score -= 0.1  # a bare cell or heading rarely answers by itself
                if terms and len(terms - asked) / len(terms) < NOVELTY:
                    unit.score -= 0.15  # it only restates the question (a heading, a table row's key cell)
                out[unit.key()] = unit
        return sorted(out.values(), key=lambda u: (-u.score, u.hit.rank, u.members))

    def nearness(self, question: QuestionInfo, text: str) -> float:
        """How much of the question's vocabulary sits within a few words of a figure or date it asks for.

        Without a reading model this is the best evidence that a sentence's figure answers *this*
        question: "started on 30 March 2024" answers "when did it start", "informed ... in December
        2023" does not. Questions that ask for neither get the plain word coverage.
        """
        if not question.wants & {"figure", "date"}:
            return self.coverage(question, set(content_terms(text)))
        return max((self.coverage(question, terms) for terms in self.windows(question, text)), default=0.0)

    def windows(self, question: QuestionInfo, text: str) -> list[set[str]]:
        """The question's words found within WINDOW words of each figure or date (of the kind asked for)."""
        wanted = question.wants & {"figure", "date"}
        tokens = list(re.finditer(r"\S+", text))
        spans = []
        if "date" in wanted:
            for pattern in (MONTH, YEAR, NUMERIC_DATE, TIME_RANGE):
                spans += [m.span() for m in pattern.finditer(text) if m.group() not in question.numbers]
        if "figure" in wanted:
            spans += [m.span() for m in NUMBER.finditer(text) if m.group() not in question.numbers]
            vocabulary = NUMBER_WORDS | ORDINALS if question.ordinal else NUMBER_WORDS
            spans += [t.span() for t in tokens if set(t.group().lower().strip(",.;:()").split("-")) & vocabulary]
        asked = set(question.terms)
        out = []
        for start, end in spans:
            at = [i for i, t in enumerate(tokens) if t.start() < end and t.end() > start]
            if at:
                window = " ".join(t.group() for t in tokens[max(0, at[0] - WINDOW) : at[-1] + WINDOW + 1])
                out.append(set(content_terms(window)) & asked)
        return out

    def _span(self, question: QuestionInfo, ci: int, j: int) -> list[tuple[int, int]]:
        chunk = self.data.chunks[ci]
        first = last = j
        here = self.text(ci, j)
        if (
            j > 0
            and (_ANAPHOR.match(here) or len(here.split()) < 5 or self.text(ci, j - 1).endswith(":"))
            and self._adjacent((ci, j - 1), (ci, j))
        ):
            first = j - 1
        members = [(ci, k) for k in range(first, last + 1)]
        if "list" in question.wants and (here.endswith(":") or self._is_heading(ci, j)):
            # A lead-in ("... outcomes:" or a heading) means little without its items: gather them, into
            # the next chunk when the list continues there (a section split across chunks).
            return members + self._items_after(ci, j)
        if here.endswith(":") and j + 1 < len(chunk.sentences) and self._adjacent((ci, j), (ci, j + 1)):
            members.append((ci, j + 1))
        return members

    def _adjacent(self, a: tuple[int, int], b: tuple[int, int]) -> bool:
        """`b` follows `a` in the document with nothing but spacing and punctuation between them.

        A unit is quoted as one verbatim stretch of the document, so it may only join sentences that are
        next to each other there (a table row's cells can come from different places after a page break).
        """
        first, second = self.data.chunks[a[0]], self.data.chunks[b[0]]
        if first.doc != second.doc:
            return False
        end, start = first.sentences[a[1]].doc_end, second.sentences[b[1]].doc_start
        gap = self.data.documents[first.doc].text[end:start] if start >= end else "x"
        return not re.search(r"\w", gap)

    def _is_heading(self, ci: int, j: int) -> bool:
        chunk = self.data.chunks[ci]
        return j == 0 and bool(chunk.section) and chunk.section.split(" > ")[-1].strip() == self.text(ci, j)

    def _items_after(self, ci: int, j: int) -> list[tuple[int, int]]:
        items: list[tuple[int, int]] = []
        chunk = self.data.chunks[ci]
        for k in range(j + 1, len(chunk.sentences)):
            items.append((ci, k))
        nxt = ci + 1
        if nxt < len(self.data.chunks) and self.data.chunks[nxt].doc == chunk.doc:
            following = self.data.chunks[nxt]
            if chunk.section and following.section.startswith(chunk.section):
                items += [(nxt, k) for k in range(len(following.sentences))]
        # Items are short lines; the first long sentence is running text again, and ends the list.
        gathered: list[tuple[int, int]] = []
        previous = (ci, j)
        for member in items[:MAX_LIST_ITEMS]:
            if len(self.text(*member).split()) > MAX_ITEM_WORDS or not self._adjacent(previous, member):
                break
            gathered.append(member)
            previous = member
        return gathered


def other_period(question: QuestionInfo, text: str) -> bool:
    """The text is dated to other years than the question names ("2024-2025 scheme" for "2026-2027 Plan")."""
    if not question.years:
        return False
    found = set(YEAR.findall(text))
    return bool(found) and not (found & question.years)


def type_match(question: QuestionInfo, text: str) -> float:
    """Share of what the question asks for (figure, date, name, place, list) that `text` contains.

    A figure about another period than the one asked about is not the figure asked for.
    """
    if question.wants & {"figure", "date"} and other_period(question, text):
        return 0.0
    text = _ENUMERATION.sub("", text)  # "11. Reinstate the scheme": an item number is not a figure
    checks = []
    if "figure" in question.wants:
        checks.append(has_figure(text, exclude=question.numbers, ordinals=question.ordinal))
    if "date" in question.wants:
        checks.append(has_date(text, exclude=question.numbers))
    novel = _novel_names(question, text) if question.wants & {"name", "place", "list"} else set()
    if "name" in question.wants or "place" in question.wants:
        checks.append(bool(novel))
    if "list" in question.wants:
        checks.append(len(novel) + len(numbers(text) - question.numbers) >= 2)
    return sum(checks) / len(checks) if checks else 0.5


def _novel_names(question: QuestionInfo, text: str) -> set[str]:
    """Names in `text` that the question does not already use (compared by stems: 'Partnerships')."""
    asked = set(question.terms)
    return {n for n in names(text) if not set(content_terms(n)) <= asked}


def trim(unit: Unit, question: QuestionInfo) -> str:
    """Cut a long unit down to the clauses that carry the answer: a contiguous, verbatim part of it.

    Trailing clauses that hold none of the question's words and none of what it asks for are dropped,
    and so are leading ones when they are long (a short opening is usually the subject: "Eurojust, the
    Union's agency ..."). Everything between the first and last useful clause stays.
    """
    if unit.words <= LONG_UNIT_WORDS:
        return unit.text
    # Clause boundaries: sentence ends, semicolons, colons, commas and spaced dashes (kept with their clause).
    pieces = [p for p in re.split(r"(?<=[.;:,])\s+(?=\S)|\s+(?=[-–] )", unit.text) if p.strip()]
    wanted = set(question.terms)
    useful = [
        i for i, piece in enumerate(pieces)
        if wanted & set(content_terms(piece)) or (question.wants and type_match(question, piece) >= 1.0)
    ]  # fmt: skip
    if not useful:
        return unit.text
    i, k = useful[0], useful[-1]
    if sum(len(p.split()) for p in pieces[:i]) < 12:
        i = 0
    if i == 0 and k == len(pieces) - 1:
        return unit.text
    text = " ".join(pieces[i : k + 1]).rstrip(",;:- ")
    return ("… " if i > 0 else "") + text + (" …" if k < len(pieces) - 1 else "")


def select(units: list[Unit], question: QuestionInfo, scorer: SentenceScorer) -> list[Unit]:
    """The best unit, plus up to two more that add what the question asks about and the first lacks."""
    if not units:
        return []
    chosen = [units[0]]
    covered = set(units[0].terms)
    typed = units[0].type_match
    total = _trimmed_words(units[0], question)
    for unit in units[1:]:
        if len(chosen) >= MAX_UNITS or unit.score < FOLLOW_SCORE * chosen[0].score:
            break
        size = _trimmed_words(unit, question)
        if total + size > MAX_WORDS:
            continue
        if any(unit.overlaps(c) or _near_duplicate(unit, c, scorer) for c in chosen):
            continue
        new_terms = {t for t in question.terms if t in unit.terms and t not in covered}
        adds_terms = scorer.coverage(question, new_terms) >= NEW_TERMS
        adds_type = typed < 1.0 and unit.type_match > typed
        if not (adds_terms or adds_type):
            continue
        chosen.append(unit)
        covered |= unit.terms
        typed = max(typed, unit.type_match)
        total += size
    return chosen


def _trimmed_words(unit: Unit, question: QuestionInfo) -> int:
    return len(words(trim(unit, question)))


def _near_duplicate(a: Unit, b: Unit, scorer: SentenceScorer) -> bool:
    if not a.terms or not b.terms:
        return False
    if len(a.terms & b.terms) / len(a.terms | b.terms) >= 0.6:
        return True
    return float(scorer.vector(a) @ scorer.vector(b)) >= NEAR_DUPLICATE
