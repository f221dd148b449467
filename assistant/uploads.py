"""Adding a document from an upload: check it by its content, save it into the corpus atomically.

Written by hand because the checks are this product's contract: the type comes from the bytes, not the name
(a renamed binary must not reach the index), and a rejected file leaves the corpus exactly as it was.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from pathlib import Path

from assistant.errors import AssistantError
from assistant.ingest.loaders import LoadError, load_file
from assistant.ingest.markup import strip_markup

MAX_UPLOAD_BYTES = 20_000_000  # 20 MB
KINDS = {".pdf": "pdf", ".html": "html", ".htm": "html", ".txt": "text", ".md": "text", ".markdown": "text"}
_HTML_START = re.compile(rb"^\s*(?:<!doctype html|<html|<head|<body|<meta|<div|<p[\s>]|<h[1-6][\s>])", re.I)


class UploadError(AssistantError):
    """The upload was refused; the message says why and what to do."""


def sniff(data: bytes) -> str | None:
    """'pdf', 'html' or 'text' judged from the bytes alone, or None for binary data that is none of them."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    head = data[:4096]
    if b"\x00" in head:
        return None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multi-byte character cut at 4096 bytes is fine
            return None
    return "html" if _HTML_START.match(head) else "text"


def safe_name(name: str) -> str:
    """A plain file name: no folders, no control or shell-special characters, spaces as dashes."""
    base = unicodedata.normalize("NFKC", Path(name.replace("\\", "/")).name).strip()
    base = re.sub(r"-+(?=\.)", "", re.sub(r"[^\w.\-]+", "-", base)).strip(".-")
    return base[:120]


def save_upload(name: str, data: bytes, corpus_dir: Path, *, max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Check an uploaded file and save it into `corpus_dir`; return its path there.

    Raises:
        UploadError: too large, empty, an unsupported or mismatched type, unreadable (encrypted or scanned
            PDF, no text), or a document of that name already exists. Nothing is written then.
    """
    clean = safe_name(name)
    suffix = Path(clean).suffix.lower()
    if suffix not in KINDS:
        raise UploadError(f"{name}: only {', '.join(sorted(KINDS))} files can be added.")
    if not data:
        raise UploadError(f"{name} is empty.")
    if len(data) > max_bytes:
        raise UploadError(f"{name} is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB.")
    kind = sniff(data)
    if kind is None:
        raise UploadError(f"{name} is a binary file, not text, HTML or PDF; convert it first.")
    expected = KINDS[suffix]
    if kind != expected and not (expected == "text" and kind == "html"):  # Markdown may start with HTML
        raise UploadError(f"{name} is named {suffix} but its content is {kind.upper()}; rename or convert it.")
    target = corpus_dir / clean
    if target.exists():
        raise UploadError(f"A document named {clean} is already in the corpus; rename the file to add it.")
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / clean
        probe.write_bytes(data)
        try:
            raw = load_file(probe)
            if not strip_markup(raw.text).text.strip():
                raise LoadError(probe, "has no text after removing markup")
        except LoadError as exc:
            raise UploadError(f"{clean} {exc.reason}.") from exc
    corpus_dir.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=corpus_dir, prefix=".upload-")  # hidden: never indexed half-written
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(partial, 0o644)  # like the other corpus files, not mkstemp's private mode
        os.replace(partial, target)
    except OSError as exc:
        Path(partial).unlink(missing_ok=True)
        raise UploadError(f"Could not save {clean} into {corpus_dir} ({exc.strerror or exc}).") from exc
    return target
