"""Plain text and Markdown: decoding (UTF-8, UTF-16, CP949) and paragraph blocks with headings.

`blocks` is shared by every format whose text arrives as lines (PDF pages, text files).
"""

from __future__ import annotations

import re
from pathlib import PurePath

from pipeline.errors import UnsupportedFormat
from pipeline.korean import join_wrapped_lines, normalize
from pipeline.models import Element, ExtractedDocument

# Lines that open a section in Korean public documents and most reports: "Ⅰ. 추진 배경", "1. 개요",
# "가. 목적", "제3장 총칙", "# Heading". Bullets (□, ○, -) open items, not sections: a long item's
# first line is short too, so treating it as a heading would cut a sentence in two.
_HEADING = re.compile(
    r"^\s*(?:[ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩ]+\s*[.．]|[IVX]{1,4}\.|\d{1,2}\.(?!\d)|[가-하]\.|제\s?\d+\s?[장절편]|#{1,6}\s)"
    r"\s*\S[^,]{0,38}$"
)
# Page furniture that would otherwise land in the middle of a chunk: "- 3 -", "3 / 12", "Page 3".
_PAGE_NUMBER = re.compile(r"^\s*(?:[-–—]\s*\d{1,4}\s*[-–—]|\d{1,4}\s*/\s*\d{1,4}|page\s+\d{1,4})\s*$", re.I)


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


def blocks(text: str, page: int) -> list[Element]:
    """Split text into paragraph blocks; short section-opening lines become headings."""
    elements: list[Element] = []
    for paragraph in re.split(r"\n\s*\n", normalize(text)):
        kept = [ln.lstrip() for ln in paragraph.split("\n") if ln.strip() and not _PAGE_NUMBER.match(ln)]
        lines = [ln.strip() for ln in join_wrapped_lines(kept)]
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
    elements = blocks(text, page=1)
    return ExtractedDocument(source=source, title=PurePath(source).stem, pages=1, elements=elements)
