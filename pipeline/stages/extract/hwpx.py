"""HWPX (OWPML, KS X 6101): a ZIP of XML written by the Hangul word processor, read natively.

Sections are read in the order of the package's spine (`Contents/content.hpf`, found through
`META-INF/container.xml`), or in the numeric order of `Contents/sectionN.xml` when there is no usable
manifest. Paragraphs come out in document order, headings marked as `hwp_text` decides; every
`hp:tbl` becomes a `Table` (the grid shared with HWP 5 in `hwp_table`).

Pages: HWPX stores no page numbers; `hwp_layout.PageCounter` estimates them from the line layout
Hangul saved with each paragraph (physical page numbers, as in a PDF of the document).

A password-protected HWPX is refused by what its manifest says. The archive is untrusted: what it
inflates to is capped (`ExtractOptions.max_unzipped_bytes`), counted as it inflates (`extract` has
already checked the sizes the ZIP directory declares), and XML with a DOCTYPE (entity expansion) is
refused; OWPML never uses one.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING

from pipeline.errors import BrokenDocument, EncryptedDocument, LimitExceeded
from pipeline.korean import normalize
from pipeline.models import Element, ExtractedDocument
from pipeline.stages.extract.hwp_layout import PageCounter, body_height, table_height
from pipeline.stages.extract.hwp_table import CellSpan, build_table
from pipeline.stages.extract.hwp_text import is_heading_style, paragraph_elements

if TYPE_CHECKING:
    from pipeline.options import ExtractOptions

HP = "{http://www.hancom.co.kr/hwpml/2011/paragraph}"
HH = "{http://www.hancom.co.kr/hwpml/2011/head}"
OPF = "{http://www.idpf.org/2007/opf/}"
OCF = "{urn:oasis:names:tc:opendocument:xmlns:container}"
ODF_MANIFEST = "{urn:oasis:names:tc:opendocument:xmlns:manifest:1.0}"
_SECTION = re.compile(r"^Contents/section(\d+)\.xml$", re.I)
# Inline elements of `hp:t` that stand for characters.
_INLINE = {f"{HP}tab": " ", f"{HP}lineBreak": "\n", f"{HP}fwSpace": " ", f"{HP}nbSpace": " ", f"{HP}hyphen": "-"}
# Controls whose text is page furniture repeated on every page, not content.
_FURNITURE = {f"{HP}header", f"{HP}footer", f"{HP}pageNum", f"{HP}pageHiding"}


def extract_hwpx(data: bytes, source: str, options: ExtractOptions) -> ExtractedDocument:
    with _open_archive(data) as archive:
        budget = _Budget(options.max_unzipped_bytes)
        names = archive.namelist()
        _refuse_encrypted(archive, names, budget)
        package = _package(archive, names, budget)
        sections = _spine_sections(package, names) or _numbered_sections(names)
        if not sections:
            raise BrokenDocument("broken HWPX: it has no Contents/section*.xml with the document body")
        headings = _heading_styles(_parse(archive, "Contents/header.xml", budget)) if (
            "Contents/header.xml" in names) else set()
        reader = _SectionReader(headings)
        for name in sections:
            reader.read(_parse(archive, name, budget))
    title = _title(package) or PurePath(source).stem
    return ExtractedDocument(source=source, title=normalize(title), pages=max(reader.pages.page, 1),
                             elements=reader.elements)


class _Budget:
    """Bytes left to inflate; exceeding it means a zip bomb, or a file far beyond what we index."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def read(self, archive: zipfile.ZipFile, name: str) -> bytes:
        with archive.open(name) as member:
            data = member.read(self.left + 1)
        self.left -= len(data)
        if self.left < 0:
            raise _too_big(self.limit)
        return data


def _too_big(limit: int) -> LimitExceeded:
    return LimitExceeded(f"HWPX archive unpacks to more than {limit / 2**20:.3g} MB: refused as a possible "
                         "zip bomb (set HANRAG_MAX_UNZIPPED_MB to raise the limit)")


def _open_archive(data: bytes) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):
        raise BrokenDocument("broken HWPX: the ZIP container cannot be read") from None
    return archive


def _parse(archive: zipfile.ZipFile, name: str, budget: _Budget) -> ET.Element:
    try:
        xml = budget.read(archive, name)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError, ValueError, NotImplementedError) as error:
        raise BrokenDocument(f"broken HWPX: {name} cannot be unpacked ({error})") from None
    if b"<!DOCTYPE" in xml[:4096].upper():
        raise BrokenDocument(f"broken HWPX: {name} declares a DOCTYPE, which OWPML never does")
    try:
        return ET.fromstring(xml)
    except ET.ParseError as error:
        raise BrokenDocument(f"broken HWPX: {name} is not well-formed XML ({error})") from None


def _refuse_encrypted(archive: zipfile.ZipFile, names: list[str], budget: _Budget) -> None:
    """A password-protected HWPX lists its encrypted parts in META-INF/manifest.xml (ODF encryption,
    OWPML §15); their bytes are AES ciphertext, not XML."""
    if "META-INF/manifest.xml" not in names:
        return
    try:
        manifest = _parse(archive, "META-INF/manifest.xml", budget)
    except BrokenDocument:
        return  # a damaged manifest is not a sign of encryption; the sections will tell
    if manifest.find(f".//{ODF_MANIFEST}encryption-data") is not None:
        raise EncryptedDocument("encrypted HWPX: the document is protected by a password")


def _package(archive: zipfile.ZipFile, names: list[str], budget: _Budget) -> ET.Element | None:
    """The OPF package (content.hpf) the container points to, if there is one that parses."""
    path = "Contents/content.hpf"
    if "META-INF/container.xml" in names:
        try:
            container = _parse(archive, "META-INF/container.xml", budget)
        except BrokenDocument:
            container = None
        if container is not None:
            for rootfile in container.iter(f"{OCF}rootfile"):
                if rootfile.get("media-type", "").endswith("package+xml"):
                    path = rootfile.get("full-path", path)
                    break
    if path not in names:
        return None
    try:
        return _parse(archive, path, budget)
    except BrokenDocument:
        return None  # the sections can still be found by name


def _spine_sections(package: ET.Element | None, names: list[str]) -> list[str]:
    """Section files in spine order; empty when the manifest is missing or names no section."""
    if package is None:
        return []
    hrefs = {item.get("id"): item.get("href", "") for item in package.iter(f"{OPF}item")}
    present = set(names)
    ordered = [hrefs.get(ref.get("idref"), "") for ref in package.iter(f"{OPF}itemref")]
    return [href for href in ordered if _SECTION.match(href) and href in present]


def _numbered_sections(names: list[str]) -> list[str]:
    found = [(int(m.group(1)), name) for name in names if (m := _SECTION.match(name))]
    return [name for _, name in sorted(found)]


def _title(package: ET.Element | None) -> str:
    if package is None:
        return ""
    title = package.find(f"{OPF}metadata/{OPF}title")
    text = (title.text or "").strip() if title is not None else ""
    return "" if text.isdigit() else text  # "1111" is what a form left in the title field


def _heading_styles(header: ET.Element) -> set[str]:
    """Ids of paragraph styles whose name says outline or title."""
    found = set()
    for style in header.iter(f"{HH}style"):
        name = f"{style.get('name', '')} {style.get('engName', '')}".strip()
        if style.get("type", "PARA") == "PARA" and is_heading_style(name):
            found.add(style.get("id", ""))
    return found


@dataclass
class _SectionReader:
    """Walks section XML into elements: paragraphs, and tables after the text that anchors them."""

    heading_styles: set[str]
    elements: list[Element] = field(default_factory=list)
    pages: PageCounter = field(default_factory=PageCounter)

    def read(self, section: ET.Element) -> None:
        page = section.find(f"{HP}p/{HP}run/{HP}secPr/{HP}pagePr")
        margin = page.find(f"{HP}margin") if page is not None else None
        self.pages.start_section(body_height(
            _int(page, "height", 0), (_int(margin, side, 0) for side in ("top", "bottom", "header", "footer"))))
        for paragraph in section.findall(f"{HP}p"):
            positions = [_int(seg, "vertpos", 0) for seg in paragraph.iterfind(f"{HP}linesegarray/{HP}lineseg")]
            self.pages.paragraph_starts(positions, paragraph.get("pageBreak") == "1")
            self._paragraph(paragraph)
            self.pages.paragraph_ends(positions, [_table_height(t) for t in paragraph.iterfind(f"{HP}run/{HP}tbl")])

    def _paragraph(self, paragraph: ET.Element) -> None:
        text: list[str] = []
        after: list[ET.Element] = []  # tables and text boxes anchored in this paragraph
        for piece in _paragraph_pieces(paragraph):
            if isinstance(piece, str):
                text.append(piece)
            else:
                after.append(piece)
        self._text("".join(text), paragraph.get("styleIDRef", "") in self.heading_styles)
        for node in after:
            if node.tag == f"{HP}tbl":
                self._table(node)
            else:
                for inner in _sub_paragraphs(node):
                    self._paragraph(inner)

    def _text(self, raw: str, styled_heading: bool) -> None:
        self.elements += paragraph_elements(raw, self.pages.page, styled_heading)

    def _table(self, table: ET.Element) -> None:
        """The table, then the tables nested in its cells (their text also stays in the cell)."""
        cells: list[CellSpan] = []
        nested: list[ET.Element] = []
        for row_index, tr in enumerate(table.findall(f"{HP}tr")):
            for col_index, tc in enumerate(tr.findall(f"{HP}tc")):
                address = tc.find(f"{HP}cellAddr")
                span = tc.find(f"{HP}cellSpan")
                cells.append(CellSpan(
                    row=_int(address, "rowAddr", row_index), col=_int(address, "colAddr", col_index),
                    row_span=_int(span, "rowSpan", 1), col_span=_int(span, "colSpan", 1),
                    text=_cell_text(tc, nested),
                ))
        built = build_table(cells)
        if built is not None:
            self.elements.append(Element("table", self.pages.page, built.to_markdown(), table=built))
        for inner in nested:
            self._table(inner)


def _paragraph_pieces(paragraph: ET.Element) -> Iterator[str | ET.Element]:
    """A paragraph's characters (str) and its anchored objects (elements) in order."""
    for run in paragraph.findall(f"{HP}run"):
        for node in run:
            if node.tag == f"{HP}t":
                yield _t_text(node)
            elif node.tag == f"{HP}tbl":
                yield node
            elif node.tag not in _FURNITURE and node.tag != f"{HP}ctrl" and _sub_paragraphs(node):
                yield node  # a text box (rectangle, ellipse …) with paragraphs inside
            elif node.tag == f"{HP}ctrl":
                for control in node:
                    if control.tag not in _FURNITURE and _sub_paragraphs(control):
                        yield control  # footnote, endnote, hidden comment …


def _t_text(node: ET.Element) -> str:
    parts = [node.text or ""]
    for child in node:
        parts.append(_INLINE.get(child.tag, ""))
        parts.append(child.tail or "")
    return "".join(parts)


def _sub_paragraphs(node: ET.Element) -> list[ET.Element]:
    """Paragraphs of the first-level sub-lists inside an object (not those of nested tables)."""
    found: list[ET.Element] = []
    stack = list(node)
    while stack:
        child = stack.pop(0)
        if child.tag == f"{HP}subList":
            found += child.findall(f"{HP}p")
        elif child.tag not in (f"{HP}tbl", f"{HP}p"):
            stack.extend(child)
    return found


def _cell_text(cell: ET.Element, nested: list[ET.Element]) -> str:
    """A cell's paragraphs, one per line; a nested table is appended to `nested` and its text kept inline."""
    sub_list = cell.find(f"{HP}subList")
    paragraphs = sub_list.findall(f"{HP}p") if sub_list is not None else []
    lines = normalize("\n".join(_paragraph_text(p, nested) for p in paragraphs)).split("\n")
    return "\n".join(line.strip() for line in lines if line.strip())


def _paragraph_text(paragraph: ET.Element, nested: list[ET.Element]) -> str:
    text: list[str] = []
    for piece in _paragraph_pieces(paragraph):
        if isinstance(piece, str):
            text.append(piece)
        elif piece.tag == f"{HP}tbl":
            nested.append(piece)
            text.append(f" {_flat_table_text(piece)} ")
        else:
            text.append(" " + " ".join(_paragraph_text(p, nested) for p in _sub_paragraphs(piece)) + " ")
    return "".join(text)


def _flat_table_text(table: ET.Element) -> str:
    rows = []
    for tr in table.findall(f"{HP}tr"):
        cells = [" ".join(_cell_text(tc, []).split()) for tc in tr.findall(f"{HP}tc")]
        rows.append(" ".join(c for c in cells if c))
    return " / ".join(r for r in rows if r)


def _table_height(table: ET.Element) -> int:
    return table_height(
        (_int(tc.find(f"{HP}cellAddr"), "rowAddr", 0), _int(tc.find(f"{HP}cellSpan"), "rowSpan", 1),
         _int(tc.find(f"{HP}cellSz"), "height", 0))
        for tc in table.iterfind(f"{HP}tr/{HP}tc")
    )


def _int(node: ET.Element | None, name: str, default: int) -> int:
    try:
        return int(node.get(name, default)) if node is not None else default
    except ValueError:
        return default
