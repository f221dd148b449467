"""Words, figures and dates in questions and sentences: the small text analysis answering needs.

Written by hand because it is specific to this product: the support check and the sentence scorer must
agree exactly on what counts as a content word, a figure ("6 012", "1,141", "EUR 52.1 million") and a date.
"""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer

WORD = re.compile(r"[A-Za-zÀ-ÿ][A-Za-zÀ-ÿ'’-]*|\d+(?:[.,]\d+)*")
# A figure: digit groups joined by a thin/normal space or comma ("6 012", "200 000", "1,141"), or plain digits.
NUMBER = re.compile(r"(?<![\d.,])\d{1,3}(?:[,\u00a0\u202f ]\d{3}(?!\d))+(?:\.\d+)?|(?<![\d.])\d+(?:\.\d+)?")
NUMBER_WORDS = {
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "twenty", "thirty", "forty", "fifty", "hundred", "thousand", "million", "billion", "dozen",
    "half", "double", "doubled", "twice",
}  # fmt: skip
# Ordinals answer "which anniversary / which round" but are too common ("the first EU-wide ...") to count
# as a figure otherwise.
ORDINALS = {"first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"}
MONTHS = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december",
)  # fmt: skip
MONTH = re.compile(
    r"\b(?:" + "|".join(m.capitalize() for m in MONTHS) + r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec)\b"
)
YEAR = re.compile(r"\b(?:19|20)\d{2}\b")
NUMERIC_DATE = re.compile(r"\b\d{1,2}[/.]\d{1,2}[/.](?:19|20)?\d{2}\b")
TIME_RANGE = re.compile(r"\b\d{1,2}[:.]\d{2}\s*[-–]\s*\d{1,2}[:.]\d{2}\b")
ACRONYM = re.compile(r"\b[A-Z][A-Z0-9]{1,}[a-z]?\b")
CAPITALISED = re.compile(r"\b[A-Z][a-zà-ÿ]+(?:[ -][A-Z][a-zà-ÿ]+)*\b")

STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "s",
        "t",
        "don",
        "isn",
        "aren",
        "wasn",
        "weren",
        "many",
        "much",
        "did",
        "does",
        "what's",
        "whats",
        "which's",
    ]
)
# Question words that name what is asked, not what the passage talks about.
QUESTION_NOISE = frozenset(
    [
        "main",
        "roughly",
        "approximately",
        "exactly",
        "actually",
        "currently",
        "new",
        "number",
        "amount",
        "total",
        "kind",
        "sort",
        "type",
        "one",
        "ones",
        "say",
        "said",
        "mention",
        "mentioned",
        "list",
        "listed",
        "give",
        "given",
        "according",
        "document",
        "documents",
    ]
)

_stemmer = Stemmer.Stemmer("english")


def words(text: str) -> list[str]:
    return [w.lower().strip("'’-") for w in WORD.findall(text)]


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    return str(_stemmer.stemWord(word))


def content_terms(text: str, *, extra_stop: frozenset[str] = frozenset()) -> list[str]:
    """Stemmed words that carry meaning (stop words and bare punctuation removed), in order."""
    out = []
    # "third-country" must meet "third countries": hyphenated words count as their parts.
    for w in (part for word in words(text) for part in (word.split("-") if not word[:1].isdigit() else [word])):
        if not w or w in STOPWORDS or w in extra_stop:
            continue
        if w[0].isdigit():
            out.append(normalise_number(w))
        else:
            out.append(stem(w.replace("’", "'").split("'")[0]))
    return out


def normalise_number(raw: str) -> str:
    """'6 012' -> '6012', '1,141' -> '1141', '52.1' -> '52.1', '06' -> '6'."""
    text = re.sub(r"[,\u00a0\u202f ](?=\d{3}(?!\d))", "", raw)
    if "." in text:
        head, _, tail = text.partition(".")
        return (head.lstrip("0") or "0") + "." + tail
    return text.lstrip("0") or "0"


def numbers(text: str) -> set[str]:
    """Every figure in `text`, normalised (so '6 012' in one place matches '6012' in another)."""
    return {normalise_number(m.group()) for m in NUMBER.finditer(text)}


def has_figure(text: str, exclude: set[str] | frozenset[str] = frozenset(), *, ordinals: bool = False) -> bool:
    """A figure other than those in `exclude` (the question's own), a year alone not counting."""
    for n in numbers(text) - exclude:
        if not (len(n) == 4 and n[:2] in ("19", "20")):
            return True
    vocabulary = NUMBER_WORDS | ORDINALS if ordinals else NUMBER_WORDS
    return any(part in vocabulary for w in words(text) for part in w.split("-"))


def has_date(text: str, exclude: set[str] | frozenset[str] = frozenset()) -> bool:
    if MONTH.search(text) or NUMERIC_DATE.search(text) or TIME_RANGE.search(text):
        return True
    return any(y not in exclude for y in YEAR.findall(text))


def names(text: str) -> set[str]:
    """Acronyms and capitalised names, the first word of the text excepted."""
    found = {m.group() for m in ACRONYM.finditer(text)}
    for m in CAPITALISED.finditer(text):
        if m.start() == 0 and " " not in m.group():
            continue
        if m.group().lower() not in STOPWORDS:
            found.add(m.group())
    return found


def collapse(text: str) -> str:
    return " ".join(text.split())
