"""Pack blocks into chunks that fit the embedding model's window.

Rules: a chunk never crosses a heading or a table row; a block (a list with its lead-in, a table cell) stays
whole when it fits; otherwise it is split between sentences, and a sentence is cut only when it alone
exceeds the budget. Every chunk of a table row repeats the row's key cells ("Action: ...", "Status: ...").
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

from assistant.ingest.structure import Block, Item, Unit
from assistant.types import Chunk, Document, Sentence

TokenCounter = Callable[[Sequence[str]], list[int]]


@dataclass(frozen=True, slots=True)
class ChunkerSettings:
    max_tokens: int = 250


def embedding_head(title: str, section: str) -> str:
    """Document title and the nearest two headings: the context a passage is embedded and matched with."""
    near = " > ".join(section.split(" > ")[-2:]) if section else ""
    return f"{title}. {near}" if near else title


def embedding_text(chunk: Chunk) -> str:
    """What the embedding model and BM25 see: the passage under its title and headings."""
    return f"{embedding_head(chunk.title, chunk.section)}\n{chunk.text}"


# Streaming bounds: blocks are token-counted a window at a time, and finished chunks are counted and handed
# out a batch at a time, so neither the tokenizer's output nor the chunker's drafts ever cover a whole file.
_WINDOW_UNITS = 1024
_DRAFT_BATCH = 128
_COUNTED_CACHE = 4096  # distinct heading/label strings whose counts are remembered


def chunk_document(
    doc: Document, blocks: Iterable[Block], count_tokens: TokenCounter, settings: ChunkerSettings
) -> list[Chunk]:
    return list(iter_chunks(doc, blocks, count_tokens, settings))


def iter_chunks(
    doc: Document, blocks: Iterable[Block], count_tokens: TokenCounter, settings: ChunkerSettings
) -> Iterator[Chunk]:
    """The document's chunks in order, made from `blocks` as they come (an iterator works)."""
    packer = _Packer(doc, count_tokens, settings)
    for window in _windows(blocks):
        _count_units(window, count_tokens)
        for block in window:
            packer.add(block)
            if len(packer.drafts) >= _DRAFT_BATCH:
                yield from packer.finish()
    packer.emit_headings()  # trailing headings with no text beneath still hold words a reader may ask about
    packer.flush()
    yield from packer.finish()


def _windows(blocks: Iterable[Block]) -> Iterator[list[Block]]:
    window: list[Block] = []
    units = 0
    for block in blocks:
        window.append(block)
        units += sum(len(it.units) for it in (*block.context, *block.items))
        if units >= _WINDOW_UNITS:
            yield window
            window, units = [], 0
    if window:
        yield window


def _count_units(window: Sequence[Block], count_tokens: TokenCounter) -> None:
    """Word pieces of every sentence in the window not counted yet (a row's key cells recur in many blocks)."""
    todo = {id(u): u for b in window for it in (*b.context, *b.items) for u in it.units if u.tokens < 0}
    units = list(todo.values())
    for i in range(0, len(units), _WINDOW_UNITS):  # one long paragraph can hold more than a window
        batch = units[i : i + _WINDOW_UNITS]
        for unit, n in zip(batch, count_tokens([u.text for u in batch]), strict=True):
            unit.tokens = n


class _Packer:
    def __init__(self, doc: Document, count_tokens: TokenCounter, settings: ChunkerSettings) -> None:
        self.doc = doc
        self.count = count_tokens
        self.max = settings.max_tokens
        self.stack: list[tuple[int, str]] = []
        self.context: tuple[Item, ...] = ()
        self.lines: list[Item] = []
        self.used = 0
        self.drafts: list[tuple[str, tuple[Item, ...], list[Item]]] = []
        self.pending_headings: list[Block] = []
        self.page: int | None = None
        self._counted: dict[str, int] = {}
        self.seen: dict[bytes, int] = {}  # chunk text digest -> occurrences so far
        self.row_open = False  # a table row whose key cells have not been emitted yet

    @property
    def section(self) -> str:
        return " > ".join(title for _, title in self.stack)

    def add(self, block: Block) -> None:
        if block.kind == "heading":
            self.flush()
            while self.stack and self.stack[-1][0] >= block.level:
                self.stack.pop()
            self.stack.append((block.level, block.title[:150]))
            # The heading opens the text of the first chunk beneath it: quotes may span both. Headings with
            # nothing between them (slide titles, one-line list entries) all open it, so no text is lost.
            self.pending_headings.append(block)
            return
        page = self.doc.page_at(block.start)
        if page != self.page:
            self.flush()  # a chunk stays on one PDF page, so its page number holds for every sentence
            self.page = page
        if block.context != self.context or block.new_row:
            self.flush()
            self.context = block.context
            self.row_open = block.new_row
        if not self.lines:
            self.used = self._context_tokens()
        if not self.context:
            self.emit_headings()
        self.pending_headings = []
        size = sum(self._item_tokens(it) for it in block.items)
        if self.lines and self.used + size > self.max and self._context_tokens() + size <= self.max:
            self.flush()  # keep the block (a list with its lead-in, a cell) whole in a fresh chunk
        for item in block.items:
            self._add_item(item)

    def emit_headings(self) -> None:
        for heading in self.pending_headings:
            title = self._unit(heading.start, heading.end)
            if title.text == heading.title:  # only a verbatim span may become a quotable sentence
                self._add_item(Item([title]))
        self.pending_headings = []

    def _add_item(self, item: Item) -> None:
        label_cost = self._label_tokens(item)
        pending: list[Unit] = []
        for unit in item.units:
            for piece in self._fit(unit):
                cost = piece.tokens + (label_cost if not pending else 0)
                if self.used + cost > self.max and (pending or self.lines):
                    if pending:
                        self.lines.append(Item(pending, item.label))
                        pending = []
                    self.flush()
                    cost = piece.tokens + label_cost
                pending.append(piece)
                self.used += cost
        if pending:
            self.lines.append(Item(pending, item.label))

    def _fit(self, unit: Unit) -> list[Unit]:
        """Cut a sentence longer than a whole chunk at clause or word boundaries."""
        room = self.max - self._context_tokens() - 8
        if unit.tokens <= room:
            return [unit]
        text = self.doc.text
        pieces: list[Unit] = []
        start = unit.start
        words = [m.end() for m in re.finditer(r"[;,]?\s+", text[unit.start : unit.end])]
        cuts = [unit.start + w for w in words]
        estimate = max(1, unit.tokens) / max(1, unit.end - unit.start)
        last = start
        for cut in [*cuts, unit.end]:
            if (cut - start) * estimate > room and last > start:
                pieces.append(self._unit(start, last))
                start = last
            last = cut
        pieces.append(self._unit(start, unit.end))
        return [p for piece in pieces for p in self._hard_split(piece, room)]

    def _hard_split(self, unit: Unit, room: int) -> list[Unit]:
        """Cut a piece with no usable word boundary (a long URL, a run of digits) at character positions."""
        room = max(16, room)  # a very long title leaves little room; never cut to single characters
        if unit.tokens <= room or unit.end - unit.start < 2:
            return [unit]
        pieces: list[Unit] = []
        start = unit.start
        # Characters per token measured on this piece; 0.8 leaves room for the estimate being off. Each round
        # at least halves what is left over budget, so the loop ends (bounded by the piece's length anyway).
        step = max(1, int((unit.end - unit.start) * room / unit.tokens * 0.8))
        text = self.doc.text
        while start < unit.end:
            end = min(unit.end, start + step)
            space = text.rfind(" ", start + 1, end)  # a word boundary inside the slice, when there is one
            if end < unit.end and space > start:
                end = space
            piece = self._unit(start, end)
            while piece.tokens > room and end - start > 1:
                end = start + max(1, (end - start) // 2)
                piece = self._unit(start, end)
            if piece.text:
                pieces.append(piece)
            start = end
        return pieces

    def _unit(self, start: int, end: int) -> Unit:
        raw = self.doc.text[start:end]
        lead = len(raw) - len(raw.lstrip())
        trail = len(raw.rstrip())
        flat = " ".join(raw.split())
        return Unit(start + lead, start + trail, flat, self.count([flat])[0])

    def _tokens_of(self, text: str) -> int:
        # Labels and title/heading lines recur for every item of a section: count each string once (a file
        # of many sections forgets them now and then, to stay bounded).
        if text not in self._counted:
            if len(self._counted) >= _COUNTED_CACHE:
                self._counted.clear()
            self._counted[text] = self.count([text])[0]
        return self._counted[text]

    def _label_tokens(self, item: Item) -> int:
        return self._tokens_of(item.label + ":") if item.label else 0

    def _context_tokens(self) -> int:
        """Tokens every chunk here starts with: title and headings, then the table row's key cells."""
        head = self._tokens_of(embedding_head(self.doc.title, self.section))
        return head + sum(self._item_tokens(it) for it in self.context)

    def _item_tokens(self, item: Item) -> int:
        return self._label_tokens(item) + sum(u.tokens for u in item.units)

    def flush(self) -> None:
        if self.lines or (self.row_open and self.context):
            self.drafts.append((self.section, self.context, self.lines))
            self.row_open = False
        self.lines = []
        self.used = self._context_tokens()

    def finish(self) -> list[Chunk]:
        """The chunks drafted since the last call, token-counted in one batch."""
        chunks: list[Chunk] = []
        texts: list[str] = []
        drafts, self.drafts = self.drafts, []
        for section, context, lines in drafts:
            text, sentences = _compose([*context, *lines])
            # The same text twice in a document gets distinct ids; a digest rather than the text is kept.
            key = hashlib.blake2b(text.encode(), digest_size=16).digest()
            occurrence = self.seen.get(key, 0)
            self.seen[key] = occurrence + 1
            digest = hashlib.sha256(f"{self.doc.doc_id}\n{occurrence}\n{section}\n{text}".encode()).hexdigest()
            start = min(s.doc_start for s in sentences)
            end = max(s.doc_end for s in sentences)
            body_start = min((s.doc_start for s in sentences[len(_flat(context)) :]), default=start)
            chunk = Chunk(
                chunk_id=digest[:16],
                doc=self.doc.doc_id,
                title=self.doc.title,
                date=self.doc.date,
                section=section,
                page=self.doc.page_at(body_start),
                text=text,
                start=start,
                end=end,
                sentences=tuple(sentences),
                tokens=0,
            )
            chunks.append(chunk)
            texts.append(embedding_text(chunk))
        counts = self.count(texts) if texts else []
        return [_with_tokens(c, n) for c, n in zip(chunks, counts, strict=True)]


def _flat(items: Sequence[Item]) -> list[Unit]:
    return [u for it in items for u in it.units]


def _compose(items: Sequence[Item]) -> tuple[str, list[Sentence]]:
    parts: list[str] = []
    sentences: list[Sentence] = []
    pos = 0
    for i, item in enumerate(items):
        if i:
            parts.append("\n")
            pos += 1
        if item.label:
            prefix = f"{item.label}: "
            parts.append(prefix)
            pos += len(prefix)
        for j, unit in enumerate(item.units):
            if j:
                parts.append(" ")
                pos += 1
            parts.append(unit.text)
            sentences.append(Sentence(pos, pos + len(unit.text), unit.start, unit.end))
            pos += len(unit.text)
    return "".join(parts), sentences


def _with_tokens(chunk: Chunk, tokens: int) -> Chunk:
    return replace(chunk, tokens=tokens)
