"""File -> Document + Chunks: load, strip markup (keeping provenance), parse structure, chunk."""

from __future__ import annotations

import bisect
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path

from assistant.errors import CorpusError
from assistant.ingest.chunker import ChunkerSettings, TokenCounter, iter_chunks
from assistant.ingest.injection import instruction_spans, iter_flagged
from assistant.ingest.loaders import SUPPORTED_SUFFIXES, LoadError, RawFile, load_file
from assistant.ingest.markup import strip_markup
from assistant.ingest.structure import Block, iter_blocks
from assistant.types import Chunk, Document

METADATA_FILE = "metadata.json"
MAX_TITLE_CHARS = 200
_DATE_PREFIX = re.compile(r"^(\d{4}-\d{2}(?:-\d{2})?)[_\-\s]")


@dataclass(frozen=True, slots=True)
class Ingested:
    document: Document
    chunks: list[Chunk]
    warnings: tuple[str, ...]
    flagged: tuple[str, ...] = ()  # instruction-like passages found (shortened), kept out of answers


def discover(paths: Iterable[Path], *, refused: dict[str, str] | None = None) -> list[Path]:
    """Supported regular files under the given files/directories, sorted; hidden files and metadata.json skipped.

    Only regular files whose resolved path lies inside the folder they were found in (or that were named
    themselves) are returned: a symbolic link to something outside (`/etc/passwd`, a linked folder) and
    special files (a FIFO would block the build) go into `refused` (path -> reason) instead. A link that
    stays inside is returned as its target, which the loader then opens without following links.
    """
    refused = {} if refused is None else refused
    found: set[Path] = set()
    for path in paths:
        if path.is_symlink() and not path.is_dir():
            refused[str(path)] = "is a symbolic link; name the file itself"
        elif path.is_dir():
            _walk(path, found, refused)
        elif path.exists():
            if path.is_file():
                found.add(path)
            else:
                refused[str(path)] = "is not a regular file"
    return sorted(found)


def _walk(root: Path, found: set[Path], refused: dict[str, str]) -> None:
    # os.walk without following links: a linked folder is judged here like a linked file, never entered.
    base = root.resolve()
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in [*dirs, *sorted(files)]:
            child = here / name
            link = child.is_symlink()
            if name.startswith(".") or (name in dirs and not link):
                continue  # hidden, or a real folder (walked in turn)
            if not link and child.suffix.lower() not in SUPPORTED_SUFFIXES:
                continue
            reason = _refusal(child, base)
            if reason:
                refused[str(child)] = reason
            elif child.suffix.lower() in SUPPORTED_SUFFIXES:
                found.add(child.resolve() if link else child)


def _refusal(child: Path, base: Path) -> str | None:
    try:
        if child.is_symlink():
            target = child.resolve(strict=True)
            if not target.is_relative_to(base):
                return f"is a symbolic link to {target}, outside {base}; not indexed"
            if target.is_dir():
                return "is a symbolic link to a folder; not followed"
        mode = child.stat().st_mode
    except (OSError, RuntimeError) as exc:  # a dangling or looping link
        return f"is a broken symbolic link or cannot be read ({exc.__class__.__name__}); not indexed"
    return None if stat.S_ISREG(mode) else "is not a regular file; not indexed"


def load_metadata(corpus_dir: Path) -> dict[str, dict[str, str]]:
    """Titles, dates and references from corpus/metadata.json (file name -> fields); {} when absent.

    Raises:
        CorpusError: the file is not JSON, or not an object of objects of strings (names the line).
    """
    path = corpus_dir / METADATA_FILE
    if not path.exists():
        return {}
    try:
        raw = path.read_text(encoding="utf-8")
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CorpusError(
            f"{path}, line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg}); fix it or delete the file."
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{path} cannot be read ({exc}); fix its encoding (UTF-8) or permissions.") from exc
    if not isinstance(data, dict):
        raise CorpusError(
            f'{path}, line 1: must be an object mapping file names to {{"title", "date", "reference"}}; fix it.'
        )
    out: dict[str, dict[str, str]] = {}
    for name, fields in data.items():
        if not isinstance(fields, dict) or not all(isinstance(v, str | int | float) for v in fields.values()):
            line = raw[: max(0, raw.find(json.dumps(name)[1:-1]))].count("\n") + 1
            raise CorpusError(
                f"{path}, line {line}: the entry for {name!r} must be an object of text fields "
                f'("title", "date", "reference"); fix it.'
            )
        out[str(name)] = {str(f): str(v) for f, v in fields.items()}
    return out


@dataclass(frozen=True, slots=True)
class IngestStream:
    """One file being ingested: its Document now, its chunks as they are consumed.

    `chunks` is a one-shot iterator; it raises LoadError at its end when the file gave no chunk at all.
    """

    document: Document
    chunks: Iterator[Chunk]
    warnings: tuple[str, ...]
    flagged: tuple[str, ...] = ()  # instruction-like passages found (shortened), kept out of answers


def ingest_file(
    path: Path,
    *,
    metadata: dict[str, dict[str, str]],
    count_tokens: TokenCounter,
    settings: ChunkerSettings,
    raw: RawFile | None = None,
) -> Ingested:
    """Load and chunk one file. Raises LoadError for a file that cannot be indexed."""
    stream = ingest_file_iter(path, metadata=metadata, count_tokens=count_tokens, settings=settings, raw=raw)
    return Ingested(stream.document, list(stream.chunks), stream.warnings, stream.flagged)


def ingest_file_iter(
    path: Path,
    *,
    metadata: dict[str, dict[str, str]],
    count_tokens: TokenCounter,
    settings: ChunkerSettings,
    raw: RawFile | None = None,
) -> IngestStream:
    """Load one file and chunk it lazily. Raises LoadError for a file that cannot be read.

    The file's clean text is made at once (the Document holds it); structure, sentences and chunks are then
    made a window at a time as the chunks are consumed, so what is kept beside the text and the chunks
    already handed out stays bounded however long the file is.
    """
    raw = raw or load_file(path)
    cleaned = strip_markup(raw.text)
    blocks = iter_blocks(cleaned)
    head = list(islice(blocks, 20))
    meta = metadata.get(path.name, {})
    # Capped: the title heads every chunk's embedded text, so a huge one would overflow each chunk's budget.
    title = (meta.get("title") or _first_heading(head) or _humanize(path.stem))[:MAX_TITLE_CHARS]
    date_match = _DATE_PREFIX.match(path.name)
    page_starts = tuple(bisect.bisect_left(cleaned.offsets, p) for p in raw.page_starts)
    document = Document(
        doc_id=path.name,
        title=title,
        date=meta.get("date") or (date_match.group(1) if date_match else ""),
        reference=meta.get("reference", ""),
        sha256=raw.sha256,
        text=cleaned.text,
        page_starts=page_starts,
    )
    spans = instruction_spans(document.text)
    flagged = tuple(_excerpt(cleaned.text[a:b]) for a, b in spans)
    chunks = iter_chunks(document, chain(head, blocks), count_tokens, settings)
    return IngestStream(document, _checked(iter_flagged(chunks, spans), path), raw.warnings, flagged)


def _checked(chunks: Iterator[Chunk], path: Path) -> Iterator[Chunk]:
    empty = True
    for chunk in chunks:
        empty = False
        yield chunk
    if empty:
        raise LoadError(path, "contains no indexable text")


def _excerpt(text: str, limit: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _first_heading(blocks: list[Block]) -> str:
    for block in blocks[:20]:
        if block.kind == "heading" and len(block.title) > 3:
            return str(block.title)
    return ""


def _humanize(stem: str) -> str:
    stem = _DATE_PREFIX.sub("", stem + " ").strip()
    return re.sub(r"[_\-]+", " ", stem).strip().capitalize() or stem
