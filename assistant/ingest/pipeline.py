"""File -> Document + Chunks: load, strip markup (keeping provenance), parse structure, chunk."""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from assistant.ingest.chunker import ChunkerSettings, TokenCounter, chunk_document
from assistant.ingest.loaders import SUPPORTED_SUFFIXES, LoadError, RawFile, load_file
from assistant.ingest.markup import strip_markup
from assistant.ingest.structure import parse_blocks
from assistant.types import Chunk, Document

METADATA_FILE = "metadata.json"
_DATE_PREFIX = re.compile(r"^(\d{4}-\d{2}(?:-\d{2})?)[_\-\s]")


@dataclass(frozen=True, slots=True)
class Ingested:
    document: Document
    chunks: list[Chunk]
    warnings: tuple[str, ...]


def discover(paths: Iterable[Path]) -> list[Path]:
    """Supported files under the given files/directories, sorted, hidden files and metadata.json skipped."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            for child in path.rglob("*"):
                hidden = any(p.startswith(".") for p in child.relative_to(path).parts)
                if child.is_file() and not hidden and child.suffix.lower() in SUPPORTED_SUFFIXES:
                    found.add(child)
        elif path.exists():
            found.add(path)
    return sorted(found)


def load_metadata(corpus_dir: Path) -> dict[str, dict[str, str]]:
    """Titles, dates and references from corpus/metadata.json (file name -> fields); {} when absent."""
    path = corpus_dir / METADATA_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LoadError(path, f"is not valid JSON ({exc}); fix it or delete it") from exc
    if not isinstance(data, dict):
        raise LoadError(path, "must map file names to {title, date, reference}")
    return {str(k): {str(f): str(v) for f, v in dict(v).items()} for k, v in data.items()}


def ingest_file(
    path: Path,
    *,
    metadata: dict[str, dict[str, str]],
    count_tokens: TokenCounter,
    settings: ChunkerSettings,
    raw: RawFile | None = None,
) -> Ingested:
    """Load and chunk one file. Raises LoadError for a file that cannot be indexed."""
    raw = raw or load_file(path)
    cleaned = strip_markup(raw.text)
    blocks = parse_blocks(cleaned)
    meta = metadata.get(path.name, {})
    title = meta.get("title") or _first_heading(blocks) or _humanize(path.stem)
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
    chunks = chunk_document(document, blocks, count_tokens, settings)
    if not chunks:
        raise LoadError(path, "contains no indexable text")
    return Ingested(document, chunks, raw.warnings)


def _first_heading(blocks: list) -> str:  # type: ignore[type-arg]
    for block in blocks[:20]:
        if block.kind == "heading" and len(block.title) > 3:
            return str(block.title)
    return ""


def _humanize(stem: str) -> str:
    stem = _DATE_PREFIX.sub("", stem + " ").strip()
    return re.sub(r"[_\-]+", " ", stem).strip().capitalize() or stem
