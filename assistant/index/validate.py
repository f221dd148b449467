"""Checks that a loaded index is whole and consistent, so damage is refused at load, never met at answer time.

The checksums in the manifest catch a damaged or truncated file; these checks catch what a checksum cannot:
a manifest with fields of the wrong type, or files edited by hand and checksummed again. Every failure is
an IndexCorruptError naming `assistant index --rebuild`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from assistant.errors import IndexCorruptError
from assistant.types import Chunk, Document

REBUILD_HINT = "Run `assistant index --rebuild` to build a fresh index."
_MANIFEST_TYPES: dict[str, tuple[type, ...]] = {
    "format_version": (int,),
    "created_at": (str,),
    "embedding_model": (str,),
    "embedding_fingerprint": (str,),
    "dimension": (int,),
    "chunker": (dict,),
    "files": (dict,),
    "artifacts": (dict,),
    "build_seconds": (int, float),
    "vector_index": (dict,),  # {"kind": "flat"} or the IVF parameters (assistant.index.ann)
}


def corrupt(where: Path, what: str) -> IndexCorruptError:
    return IndexCorruptError(f"The index in {where} is damaged: {what}. {REBUILD_HINT}")


def check_manifest(data: Any, where: Path) -> dict[str, Any]:
    """The manifest's fields, each of the type the loader relies on."""
    if not isinstance(data, dict):
        raise corrupt(where, "manifest.json is not an object")
    for name, kinds in _MANIFEST_TYPES.items():
        value = data.get(name)
        if name not in data or isinstance(value, bool) or not isinstance(value, kinds):
            raise corrupt(where, f"manifest field {name!r} is missing or not a {kinds[0].__name__}")
    unknown = set(data) - set(_MANIFEST_TYPES)
    if unknown:
        raise corrupt(where, f"manifest has unknown fields {sorted(unknown)}")
    if not 0 < data["dimension"] <= 65536:
        raise corrupt(where, f"manifest dimension {data['dimension']} is out of range")
    for name, entry in data["files"].items():
        chunks = entry.get("chunks") if isinstance(entry, dict) else None
        if not isinstance(chunks, int) or isinstance(chunks, bool) or chunks < 0:
            raise corrupt(where, f"manifest entry for file {name!r} is malformed")
    for name, entry in data["artifacts"].items():
        ok = isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and isinstance(entry.get("bytes"), int)
        if not ok:
            raise corrupt(where, f"manifest entry for artifact {name!r} is malformed")
    return data


def read_json(path: Path, where: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise corrupt(where, f"{path.name} cannot be read ({exc.__class__.__name__})") from exc


def parse_document(d: Any, where: Path) -> Document:
    try:
        doc = Document(**{**d, "page_starts": tuple(int(p) for p in d["page_starts"])})
    except (TypeError, KeyError, ValueError) as exc:
        raise corrupt(where, f"a document record is malformed ({exc.__class__.__name__})") from exc
    if not all(isinstance(getattr(doc, f), str) for f in ("doc_id", "title", "date", "reference", "text")):
        raise corrupt(where, f"document {doc.doc_id!r} has fields of the wrong type")
    return doc


def check_chunk(chunk: Chunk, doc_length: int, where: Path) -> None:
    """One chunk's fields have the types the answerer relies on and its spans point inside its texts."""
    text_fields = (chunk.chunk_id, chunk.doc, chunk.title, chunk.date, chunk.section, chunk.text)
    if not all(isinstance(v, str) for v in text_fields) or not _span_ok(chunk.start, chunk.end, doc_length):
        raise corrupt(where, f"chunk {chunk.chunk_id!r} of {chunk.doc} has fields of the wrong type or range")
    length = len(chunk.text)
    for s in chunk.sentences:  # a plain loop: this runs for every chunk read, 10^5-10^6 times in a build
        a, b, c, d = s.start, s.end, s.doc_start, s.doc_end
        ints = type(a) is int and type(b) is int and type(c) is int and type(d) is int  # not bool either
        if not (ints and 0 <= a <= b <= length and 0 <= c <= d <= doc_length):
            raise corrupt(where, f"chunk {chunk.chunk_id!r} of {chunk.doc} has a sentence outside its text")
    if any(not 0 <= j < len(chunk.sentences) for j in chunk.flagged):
        raise corrupt(where, f"chunk {chunk.chunk_id!r} of {chunk.doc} flags a sentence it does not have")
    if chunk.page is not None and (not isinstance(chunk.page, int) or isinstance(chunk.page, bool)):
        raise corrupt(where, f"chunk {chunk.chunk_id!r} of {chunk.doc} has a page of the wrong type")


def _span_ok(start: Any, end: Any, length: int) -> bool:
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end))
    return ints and 0 <= start <= end <= length
