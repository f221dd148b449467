"""Adding a document from an upload: check it by its content, save it into the corpus atomically.

Written by hand because the checks are this product's contract: the type comes from the bytes, not the name
(a renamed binary must not reach the index), and a rejected file leaves the corpus exactly as it was.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.errors import AssistantError
from assistant.ingest.loaders import LoadError, decode_text, load_file
from assistant.ingest.markup import strip_markup

if TYPE_CHECKING:
    from assistant.index.builder import BuildReport

MAX_UPLOAD_BYTES = 20_000_000  # 20 MB
KINDS = {".pdf": "pdf", ".html": "html", ".htm": "html", ".txt": "text", ".md": "text", ".markdown": "text"}
_HTML_START = re.compile(rb"^\s*(?:<!doctype html|<html|<head|<body|<meta|<div|<p[\s>]|<h[1-6][\s>])", re.I)


class UploadError(AssistantError):
    """The upload was refused; the message says why and what to do."""


def sniff(data: bytes) -> str | None:
    """'pdf', 'html' or 'text' judged from the bytes alone, or None for binary data that is none of them."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    decoded = decode_text(data)
    if decoded is None:
        return None
    return "html" if _HTML_START.match(decoded[0][:4096].encode("utf-8", "replace")) else "text"


MAX_NAME_BYTES = 200  # file systems allow 255 bytes; leave room for the ".upload-" temporary prefix


def safe_name(name: str) -> str:
    """A plain file name: no folders, no control or shell-special characters, spaces as dashes, at most
    MAX_NAME_BYTES bytes of UTF-8 (the stem is shortened on a character boundary; the suffix is kept)."""
    base = unicodedata.normalize("NFKC", Path(name.replace("\\", "/")).name).strip()
    base = re.sub(r"-+(?=\.)", "", re.sub(r"[^\w.\-]+", "-", base)).strip(".-")
    path = Path(base)
    suffix = path.suffix if len(path.suffix.encode()) <= 16 else ""
    stem = base[: len(base) - len(suffix)] if suffix else base
    room = MAX_NAME_BYTES - len(suffix.encode())
    stem = stem.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(".-")
    return stem + suffix if stem else ""


def save_upload(name: str, data: bytes, corpus_dir: Path, *, max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Check an uploaded file and save it into `corpus_dir`; return its path there.

    Raises:
        UploadError: too large, empty, an unsupported or mismatched type, unreadable (encrypted or scanned
            PDF, no text), or a document of that name already exists. Nothing is written then.
    """
    clean = safe_name(name)
    if not clean or clean.startswith("."):
        raise UploadError(f"{name!r} is not a usable file name; rename the file.")
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
    if target.exists() or target.is_symlink():
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


@dataclass(frozen=True, slots=True)
class UploadResult:
    added: tuple[str, ...]  # file names now in the corpus and the index
    refused: dict[str, str]  # uploaded name -> why it was not added (nothing of it is left in the corpus)
    report: BuildReport | None  # the index build, when one ran


def add_uploads(
    files: Sequence[tuple[str, bytes]],
    corpus_dir: Path,
    build: Callable[[], BuildReport],
    *,
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> UploadResult:
    """Save uploads into the corpus and index them; whatever is not indexed is taken back out.

    `build` runs the index build (the page passes one drawing progress bars). A file the build skips is
    removed and refused with the build's reason; when the build fails altogether, every saved file is removed
    and the error re-raised, so nothing is left behind on any failure.
    """
    refused: dict[str, str] = {}
    saved: dict[str, Path] = {}
    for name, data in files:
        try:
            saved[name] = save_upload(name, data, corpus_dir, max_bytes=max_bytes)
        except UploadError as exc:
            refused[name] = str(exc)
    if not saved:
        return UploadResult((), refused, None)
    try:
        report = build()
    except BaseException:
        for path in saved.values():
            path.unlink(missing_ok=True)
        raise
    added: list[str] = []
    for name, path in saved.items():
        # The report names skipped files by the path the builder found them at.
        reason = (
            report.skipped.get(str(path)) or report.skipped.get(str(path.resolve())) or report.skipped.get(path.name)
        )
        if reason is None and path.name not in report.added + report.changed + report.unchanged:
            reason = "was not indexed"
        if reason is not None:
            path.unlink(missing_ok=True)
            refused[name] = f"{path.name} {reason}."
        else:
            added.append(path.name)
    return UploadResult(tuple(added), refused, report)
