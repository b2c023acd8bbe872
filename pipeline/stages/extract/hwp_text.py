"""Paragraphs of Hangul documents (HWPX and HWP 5) → text elements, with headings.

A heading is a paragraph whose style is an outline or title style (`개요 1`, `Outline 2`, `큰제목`,
`1. 제목`), or, since most real documents leave every paragraph in the default style (바탕글) and
number their sections by hand, a short line that opens a section the way the text and PDF readers
recognise it (`Ⅱ. 과업 세부내용`, `1. 기본사항`, `가. 행사운영 분야`, `제3장 총칙`): `text.blocks`
decides those, so every format marks the same lines as headings.
"""

from __future__ import annotations

import re

from pipeline.korean import normalize
from pipeline.models import Element
from pipeline.stages.extract.text import blocks

_HEADING_STYLE = re.compile(r"^(?:개요\s*\d|outline\s*\d|heading)|제목", re.I)
_NOT_HEADING_STYLE = re.compile(r"캡션|caption|표안|차례|toc", re.I)
_MAX_HEADING_CHARS = 80


def is_heading_style(name: str) -> bool:
    """Whether a paragraph style's name (local and English names together) marks headings."""
    return bool(_HEADING_STYLE.search(name)) and not _NOT_HEADING_STYLE.search(name)


def paragraph_elements(raw: str, page: int, styled_heading: bool) -> list[Element]:
    """One paragraph's text as elements: a heading, or text blocks (a numbered line becomes a heading)."""
    text = "\n".join(line.strip() for line in normalize(raw).split("\n") if line.strip())
    if not text:
        return []
    if styled_heading and len(text) <= _MAX_HEADING_CHARS and "\n" not in text:
        return [Element("text", page, text, heading=True)]
    return blocks(text, page)
