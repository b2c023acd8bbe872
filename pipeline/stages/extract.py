"""Extract: file bytes → `ExtractedDocument` (ordered text blocks and tables, per page).

The type is decided by content (magic bytes), the extension only breaks ties between text
formats. Formats beyond PDF, plain text, Markdown and HTML arrive with the extraction issue; until
then they are refused with a reason naming what the file is.

PDF text comes from pypdfium2: on the Korean public PDFs of `corpus/ko` it keeps the spaces
between Korean words that pypdf drops, and reads ~24x faster (see `bench/pdf_extractors.py`).
Tables are the ruled grids `pdf_tables.find_tables` finds on the same pdfium pages (pdfplumber's
grid algorithm without its pdfminer parse, which held PDF extraction to ~3 pages/s).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import PurePath

from pipeline.errors import BrokenDocument, EmptyDocument, EncryptedDocument, UnsupportedFormat
from pipeline.korean import is_mostly_korean, normalize
from pipeline.models import Element, ExtractedDocument, Table
from pipeline.stages.pdf_tables import FoundTable, find_tables

log = logging.getLogger(__name__)

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

# Lines that open a section in Korean public documents and most reports: "Ⅰ. 추진 배경", "1. 개요",
# "가. 목적", "제3장 총칙", "# Heading". Bullets (□, ○, -) open items, not sections: a long item's
# first line is short too, so treating it as a heading would cut a sentence in two.
_HEADING = re.compile(
    r"^\s*(?:[ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩ]+\s*[.．]|[IVX]{1,4}\.|\d{1,2}\.(?!\d)|[가-하]\.|제\s?\d+\s?[장절편]|#{1,6}\s)"
    r"\s*\S[^,]{0,38}$"
)
# Page furniture that would otherwise land in the middle of a chunk: "- 3 -", "3 / 12", "Page 3".
_PAGE_NUMBER = re.compile(r"^\s*(?:[-–—]\s*\d{1,4}\s*[-–—]|\d{1,4}\s*/\s*\d{1,4}|page\s+\d{1,4})\s*$", re.I)


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


# --------------------------------------------------------------------------- text and HTML


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, then CP949/EUC-KR, then best guess."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    for encoding in ("utf-8", "cp949"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise UnsupportedFormat("unreadable text: the character encoding could not be detected")
    return str(best)


def _blocks(text: str, page: int) -> list[Element]:
    """Split text into paragraph blocks; short section-opening lines become headings."""
    elements: list[Element] = []
    for paragraph in re.split(r"\n\s*\n", normalize(text)):
        lines = [ln.strip() for ln in paragraph.split("\n") if ln.strip() and not _PAGE_NUMBER.match(ln)]
        buffer: list[str] = []
        for line in lines:
            if _HEADING.match(line):
                if buffer:
                    elements.append(Element("text", page, "\n".join(buffer)))
                    buffer = []
                elements.append(Element("text", page, line.lstrip("# ").strip(), heading=True))
            else:
                buffer.append(line)
        if buffer:
            elements.append(Element("text", page, "\n".join(buffer)))
    return elements


def extract_text(text: str, source: str) -> ExtractedDocument:
    elements = _blocks(text, page=1)
    return ExtractedDocument(source=source, title=PurePath(source).stem, pages=1, elements=elements)


def extract_html(html: str, source: str) -> ExtractedDocument:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        if tag.name != "head":
            tag.decompose()
    title_tag = soup.find("title")
    title = title_tag.get_text(" ", strip=True) if title_tag else PurePath(source).stem
    if title_tag:
        title_tag.decompose()

    elements: list[Element] = []
    blocks = ("h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "blockquote", "table", "dt", "dd")
    for node in soup.find_all(blocks):
        if node.find_parent("table") is not None:
            continue  # cells belong to their table
        if node.name != "table" and node.find_parent(["p", "li", "blockquote"]) is not None:
            continue
        if node.name == "table":
            rows = [
                [cell.get_text(" ", strip=True) for cell in tr.find_all(["th", "td"])]
                for tr in node.find_all("tr")
            ]
            rows = [r for r in rows if any(r)]
            if rows:
                table = Table(rows=rows, header_rows=1)
                elements.append(Element("table", 1, table.to_markdown(), table=table))
            continue
        text = normalize(node.get_text(" ", strip=True))
        if text:
            elements.append(Element("text", 1, text, heading=node.name.startswith("h")))
    if not elements:  # markup without block tags: fall back to the visible text
        elements = _blocks(soup.get_text("\n"), page=1)
    return ExtractedDocument(source=source, title=normalize(title), pages=1, elements=elements)


# --------------------------------------------------------------------------- PDF


def extract_pdf(data: bytes, source: str, options: ExtractOptions) -> ExtractedDocument:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data, password=options.pdf_password)
    except pdfium.PdfiumError as error:
        message = str(error)
        if "password" in message.lower():
            if options.pdf_password:
                raise EncryptedDocument("encrypted PDF: the configured password is wrong") from None
            raise EncryptedDocument("encrypted PDF: a password is required") from None
        raise BrokenDocument(f"broken PDF: {message.split('(')[-1].rstrip(').') or message}") from None

    try:
        page_count = len(pdf)
        if page_count == 0:
            raise EmptyDocument("empty PDF: it has no pages")
        if page_count > options.max_pages:
            raise BrokenDocument(
                f"PDF too long: {page_count} pages (the limit is {options.max_pages}; "
                "set HANRAG_MAX_PAGES to raise it)"
            )
        title = _pdf_title(pdf) or PurePath(source).stem
        elements: list[Element] = []
        blank_pages: list[int] = []
        for index in range(page_count):
            page_number = index + 1
            page_elements = _pdf_page_elements(pdf[index], page_number, options.pdf_tables)
            if not any(e.text.strip() for e in page_elements):
                blank_pages.append(page_number)
            elements.extend(page_elements)
    finally:
        pdf.close()

    warnings = []
    if blank_pages:
        warnings.append(
            f"{_pages_phrase(blank_pages, page_count)} no text layer (image only); "
            "OCR is not configured, so their content is not searchable"
        )
    if len(blank_pages) == page_count:
        raise EmptyDocument(
            f"no text layer on any of the {page_count} pages (a scan?); OCR is not configured"
        )
    return ExtractedDocument(source, normalize(title), page_count, elements, warnings=warnings)


def _pages_phrase(pages: list[int], total: int) -> str:
    shown = ", ".join(map(str, pages[:10])) + (", …" if len(pages) > 10 else "")
    return f"page {shown} of {total} has" if len(pages) == 1 else f"{len(pages)} of {total} pages ({shown}) have"


def _pdf_title(pdf) -> str:
    try:
        title = (pdf.get_metadata_dict().get("Title") or "").strip()
    except Exception:  # metadata is optional and often malformed
        return ""
    # Authoring tools often leave a file name or a template title here.
    if not title or title.lower().endswith((".hwp", ".doc", ".docx", ".pdf")) or len(title) < 3:
        return ""
    return title


def _pdf_page_elements(page, number: int, with_tables: bool) -> list[Element]:
    """Text and tables of one page in reading order; table areas are read as tables only."""
    textpage = page.get_textpage()
    try:
        tables = _page_tables(page, textpage, number) if with_tables else []
        if not tables:
            return _blocks(textpage.get_text_range(), number)
        # Table boxes are measured down from the top of the media box (see `find_tables`).
        left, page_bottom, right, page_top = page.get_mediabox()
        elements: list[Element] = []
        cursor = 0.0  # top of the band not yet read, from the top of the page
        for found in tables:
            x0, top, x1, bottom = found.bbox
            if top > cursor:
                elements += _blocks(textpage.get_text_bounded(left, page_top - top, right, page_top - cursor), number)
            # text beside the table (a side note, a unit line) is kept too
            if x0 - left > 20:
                elements += _blocks(textpage.get_text_bounded(left, page_top - bottom, x0, page_top - top), number)
            table = Table(rows=found.rows, header_rows=1)
            elements.append(Element("table", number, table.to_markdown(), table=table))
            if x1 < right - 20:
                elements += _blocks(textpage.get_text_bounded(x1, page_top - bottom, right, page_top - top), number)
            cursor = max(cursor, bottom)
        if cursor < page_top - page_bottom:
            elements += _blocks(textpage.get_text_bounded(left, page_bottom, right, page_top - cursor), number)
        return elements
    finally:
        textpage.close()


def _page_tables(page, textpage, number: int) -> list[FoundTable]:
    """Ruled tables of the page, top to bottom; none if the search fails (the text still has the words)."""
    try:
        return sorted(find_tables(page, textpage), key=lambda t: t.bbox[1])
    except Exception as error:  # tables are a bonus: the text layer still carries the words
        log.warning("table search failed on page %d: %s", number, error)
        return []
