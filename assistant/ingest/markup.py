"""Markup removal that remembers where every kept character came from.

The corpus files are PDF conversions mixing markdown (#, **, *, ---, bullets) with HTML fragments
(<ul><li>, <b>, <p>, <sup>, <i>, entities). Citations must quote the exact source words, so instead of
a lossy HTML-to-text pass we delete markup character by character and keep, for each kept character,
its offset in the raw file. Line breaks and tabs survive, so the structure parser can still see lines
and table cells; block tags (<p>, <li>, <br>) and bullet glyphs are recorded as item breaks.
"""

from __future__ import annotations

import bisect
import html
import re
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

# Only real tag names: "<5 years" or "<https://...>" are text, not markup.
_TAG_NAMES = (
    "a|abbr|article|aside|b|blockquote|body|br|caption|center|code|dd|div|dl|dt|em|figcaption|figure|font|"
    "footer|h[1-6]|header|hr|html|i|img|li|main|mark|nav|ol|p|pre|s|section|small|span|strike|strong|"
    "sub|sup|table|tbody|td|tfoot|th|thead|tr|u|ul"
)
_BLOCK_TAGS = {"article", "aside", "blockquote", "body", "br", "dd", "div", "dl", "dt", "figure", "footer",
               "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "html", "li", "main", "nav", "ol", "p", "pre",
               "section", "table", "tbody", "td", "th", "thead", "tr", "ul"}  # fmt: skip
_TOKEN = re.compile(
    rf"(?P<tag></?(?P<name>{_TAG_NAMES})\b[^<>]*>)"
    r"|(?P<entity>&(?:[a-zA-Z]{2,8}|#\d{1,6}|#x[0-9a-fA-F]{1,6});)"
    r"|(?P<strong>\*\*|__)"
    r"|(?P<em>(?<![\w*])\*(?=\S)|(?<=\S)\*(?![\w*]))",
    re.IGNORECASE,
)
# Bullet glyphs used by the converters; never content.
BULLETS = "✓➤○•▪►◦●■□–·"
_ITEM_START = re.compile(rf"[ \t]*(?:[-*](?=[ \t])|[{BULLETS}])?[ \t]*(?:[{BULLETS}][ \t]*)?")
_HEADING = re.compile(r"[ \t]*(#{1,6})[ \t]+")
_RULE = re.compile(r"[ \t]*(?:-{3,}|\*{3,}|_{3,})[ \t]*$")


class OffsetMap(Sequence[int]):
    """Raw offset of every clean character, stored as runs rather than one integer per character.

    A run is a stretch of clean text copied verbatim from the raw text (step 1: offsets climb by one) or
    emitted in place of markup (step 0: an entity's character, a block tag's space, all at one raw offset).
    A list of ints took about 40 bytes per character of text, the largest structure of a whole-file
    ingestion; runs take 17 bytes per piece of markup. Offsets never decrease, so `bisect` works on it.
    """

    __slots__ = ("_length", "_raws", "_starts", "_steps")

    def __init__(self) -> None:
        self._starts = array("q")  # clean offset where each run begins
        self._raws = array("q")  # raw offset of that first character
        self._steps = bytearray()  # 1: verbatim copy, 0: emitted characters
        self._length = 0

    def _add(self, clean: int, raw: int, step: int, length: int) -> None:
        if self._starts:
            last_clean, last_raw, last_step = self._starts[-1], self._raws[-1], self._steps[-1]
            if step == last_step and raw == last_raw + (clean - last_clean) * step:
                self._length = clean + length  # continues the last run
                return
        self._starts.append(clean)
        self._raws.append(raw)
        self._steps.append(step)
        self._length = clean + length

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> list[int]: ...
    def __getitem__(self, index: int | slice) -> int | list[int]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError("clean offset out of range")
        k = bisect.bisect_right(self._starts, index) - 1
        return self._raws[k] + (index - self._starts[k]) * self._steps[k]

    def __iter__(self) -> Iterator[int]:
        bounds = [*self._starts[1:], self._length]
        for start, stop, raw, step in zip(self._starts, bounds, self._raws, self._steps, strict=True):
            for i in range(stop - start):
                yield raw + i * step


@dataclass
class Cleaned:
    """Clean text plus provenance: `offsets[i]` is the raw offset of `text[i]`."""

    text: str
    offsets: OffsetMap
    breaks: set[int] = field(default_factory=set)  # clean offsets where a new item (li, p, bullet) begins
    headings: dict[int, int] = field(default_factory=dict)  # clean offset of a line start -> heading level
    strong: list[tuple[int, int]] = field(default_factory=list)  # clean spans that were bold
    bullets: set[int] = field(default_factory=set)  # clean offsets of line/item starts that had a bullet
    _sorted: dict[str, list[int]] = field(default_factory=dict, repr=False, compare=False)

    # The structure parser asks, for every paragraph, which breaks fall inside it. Scanning every break per
    # paragraph made ingestion quadratic in file size; these answer from sorted copies by bisection. They are
    # built on first use, after strip_markup has finished filling the sets.
    def breaks_in(self, start: int, end: int) -> list[int]:
        """Item breaks b with start < b < end, in order."""
        return self._between("breaks", start, end)

    def marks_in(self, start: int, end: int) -> list[int]:
        """Item breaks and bullet positions b with start < b < end, in order."""
        return self._between("marks", start, end)

    def strong_in(self, start: int, end: int) -> list[tuple[int, int]]:
        """Bold spans that overlap [start, end) (bold spans never overlap each other)."""
        if "strong" not in self._sorted:
            self.strong.sort()
            self._sorted["strong"] = [e for _, e in self.strong]
        ends = self._sorted["strong"]
        out = []
        for i in range(bisect.bisect_right(ends, start), len(ends)):
            if self.strong[i][0] >= end:
                break
            out.append(self.strong[i])
        return out

    def _between(self, name: str, start: int, end: int) -> list[int]:
        if name not in self._sorted:
            self._sorted[name] = sorted(self.breaks if name == "breaks" else self.breaks | self.bullets)
        values = self._sorted[name]
        return values[bisect.bisect_right(values, start) : bisect.bisect_left(values, end)]


class _Writer:
    """Builds the clean text from slices of the raw text (not character by character) and its offset map."""

    def __init__(self, raw: str) -> None:
        self.raw = raw
        self.pieces: list[str] = []
        self.offsets = OffsetMap()
        self.length = 0
        self._from = self._to = 0  # raw[_from:_to] is copied but not yet cut out as a piece

    def copy(self, start: int, end: int) -> None:
        """Keep raw[start:end] verbatim."""
        if start >= end:
            return
        if start != self._to:
            self._cut()
            self._from = start
        self._to = end
        self.offsets._add(self.length, start, 1, end - start)
        self.length += end - start

    def emit(self, text: str, raw_pos: int) -> None:
        """Put `text` (a decoded entity, a space for a tag) in place of the markup at raw_pos."""
        if not text:
            return
        self._cut()
        self.pieces.append(text)
        self.offsets._add(self.length, raw_pos, 0, len(text))
        self.length += len(text)

    def _cut(self) -> None:
        if self._to > self._from:
            self.pieces.append(self.raw[self._from : self._to])
        self._from = self._to = 0

    def text(self) -> str:
        self._cut()
        text = "".join(self.pieces)
        self.pieces = []
        return text


def strip_markup(raw: str) -> Cleaned:
    """Remove markdown/HTML markup from `raw`, keeping line structure and a raw-offset map."""
    out = _Writer(raw)
    result = Cleaned("", out.offsets)
    bold_open: int | None = None
    for line_start, line in _lines(raw):
        if _RULE.match(line):
            if line.endswith("\n"):
                out.emit("\n", line_start + len(line) - 1)
            continue
        pos = 0
        heading = _HEADING.match(line)
        if heading:
            result.headings[out.length] = len(heading.group(1))
            pos = heading.end()
        pos = _skip_item_start(line, pos, result, out.length)
        for m in _TOKEN.finditer(line, pos):
            if m.start() < pos:
                continue
            _emit_text(out, line, pos, m.start(), line_start, result)
            pos = m.end()
            if m.group("tag"):
                name = m.group("name").lower()
                closing = m.group("tag").startswith("</")
                if name in ("b", "strong"):
                    bold_open = _toggle_bold(result, bold_open, out.length, closing)
                if name in _BLOCK_TAGS:
                    # A block boundary separates words; a new item starts after opening li/p/br.
                    out.emit(" ", line_start + m.start())
                    if not closing and name in ("li", "p", "br", "div", "h1", "h2", "h3", "h4", "h5", "h6"):
                        pos = _skip_item_start(line, pos, result, out.length)
                        result.breaks.add(out.length)
            elif m.group("entity"):
                out.emit(html.unescape(m.group("entity")), line_start + m.start())
            elif m.group("strong"):
                bold_open = _toggle_bold(result, bold_open, out.length, bold_open is not None)
            # single-* emphasis markers are simply dropped
        _emit_text(out, line, pos, len(line), line_start, result)
    result.text = out.text()
    return result


# The line ends of str.splitlines, which the parser has always used.
_LINE_END = re.compile("\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def _lines(raw: str) -> Iterator[tuple[int, str]]:
    """(raw offset, line with its line end) as `raw.splitlines(keepends=True)` cuts them, one at a time."""
    start = 0
    for m in _LINE_END.finditer(raw):
        yield start, raw[start : m.end()]
        start = m.end()
    if start < len(raw):
        yield start, raw[start:]


def _skip_item_start(line: str, pos: int, result: Cleaned, clean_pos: int) -> int:
    m = _ITEM_START.match(line, pos)
    if m and m.group(0).strip():
        result.bullets.add(clean_pos)
        result.breaks.add(clean_pos)
        return m.end()
    return pos


def _toggle_bold(result: Cleaned, bold_open: int | None, at: int, closing: bool) -> int | None:
    if bold_open is None and not closing:
        return at
    if bold_open is not None:
        result.strong.append((bold_open, at))
    return None


_BULLET_GLYPH = re.compile(f"[{BULLETS}]")


def _emit_text(out: _Writer, line: str, start: int, end: int, line_start: int, result: Cleaned) -> None:
    pos = start
    for m in _BULLET_GLYPH.finditer(line, start, end):
        i = m.start()
        if (i + 1 >= len(line) or line[i + 1] in " \t") and (i == 0 or line[i - 1] in " \t"):
            # A bullet glyph inside a line (➤ item ➤ item) starts a new item; the glyph itself is dropped.
            out.copy(line_start + pos, line_start + i)
            result.breaks.add(out.length)
            result.bullets.add(out.length)
            pos = i + 1
    out.copy(line_start + pos, line_start + end)


_WS = re.compile(r"\s+")
_MATCH_MARKUP = re.compile(
    rf"</?(?:{_TAG_NAMES})\b[^<>]*>|\*\*|__|(?<![\w*])\*(?=\S)|(?<=\S)\*(?![\w*])|^[ \t]*#{{1,6}}[ \t]+"
    rf"|^[ \t]*(?:-{{3,}}|\*{{3,}}|_{{3,}})[ \t]*$|(?:(?<=\s)|^)(?:[{BULLETS}]|[-*])(?=\s)",
    re.IGNORECASE | re.MULTILINE,
)


_INLINE_SCRIPT = re.compile(r"</?(?:sup|sub)\b[^<>]*>", re.IGNORECASE)
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?)\]])")
_SPACE_AFTER_BRACKET = re.compile(r"([(\[])\s+")


def normalize_for_match(text: str) -> str:
    """Canonical form for comparing quotes with sources: markup dropped, entities decoded, whitespace collapsed.

    The same function normalises both sides (a citation quote and its document, an evidence quote and a
    chunk), so a quote counts as verbatim exactly when its words appear in that order in the source.
    """
    text = _INLINE_SCRIPT.sub("", text)  # "23<sup>rd</sup>" reads "23rd"
    text = _MATCH_MARKUP.sub(" ", text)
    text = html.unescape(text)
    text = _WS.sub(" ", text).strip()
    # A dropped tag leaves a space ("<b>Directive</b>, first"): spacing around punctuation is not wording.
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    return _SPACE_AFTER_BRACKET.sub(r"\1", text)


def collapse_ws(text: str) -> str:
    return _WS.sub(" ", text).strip()
