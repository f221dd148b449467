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
from dataclasses import dataclass, field

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


@dataclass
class Cleaned:
    """Clean text plus provenance: `offsets[i]` is the raw offset of `text[i]`."""

    text: str
    offsets: list[int]
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


def strip_markup(raw: str) -> Cleaned:
    """Remove markdown/HTML markup from `raw`, keeping line structure and a raw-offset map."""
    out: list[str] = []
    offsets: list[int] = []
    result = Cleaned("", offsets)
    bold_open: int | None = None
    for line_start, line in _lines(raw):
        if _RULE.match(line):
            if line.endswith("\n"):
                _emit(out, offsets, "\n", line_start + len(line) - 1)
            continue
        pos = 0
        heading = _HEADING.match(line)
        if heading:
            result.headings[len(out)] = len(heading.group(1))
            pos = heading.end()
        pos = _skip_item_start(line, pos, result, len(out))
        for m in _TOKEN.finditer(line, pos):
            if m.start() < pos:
                continue
            _emit_text(out, offsets, line, pos, m.start(), line_start, result)
            pos = m.end()
            if m.group("tag"):
                name = m.group("name").lower()
                closing = m.group("tag").startswith("</")
                if name in ("b", "strong"):
                    bold_open = _toggle_bold(result, bold_open, len(out), closing)
                if name in _BLOCK_TAGS:
                    # A block boundary separates words; a new item starts after opening li/p/br.
                    _emit(out, offsets, " ", line_start + m.start())
                    if not closing and name in ("li", "p", "br", "div", "h1", "h2", "h3", "h4", "h5", "h6"):
                        pos = _skip_item_start(line, pos, result, len(out))
                        result.breaks.add(len(out))
            elif m.group("entity"):
                _emit(out, offsets, html.unescape(m.group("entity")), line_start + m.start())
            elif m.group("strong"):
                bold_open = _toggle_bold(result, bold_open, len(out), bold_open is not None)
            # single-* emphasis markers are simply dropped
        _emit_text(out, offsets, line, pos, len(line), line_start, result)
    result.text = "".join(out)
    return result


def _lines(raw: str) -> list[tuple[int, str]]:
    lines = []
    start = 0
    for line in raw.splitlines(keepends=True):
        lines.append((start, line))
        start += len(line)
    return lines


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


def _emit(out: list[str], offsets: list[int], text: str, raw_pos: int) -> None:
    for ch in text:
        out.append(ch)
        offsets.append(raw_pos)


def _emit_text(
    out: list[str],
    offsets: list[int],
    line: str,
    start: int,
    end: int,
    line_start: int,
    result: Cleaned,
) -> None:
    for i in range(start, end):
        ch = line[i]
        if ch in BULLETS and (i + 1 >= len(line) or line[i + 1] in " \t") and (i == 0 or line[i - 1] in " \t"):
            # A bullet glyph inside a line (➤ item ➤ item) starts a new item; the glyph itself is dropped.
            result.breaks.add(len(out))
            result.bullets.add(len(out))
            continue
        out.append(ch)
        offsets.append(line_start + i)


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
