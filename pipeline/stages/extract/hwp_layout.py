"""Page numbers for Hangul documents (HWPX and HWP 5), from the layout the word processor saved.

Neither format stores page numbers: pages are laid out by the viewer. But Hangul saves its last
layout with every paragraph: one line segment per line, with the line's vertical position on its
page (`hp:lineseg vertpos` in HWPX, the PARA_LINE_SEG record in HWP 5). A line placed higher than
the line before it starts a new page; so does a forced page break, and every section starts on a
new page. A table that continues over pages has one line (or none) in its paragraph, so its height
(the sum of its row heights) says how many pages it turns. Counted over the body paragraphs (not
those inside tables or text boxes, whose positions are relative to their box), this gives the
physical page number, as a PDF of the document would number it. On real-44-tables.hwpx the six
chapter titles land exactly where its table of contents says (shifted by the cover and contents
pages, which the printed numbering skips).

It is an estimate: a file written by a tool that saves no layout has one page per section, and a
multi-column page counts each column as a page. Lengths are in HWPUNIT (1/7200 inch).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def body_height(page_height: int, margins: Iterable[int]) -> int:
    """Height of the text area: the page less its top, bottom, header and footer margins."""
    return max(page_height - sum(margins), 0)


def table_height(rows: Iterable[tuple[int, int, int]]) -> int:
    """Sum of row heights, from (row, row span, cell height) of each cell: a row is as tall as its
    tallest cell that spans that row alone."""
    heights: dict[int, int] = {}
    for row, row_span, height in rows:
        if row_span == 1:
            heights[row] = max(heights.get(row, 0), height)
    return sum(heights.values())


class PageCounter:
    """Tracks the page while a reader walks body paragraphs in order."""

    def __init__(self) -> None:
        self.page = 0
        self._last = -1  # vertical position of the last line seen in this section; -1 at its start
        self._body = 0  # text area height of this section's pages; 0 when unknown

    def start_section(self, body: int = 0) -> None:
        self.page += 1
        self._last = -1
        self._body = body

    def paragraph_starts(self, positions: Sequence[int], page_break: bool) -> None:
        """Before a body paragraph is read: does it open a new page?"""
        if self._last >= 0 and (page_break or (positions and positions[0] < self._last)):
            self.page += 1
        if positions:
            self._last = positions[0]

    def paragraph_ends(self, positions: Sequence[int], tables: Sequence[int] = ()) -> None:
        """After it is read: pages turned inside it, or by the tables it anchors (their heights), count
        for what follows."""
        for before, after in zip(positions, positions[1:], strict=False):
            if after < before:
                self.page += 1
        if positions:
            self._last = positions[-1]
        if self._body and tables and positions:  # no saved layout (a tool's file): its cell sizes are unreliable
            end = max(self._last, 0) + max(tables)
            if end > self._body:
                self.page += end // self._body
                self._last = 0  # where the table ends is too rough a guess to compare the next line with
