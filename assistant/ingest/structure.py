"""Turn clean text into blocks: headings, paragraphs (with list items) and table rows.

Tables in the corpus are tab-separated rows whose header row repeats on every page, with rows that
continue after a page break (first cell empty, or starting lower-case). Rows keep their column labels so
"Status: Ongoing" stays with its action; paragraphs that follow a row inside a table inherit that row's
key cells as context.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from assistant.ingest.markup import Cleaned, collapse_ws
from assistant.ingest.sentences import split_sentences


@dataclass
class Unit:
    """A sentence-sized span of the document's clean text."""

    start: int
    end: int
    text: str
    tokens: int = -1  # word pieces; -1 until the chunker has counted them


@dataclass
class Item:
    """A list item, paragraph or table cell: its optional column label and its sentences."""

    units: list[Unit]
    label: str | None = None


@dataclass
class Block:
    kind: str  # "heading" | "text" | "row"
    start: int
    end: int = 0  # for headings: end of the title's span in the clean text
    items: list[Item] = field(default_factory=list)
    level: int = 0
    title: str = ""  # heading text
    context: tuple[Item, ...] = ()  # a table row's key cells, repeated at the top of each of its chunks
    new_row: bool = False


_ROMAN_HEADING = re.compile(r"^(?:[IVXL]+)\.\s+\S.{0,150}$")
_NUMBERED_HEADING = re.compile(r"^\d{1,2}(?:\.\d{1,2})*\.?\s+[A-Z][^.!?:;]{2,100}$")
_SHORT_TITLE = re.compile(r"^[A-Z][^.!?;,\t]{1,80}(?<![.:;,!?])$")
_DIGIT = re.compile(r"\d")
_SEPARATOR_CELL = re.compile(r"^[-–—=_\s]*$")
_KEY_CELL_CHARS = 60  # cells this short (besides the first) stay with every chunk of the row
_ENUMERATOR = re.compile(r"^(?:\d{1,3}|[IVXL]+|[a-z])[.)]\s")


_HOLD_BLOCKS = 2000  # most blocks held back behind a table row that a page break may still extend


def parse_blocks(cleaned: Cleaned) -> list[Block]:
    return list(iter_blocks(cleaned))


def iter_blocks(cleaned: Cleaned) -> Iterator[Block]:
    """The blocks of the clean text in order, produced line by line rather than all at once.

    One exception to "a block is final when it is produced": a table row whose first cell runs on after a
    page break gets that continuation merged into its key cells when the break is reached. So the last row
    of a labelled table, and what follows it, is held back while such a merge can still happen (its first
    cell does not end a sentence), up to _HOLD_BLOCKS blocks; page breaks come far sooner than that.
    """
    text = cleaned.text
    blocks: list[Block] = []  # produced, not yet handed out
    released = 0  # blocks handed out so far
    last_row_at = -1  # position of last_row among all blocks produced
    previous: Block | None = None
    paragraph: list[tuple[int, int]] = []
    header: list[str] | None = None
    header_key = ""
    row_context: tuple[Item, ...] = ()
    last_row: Block | None = None
    after_repeat = False

    def add(block: Block) -> None:
        nonlocal previous
        blocks.append(block)
        previous = block

    def flush_paragraph() -> None:
        nonlocal paragraph
        if paragraph:
            for block in _split_leading_title(cleaned, paragraph[0][0], paragraph[-1][1]):
                if block.kind == "text":
                    block.context = row_context
                add(block)
        paragraph = []

    for start, end in _line_spans(text):
        if blocks:
            final = len(blocks)
            if (
                last_row is not None
                and header is not None
                and last_row.context
                and last_row_at >= released
                and len(blocks) <= _HOLD_BLOCKS
                and not _item_text(last_row.context[0]).rstrip().endswith((".", "!", "?", ":"))
            ):
                final = last_row_at - released
            if final:
                yield from blocks[:final]
                del blocks[:final]
                released += final
        line = text[start:end]
        if not line.strip():
            flush_paragraph()
            continue
        if "\t" in line:
            flush_paragraph()
            cells = _cell_spans(text, start, end)
            cell_texts = [collapse_ws(text[s:e]) for s, e in cells]
            if all(_SEPARATOR_CELL.match(c) for c in cell_texts):
                continue
            key = "\t".join(c.lower() for c in cell_texts if c)
            if header is not None and key == header_key:
                after_repeat = True
                continue
            if _looks_like_header(cell_texts, previous=previous):
                header, header_key = cell_texts, key
                row_context, last_row, after_repeat = (), None, False
                continue
            non_empty = [i for i, c in enumerate(cell_texts) if c]
            if (
                header is not None
                and after_repeat
                and last_row is not None
                and non_empty == [0]
                and last_row.context
                and not _ENUMERATOR.match(cell_texts[0])
                and not _item_text(last_row.context[0]).rstrip().endswith((".", "!", "?", ":"))
            ):
                # The row's first cell ("5. Continue support for the establishment of the International")
                # runs on after the page break ("Migration Cooperation Centre in Istanbul").
                first_cell = last_row.context[0]
                s, e = cells[0]
                merged = Item(first_cell.units + _units(cleaned, s, e), first_cell.label)
                last_row.context = (merged, *last_row.context[1:])
                row_context = last_row.context
                after_repeat = False
                add(Block("row", start, context=last_row.context))
                continue
            if header is not None and non_empty == [0] and len(cell_texts) > 1 and len(cell_texts[0]) <= 200:
                # A row with only its first cell filled is a section title inside the table.
                level = 1 if _ROMAN_HEADING.match(cell_texts[0]) else 2
                add(Block("heading", cells[0][0], cells[0][1], level=level, title=cell_texts[0]))
                row_context, last_row = (), None
                continue
            if header is None and len(non_empty) == 1:
                # A lone cell outside a labelled table is ordinary text that happened to carry a tab.
                s, e = cells[non_empty[0]]
                for block in _split_leading_title(cleaned, s, e):
                    add(block)
                continue
            first = cell_texts[0] if cell_texts else ""
            continues = last_row is not None and (not first or (after_repeat and first[:1].islower()))
            labels = header if header is not None else [None] * len(cells)
            items = []
            for i, (s, e) in enumerate(cells):
                if not cell_texts[i]:
                    continue
                label = labels[i] if i < len(labels) else None
                items.append(Item(_units(cleaned, s, e), label))
            after_repeat = False
            if continues and last_row is not None:
                add(Block("row", start, items=items, context=last_row.context))
                continue
            context: tuple[Item, ...] = ()
            body = items
            if header is None and items:
                # Without column labels a row reads as one line: "10:00-11:30 Moderator: ...".
                body = [Item([u for it in items for u in it.units])]
            elif items:
                keys = [items[0]] + [it for it in items[1:] if len(_item_text(it)) <= _KEY_CELL_CHARS]
                context = tuple(keys)
                body = [it for it in items if all(it is not k for k in keys)]
            last_row = Block("row", start, items=body, context=context, new_row=header is not None)
            row_context = context
            last_row_at = released + len(blocks)
            add(last_row)
            continue
        if start in cleaned.headings:
            flush_paragraph()
            level = cleaned.headings[start]
            add(Block("heading", start, end, level=level, title=collapse_ws(line)))
            if header is not None:  # a markdown heading ends the table
                header, header_key, row_context, last_row = None, "", (), None
            continue
        paragraph.append((start, end))
    flush_paragraph()
    yield from blocks


def _paragraph_block(cleaned: Cleaned, start: int, end: int) -> Block:
    text = cleaned.text
    flat = collapse_ws(text[start:end])
    if len(flat) <= 200 and (
        _covered_by_bold(cleaned, start, end) or _ROMAN_HEADING.match(flat) or _NUMBERED_HEADING.match(flat)
    ):
        level = 1 if _ROMAN_HEADING.match(flat) else 2 if _NUMBERED_HEADING.match(flat) else 3
        return Block("heading", start, end, level=level, title=flat)
    has_items = any(text[start:b].strip() for b in cleaned.breaks_in(start, end))
    if (
        _SHORT_TITLE.match(flat)
        and "\n" not in text[start:end].strip()
        and not has_items
        and not _is_item(cleaned, start, end)
    ):
        # A short unpunctuated line on its own ("Europol deployments") titles what follows.
        return Block("heading", start, end, level=4, title=flat)
    cuts = [start, *cleaned.breaks_in(start, end)]
    items = []
    for i, s in enumerate(cuts):
        e = cuts[i + 1] if i + 1 < len(cuts) else end
        units = _units(cleaned, s, e)
        if units:
            items.append(Item(units))
    return Block("text", start, items=items)


def _split_leading_title(cleaned: Cleaned, start: int, end: int) -> list[Block]:
    """'<p><b>SESSION 4: ...</b></p> <p>The last session ...' is a title followed by its text."""
    text = cleaned.text
    first_break = next((b for b in cleaned.breaks_in(start, end) if text[start:b].strip()), None)
    if first_break is not None:
        head = collapse_ws(cleaned.text[start:first_break])
        if head and len(head) <= 200 and _covered_by_bold(cleaned, start, first_break):
            return [
                Block("heading", start, first_break, level=4, title=head),
                _paragraph_block(cleaned, first_break, end),
            ]
    return [_paragraph_block(cleaned, start, end)]


def _is_item(cleaned: Cleaned, start: int, end: int) -> bool:
    """True when the paragraph opens with a bullet or list tag (a one-line list item, not a title)."""
    first_text = start + len(cleaned.text[start:end]) - len(cleaned.text[start:end].lstrip())
    return bool(cleaned.marks_in(start - 1, first_text + 1))


def _units(cleaned: Cleaned, start: int, end: int) -> list[Unit]:
    """Sentences of text[start:end]; item breaks (li, p, bullets) inside a cell also end a sentence."""
    text = cleaned.text
    cuts = [start, *cleaned.breaks_in(start, end)]
    units = []
    for i, s in enumerate(cuts):
        e = cuts[i + 1] if i + 1 < len(cuts) else end
        for a, b in split_sentences(text, s, e):
            flat = collapse_ws(text[a:b])
            if any(ch.isalnum() for ch in flat):  # punctuation alone ("... !!!", a rule) is no sentence
                units.append(Unit(a, b, flat))
    return units


def _item_text(item: Item) -> str:
    return " ".join(u.text for u in item.units)


def _covered_by_bold(cleaned: Cleaned, start: int, end: int) -> bool:
    text = cleaned.text
    covered = [False] * (end - start)
    for s, e in cleaned.strong_in(start, end):
        for i in range(max(s, start), min(e, end)):
            covered[i - start] = True
    significant = [c for i, c in enumerate(covered) if text[start + i].isalnum()]
    return bool(significant) and all(significant)


def _looks_like_header(cells: list[str], previous: Block | None) -> bool:
    if len(cells) < 2 or not all(cells):
        return False
    if any(len(c) > 60 or _DIGIT.search(c) or c.endswith(":") for c in cells):
        return False
    return previous is None or previous.kind != "row"


def _line_spans(text: str) -> Iterator[tuple[int, int]]:
    start = 0
    for m in re.finditer(r"\n", text):
        yield start, m.start()
        start = m.end()
    if start < len(text):
        yield start, len(text)


def _cell_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans = []
    s = start
    for i in range(start, end):
        if text[i] == "\t":
            spans.append((s, i))
            s = i + 1
    spans.append((s, end))
    return spans
