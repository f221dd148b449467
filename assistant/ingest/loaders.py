"""Read corpus files (txt, md, html, pdf) into raw text; a bad file raises LoadError with the reason."""

from __future__ import annotations

import codecs
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf")


class LoadError(Exception):
    """A file that cannot be indexed; `reason` says why and what to do."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path.name}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RawFile:
    path: Path
    sha256: str
    text: str
    page_starts: tuple[int, ...]  # raw offsets where PDF pages start; empty otherwise
    warnings: tuple[str, ...]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_file(path: Path) -> RawFile:
    """Read one file. Raises LoadError for empty, unreadable, encrypted or malformed files."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise LoadError(path, f"unsupported file type {suffix or '(none)'}; use one of {', '.join(SUPPORTED_SUFFIXES)}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(path, f"cannot be read ({exc.strerror or exc}); check its permissions") from exc
    if not data.strip():
        raise LoadError(path, "is empty; add text to it or remove it from the corpus")
    digest = hashlib.sha256(data).hexdigest()
    if suffix == ".pdf":
        text, pages, warnings = _read_pdf(path, data)
        return RawFile(path, digest, text, pages, warnings)
    text, warnings = _decode(path, data)
    if suffix in (".html", ".htm"):
        text = _html_to_markup_text(text)
    if not text.strip():
        raise LoadError(path, "has no text after removing markup")
    return RawFile(path, digest, text, (), warnings)


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_text(data: bytes) -> tuple[str, str] | None:
    """(text, encoding) for bytes that are text in some encoding, or None for binary data.

    A byte-order mark decides first (UTF-8/16/32), then strict UTF-8; anything else is left to
    charset-normalizer (Latin-1, Windows-1252, UTF-16 without a BOM, ...), which also says when bytes are
    no text at all.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError:
                return None
    head = data[:4096]
    if b"\x00" in head:
        # Without a BOM, NUL bytes mean UTF-16 (every other byte NUL in Latin-script text) or binary data.
        even, odd = head[0::2].count(0), head[1::2].count(0)
        encoding = "utf-16-le" if odd > 0.4 * len(head) / 2 else "utf-16-be" if even > 0.4 * len(head) / 2 else ""
        try:
            return (data.decode(encoding), encoding) if encoding else None
        except UnicodeDecodeError:
            return None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        return None
    text, encoding = str(best), best.encoding
    # Single-byte Western and Central European code pages read most texts alike; these documents are mostly
    # Western European, so when Windows-1252 reads the bytes as well as the best guess, it wins.
    if encoding != "cp1252" and "cp1252" in best.could_be_from_charset:
        text, encoding = data.decode("cp1252", errors="replace"), "cp1252"
    # A decoding that leaves control characters is a binary file read as text.
    controls = sum(1 for ch in text[:4096] if ord(ch) < 32 and ch not in "\t\n\r\f")
    return None if controls > 2 else (text, encoding)


def _decode(path: Path, data: bytes) -> tuple[str, tuple[str, ...]]:
    if data.startswith(b"%PDF"):
        raise LoadError(path, "is a PDF with a text extension; rename it to .pdf")
    decoded = decode_text(data)
    if decoded is None:
        raise LoadError(path, "looks like a binary file, not text; convert it to .txt, .md, .html or .pdf")
    text, encoding = decoded
    if encoding in ("utf-8", "utf-8-sig"):
        return text, ()
    return text, (f"{path.name}: read as {encoding} (not UTF-8)",)


_HTML_DROP_START = re.compile(r"<(?:!--|!doctype|(script|style|head|noscript|template)\b)", re.I)
# `[^<>]` rather than `[^>]`: a tag that never closes stops at the next "<", so each attempt is short.
_HTML_HEADING_OPEN = re.compile(r"<h([1-6])\b[^<>]*>", re.I)
_HTML_HEADING_CLOSE = re.compile(r"</h[1-6]\s*>", re.I)
_HTML_CELL_END = re.compile(r"</t[dh]\s*>\s*(?=<t[dh]\b)", re.I)
_HTML_ROW = re.compile(r"</?tr\b[^<>]*>", re.I)


def _html_to_markup_text(text: str) -> str:
    """Map HTML structure onto the conventions the parser reads: '#' headings, tab-separated table rows."""
    text = _drop_html_elements(text)
    text = _HTML_HEADING_OPEN.sub(lambda m: "\n\n" + "#" * int(m.group(1)) + " ", text)
    text = _HTML_HEADING_CLOSE.sub("\n\n", text)
    text = _HTML_CELL_END.sub("\t", text)
    text = _HTML_ROW.sub("\n", text)
    # HTML source wraps lines arbitrarily; paragraphs and list items carry the structure.
    text = re.sub(r"(?<![\n\t])\n(?![\n#])", " ", text)
    return re.sub(r"</p\s*>", "</p>\n\n", text, flags=re.I)


def _drop_html_elements(text: str) -> str:
    """Remove comments, the doctype and script/style/head/noscript/template elements, in linear time.

    Written as a scan rather than one regex with `.*?`: that regex rescans to the end of the text from every
    unclosed "<!--" or "<script", which took 43 s on 50,000 of them. Here each search moves forward, and a
    closer found missing once is missing for every later opening, so it is not searched for again. An
    unclosed element is kept, as before (HTML allows leaving out `</head>`; dropping to the end would lose
    the body).
    """
    lower = text.lower()
    kept: list[str] = []
    pos = 0
    missing: set[str] = set()  # closers known to be absent from here to the end
    for m in _HTML_DROP_START.finditer(text):
        if m.start() < pos:
            continue  # inside something already dropped
        element = (m.group(1) or "").lower()
        closer = "-->" if m.group().startswith("<!--") else ">" if not element else f"</{element}"
        end = -1 if closer in missing else lower.find(closer, m.end())
        if end < 0:
            missing.add(closer)
            continue
        end += len(closer)
        if element:  # "</script   >": up to the end of the closing tag
            gt = lower.find(">", end)
            end = len(text) if gt < 0 else gt + 1
        kept.append(text[pos : m.start()])
        pos = end
    kept.append(text[pos:])
    return "".join(kept)


def _read_pdf(path: Path, data: bytes) -> tuple[str, tuple[int, ...], tuple[str, ...]]:
    import io

    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError(path, "is an encrypted PDF; save a decrypted copy (e.g. `qpdf --decrypt`) and index that")
        pages = [page.extract_text() or "" for page in reader.pages]
    except LoadError:
        raise
    except FileNotDecryptedError as exc:
        raise LoadError(
            path, "is an encrypted PDF; save a decrypted copy (e.g. `qpdf --decrypt`) and index that"
        ) from exc
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, AssertionError) as exc:
        raise LoadError(path, f"is not a readable PDF ({exc.__class__.__name__}: {exc}); re-export it") from exc
    if not any(p.strip() for p in pages):
        raise LoadError(path, "has no extractable text (a scanned PDF?); run OCR on it first")
    starts = []
    parts = []
    pos = 0
    for page in pages:
        starts.append(pos)
        parts.append(page)
        pos += len(page) + 2
    return "\n\n".join(parts), tuple(starts), ()
