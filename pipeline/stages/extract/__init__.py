"""Extract: file bytes → `ExtractedDocument` (ordered text blocks and tables, per page).

The type is decided by content (magic bytes); the extension only breaks ties between text
formats. One module per format family; this one sniffs the type and dispatches. Formats we
recognise but do not read yet are refused with a reason naming what the file is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from pipeline.errors import BrokenDocument, EmptyDocument, UnsupportedFormat
from pipeline.korean import is_mostly_korean
from pipeline.models import ExtractedDocument
from pipeline.stages.extract.html import extract_html
from pipeline.stages.extract.pdf import extract_pdf
from pipeline.stages.extract.text import decode_text, extract_text

__all__ = ["ExtractOptions", "decode_text", "extract", "sniff_format"]

TEXT_EXTENSIONS = {".txt", ".text", ".md", ".markdown", ".csv", ".tsv", ".log"}
HTML_EXTENSIONS = {".html", ".htm", ".xhtml"}

# Magic bytes of formats we recognise but do not extract yet, so the reason can name them.
_KNOWN_MAGIC = (
    (b"PK\x03\x04", "a ZIP container (DOCX, PPTX, XLSX, HWPX, ODT or ZIP)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an OLE compound file (HWP, DOC, XLS, PPT or MSG)"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"{\\rtf", "an RTF document"),
    (b"\x1f\x8b", "a gzip archive"),
)


@dataclass(frozen=True)
class ExtractOptions:
    pdf_tables: bool = True
    pdf_password: str | None = None
    max_pages: int = 5000


def sniff_format(data: bytes, source: str) -> str:
    """'pdf', 'html' or 'text' from the content; raises `UnsupportedFormat` otherwise."""
    head = data[:2048]
    ext = PurePath(source).suffix.lower()
    if head.lstrip()[:5] == b"%PDF-" or b"%PDF-" in data[:1024]:
        return "pdf"
    for magic, what in _KNOWN_MAGIC:
        if head.startswith(magic):
            raise UnsupportedFormat(f"unsupported file type: {what} ({ext or 'no extension'})")
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnsupportedFormat(f"unsupported file type: binary data ({ext or 'no extension'})")
    lowered = head.lower().lstrip()
    if ext in HTML_EXTENSIONS or lowered.startswith((b"<!doctype html", b"<html")):
        return "html"
    if ext in TEXT_EXTENSIONS or not ext:
        return "text"
    if ext == ".pdf":
        raise BrokenDocument("broken PDF: the file does not start with a PDF header")
    raise UnsupportedFormat(f"unsupported file type: {ext}")


def extract(data: bytes, source: str, options: ExtractOptions | None = None) -> ExtractedDocument:
    """Extract any supported file. Raises a `PipelineError` with a readable reason."""
    options = options or ExtractOptions()
    if not data.strip():
        raise EmptyDocument("empty file: there is no text to index" if not data else
                            "empty file: it holds only whitespace")
    kind = sniff_format(data, source)
    if kind == "pdf":
        doc = extract_pdf(data, source, options)
    elif kind == "html":
        doc = extract_html(decode_text(data), source)
    else:
        doc = extract_text(decode_text(data), source)
    if not any(e.text.strip() for e in doc.elements):
        raise EmptyDocument("; ".join(doc.warnings) or "no text found in the file")
    doc.language = "ko" if is_mostly_korean(doc.text) else "en"
    return doc
