"""The default answerer: pick the source sentences that answer the question and cite each one.

No language model is involved, so every answer sentence is source text and its quote is exact. The work is
in choosing. Candidate units (a sentence, with its neighbour when it means little alone, or a list's lead-in
with its items) are described by features (answer/features.py: meaning, the question's rarer words, passage
rank, whether the unit holds a value of the asked type *bound* to what is asked, whether it mentions the
question's names and figures, ...) and scored by a logistic model trained on the gold evidence
(answer/model.py, `assistant train`).

Written by hand: which sentences may form one quotable unit (they must be adjacent in the document) is the
product's own contract with its citations; no library does it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from assistant.answer.features import UNIT_FEATURES, holds_asked_value, rank_features, unit_features
from assistant.answer.model import AnswerModel
from assistant.answer.question import QuestionInfo
from assistant.answer.text import collapse, content_terms, words
from assistant.index import termstats
from assistant.index.readthrough import Memo, read_through
from assistant.index.store import IndexData
from assistant.nlp import Value
from assistant.types import Hit

MAX_UNITS = 3
CACHE_SIZE = 16384  # entries per cache of chunk / sentence terms and values; a question touches a few hundred
MAX_WORDS = 70  # a further unit joins only if the answer stays within this many words
FOLLOW_SHARE = 0.5  # ... and if its probability is at least this share of the best
NEW_TERMS = 0.05  # ... and it adds this share of the question's (idf-weighted) words (when REQUIRE_NEW)
REQUIRE_NEW = True  # cross-validated: without it answers grow to 54 words for no accuracy gain (0.607 vs 0.613)
LONG_UNIT_WORDS = 30  # longer units are cut to the clauses that answer
NEAR_DUPLICATE = 0.9  # cosine between two units above which the second adds nothing
MAX_LIST_ITEMS = 10
MAX_ITEM_WORDS = 30
_ENUMERATION = re.compile(r"^\s*(?:\d{1,2}|[ivx]{1,4}|[a-z])[.)]\s+", re.IGNORECASE)
# Openers that lean on the sentence before (a closed class of English words, hence listed).
_ANAPHORS = frozenset(
    {"it", "its", "this", "these", "those", "they", "their", "such", "both", "he", "she", "his", "her", "there",
     "however", "moreover", "furthermore", "additionally", "also", "similarly", "nevertheless", "therefore", "thus"}
)  # fmt: skip


@dataclass
class Unit:
    """Consecutive sentences (usually of one chunk; a list may run into the next), quoted as one."""

    hit: Hit
    members: list[tuple[int, int]]  # (chunk index, sentence index), in document order
    text: str
    terms: set[str]
    similarity: float
    score: float = 0.0  # probability (learned) that the unit quotes the answer
    features: dict[str, float] = field(default_factory=dict)

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

    def __init__(self, data: IndexData, model: AnswerModel | None = None) -> None:
        # Chunks, values and documents are read hundreds of times per question: through plain-dict caches.
        self.data = read_through(data)
        self.model = model
        # Document frequencies and the id -> row lookup come from the build (assistant.index.termstats) rather
        # than from a pass over every chunk; per-chunk and per-sentence terms are computed for the candidates a
        # question touches and kept in bounded caches (the same values as counting at load: test_termstats.py).
        stats = termstats.for_index(data)
        self.position = stats.positions
        self._df = stats.df
        self._n = max(1, stats.chunks)
        self._unknown_idf = math.log(1 + self._n)  # a word the corpus never uses weighs most
        # Bounded caches (readthrough.Memo) of what is read thousands of times per question.
        self._idf: Memo[str, float] = Memo(self._idf_of, CACHE_SIZE)  # of the terms asked so far
        # A question's summed idf (coverage's denominator): the same sum, in the same order, as before.
        self._weights: Memo[tuple[str, ...], float] = Memo(lambda terms: sum(self.idf(t) for t in terms), CACHE_SIZE)
        self._chunk_terms: Memo[int, set[str]] = Memo(
            lambda ci: termstats.chunk_terms(self.data.chunks[ci]), CACHE_SIZE
        )
        self._values: Memo[tuple[int, int], list[Value]] = Memo(lambda key: self._values_in(*key), CACHE_SIZE)
        self._texts: Memo[tuple[int, int], str] = Memo(lambda key: self._text_of(*key), CACHE_SIZE)
        self._sentence_terms: Memo[tuple[int, int], set[str]] = Memo(
            lambda key: set(content_terms(self.text(*key))), CACHE_SIZE
        )
        # Per chunk: its title and section headings, collapsed.
        self._headings: Memo[int, frozenset[str]] = Memo(self._headings_of, CACHE_SIZE)

    def chunk_terms(self, ci: int) -> set[str]:
        return self._chunk_terms[ci]

    def values_of(self, ci: int, j: int) -> list[Value]:
        """Entities and figures (from the index-time parse) inside sentence j of chunk ci."""
        return self._values[ci, j]

    def _values_in(self, ci: int, j: int) -> list[Value]:
        sentence = self.data.chunks[ci].sentences[j]
        values = self.data.values[ci] if ci < len(self.data.values) else ()
        return [v for v in values if v.start >= sentence.start and v.end <= sentence.end]

    def value_text(self, ci: int, value: Value) -> str:
        return self.data.chunks[ci].text[value.start : value.end]

    def in_corpus(self, term: str) -> bool:
        """Some passage of the index uses this (stemmed) word."""
        return term in self._df

    def idf(self, term: str) -> float:
        return self._idf[term]

    def _idf_of(self, term: str) -> float:
        f = self._df.get(term)
        return math.log(1 + self._n / f) if f else self._unknown_idf

    def text(self, ci: int, j: int) -> str:
        return self._texts[ci, j]

    def _text_of(self, ci: int, j: int) -> str:
        chunk = self.data.chunks[ci]
        return collapse(chunk.sentence_text(chunk.sentences[j]))

    def sentence_terms(self, ci: int, j: int) -> set[str]:
        return self._sentence_terms[ci, j]

    def vector(self, unit: Unit) -> np.ndarray:
        rows = np.stack([self.data.sentence_vectors[self.data.sentence_rows(ci).start + j] for ci, j in unit.members])
        vector = rows.mean(axis=0)
        return np.asarray(vector / (float(np.linalg.norm(vector)) or 1.0), dtype=np.float32)

    def coverage(self, question: QuestionInfo, terms: set[str]) -> float:
        total = self._weights[question.terms]
        return sum(self.idf(t) for t in question.terms if t in terms) / total if total else 0.0

    def units(self, question: QuestionInfo, query_vector: np.ndarray, hits: Sequence[Hit]) -> list[Unit]:
        """Every candidate unit from the hits with its features, scored by the model (best first)."""
        units = self.candidates(question, query_vector, hits)
        if units and self.model is not None:
            matrix = np.stack([np.array([u.features[n] for n in UNIT_FEATURES]) for u in units])
            for unit, p in zip(units, self.model.unit.probability(matrix), strict=True):
                unit.score = float(p)
        return sorted(units, key=lambda u: (-u.score, u.hit.rank, u.members))

    def candidates(self, question: QuestionInfo, query_vector: np.ndarray, hits: Sequence[Hit]) -> list[Unit]:
        """Every candidate unit from the hits, with its features (unscored, in retrieval order)."""
        out: dict[tuple[tuple[int, int], ...], Unit] = {}
        sims: dict[tuple[int, int], float] = {}
        top_score = max((float(h.score) for h in hits), default=0.0)
        for hit in hits:
            ci = self.position.get(hit.chunk.chunk_id)
            if ci is None:
                continue
            span = self.data.sentence_rows(ci)
            for k, value in enumerate(self.data.sentence_vectors[span] @ query_vector):
                sims[(ci, k)] = float(value)
        for hit in hits:
            ci = self.position.get(hit.chunk.chunk_id)
            if ci is None:
                continue
            for j in range(len(hit.chunk.sentences)):
                members = self._span(question, ci, j)
                if tuple(members) in out or any(self.data.chunks[c].is_flagged(k) for c, k in members):
                    continue  # flagged: instruction-like text in a document is data, never quoted as an answer
                terms = set().union(*(self.sentence_terms(c, k) for c, k in members))
                for c, k in members:
                    if (c, k) not in sims:
                        row = self.data.sentence_rows(c).start + k
                        sims[(c, k)] = float(self.data.sentence_vectors[row] @ query_vector)
                similarity = max(sims[m] for m in members)
                unit = Unit(hit, members, self.unit_text(members), terms, similarity)
                out[unit.key()] = unit
        units = list(out.values())
        rows = [unit_features(self, question, u, top_score=top_score, sims=sims) for u in units]
        rank_features(rows)
        for unit, row in zip(units, rows, strict=True):
            unit.features = row
        return units

    def _span(self, question: QuestionInfo, ci: int, j: int) -> list[tuple[int, int]]:
        chunk = self.data.chunks[ci]
        row = self.row(ci, j)
        if len(row) > 1:
            # A table cell reads with its row, from the row's key cell up to it (the whole row from the key
            # cell): the unit's text carries the column labels the chunker put before each cell.
            start = row.index(j)
            return [(ci, k) for k in (row if start == 0 else row[: start + 1])]
        here = self.text(ci, j)
        heading = self.is_heading(ci, j)
        if heading and not ("list" in question.wants or here.endswith(":")):
            return [(ci, j)]  # a heading is a candidate of its own (it rarely answers), never an opener
        first = j
        opener = here.split(maxsplit=1)[0].lower().strip(",;:") if here.split() else ""
        if (
            j > 0
            and not heading
            and not self.is_heading(ci, j - 1)
            and (opener in _ANAPHORS or len(here.split()) < 5 or self.text(ci, j - 1).endswith(":"))
            and self._adjacent((ci, j - 1), (ci, j))
        ):
            first = j - 1
        members = [(ci, k) for k in range(first, j + 1)]
        if here.endswith(":") or ("list" in question.wants and heading):
            # A lead-in ("... outcomes:" or a heading) means little without its items: gather them, into
            # the next chunk when the list continues there (a section split across chunks).
            return members + self._items_after(ci, j)
        nxt = j + 1
        short = len(here.split()) < 5 and nxt < len(chunk.sentences)
        if short and not self.is_heading(ci, nxt) and self._adjacent((ci, j), (ci, nxt)):
            members.append((ci, nxt))  # a bare label or cell reads with what follows it
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

    def row(self, ci: int, j: int) -> list[int]:
        """The sentences of chunk ci in the same table row as sentence j (cells joined by tabs), in order."""
        chunk = self.data.chunks[ci]
        text = self.data.documents[chunk.doc].text

        def tab_joined(a: int, b: int) -> bool:
            gap = text[chunk.sentences[a].doc_end : chunk.sentences[b].doc_start]
            return "\t" in gap and "\n" not in gap and not re.search(r"\w", gap)

        first = j
        while first > 0 and tab_joined(first - 1, first):
            first -= 1
        last = j
        while last + 1 < len(chunk.sentences) and tab_joined(last, last + 1):
            last += 1
        return list(range(first, last + 1))

    def unit_text(self, members: Sequence[tuple[int, int]]) -> str:
        """A unit's text: its sentences and, within one chunk, what the chunk puts between them (table labels)."""
        if len({ci for ci, _ in members}) == 1:
            ci = members[0][0]
            chunk = self.data.chunks[ci]
            return collapse(chunk.text[chunk.sentences[members[0][1]].start : chunk.sentences[members[-1][1]].end])
        return " ".join(self.text(c, k) for c, k in members)

    def is_heading(self, ci: int, j: int) -> bool:
        """Sentence j of chunk ci is the document title or one of the chunk's section headings."""

        return self.text(ci, j) in self._headings[ci]

    def _headings_of(self, ci: int) -> frozenset[str]:
        chunk = self.data.chunks[ci]
        return frozenset({collapse(chunk.title), *(collapse(p) for p in chunk.section.split(" > "))})

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


def trim(unit: Unit, question: QuestionInfo) -> str:
    """Cut a long unit down to the clauses that carry the answer: a contiguous, verbatim part of it.

    Trailing clauses that hold none of the question's words and no figure or date are dropped, and so are
    leading ones when they are long (a short opening is usually the subject: "Eurojust, the Union's
    agency ..."). Everything between the first and last useful clause stays. Lists are kept whole.
    """
    if unit.words <= LONG_UNIT_WORDS or len(unit.members) > 2 or "list" in question.wants:
        return unit.text  # lists (also inline: "(1) ...; (2) ...") and table rows are kept whole
    # Clause boundaries: sentence ends, semicolons, colons, commas and spaced dashes (kept with their clause).
    pieces = [p for p in re.split(r"(?<=[.;:,])\s+(?=\S)|\s+(?=[-–] )", unit.text) if p.strip()]
    wanted = set(question.terms)
    useful = [
        i for i, piece in enumerate(pieces) if wanted & set(content_terms(piece)) or _holds_value(question, piece)
    ]
    if not useful:
        return unit.text
    i, k = useful[0], useful[-1]
    if sum(len(p.split()) for p in pieces[:i]) < 12:
        i = 0
    if k < len(pieces) - 1 and sum(len(p.split()) for p in pieces[k + 1 :]) < 8:
        k = len(pieces) - 1  # a short tail is kept rather than cut mid-thought
    if i == 0 and k == len(pieces) - 1:
        return unit.text
    text = " ".join(pieces[i : k + 1]).rstrip(",;:- ")
    return ("… " if i > 0 else "") + text + (" …" if k < len(pieces) - 1 else "")


def _holds_value(question: QuestionInfo, text: str) -> bool:
    return question.typed and holds_asked_value(question, text)


def select(units: list[Unit], question: QuestionInfo, scorer: SentenceScorer) -> list[Unit]:
    """The best unit, plus up to two more that add what the question asks about and the first lacks."""
    if not units:
        return []
    chosen = [units[0]]
    covered = set(units[0].terms)
    typed = units[0].features.get("type_match", 0.0)
    total = _trimmed_words(units[0], question)
    limit = MAX_UNITS if question.parts > 1 or question.wants & {"list", "reason", "description"} else 2
    for unit in units[1:]:
        if len(chosen) >= limit or unit.score < FOLLOW_SHARE * chosen[0].score:
            break
        size = _trimmed_words(unit, question)
        if total + size > MAX_WORDS:
            continue
        if any(unit.overlaps(c) or _near_duplicate(unit, c, scorer) for c in chosen):
            continue
        new_terms = {t for t in question.terms if t in unit.terms and t not in covered}
        adds_terms = scorer.coverage(question, new_terms) >= NEW_TERMS
        adds_type = typed < 1.0 and unit.features.get("type_match", 0.0) > typed
        if REQUIRE_NEW and not (adds_terms or adds_type):
            continue
        chosen.append(unit)
        covered |= unit.terms
        typed = max(typed, unit.features.get("type_match", 0.0))
        total += size
    return sorted(chosen, key=lambda u: (u.hit.chunk.doc, u.members)) if _same_passage(chosen) else chosen


def _same_passage(units: Sequence[Unit]) -> bool:
    return len({u.chunk_index for u in units}) == 1


def _trimmed_words(unit: Unit, question: QuestionInfo) -> int:
    return len(words(trim(unit, question)))


def _near_duplicate(a: Unit, b: Unit, scorer: SentenceScorer) -> bool:
    if not a.terms or not b.terms:
        return False
    if len(a.terms & b.terms) / len(a.terms | b.terms) >= 0.6:
        return True
    return float(scorer.vector(a) @ scorer.vector(b)) >= NEAR_DUPLICATE
