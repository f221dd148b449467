from __future__ import annotations

import io
from pathlib import Path

import pytest

from assistant.index.builder import build_index
from assistant.ingest.loaders import LoadError, load_file


def _pdf_bytes(pages: list[str]) -> bytes:
    """A minimal valid PDF with one text line per page (Helvetica), written by hand for the test."""
    objects: list[bytes] = []
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    font_id = 3 + 2 * len(pages)
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def _encrypted_pdf() -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(_pdf_bytes(["Secret text"]))).pages:
        writer.add_page(page)
    writer.encrypt(user_password="pw", owner_password="owner", algorithm="AES-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        pytest.param("empty.txt", b"   \n", "empty", id="empty"),
        pytest.param("binary.txt", b"\x00\x01\x02binary", "binary", id="binary"),
        pytest.param("broken.pdf", b"%PDF-1.4\nthis is not a pdf", "not a readable PDF", id="malformed-pdf"),
        pytest.param("locked.pdf", None, "encrypted", id="encrypted-pdf"),
        pytest.param("image.png", b"\x89PNG....", "unsupported file type", id="unsupported"),
    ],
)
def test_bad_files_raise_load_error_with_a_reason(
    tmp_path: Path, name: str, content: bytes | None, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(_encrypted_pdf() if content is None else content)
    with pytest.raises(LoadError) as info:
        load_file(path)
    assert reason in info.value.reason


def test_non_utf8_text_is_decoded_with_its_encoding_and_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes("Caf\u00e9 policy in Malm\u00f6".encode("latin-1"))
    raw = load_file(path)
    assert "Caf\u00e9 policy in Malm\u00f6" in raw.text  # issue 12: detected (charset-normalizer), not replaced
    assert raw.warnings and "not UTF-8" in raw.warnings[0]


def test_pdf_pages_are_kept_on_chunks(tmp_path: Path, embedder, settings) -> None:  # type: ignore[no-untyped-def]
    (settings.corpus_dir / "report.pdf").write_bytes(
        _pdf_bytes(["First page about asylum.", "Second page on returns."])
    )
    build_index(settings, embedder)
    from assistant.index.store import load_index

    chunks = [c for c in load_index(settings.index_dir).chunks if c.doc == "report.pdf"]
    pages = {c.page for c in chunks for s in c.sentences if "returns" in c.sentence_text(s)}
    assert pages == {2}


def test_html_headings_and_lists_are_understood(tmp_path: Path, embedder, settings) -> None:  # type: ignore[no-untyped-def]
    (settings.corpus_dir / "page.html").write_text(
        "<html><head><title>x</title><style>p{}</style></head><body><h1>Visa policy</h1>"
        "<p>The suspension mechanism was reviewed.</p><ul><li>First measure</li><li>Second measure</li></ul>"
        "</body></html>",
        encoding="utf-8",
    )
    build_index(settings, embedder)
    from assistant.index.store import load_index

    chunks = [c for c in load_index(settings.index_dir).chunks if c.doc == "page.html"]
    assert chunks and chunks[0].section == "Visa policy"
    assert "p{}" not in chunks[0].text and "First measure" in chunks[0].text


def test_a_bad_file_is_reported_and_the_rest_indexed(embedder, settings) -> None:  # type: ignore[no-untyped-def]
    (settings.corpus_dir / "empty.md").write_text("", encoding="utf-8")
    (settings.corpus_dir / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    report = build_index(settings, embedder)
    assert set(Path(p).name for p in report.skipped) == {"empty.md", "broken.pdf"}
    assert report.documents == 2 and report.chunks > 0
