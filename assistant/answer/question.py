"""What a question asks for, read from its spaCy parse: the answer type, the focus and the constraints.

- answer type: figure, money, percent, date, person, org, place, list, reason, description, yesno;
- focus: the head noun asked about ("how many *persons*", "which *host city*", "what *budget*");
- constraints: what the answer must be about: names, figures and years in the question ("of MIRAMI",
  "in 2023", "under the voluntary solidarity mechanism").

What stays hand-written is the small closed vocabulary of English question words and of nouns that name a
kind of answer ("year", "city", "agency", "budget"): a learned model would need far more questions than the
gold has to find these, and they do not change with the corpus.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from assistant.answer.text import QUESTION_NOISE, YEAR, collapse, content_terms, numbers, stem
from assistant.nlp import pipeline

# Nouns that say which kind of value a "what/which X" question wants.
_DATE_NOUNS = {"date", "year", "day", "month", "time", "period", "deadline", "week", "when", "timeline", "slot"}
_PLACE_NOUNS = {"city", "place", "location", "venue", "town", "capital", "region", "country", "where", "port"}
_ORG_NOUNS = {"organisation", "organization", "agency", "body", "institution", "partner", "ngo", "company",
              "authority", "entity", "ministry", "office", "directorate", "service", "who"}  # fmt: skip
_PERSON_NOUNS = {"person", "official", "minister", "commissioner", "speaker", "moderator", "chair", "director"}
_MONEY_NOUNS = {"budget", "funding", "cost", "money", "amount", "fund", "financing", "sum", "allocation", "price"}
_PERCENT_NOUNS = {"percentage", "share", "proportion", "rate", "percent"}
_FIGURE_NOUNS = {"number", "figure", "total", "count", "anniversary", "round", "edition"}
_REASON_NOUNS = {"reason", "purpose", "aim", "objective", "goal", "rationale", "why", "motivation"}
_ORDINAL_NOUNS = {"anniversary", "round", "edition", "meeting", "report"}


@dataclass(frozen=True, slots=True)
class QuestionInfo:
    text: str
    wants: frozenset[str]  # answer types (see the module docstring)
    terms: tuple[str, ...]  # stemmed content words
    numbers: frozenset[str]  # figures in the question itself (never evidence of an answer)
    pins_time: bool  # names a date or period, so older figures are not "superseded"
    ordinal: bool = False  # "which anniversary / which round": an ordinal ("third") is the figure
    years: frozenset[str] = frozenset()  # years the question names ("the 2026-2027 Plan")
    focus: tuple[str, ...] = ()  # lemmas of the noun(s) asked about
    events: tuple[str, ...] = ()  # lemmas of the question's main verbs ("adopt", "deliver")
    constraints: tuple[str, ...] = ()  # stemmed words of names, figures and years the answer must be about
    constraint_names: tuple[str, ...] = ()  # the same as written, for "the documents mention X but ..."
    proper_names: tuple[str, ...] = ()  # names of things asked about (no dates, figures or nationalities)
    parts: int = 1  # how many things it asks ("when ..., and where?")

    @property
    def typed(self) -> bool:
        """It asks for a value of a definite type (a figure, a date, a name, a place)."""
        return bool(self.wants & {"figure", "money", "percent", "date", "person", "org", "place"})

    @property
    def focus_terms(self) -> set[str]:
        return {stem(f) for f in self.focus}


@lru_cache(maxsize=8)
def _parse(text: str) -> Any:
    """The question's parse, read but never changed: a question with a history is parsed by `is_follow_up` and
    then, unchanged when it stands alone, by `analyse`; the second parse of the same text is this cache's."""
    return pipeline()(text)


def analyse(question: str) -> QuestionInfo:
    """Parse `question` and read off its answer type, focus and constraints."""
    text = collapse(question)
    doc = _parse(text)
    wants: set[str] = set()
    focus: list[str] = []
    ordinal = False
    parts = 0
    for token in doc:
        lower = token.lower_
        if token.tag_ not in ("WDT", "WP", "WP$", "WRB") and lower not in ("how", "what", "which", "who", "when"):
            continue
        if not _opens_clause(token):
            continue  # "... when it comes to", "decides which Member State ...": not what is asked
        parts += 1
        head_noun = _asked_noun(token)
        if head_noun is not None:
            focus.append(head_noun.lemma_.lower())
        if lower == "how":
            nxt = doc[token.i + 1] if token.i + 1 < len(doc) else None
            if nxt is not None and nxt.lower_ in ("many", "much", "long", "often", "big", "large", "far", "high"):
                wants.add("figure")
                noun = _asked_noun(nxt)
                if noun is not None:
                    focus.append(noun.lemma_.lower())
                if nxt.lower_ == "much" or (noun is not None and noun.lemma_.lower() in _MONEY_NOUNS):
                    wants.add("money")
            else:
                wants.add("description")
        elif lower == "when":
            wants.add("date")
        elif lower == "where":
            wants.add("place")
        elif lower in ("who", "whom", "whose"):
            wants.update({"person", "org"})
        elif lower == "why":
            wants.add("reason")
        elif head_noun is not None:  # what / which + noun
            wants.update(_noun_type(head_noun))
            ordinal = ordinal or (lower == "which" and head_noun.lemma_.lower() in _ORDINAL_NOUNS)
        elif (subject := _copula_noun(token)) is not None:  # "what were the main outcomes"
            focus.append(subject.lemma_.lower())
            wants.update(_noun_type(subject))
        else:  # "what does X do"
            wants.add("description")
    if not focus and wants & {"date", "place", "person", "org"}:
        # "When was the agreement signed?": what the date is about is the clause's subject or object.
        focus = [t.lemma_.lower() for t in doc if t.dep_ in ("nsubj", "nsubjpass", "dobj") and t.pos_ == "NOUN"]
    if not parts and len(doc) and doc[0].pos_ == "AUX":
        wants.add("yesno")
        parts = 1
    for token in doc:  # "for what purpose", "the aim of"
        if token.lemma_.lower() in _REASON_NOUNS and token.i < 6:
            wants.add("reason")
    terms = tuple(dict.fromkeys(content_terms(text, extra_stop=QUESTION_NOISE)))
    constraints, names = _constraints(doc, set(focus))
    years = frozenset(YEAR.findall(text))
    events = tuple(dict.fromkeys(t.lemma_.lower() for t in doc if t.pos_ == "VERB" and t.lemma_.lower() != "do"))
    return QuestionInfo(
        text=text,
        wants=frozenset(wants or {"description"}),
        terms=terms,
        numbers=frozenset(numbers(text)),
        pins_time=any(e.label_ == "DATE" for e in doc.ents) or bool(years),
        ordinal=ordinal,
        years=years,
        focus=tuple(dict.fromkeys(focus)),
        events=events,
        constraints=constraints,
        constraint_names=names,
        proper_names=_proper_names(doc),
        parts=max(1, parts),
    )


def _opens_clause(token: Any) -> bool:
    """A question word that opens the question or a coordinated clause ("..., and where?")."""
    i = token.i
    doc = token.doc
    while (i > 0 and doc[i - 1].pos_ == "ADP") or (i > 1 and doc[i - 1].lower_ == "of" and doc[i - 2].pos_ == "ADV"):
        i -= 1 if doc[i - 1].pos_ == "ADP" else 2  # "In which", "From when", "Ahead of which"
    return i == 0 or doc[i - 1].lower_ in ("and", "or", ",", ";", "but", "-", "–") or doc[i - 1].pos_ == "ADV"


def _copula_noun(token: Any) -> Any:
    """'What were the main outcomes': the noun the copula links to the question word."""
    if token.lower_ not in ("what", "which") or token.head.lemma_ != "be":
        return None
    for child in token.head.children:
        if child.i != token.i and child.dep_ in ("nsubj", "attr") and child.pos_ == "NOUN":
            return child
    return None


def _asked_noun(token: Any) -> Any:
    """The noun a question word determines or quantifies: 'which *countries*', 'how many *persons*'.

    Read from the words that follow (the noun phrase's last noun) rather than from the dependency arcs:
    the small English model often attaches "which" in "In which city ..." to the preposition.
    """
    doc = token.doc
    last = None
    for follower in doc[token.i + 1 : token.i + 6]:
        if follower.pos_ in ("NOUN", "PROPN"):
            last = follower
        elif follower.pos_ in ("ADJ", "NUM") or follower.tag_ == "HYPH" or follower.lower_ in ("many", "much"):
            if last is not None:
                break
        else:
            break
    if last is not None and last.pos_ == "NOUN":
        return last
    return last if last is not None and token.lower_ in ("which", "what", "whose", "many", "much") else None


def _noun_type(noun: Any) -> set[str]:
    lemma = noun.lemma_.lower()
    compound = {c.lemma_.lower() for c in noun.children if c.dep_ == "compound"}
    words = {lemma} | compound
    for vocabulary, kind in (
        (_DATE_NOUNS, {"date"}),
        (_PLACE_NOUNS, {"place"}),
        (_PERSON_NOUNS, {"person"}),
        (_ORG_NOUNS, {"org"}),
        (_MONEY_NOUNS, {"figure", "money"}),
        (_PERCENT_NOUNS, {"figure", "percent"}),
        (_FIGURE_NOUNS, {"figure"}),
        (_REASON_NOUNS, {"reason"}),
    ):
        if words & vocabulary:
            return kind | ({"list"} if noun.tag_ == "NNS" else set())
    return {"list"} if noun.tag_ in ("NNS", "NNPS") else {"description"}


_NAME_LABELS = frozenset({"PERSON", "ORG", "GPE", "LOC", "FAC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW"})


def _proper_names(doc: Any) -> tuple[str, ...]:
    """Names of things (organisations, places, people, projects) the question is about, as written."""
    names = [e.text for e in doc.ents if e.label_ in _NAME_LABELS]
    taken = {i for e in doc.ents for i in range(e.start, e.end)}
    names += [t.text for t in doc if t.i not in taken and t.pos_ == "PROPN" and t.i > 0]
    return tuple(dict.fromkeys(n for n in names if content_terms(n)))


def _constraints(doc: Any, focus: set[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Names, figures and years the answer must be about (stemmed), and the names as written."""
    spans: list[Any] = [e for e in doc.ents if e.label_ not in ("ORDINAL",)]
    taken = {i for e in spans for i in range(e.start, e.end)}
    for token in doc:  # acronyms and proper nouns the entity recogniser missed ("MIRAMI", "EASTEAMS")
        if token.i not in taken and token.pos_ == "PROPN" and token.i > 0:
            spans.append(doc[token.i : token.i + 1])
    terms: list[str] = []
    names: list[str] = []
    for span in sorted(spans, key=lambda s: s.start):
        words = [t for t in content_terms(span.text) if t not in {stem(f) for f in focus}]
        if words and span.text.lower() not in ("eu", "the eu", "european union", "member states"):
            terms.extend(words)
            names.append(span.text)
    return tuple(dict.fromkeys(terms)), tuple(dict.fromkeys(names))


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
    """It leans on the conversation: opens with a conjunction, refers back with a pronoun, or says too little."""
    doc = _parse(collapse(question))
    if len(doc) and (doc[0].pos_ == "CCONJ" or doc[0].lower_ in ("also", "then", "so")):
        return True
    for token in doc:
        if token.pos_ == "PRON" and token.lower_ not in ("what", "which", "who", "whom", "whose", "i", "you", "we"):
            return True
        if token.dep_ == "det" and token.lower_ in ("that", "this", "these", "those", "its", "their"):
            return True
        if token.lower_ in ("there", "latter", "former") and token.dep_ != "expl":
            return True
    return len(content_terms(question, extra_stop=QUESTION_NOISE)) <= 2


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
    carried = [w for w in last.split() if (t := content_terms(w, extra_stop=QUESTION_NOISE)) and t[0] not in own]
    if not carried:
        return collapse(question)
    cleaned = [w.strip("?,.;:!\"'()") for w in carried]
    return collapse(f"{question} ({' '.join(dict.fromkeys(w for w in cleaned if w))})")
