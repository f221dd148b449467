"""Retrieval metrics. Pure functions over normalised text and rank lists."""

from __future__ import annotations

import re
from collections.abc import Sequence

from assistant.ingest.markup import normalize_for_match

_WORD = re.compile(r"\w+")


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


def first_relevant_rank(texts: Sequence[str], evidence: Sequence[str]) -> int | None:
    """1-based rank of the first text containing any evidence quote, or None."""
    for rank, text in enumerate(texts, start=1):
        if any(evidence_in_text(e, text) for e in evidence):
            return rank
    return None


def recall_at(ranks: Sequence[int | None], k: int) -> float:
    """Share of questions whose first relevant hit is within the top k."""
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks) if ranks else 0.0


def mrr_at(ranks: Sequence[int | None], k: int) -> float:
    return sum(1.0 / r for r in ranks if r is not None and r <= k) / len(ranks) if ranks else 0.0
