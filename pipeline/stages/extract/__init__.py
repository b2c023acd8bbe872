"""Extract: file bytes → `ExtractedDocument` (ordered text blocks and tables, per page).

The type is decided by content (magic bytes); the extension only breaks ties between text
formats. One module per format family; this one sniffs the type and dispatches. Formats we
recognise but do not read yet are refused with a reason naming what the file is.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import PurePath

from pipeline.errors import BrokenDocument, EmptyDocument, LimitExceeded, UnsupportedFormat
from pipeline.korean import is_mostly_korean
from pipeline.models import ExtractedDocument
from pipeline.options import ExtractOptions
from pipeline.stages.extract.html import extract_html
from pipeline.stages.extract.hwp import extract_hwp
from pipeline.stages.extract.hwpx import extract_hwpx
from pipeline.stages.extract.ocr import OcrMemory, extract_image
from pipeline.stages.extract.office import LEGACY, OFFICE_KINDS, extract_office
from pipeline.stages.extract.pdf import extract_pdf
from pipeline.stages.extract.quality import garbled_reason
from pipeline.stages.extract.text import decode_text, extract_text

__all__ = ["ExtractOptions", "OcrMemory", "decode_text", "extract", "sniff_format"]

TEXT_EXTENSIONS = {".txt", ".text", ".md", ".markdown", ".csv", ".tsv", ".log"}
HTML_EXTENSIONS = {".html", ".htm", ".xhtml"}
# Text files that hold structure: read as Markdown or as a table rather than as plain paragraphs.
STRUCTURED_TEXT = {".md": "md", ".markdown": "md", ".csv": "csv", ".tsv": "tsv"}

# Magic bytes of formats recognised by content, so a refusal can name what the file really is.
_MAGIC = (
    (b"\x89PNG", "png", "a PNG image"),
    (b"\xff\xd8\xff", "jpeg", "a JPEG image"),
    (b"II*\x00", "tiff", "a TIFF image"),
    (b"MM\x00*", "tiff", "a TIFF image"),
    (b"GIF8", "gif", "a GIF image"),
    (b"{\\rtf", "rtf", "an RTF document"),
    (b"\x1f\x8b", "gzip", "a gzip archive"),
)
_EMAIL_HEADERS = re.compile(rb"^(?:(?:Return-Path|Received|From|To|Subject|Date|MIME-Version|Message-ID):[^\n]*\r?\n)+"
                            rb"(?:(?:[A-Za-z-]+:|[ \t])[^\n]*\r?\n)*", re.I)
ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

# What each kind is called in a refusal.
DESCRIPTIONS = {
    "hwpx": "an HWPX document", "docx": "a Word document (DOCX)", "pptx": "a PowerPoint file (PPTX)",
    "xlsx": "an Excel workbook (XLSX)", "odt": "an OpenDocument text (ODT)", "zip": "a ZIP archive",
    "hwp": "an HWP document", "doc": "a Word 97-2003 document (DOC)", "xls": "an Excel 97-2003 workbook (XLS)",
    "ppt": "a PowerPoint 97-2003 file (PPT)", "msg": "an Outlook message (MSG)",
    "encrypted-office": "a password-protected Office document", "eml": "an e-mail message (EML)",
    "ole": "an OLE compound file",
    **{kind: what for _, kind, what in _MAGIC},
}


def _zip_kind(data: bytes) -> str:
    """Which ZIP-based format: HWPX, DOCX, PPTX, XLSX, ODT or a plain archive."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            with archive.open("mimetype") if "mimetype" in names else io.BytesIO() as member:
                mimetype = member.read(80).decode("ascii", "replace")  # read(80): a bomb stays packed
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, NotImplementedError):
        raise BrokenDocument("broken ZIP container: the archive cannot be read") from None
    if mimetype.startswith("application/hwp") or any(n.startswith("Contents/section") for n in names):
        return "hwpx"
    if mimetype == "application/vnd.oasis.opendocument.text":
        return "odt"
    for prefix, kind in (("word/", "docx"), ("ppt/", "pptx"), ("xl/", "xlsx")):
        if any(n.startswith(prefix) for n in names):
            return kind
    return "zip"


def _ole_kind(data: bytes) -> str:
    """Which OLE compound file: HWP 5, legacy Office, Outlook MSG, or an encrypted OOXML package."""
    import olefile

    try:
        with olefile.OleFileIO(io.BytesIO(data)) as ole:  # raw bytes under 1536 would be taken for a file name
            streams = {"/".join(entry) for entry in ole.listdir(streams=True, storages=True)}
    except (OSError, ValueError):
        raise BrokenDocument("broken OLE compound file: its directory cannot be read") from None
    if "FileHeader" in streams and any(s.startswith(("BodyText", "ViewText")) for s in streams):
        return "hwp"
    if "EncryptedPackage" in streams:
        return "encrypted-office"
    if any(s.startswith("__substg1.0_") for s in streams):
        return "msg"
    for stream, kind in (("WordDocument", "doc"), ("Workbook", "xls"), ("Book", "xls"),
                         ("PowerPoint Document", "ppt")):
        if stream in streams:
            return kind
    return "ole"


def sniff_format(data: bytes, source: str) -> str:
    """The file's kind by content: 'pdf', 'html', 'text', one of `DESCRIPTIONS`' keys, or
    `UnsupportedFormat` for binary data we cannot name."""
    head = data[:2048]
    ext = PurePath(source).suffix.lower()
    if head.lstrip()[:5] == b"%PDF-" or b"%PDF-" in data[:1024]:
        return "pdf"
    if head.startswith(ZIP_MAGIC):
        return _zip_kind(data)
    if head.startswith(OLE_MAGIC):
        return _ole_kind(data)
    for magic, kind, _ in _MAGIC:
        if head.startswith(magic):
            return kind
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnsupportedFormat(f"unsupported file type: binary data ({ext or 'no extension'})")
    if ext == ".eml" or _EMAIL_HEADERS.match(head):
        return "eml"
    lowered = head.lower().lstrip()
    if ext in HTML_EXTENSIONS or lowered.startswith((b"<!doctype html", b"<html")):
        return "html"
    if ext in TEXT_EXTENSIONS or not ext:
        return "text"
    if ext == ".pdf":
        raise BrokenDocument("broken PDF: the file does not start with a PDF header")
    raise UnsupportedFormat(f"unsupported file type: {ext}")


def check_unzipped_size(data: bytes, kind: str, limit: int) -> None:
    """Refuse a ZIP bomb before any reader inflates it: the sizes its directory declares, summed.
    (A member that inflates beyond its declared size fails zipfile's own size and CRC checks.)"""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        declared = sum(info.file_size for info in archive.infolist())
    if declared > limit:
        raise LimitExceeded(
            f"too large when unzipped: {DESCRIPTIONS.get(kind, kind)} of {len(data) / 2**20:,.1f} MB would "
            f"expand to {declared / 2**20:,.0f} MB (a ZIP bomb?); the limit is {limit / 2**20:.0f} MB "
            "(set HANRAG_MAX_UNZIPPED_MB to raise it)"
        )


def drop_garbled_pages(doc: ExtractedDocument) -> None:
    """Keep mojibake out of the index: a page whose text looks garbled is dropped, with a warning."""
    pages: dict[int, list[str]] = {}
    for element in doc.elements:
        pages.setdefault(element.page, []).append(element.text)
    garbled = {page: reason for page, texts in pages.items() if (reason := garbled_reason("\n".join(texts)))}
    if not garbled:
        return
    doc.elements = [e for e in doc.elements if e.page not in garbled]
    where = "the text" if len(pages) == 1 else f"page {', '.join(map(str, sorted(garbled)))}"
    doc.warnings.append(f"{where} looks garbled ({next(iter(garbled.values()))}; a wrong character encoding?) "
                        "and was not indexed")


def _refuse_image(kind: str) -> ExtractedDocument:
    raise EmptyDocument(f"{kind.upper()} image: its text can only be read by OCR, and OCR is turned off (HANRAG_OCR=0)")


def extract(data: bytes, source: str, options: ExtractOptions | None = None,
            ocr_memory: OcrMemory | None = None) -> ExtractedDocument:
    """Extract any supported file. Raises a `PipelineError` with a readable reason. `ocr_memory`: what
    OCR read before, so that pictures and scans already read are not read again."""
    options = options or ExtractOptions()
    if not data.strip():
        raise EmptyDocument("empty file: there is no text to index" if not data else
                            "empty file: it holds only whitespace")
    kind = sniff_format(data, source)
    if data.startswith(ZIP_MAGIC):
        check_unzipped_size(data, kind, options.max_unzipped_bytes)
    if kind == "pdf":
        doc = extract_pdf(data, source, options, ocr_memory)
    elif kind == "html":
        doc = extract_html(decode_text(data), source)
    elif kind == "text" and PurePath(source).suffix.lower() in STRUCTURED_TEXT:
        kind = STRUCTURED_TEXT[PurePath(source).suffix.lower()]
        doc = extract_office(data, source, kind, lambda payload, name: extract(payload, name, options, ocr_memory))
    elif kind == "text":
        doc = extract_text(decode_text(data), source)
    elif kind in OFFICE_KINDS or kind in LEGACY or kind == "encrypted-office":
        doc = extract_office(data, source, kind, lambda payload, name: extract(payload, name, options, ocr_memory))
    elif kind == "hwpx":
        doc = extract_hwpx(data, source, options)
    elif kind == "hwp":
        doc = extract_hwp(data, source, options)
    elif kind in ("png", "jpeg", "tiff", "gif"):
        doc = extract_image(data, source, kind, ocr_memory) if options.ocr else _refuse_image(kind)
    else:
        ext = PurePath(source).suffix.lower() or "no extension"
        raise UnsupportedFormat(f"unsupported file type: {DESCRIPTIONS.get(kind, kind)} ({ext})")
    if kind != "pdf":  # the PDF reader checks each page itself, and tries OCR on garbled ones
        drop_garbled_pages(doc)
    if not any(e.text.strip() for e in doc.elements):
        raise EmptyDocument("; ".join(doc.warnings) or "no text found in the file")
    doc.language = "ko" if is_mostly_korean(doc.text) else "en"
    return doc
