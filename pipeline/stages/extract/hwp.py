"""HWP 5 (the Hangul word processor's binary format): an OLE compound file of record streams.

Read with olefile and zlib, following Hancom's published "HWP 5.0 file format" document:
`FileHeader` says whether the streams are compressed (raw deflate), password-protected or a
distribution document (배포용 문서: the body sits AES-encrypted in `ViewText/`); `DocInfo` holds the
paragraph style names (for headings); `BodyText/SectionN` hold the paragraphs as records whose levels
nest them: a paragraph header (66) owns its text (67) and its controls (71); a table control owns a
table record (77) and one list header (72) per cell, each followed by the cell's paragraphs.

Distribution documents are refused: decrypting them needs a key derivation that only unmaintained
libraries implement. Pages are estimated from the saved line layout (PARA_LINE_SEG, 69), as for HWPX
(`hwp_layout`); tables go through `hwp_table.build_table`, the grid shared with HWPX.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import dropwhile
from pathlib import PurePath
from typing import TYPE_CHECKING

from pipeline.errors import BrokenDocument, EncryptedDocument, LimitExceeded
from pipeline.korean import normalize
from pipeline.models import Element, ExtractedDocument
from pipeline.stages.extract.hwp_layout import PageCounter, body_height, table_height
from pipeline.stages.extract.hwp_table import CellSpan, build_table
from pipeline.stages.extract.hwp_text import is_heading_style, paragraph_elements

if TYPE_CHECKING:
    import olefile

    from pipeline.options import ExtractOptions

# Record tags (HWPTAG_BEGIN = 16).
STYLE = 26
PARA_HEADER = 66
PARA_TEXT = 67
PARA_LINE_SEG = 69
CTRL_HEADER = 71
LIST_HEADER = 72
PAGE_DEF = 73
TABLE = 77
# FileHeader property bits.
_COMPRESSED, _PASSWORD, _DISTRIBUTION, _DRM, _CERTIFICATE_DRM = 1, 2, 4, 16, 1024
# Control characters of PARA_TEXT: these occupy 8 WCHARs (the code, 6 of parameters, the code again).
_INLINE_OR_EXTENDED = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23})
_CHARACTER = {9: " ", 10: "\n", 13: "", 24: "-", 30: " ", 31: " "}  # tab, line break, para end, hyphen, spaces
# Controls whose paragraphs are content (tables are handled apart); header, footer and page
# furniture are not.
_TABLE = b"tbl "
_TEXT_CONTROLS = frozenset({b"gso ", b"fn  ", b"en  ", b"tcmt"})


@dataclass
class Record:
    tag: int
    level: int
    data: bytes
    children: list[Record] = field(default_factory=list)


def extract_hwp(data: bytes, source: str, options: ExtractOptions) -> ExtractedDocument:
    import olefile

    try:
        return _read(olefile.OleFileIO(io.BytesIO(data)), source, options)
    except (OSError, ValueError) as error:  # what olefile raises on a damaged directory, FAT or stream
        raise BrokenDocument(f"broken HWP: the OLE container is damaged ({error})") from None


def _read(ole: olefile.OleFileIO, source: str, options: ExtractOptions) -> ExtractedDocument:
    with ole:
        compressed = _check_header(ole)
        budget = _Budget(options.max_unzipped_bytes)
        heading_styles = _heading_styles(_stream(ole, "DocInfo", compressed, budget)) if ole.exists(
            "DocInfo") else set()
        sections = sorted(
            ("/".join(entry) for entry in ole.listdir() if len(entry) == 2 and entry[0] == "BodyText"),
            key=lambda name: int(re.sub(r"\D", "", name) or 0),
        )
        if not sections:
            raise BrokenDocument("broken HWP: it has no BodyText section")
        reader = _BodyReader(heading_styles)
        for name in sections:
            records = list(_records(_stream(ole, name, compressed, budget)))
            reader.pages.start_section(_body_height(next((r for r in records if r.tag == PAGE_DEF), None)))
            for paragraph in _tree(iter(records)):
                if paragraph.tag == PARA_HEADER:
                    positions = _line_positions(paragraph)
                    reader.pages.paragraph_starts(positions, _page_break(paragraph))
                    reader.paragraph(paragraph)
                    tables = [c for c in paragraph.children if c.tag == CTRL_HEADER and _control_id(c) == _TABLE]
                    reader.pages.paragraph_ends(positions, [_table_height(t) for t in tables])
        title = _summary_title(ole)
    return ExtractedDocument(source=source, title=normalize(title or PurePath(source).stem),
                             pages=max(reader.pages.page, 1),
                             elements=reader.elements)


def _check_header(ole: olefile.OleFileIO) -> bool:
    """Refuse what we cannot read; True when the streams are compressed."""
    header = ole.openstream("FileHeader").read(256)
    if not header.startswith(b"HWP Document File") or len(header) < 40:
        raise BrokenDocument("broken HWP: the FileHeader stream is not an HWP 5 header")
    flags = struct.unpack_from("<I", header, 36)[0]
    if flags & _DISTRIBUTION:
        raise EncryptedDocument("HWP distribution document: its text is encrypted (배포용 문서)")
    if flags & _PASSWORD:
        raise EncryptedDocument("encrypted HWP: the document is protected by a password")
    if flags & (_DRM | _CERTIFICATE_DRM):
        raise EncryptedDocument("encrypted HWP: the document is under DRM")
    return bool(flags & _COMPRESSED)


class _Budget:
    """Bytes the streams may still inflate to: a few kilobytes of deflate can claim gigabytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit


def _stream(ole: olefile.OleFileIO, name: str, compressed: bool, budget: _Budget) -> bytes:
    """A stream's bytes, inflated (raw deflate) when the document is compressed."""
    raw = ole.openstream(name).read()
    if not compressed:
        return raw
    try:
        data = zlib.decompressobj(-15).decompress(raw, budget.left + 1)
    except zlib.error:
        raise BrokenDocument(f"broken HWP: the {name} stream cannot be decompressed") from None
    budget.left -= len(data)
    if budget.left < 0:
        raise LimitExceeded(f"HWP document inflates to more than {budget.limit / 2**20:.3g} MB: refused as a "
                            "possible compression bomb (set HANRAG_MAX_UNZIPPED_MB to raise the limit)")
    return data


def _records(data: bytes) -> Iterator[Record]:
    offset = 0
    while offset + 4 <= len(data):
        (header,) = struct.unpack_from("<I", data, offset)
        tag, level, size = header & 0x3FF, (header >> 10) & 0x3FF, header >> 20
        offset += 4
        if size == 0xFFF:
            if offset + 4 > len(data):
                break
            (size,) = struct.unpack_from("<I", data, offset)
            offset += 4
        yield Record(tag, level, data[offset:offset + size])
        offset += size


def _tree(records: Iterator[Record]) -> list[Record]:
    """Nest records by level: a record owns the records after it with a higher level."""
    roots: list[Record] = []
    stack: list[Record] = []
    for record in records:
        while stack and stack[-1].level >= record.level:
            stack.pop()
        (stack[-1].children if stack else roots).append(record)
        stack.append(record)
    return roots


def _heading_styles(docinfo: bytes) -> set[int]:
    """Indexes of paragraph styles whose name says outline or title (their order is their id)."""
    found: set[int] = set()
    styles = [r for r in _records(docinfo) if r.tag == STYLE]
    for index, style in enumerate(styles):
        names = []
        offset = 0
        for _ in range(2):  # local name, then English name: WORD length + UTF-16 characters
            if offset + 2 > len(style.data):
                break
            (length,) = struct.unpack_from("<H", style.data, offset)
            names.append(style.data[offset + 2:offset + 2 + 2 * length].decode("utf-16-le", "replace"))
            offset += 2 + 2 * length
        is_paragraph_style = offset < len(style.data) and style.data[offset] & 0x7 == 0
        name = " ".join(names)
        if is_paragraph_style and is_heading_style(name):
            found.add(index)
    return found


def _summary_title(ole: olefile.OleFileIO) -> str:
    if not ole.exists("\x05HwpSummaryInformation"):
        return ""
    try:
        title = ole.getproperties("\x05HwpSummaryInformation").get(2)  # PIDSI_TITLE
    except (OSError, struct.error, UnicodeError):
        return ""
    if isinstance(title, bytes):
        title = title.decode("utf-16-le", "ignore") if b"\x00" in title else title.decode("cp949", "ignore")
    return title.strip("\x00 ") if isinstance(title, str) else ""


def _text(record: Record | None) -> str:
    """PARA_TEXT → characters: controls become spaces or line breaks, or nothing."""
    if record is None:
        return ""
    data = record.data
    count = len(data) // 2
    chars = struct.unpack_from(f"<{count}H", data)
    out: list[str] = []
    i = 0
    while i < count:
        code = chars[i]
        if code < 32:
            out.append(_CHARACTER.get(code, ""))
            i += 8 if code in _INLINE_OR_EXTENDED else 1
            continue
        out.append(chr(code))
        i += 1
    # Characters beyond the BMP arrive as surrogate pairs, one code unit at a time: rejoin them.
    return "".join(out).encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _paragraph_text_and_controls(paragraph: Record) -> tuple[str, list[Record]]:
    text = _text(next((c for c in paragraph.children if c.tag == PARA_TEXT), None))
    controls = [c for c in paragraph.children if c.tag == CTRL_HEADER and len(c.data) >= 4]
    return text, controls


def _control_id(control: Record) -> bytes:
    return control.data[:4][::-1]  # stored little-endian: b" lbt" is "tbl "


def _line_positions(paragraph: Record) -> list[int]:
    """Vertical position of each line on its page: the second field of each 36-byte line segment."""
    segments = next((c.data for c in paragraph.children if c.tag == PARA_LINE_SEG), b"")
    return [struct.unpack_from("<i", segments, offset + 4)[0] for offset in range(0, len(segments) - 35, 36)]


def _body_height(page_def: Record | None) -> int:
    """PAGE_DEF: width, height, then margins left, right, top, bottom, header, footer (UINT32 each)."""
    if page_def is None or len(page_def.data) < 32:
        return 0
    height, _, _, top, bottom, header, footer = struct.unpack_from("<7I", page_def.data, 4)
    return body_height(height, (top, bottom, header, footer))


def _table_height(control: Record) -> int:
    """From each cell's list header (those after the TABLE record): row, row span and height."""
    cells = dropwhile(lambda child: child.tag != TABLE, control.children)
    return table_height(struct.unpack_from("<2xH2xH4xI", c.data, 8) for c in cells
                        if c.tag == LIST_HEADER and len(c.data) >= 24)


def _page_break(paragraph: Record) -> bool:
    """The paragraph header's break type (byte 11): bit 2 is a page break, bit 3 a column break."""
    return len(paragraph.data) > 11 and bool(paragraph.data[11] & 0x04)


def _style(paragraph: Record) -> int:
    return paragraph.data[10] if len(paragraph.data) > 10 else -1


def _sub_paragraphs(record: Record) -> list[Record]:
    """Paragraphs inside a control (text box, footnote), not those of tables nested deeper."""
    found: list[Record] = []
    for child in record.children:
        if child.tag == PARA_HEADER:
            found.append(child)
        elif not (child.tag == CTRL_HEADER and _control_id(child) == _TABLE):
            found += _sub_paragraphs(child)
    return found


@dataclass
class _BodyReader:
    heading_styles: set[int]
    elements: list[Element] = field(default_factory=list)
    pages: PageCounter = field(default_factory=PageCounter)

    def paragraph(self, paragraph: Record) -> None:
        text, controls = _paragraph_text_and_controls(paragraph)
        self._text(text, _style(paragraph) in self.heading_styles)
        for control in controls:
            kind = _control_id(control)
            if kind == _TABLE:
                self._table(control)
            elif kind in _TEXT_CONTROLS:
                for inner in _sub_paragraphs(control):
                    self.paragraph(inner)

    def _text(self, raw: str, styled_heading: bool) -> None:
        self.elements += paragraph_elements(raw, self.pages.page, styled_heading)

    def _table(self, control: Record) -> None:
        """Its caption, the table, then the tables nested in its cells (their text also stays in the cell)."""
        for child in control.children:
            if child.tag == TABLE:
                break
            if child.tag == PARA_HEADER:
                self.paragraph(child)
        nested: list[Record] = []
        table = build_table(_cells(control, nested))
        if table is not None:
            self.elements.append(Element("table", self.pages.page, table.to_markdown(), table=table))
        for inner in nested:
            self._table(inner)


def _cells(control: Record, nested: list[Record]) -> list[CellSpan]:
    """Cells of a table control: each list header (address and spans) and the paragraphs after it."""
    cells: list[CellSpan] = []
    current: tuple[int, int, int, int] | None = None
    lines: list[str] = []

    def close() -> None:
        if current is not None:
            row, col, row_span, col_span = current
            text = "\n".join(line.strip() for line in normalize("\n".join(lines)).split("\n") if line.strip())
            cells.append(CellSpan(row, col, row_span, col_span, text))

    grid_started = False  # a list header before the TABLE record is the caption's, not a cell's
    for child in control.children:
        grid_started = grid_started or child.tag == TABLE
        if child.tag == LIST_HEADER and grid_started:
            close()
            lines = []
            if len(child.data) >= 16:
                col, row, col_span, row_span = struct.unpack_from("<4H", child.data, 8)
                current = (row, col, max(row_span, 1), max(col_span, 1))
            else:
                current = None
        elif child.tag == PARA_HEADER and current is not None:
            lines.append(_cell_paragraph_text(child, nested))
    close()
    return cells


def _cell_paragraph_text(paragraph: Record, nested: list[Record]) -> str:
    text, controls = _paragraph_text_and_controls(paragraph)
    parts = [text]
    for control in controls:
        kind = _control_id(control)
        if kind == _TABLE:
            nested.append(control)
            rows: dict[int, list[str]] = {}
            for cell in _cells(control, []):
                rows.setdefault(cell.row, []).append(" ".join(cell.text.split()))
            parts.append(" / ".join(" ".join(c for c in row if c) for _, row in sorted(rows.items())))
        elif kind in _TEXT_CONTROLS:
            parts += [_cell_paragraph_text(p, nested) for p in _sub_paragraphs(control)]
    return " ".join(p for p in parts if p.strip())
