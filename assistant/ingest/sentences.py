"""Sentence boundaries with character offsets.

Written by hand because the splitter must return offsets into our clean text (for verbatim quotes), must
know this domain's abbreviations ("No.", "Art.", "COM(2024) 126 final", "e.g.") and must be fast enough
to run over every document at index time; the offline-capable libraries either drop offsets or need
downloaded models.
"""

from __future__ import annotations

import re

_ABBREVIATIONS = {
    "art", "arts", "no", "nos", "nr", "para", "paras", "p", "pp", "vol", "ch", "sec", "fig", "ref", "cf", "vs",
    "etc", "e.g", "i.e", "eg", "ie", "mr", "mrs", "ms", "dr", "prof", "st", "jan", "feb", "mar", "apr", "jun",
    "jul", "aug", "sep", "sept", "oct", "nov", "dec", "approx", "incl", "excl", "min", "max", "doc", "docs",
    "op", "cit", "ibid", "et", "al", "govt", "dept", "co", "ltd", "inc", "corp", "u.s", "u.k", "mio", "bn",
}  # fmt: skip
# A candidate boundary: terminal punctuation (with closing quotes/brackets), then space, then something
# that can open a sentence. Linear time on any input: a match may only start where a run of terminal
# punctuation starts (the lookbehind) and the runs are possessive, so a megabyte of dots is one attempt, not
# one scan per dot (the old pattern took hours on that).
_BOUNDARY = re.compile(r"(?<![.!?…])[.!?…]++[\"'”’)\]]*+(?=\s+[\"'“‘(\[]?[A-Z0-9À-Ý])")
_WORD_BEFORE = re.compile(r"([\w.]+)$")


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Split text[start:end] into sentence spans (absolute offsets), trimmed of surrounding whitespace."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    cursor = start
    for m in _BOUNDARY.finditer(text, start, end):
        stop = m.end()
        if _is_abbreviation(text, cursor, m.start()):
            continue
        _append_trimmed(text, cursor, stop, spans)
        cursor = stop
    _append_trimmed(text, cursor, end, spans)
    return spans


def _is_abbreviation(text: str, sentence_start: int, dot: int) -> bool:
    if text[dot] != ".":
        return False
    m = _WORD_BEFORE.search(text, max(sentence_start, dot - 20), dot)
    if not m:
        return False
    word = m.group(1).lower().rstrip(".")
    if word in _ABBREVIATIONS:
        return True
    # Initials ("J. Smith") and enumerators at the start of an item ("1." "a.") are not sentence ends.
    if len(word) == 1 and word.isalpha():
        return True
    return bool(word.isdigit() and len(word) <= 2 and not text[sentence_start : m.start()].strip())


def _append_trimmed(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((start, end))
