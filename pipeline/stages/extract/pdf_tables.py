"""Ruled tables of a PDF page, read with pypdfium2 and found with pdfplumber's grid algorithm.

pdfplumber's `page.find_tables()` parses every page with pdfminer (~3 pages/s on `corpus/ko`).
Here the ruling lines come from pdfium's already parsed path objects and the cell texts from its
text page (which keeps the spaces between Korean words); only the tested, pure-geometry part of
pdfplumber (`merge_edges` → `edges_to_intersections` → `intersections_to_cells` →
`cells_to_tables`, with its default "lines" settings) is reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pdfplumber.table import (
    Table as PlumberTable,
)
from pdfplumber.table import (
    cells_to_tables,
    edges_to_intersections,
    intersections_to_cells,
    merge_edges,
)

from pipeline.korean import normalize
from pipeline.stages.extract.pdf_objects import CharBox, char_boxes, path_subpaths

if TYPE_CHECKING:
    import pypdfium2

# pdfplumber's defaults for the "lines" strategy (TableSettings in pdfplumber 0.11.10).
SNAP_TOLERANCE = 3.0
JOIN_TOLERANCE = 3.0
INTERSECTION_TOLERANCE = 3.0
EDGE_MIN_LENGTH = 3.0
EDGE_MIN_LENGTH_PREFILTER = 1.0

# A filled rectangle thinner than this is a drawn line, not a box.
THIN_RECT = 2.0
# Coordinates closer than this are treated as equal: pdfium hands back single-precision floats.
AXIS_EPSILON = 0.01
# A character belongs to the cell that holds the point this far right of its left edge.
CHAR_START_OFFSET = 2.0
# Two characters of a cell whose centres are this far apart vertically are on different lines.
NEW_LINE = 3.0

Edge = dict[str, Any]
Point = tuple[float, float]


@dataclass
class FoundTable:
    bbox: tuple[float, float, float, float]  # x0, top, x1, bottom: points, top-left origin
    rows: list[list[str]]


def find_tables(
    page: pypdfium2.PdfPage, textpage: pypdfium2.PdfTextPage, boxes: list[CharBox] | None = None
) -> list[FoundTable]:
    """Tables of at least 2 rows and 2 columns, top to bottom.

    One-column or one-row grids are dropped: Korean public documents draw boxes around
    paragraphs, and those are text frames, not tables. `top`/`bottom` are measured down from the
    top of the media box, as pdfplumber does (`page.get_size()` is the crop box, which differs on
    some files, e.g. "3. 향후 통화신용정책 방향.pdf").
    """
    page_top = page.get_mediabox()[3]
    edges = _ruling_edges(page, page_top)
    if sum(e["orientation"] == "h" for e in edges) < 3 or sum(e["orientation"] == "v" for e in edges) < 3:
        return []  # a 2 x 2 grid needs three lines each way
    edges = merge_edges(edges, SNAP_TOLERANCE, SNAP_TOLERANCE, JOIN_TOLERANCE, JOIN_TOLERANCE)
    edges = [e for e in edges if e["width" if e["orientation"] == "h" else "height"] >= EDGE_MIN_LENGTH]
    intersections = edges_to_intersections(edges, INTERSECTION_TOLERANCE, INTERSECTION_TOLERANCE)
    cells = intersections_to_cells(intersections)
    groups = cells_to_tables(cells)
    if not groups:
        return []

    chars = _page_chars(list(char_boxes(textpage)) if boxes is None else boxes, page_top)
    found: list[FoundTable] = []
    for group in groups:
        table = PlumberTable(None, group)  # rows and bbox only: no page is needed for those
        texts = _cell_texts(chars, group, table.bbox)
        rows = [[texts.get(cell, "") if cell else "" for cell in row.cells] for row in table.rows]
        rows = [row for row in rows if any(row)]
        if len(rows) < 2 or max(len(row) for row in rows) < 2:
            continue
        found.append(FoundTable(bbox=tuple(table.bbox), rows=rows))
    return found


# --------------------------------------------------------------------------- cell texts

# A character of the text page: its index there and the point that places it (top-left origin).
Char = tuple[int, str, float, float]


def _page_chars(boxes: list[CharBox], page_top: float) -> list[Char]:
    """Every character of the text page in reading order, with the point that places it in a cell.

    Spaces pdfium generates between words (the Korean word spacing pypdf loses) and line breaks
    have no box worth placing: they are left out, and the gap they leave in the indices is kept.
    """
    chars: list[Char] = []
    for index, char, left, top, right, bottom in boxes:
        # Some fonts report every glyph as an em wide (a ")" then overhangs into the next cell),
        # so a character is placed by where it starts, not by its box's centre.
        h_mid = left + min((right - left) / 2, CHAR_START_OFFSET)
        chars.append((index, char, h_mid, page_top - (top + bottom) / 2))
    return chars


def _cell_texts(
    chars: list[Char], cells: list[tuple[float, ...]], bbox: tuple[float, ...]
) -> dict[tuple[float, ...], str]:
    """Text of each cell, a character going to the cell that holds its placing point.

    pdfplumber places a character by its centre; here the horizontal point is capped at
    `CHAR_START_OFFSET` past its left edge (see `_page_chars`), which on `corpus/ko` matches
    pdfplumber's cells more often than pdfium's box centre does.

    `get_text_bounded` would take any character whose box merely touches the cell, and in tight
    Korean tables that pulls in the neighbouring row. Characters of one cell that are not adjacent
    in the text page (a space, a line break or another cell's text between them) get a space.
    """
    x0, top, x1, bottom = bbox
    parts: dict[tuple[float, ...], list[str]] = {}
    last: dict[tuple[float, ...], tuple[int, float, float]] = {}  # the cell's last char: index, h, v
    for index, char, h_mid, v_mid in chars:
        if not (x0 <= h_mid < x1 and top <= v_mid < bottom):
            continue
        for cell in cells:
            if cell[0] <= h_mid < cell[2] and cell[1] <= v_mid < cell[3]:
                text = parts.setdefault(cell, [])
                if text:
                    last_index, last_h_mid, last_v_mid = last[cell]
                    # pdfium does not always break a line wrapped inside a narrow cell ("전문" /
                    # "대학"): a new line is a space, as in pdfplumber's cell text. (A superscript
                    # moves up or down too, but to the right.)
                    if index - last_index > 1 or (v_mid - last_v_mid > NEW_LINE and h_mid < last_h_mid):
                        text.append(" ")
                text.append(char)
                last[cell] = (index, h_mid, v_mid)
                break
    return {cell: " ".join(normalize("".join(text)).split()) for cell, text in parts.items()}


# --------------------------------------------------------------------------- ruling lines


def _ruling_edges(page: pypdfium2.PdfPage, page_top: float) -> list[Edge]:
    """Horizontal and vertical edges of every painted path, as pdfplumber's `page.edges` has them.

    Paths too small to hold an edge of `EDGE_MIN_LENGTH_PREFILTER` (the edges pdfplumber drops
    before merging) are skipped unread: on `corpus/ko` they are 80% of all path objects.
    """
    edges: list[Edge] = []
    for points, closed in path_subpaths(page, EDGE_MIN_LENGTH_PREFILTER):
        edges += _subpath_edges(points, closed, page_top)
    return [e for e in edges if e["width" if e["orientation"] == "h" else "height"] >= EDGE_MIN_LENGTH_PREFILTER]


def _subpath_edges(points: list[Point], closed: bool, page_top: float) -> list[Edge]:
    """pdfplumber edges of one subpath: a thin rectangle is one line, anything else its straight sides."""
    if closed and points[-1] != points[0]:
        points = [*points, points[0]]
    rect = _as_rect(points)
    if rect is not None:
        x0, y0, x1, y1 = rect
        if x1 - x0 < THIN_RECT and y1 - y0 >= x1 - x0:
            middle = (x0 + x1) / 2
            return [_edge(middle, y0, middle, y1, page_top)]
        if y1 - y0 < THIN_RECT:
            middle = (y0 + y1) / 2
            return [_edge(x0, middle, x1, middle, page_top)]
    edges = []
    for (xa, ya), (xb, yb) in zip(points, points[1:], strict=False):
        if abs(xa - xb) < AXIS_EPSILON or abs(ya - yb) < AXIS_EPSILON:
            edge = _edge(xa, ya, xb, yb, page_top)
            if edge["width"] or edge["height"]:
                edges.append(edge)
    return edges


def _as_rect(points: list[Point]) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) when the points trace a closed axis-aligned rectangle, else None."""
    if len(points) != 5 or _far(points[0], points[4]):
        return None
    (xa, ya), (xb, yb), (xc, yc), (xd, yd) = points[:4]
    same = _same
    if not (
        (same(xa, xb) and same(yb, yc) and same(xc, xd) and same(yd, ya))
        or (same(ya, yb) and same(xb, xc) and same(yc, yd) and same(xd, xa))
    ):
        return None
    return min(xa, xc), min(ya, yc), max(xa, xc), max(ya, yc)


def _same(p: float, q: float) -> bool:
    return abs(p - q) < AXIS_EPSILON


def _far(p: Point, q: Point) -> bool:
    return not (_same(p[0], q[0]) and _same(p[1], q[1]))


def _edge(xa: float, ya: float, xb: float, yb: float, page_top: float) -> Edge:
    """An axis-aligned segment (PDF coordinates) as a pdfplumber edge (top-left origin)."""
    x0, x1 = min(xa, xb), max(xa, xb)
    top, bottom = page_top - max(ya, yb), page_top - min(ya, yb)
    vertical = abs(xa - xb) < AXIS_EPSILON
    if vertical:
        x0 = x1 = (xa + xb) / 2
    else:
        top = bottom = (top + bottom) / 2
    return {
        "object_type": "path_edge",
        "x0": x0,
        "x1": x1,
        "top": top,
        "bottom": bottom,
        "doctop": top,
        "width": x1 - x0,
        "height": bottom - top,
        "orientation": "v" if vertical else "h",
    }
