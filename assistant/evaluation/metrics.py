"""Evaluation metrics: pure functions over strings, rank lists and flags (unit-tested on tables of cases).

Retrieval follows the usual IR definitions over the first relevant rank; answers follow SQuAD (token F1) and
our gold files' answer keys; citations follow ALCE's precision/recall, with the product's own support check
standing in for an NLI model (none ships offline); abstention follows SQuAD 2.0's split into unanswerable and
answerable questions.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from assistant.ingest.markup import normalize_for_match

_WORD = re.compile(r"\w+")
_MARKER = re.compile(r"\[(\d{1,3})\]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-", "\u00a0": " "})


# --- retrieval -------------------------------------------------------------------------------------------


def evidence_in_text(evidence: str, text: str, *, min_share: float = 0.6, min_run: int = 5) -> bool:
    """True when `text` contains the evidence quote (markup and whitespace normalised), or, for a quote that
    crosses a chunk boundary, at least `min_share` of its words including a run of `min_run` in a row."""
    quote = normalize_for_match(evidence).lower()
    haystack = normalize_for_match(text).lower()
    if quote in haystack:
        return True
    words = _WORD.findall(quote)
    if len(words) < min_run:
        return False
    have = set(_WORD.findall(haystack))
    if sum(w in have for w in words) / len(words) < min_share:
        return False
    flat = " ".join(_WORD.findall(haystack))
    return any(" ".join(words[i : i + min_run]) in flat for i in range(len(words) - min_run + 1))


def relevance(texts: Sequence[str], evidence: Sequence[str]) -> list[bool]:
    """For each retrieved text, whether it contains any of the evidence quotes."""
    return [any(evidence_in_text(e, text) for e in evidence) for text in texts]


def first_relevant_rank(texts: Sequence[str], evidence: Sequence[str]) -> int | None:
    """1-based rank of the first text containing any evidence quote, or None."""
    return next((rank for rank, hit in enumerate(relevance(texts, evidence), start=1) if hit), None)


def recall_at(ranks: Sequence[int | None], k: int) -> float:
    """Share of questions whose first relevant hit is within the top k."""
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks) if ranks else 0.0


def mrr_at(ranks: Sequence[int | None], k: int) -> float:
    """Mean reciprocal rank of the first relevant hit, counting 0 beyond rank k."""
    return sum(1.0 / r for r in ranks if r is not None and r <= k) / len(ranks) if ranks else 0.0


def ndcg_at(relevant: Sequence[bool], k: int) -> float:
    """Binary nDCG@k of one ranked list.

    The gold marks quotes, not chunks, so the number of relevant chunks is unknown; the ideal ranking puts the
    relevant chunks this list retrieved (at least one) first. A list with nothing relevant scores 0.
    """
    top = list(relevant[:k])
    dcg = sum(1.0 / math.log2(i + 2) for i, hit in enumerate(top) if hit)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(max(1, sum(top))))
    return dcg / ideal


def mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100, linear interpolation); 0.0 for no values."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else 0.0


# --- answers ---------------------------------------------------------------------------------------------


def strip_markers(text: str) -> str:
    return " ".join(_MARKER.sub(" ", text).split())


def _comparable(text: str) -> str:
    return " ".join(normalize_for_match(strip_markers(text)).translate(_QUOTES).casefold().split())


def keys_found(answer: str, keys: Sequence[str]) -> list[str]:
    """The answer keys present in the answer (case-insensitive; markers, markup, quote styles and spacing
    normalised)."""
    text = _comparable(answer)
    return [key for key in keys if _comparable(key) in text]


def answer_words(text: str) -> int:
    """Words of an answer: whitespace-separated tokens holding a letter or digit, [n] markers excluded."""
    return sum(1 for t in _MARKER.sub(" ", text).split() if re.search(r"\w", t))


def _squad_tokens(text: str) -> list[str]:
    text = strip_markers(text).lower()
    text = "".join(ch for ch in text if ch not in string.punctuation)
    return _ARTICLES.sub(" ", text).split()


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1: lower-cased, punctuation and articles removed, [n] markers ignored."""
    pred, ref = _squad_tokens(prediction), _squad_tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


# --- citations -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CitationScore:
    """ALCE-style citation counts for one answer."""

    sentences: int  # answer sentences
    supported_sentences: int  # sentences with at least one supporting citation
    citations: int  # (sentence, marker) pairs
    supporting_citations: int  # pairs whose passage supports the sentence
    out_of_range: int  # markers that point at no passage

    @property
    def precision(self) -> float:
        return self.supporting_citations / self.citations if self.citations else 0.0

    @property
    def recall(self) -> float:
        return self.supported_sentences / self.sentences if self.sentences else 0.0


def score_citations(
    sentences: Sequence[tuple[str, Sequence[int]]],
    passages: dict[int, str],
    supports: Callable[[str, str], bool],
) -> CitationScore:
    """Score an answer's citations.

    Args:
        sentences: (statement text, its [n] markers) in answer order (see `cited_statements`).
        passages: marker -> the text of the passage it cites.
        supports: supports(sentence, passage) -> whether the passage backs the sentence.

    A sentence without markers counts against recall; a marker with no passage counts against precision.
    """
    supported_sentences = citations = supporting = out_of_range = 0
    for sentence, markers in sentences:
        backed = False
        for marker in markers:
            citations += 1
            passage = passages.get(marker)
            if passage is None:
                out_of_range += 1
            elif supports(sentence, passage):
                supporting += 1
                backed = True
        supported_sentences += backed
    return CitationScore(len(sentences), supported_sentences, citations, supporting, out_of_range)


_STATEMENT = re.compile(r"(.*?)((?:\s*\[\d{1,3}\])+)", re.S)


def cited_statements(text: str) -> list[tuple[str, list[int]]]:
    """Split an answer into statements, each the text up to a group of [n] markers, with those markers.

    Splitting at markers rather than at full stops judges a quoted passage of several sentences with one
    marker as one claim (as a reader would), and needs no sentence splitter, so abbreviations and numbered
    items cannot break a claim apart. Text after the last marker is a statement without citations.
    """
    statements: list[tuple[str, list[int]]] = []
    end = 0
    for match in _STATEMENT.finditer(text):
        body = " ".join(match.group(1).split())
        markers = [int(n) for n in _MARKER.findall(match.group(2))]
        if body:
            statements.append((body, markers))
        elif statements:  # markers directly after markers: they cite the same statement
            statements[-1][1].extend(markers)
        end = match.end()
    tail = " ".join(text[end:].split())
    if re.search(r"\w", tail):
        statements.append((tail, []))
    return statements


def is_verbatim(quote: str, source: str) -> bool:
    """Whether the quote appears word for word in the source (markup and whitespace normalised)."""
    return bool(quote.strip()) and normalize_for_match(quote) in normalize_for_match(source)


# --- abstention ------------------------------------------------------------------------------------------


def abstention_rates(abstained: Sequence[bool], answerable: Sequence[bool]) -> tuple[float, float]:
    """(abstain rate on unanswerable questions, false-abstain rate on answerable ones), SQuAD 2.0-style."""
    noans = [a for a, has in zip(abstained, answerable, strict=True) if not has]
    hasans = [a for a, has in zip(abstained, answerable, strict=True) if has]
    return mean([float(a) for a in noans]), mean([float(a) for a in hasans])
