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
from pipeline.stages.extract.pdf_aligned_tables import find_aligned_tables
from pipeline.stages.extract.pdf_objects import CharBox, char_boxes
from pipeline.stages.extract.pdf_tables import FoundTable, find_tables
from pipeline.stages.extract.quality import looks_garbled
from pipeline.stages.extract.text import blocks

if TYPE_CHECKING:
    from pipeline.options import ExtractOptions

log = logging.getLogger(__name__)


def extract_pdf(data: bytes, source: str, options: ExtractOptions,
                memory: ocr.OcrMemory | None = None) -> ExtractedDocument:
    """`memory`: where what OCR read is remembered (pictures and scanned pages read once)."""
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
        images = _ImageReader(memory) if options.ocr and options.ocr_images and ocr.available() else None
        for index in range(page_count):
            page_number = index + 1
            page = pdf[index]  # loaded once for its text, its tables, its pictures (each load parses the page)
            try:
                page_elements = _pdf_page_elements(page, page_number, options)
                page_text = _text(page_elements)
                problem = "blank" if not page_text.strip() else "garbled" if looks_garbled(page_text) else None
                if problem and options.ocr and ocr.available():
                    read = blocks(ocr.read_image(ocr.render_pdf_page(page), memory=memory)[0], page_number)
                    if _text(read).strip() and not looks_garbled(_text(read)):
                        page_elements, problem = read, None
                        ocr_pages.append(page_number)
                if problem:
                    unread[problem].append(page_number)
                    page_elements = []  # mojibake never reaches the index
                elif images is not None and page_number not in ocr_pages:
                    page_elements += images.read(page, page_number)
            finally:
                page.close()
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


# Pictures smaller than this on the page (points) are logos, icons and bullets: not worth OCR.
MIN_IMAGE_WIDTH, MIN_IMAGE_HEIGHT = 120.0, 60.0
# OCR'd text of a picture below this mean word confidence is noise (a photo, a texture): dropped.
MIN_IMAGE_CONFIDENCE = 60.0
MIN_IMAGE_LETTERS = 4
# Pictures are read at least at this resolution (Tesseract is trained at 300 dpi), at most 4x enlarged.
IMAGE_DPI = 300


class _ImageReader:
    """OCR of the pictures on pages that have a text layer: a chart's labels, a labelled photo.

    Each distinct picture is read once per document: the same bitmap on several pages (a banner, a
    logo above the size limit) is page furniture, kept on the first page it appears on.
    """

    def __init__(self, memory: ocr.OcrMemory | None = None) -> None:
        self.memory = memory
        self.seen: set[bytes] = set()
        self.read_count = 0

    def read(self, page, number: int) -> list[Element]:
        import hashlib

        import pypdfium2.raw as pdfium_c

        elements: list[Element] = []
        for image in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=5):
            left, bottom, right, top = image.get_bounds()
            if right - left < MIN_IMAGE_WIDTH or top - bottom < MIN_IMAGE_HEIGHT:
                continue
            try:
                picture = image.get_bitmap(render=True).to_pil().convert("L")
            except Exception as error:  # an image pdfium cannot decode: its page's text still stands
                log.warning("picture on page %d cannot be decoded: %s", number, error)
                continue
            key = hashlib.sha256(picture.tobytes()).digest()
            if key in self.seen:
                continue
            self.seen.add(key)
            wanted = (right - left) * IMAGE_DPI / 72
            size = picture.size
            if picture.width < wanted:
                scale = min(4.0, wanted / picture.width)
                size = (round(picture.width * scale), round(picture.height * scale))
            self.read_count += 1
            text, confidence = ocr.read_picture(picture, memory=self.memory, size=size, digest=key)
            if confidence < MIN_IMAGE_CONFIDENCE or sum(c.isalnum() for c in text) < MIN_IMAGE_LETTERS:
                continue
            elements.append(Element("image", number, normalize(text), confidence=round(confidence, 1)))
        return elements


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


def _pdf_page_elements(page, number: int, options: ExtractOptions) -> list[Element]:
    """Text and tables of one page in reading order; table areas are read as tables only."""
    textpage = page.get_textpage()
    try:
        # every character's box, read once for both finders and for the text around the tables
        boxes = list(char_boxes(textpage)) if options.pdf_tables and options.pdf_aligned_tables else None
        tables = _page_tables(page, textpage, boxes, number, options) if options.pdf_tables else []
        if not tables:
            return _blocks(textpage.get_text_range(), number)
        boxes = list(char_boxes(textpage)) if boxes is None else boxes
        return _around_tables(textpage, boxes, tables, page.get_mediabox()[3], number)
    finally:
        textpage.close()


def _around_tables(
    textpage, chars: list[CharBox], tables: list[FoundTable], page_top: float, number: int
) -> list[Element]:
    """The page's text in pdfium's reading order, each table in the place of its first character.

    pdfium's characters are cut into runs that lie outside every table and runs inside one; a run
    outside is read as text (with the spaces and line breaks pdfium puts between words), a table
    is emitted once, where its run starts. Text beside a table, or between two tables side by side,
    stays where it was read.
    """
    boxes = [found.bbox for found in tables]

    def holder(left: float, top: float, right: float, bottom: float) -> int | None:
        x = left + min((right - left) / 2, 2.0)  # placed by where it starts, as in the cells
        y = page_top - (top + bottom) / 2
        return next((i for i, (x0, t, x1, b) in enumerate(boxes) if x0 <= x < x1 and t <= y < b), None)

    runs: list[tuple[int, int | None]] = []  # (first character index, table or None)
    for index, _, left, top, right, bottom in chars:
        table = holder(left, top, right, bottom)
        if not runs or runs[-1][1] != table:
            runs.append((0 if not runs else index, table))
    ends = [start for start, _ in runs[1:]] + [textpage.count_chars()]
    elements: list[Element] = []
    emitted: set[int] = set()
    for (start, table), end in zip(runs, ends, strict=True):
        if table is None:
            elements += _blocks(textpage.get_text_range(start, end - start), number)
        elif table not in emitted:
            emitted.add(table)
            found = Table(rows=tables[table].rows, header_rows=1)
            elements.append(Element("table", number, found.to_markdown(), table=found))
    return elements


def _page_tables(
    page, textpage, boxes: list[CharBox] | None, number: int, options: ExtractOptions
) -> list[FoundTable]:
    """Ruled tables of the page, then tables without rules outside them; none if the search fails
    (the text still has the words)."""
    try:
        tables = find_tables(page, textpage, boxes)
        if boxes is not None and options.pdf_aligned_tables:
            page_top = page.get_mediabox()[3]
            tables += [FoundTable(bbox=t.bbox, rows=t.rows) for t in
                       find_aligned_tables(boxes, page_top, page.get_width(), [t.bbox for t in tables])]
        return sorted(tables, key=lambda t: t.bbox[1])
    except Exception as error:  # tables are a bonus: the text layer still carries the words
        log.warning("table search failed on page %d: %s", number, error)
        return []
