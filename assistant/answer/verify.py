"""Does a cited passage support a sentence? The check every answer passes before anyone sees it.

No NLI or cross-encoder weights are available offline, so support is judged from three signals that a
reader would also use: the sentence's content words appear in the passage, every figure and date in the
sentence appears in the passage, and the sentence means something close to one of the passage's sentences
(embedding similarity). Written by hand because it is the product's own contract.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from assistant.answer.text import MONTH, YEAR, content_terms, numbers

# Thresholds, calibrated on the dev gold's extractive answers (always supported) and on sentences paired
# with the wrong passage (see tests/test_answer_verify.py for the cases).
MIN_OVERLAP = 0.6  # share of the sentence's content words found in the passage, alone enough
MIN_OVERLAP_WITH_SIMILARITY = 0.35  # ... or this much overlap and a close paraphrase
MIN_SIMILARITY = 0.6

# The lookbehind lets a match start only where a whitespace run starts: the same matches as `\s*\[n\]`, but a
# long run of spaces is scanned once instead of once per space (quadratic on a hostile reply).
MARKER = re.compile(r"(?<!\s)\s*\[(\d{1,3})\]")
# Where a generated sentence ends: terminal punctuation with the markers after it, before whitespace or the
# end; or markers that close a line. Linear on any input: each alternative starts at most once per run
# (lookbehinds) and its runs are possessive, so nothing is rescanned.
_SENTENCE_END = re.compile(
    r"(?<=[^\s])[.!?](?:\s*+\[\d{1,3}\])*+(?=\s|$)|(?<![\s\]])(?:\s*+\[\d{1,3}\])++(?=[^\S\n]*+(?:\n|$))"
)
# Framing the answerer adds around a quoted sentence ("As of December 2024 (State of play): ... ").
_FRAME = re.compile(r"^(?:As of [^:]{1,80}:|Earlier \([^)]{1,80}\):)\s*")


@dataclass(frozen=True, slots=True)
class Support:
    supported: bool
    score: float  # 0..1
    overlap: float
    similarity: float | None
    missing: tuple[str, ...]  # figures or dates in the sentence that the passage lacks


def strip_frame(sentence: str) -> str:
    return _FRAME.sub("", sentence).replace("…", " ").strip()


def check_support(sentence: str, passage: str, similarity: float | None = None) -> Support:
    """Judge whether `passage` supports `sentence` (markers and answer framing ignored)."""
    body = strip_frame(MARKER.sub(" ", sentence))
    terms = content_terms(body)
    passage_terms = set(content_terms(passage))
    overlap = sum(t in passage_terms for t in terms) / len(terms) if terms else 0.0
    passage_numbers = numbers(passage)
    missing = [n for n in sorted(numbers(body)) if n not in passage_numbers]
    passage_lower = passage.lower()
    missing += [m.group() for m in MONTH.finditer(body) if m.group().lower()[:3] not in passage_lower]
    missing += [y for y in YEAR.findall(body) if y not in passage and y not in missing]
    if missing:
        supported = False
    elif overlap >= MIN_OVERLAP:
        supported = True
    else:
        supported = similarity is not None and overlap >= MIN_OVERLAP_WITH_SIMILARITY and similarity >= MIN_SIMILARITY
    sim = similarity if similarity is not None else overlap
    score = round(0.5 * overlap + 0.5 * max(0.0, sim), 4)
    return Support(supported, score, round(overlap, 4), similarity, tuple(dict.fromkeys(missing)))


def best_similarity(sentence_vector: np.ndarray | None, passage_vectors: np.ndarray | None) -> float | None:
    if sentence_vector is None or passage_vectors is None or not len(passage_vectors):
        return None
    return float(np.max(passage_vectors @ sentence_vector))


def split_answer(text: str) -> list[tuple[str, list[int]]]:
    """Split generated text into sentences, each with the [n] markers that follow or end it."""
    pieces: list[tuple[str, list[int]]] = []
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        chunk = text[pos : m.end()]
        pos = m.end()
        if chunk.strip():
            pieces.append((chunk.strip(), [int(n) for n in MARKER.findall(chunk)]))
    tail = text[pos:].strip()
    if tail:
        pieces.append((tail, [int(n) for n in MARKER.findall(tail)]))
    # Markers placed right after a sentence's full stop belong to that sentence, not the next one.
    merged: list[tuple[str, list[int]]] = []
    for sentence, markers in pieces:
        bare = MARKER.sub("", sentence).strip()
        if merged and not bare:
            prev, prev_markers = merged[-1]
            merged[-1] = (f"{prev} {sentence}", prev_markers + markers)
        else:
            merged.append((sentence, markers))
    return merged
