"""PDF: text per page from pypdfium2, ruled tables from `pdf_tables`, in reading order.

pypdfium2 keeps the spaces between Korean words that pypdf drops on the Korean public PDFs of
`corpus/ko`, and reads them ~23x faster (`bench/pdf_extractors.py`). Tables are the ruled grids
`pdf_tables.find_tables` finds on the same pdfium pages (pdfplumber's grid algorithm without its
pdfminer parse, which held PDF extraction to ~3 pages/s).
"""

from __future__ import annotations

import logging
import re
from pathlib import PurePath
from typing import TYPE_CHECKING

from pipeline.errors import BrokenDocument, EmptyDocument, EncryptedDocument, LimitExceeded
from pipeline.korean import normalize
from pipeline.models import Element, ExtractedDocument, Table
from pipeline.stages.extract import ocr
from pipeline.stages.extract.pdf_tables import FoundTable, find_tables
from pipeline.stages.extract.quality import looks_garbled
from pipeline.stages.extract.text import blocks

if TYPE_CHECKING:
    from pipeline.options import ExtractOptions

log = logging.getLogger(__name__)


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
        detail = message.split("(")[-1].rstrip(").") or message
        raise BrokenDocument(f"broken PDF: the file is damaged or cut short ({detail})") from None

    try:
        page_count = len(pdf)
        if page_count == 0:
            raise EmptyDocument("empty PDF: it has no pages")
        if page_count > options.max_pages:
            raise LimitExceeded(
                f"PDF too long: {page_count} pages (the limit is {options.max_pages}; "
                "set HANRAG_MAX_PAGES to raise it)"
            )
        title = _pdf_title(pdf) or PurePath(source).stem
        elements: list[Element] = []
        unread: dict[str, list[int]] = {"blank": [], "garbled": []}  # pages whose text layer failed
        ocr_pages: list[int] = []
        for index in range(page_count):
            page_number = index + 1
            page_elements = _pdf_page_elements(pdf[index], page_number, options.pdf_tables)
            page_text = _text(page_elements)
            problem = "blank" if not page_text.strip() else "garbled" if looks_garbled(page_text) else None
            if problem and options.ocr and ocr.available():
                read = blocks(ocr.read_image(ocr.render_pdf_page(pdf[index]))[0], page_number)
                if _text(read).strip() and not looks_garbled(_text(read)):
                    page_elements, problem = read, None
                    ocr_pages.append(page_number)
            if problem:
                unread[problem].append(page_number)
                page_elements = []  # mojibake never reaches the index
            elements.extend(page_elements)
    finally:
        pdf.close()

    warnings = []
    if ocr_pages:
        warnings.append(f"{_pages_phrase(ocr_pages, page_count)} no usable text layer and "
                        f"{'was' if len(ocr_pages) == 1 else 'were'} read by OCR (recognition errors are possible)")
    why_not = "OCR could not read them either" if options.ocr and ocr.available() else (
        ocr.missing() if options.ocr else "OCR is turned off")
    if unread["blank"]:
        warnings.append(f"{_pages_phrase(unread['blank'], page_count)} no text layer (image only) and "
                        f"{why_not}, so their content is not searchable")
    if unread["garbled"]:
        warnings.append(f"{_pages_phrase(unread['garbled'], page_count)} garbled text (the PDF's font encoding "
                        f"cannot be decoded) and {why_not}, so their content is not searchable")
    if not elements:
        raise EmptyDocument(f"no readable text on any of the {page_count} pages; " + "; ".join(warnings))
    return ExtractedDocument(source, normalize(title), page_count, elements, warnings=warnings)


# "T r o u s s e a u", "5 1 . 3 %": letters a PDF spaced out one by one (four or more in a row).
_LETTER_SPACED = re.compile(r"(?<![^\s(])(?:[A-Za-z0-9.,%] ){3,}[A-Za-z0-9.,%](?![A-Za-z0-9])")
_DIGIT_LETTER = re.compile(r"(?<=\d)(?=[A-Za-z])|(?<=[A-Za-z])(?=\d)")  # "1865Trousseau" → "1865 Trousseau"
# pdfium marks a hyphen it found at a line end (a word split across lines) with U+FFFE.
_SOFT_HYPHEN = re.compile(r"[\ufffe\u00ad]\r?\n?")


def _blocks(text: str, number: int) -> list[Element]:
    """`text.blocks` after undoing two PDF artefacts: hyphenated line ends and letter-spaced words."""
    text = _SOFT_HYPHEN.sub("", text)
    text = _LETTER_SPACED.sub(lambda m: _DIGIT_LETTER.sub(" ", m.group(0).replace(" ", "")), text)
    return blocks(text, number)


def _text(elements: list[Element]) -> str:
    return "\n".join(e.text for e in elements)


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
