"""Tables without ruling lines: columns found from words that line up over consecutive lines.

Korean brochures and reports often set a table with no vertical rules at all (`korean-text-with-
tables.pdf`: 업종 | 적립 대상, thin rules between rows only), so the grid finder of `pdf_tables` sees no
cells. Here a table is a run of consecutive lines split by wide gaps into pieces whose left edges
fall on the same x positions. Prose must never come out as a table, so a candidate is kept only when
it passes every check in `_is_table` (measured over every page of `corpus/ko` and `corpus/en`:
`bench/pdf_speed.py --aligned`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.korean import normalize
from pipeline.stages.extract.pdf_objects import CharBox

# A gap between two words wider than this many character heights separates two columns; word
# spaces are ~0.3 of a height, and a justified line stretches them to ~0.8 at most.
COLUMN_GAP = 1.5
# Left edges within this many points of each other are one column.
ALIGN = 4.0
# A blank strip at least this wide (points), down the whole page, splits it into page columns.
GUTTER = 12.0
MIN_ROWS = 3  # header + two rows
MAX_MEDIAN_CELL = 40  # characters: a column of sentences is prose set in two columns
MIN_FULL_ROWS = 0.6  # share of rows with a cell in at least two columns
# Text set in two columns is justified: most of its lines end at the column's right edge, where a
# table's cells end raggedly. A column whose lines end within FLUSH points of its widest line this
# often is prose.
FLUSH = 2.0
MAX_FLUSH_SHARE = 0.5
# A column of list markers ("*", "1.", "가.", "①", "□") beside text is a list, not a table.
_MARKER = re.compile(r"^[\W\d_ⅰ-ⅻ①-⑳㉠-㉻]{1,3}$|^\(?[\d가-하a-zA-Z]{1,2}[.)]$")


@dataclass
class _Word:
    text: str
    x0: float
    x1: float
    top: float
    bottom: float


@dataclass
class AlignedTable:
    bbox: tuple[float, float, float, float]  # x0, top, x1, bottom: points, top-left origin
    rows: list[list[str]]


def find_aligned_tables(
    chars: list[CharBox], page_top: float, page_width: float, taken: list[tuple[float, float, float, float]]
) -> list[AlignedTable]:
    """Tables of aligned words on the page, outside the boxes in `taken` (ruled tables already found)."""
    words = [w for w in _words(chars, page_top) if not any(_inside(w, box) for box in taken)]
    found: list[AlignedTable] = []
    for column in _page_columns(words, page_width):
        lines = _lines(column)
        found += _tables(lines)
    return found


def _inside(word: _Word, box: tuple[float, float, float, float]) -> bool:
    x0, top, x1, bottom = box
    middle_x, middle_y = (word.x0 + word.x1) / 2, (word.top + word.bottom) / 2
    return x0 <= middle_x <= x1 and top <= middle_y <= bottom


def _words(chars: list[CharBox], page_top: float) -> list[_Word]:
    """Runs of characters pdfium read one after another on one line, with nothing between them."""
    words: list[_Word] = []
    last_index = -2
    for index, char, left, top, right, bottom in chars:
        top, bottom = page_top - top, page_top - bottom
        height = max(bottom - top, 1.0)
        word = words[-1] if words else None
        if (word is not None and index == last_index + 1 and abs((top + bottom) / 2 - (word.top + word.bottom) / 2)
                < height / 2 and -height < left - word.x1 < height / 2):
            word.text += char
            word.x1 = max(word.x1, right)
            word.top, word.bottom = min(word.top, top), max(word.bottom, bottom)
        else:
            words.append(_Word(char, left, right, top, bottom))
        last_index = index
    return words


def _page_columns(words: list[_Word], page_width: float) -> list[list[_Word]]:
    """The page split at blank vertical strips (a two-column layout): each side is searched alone."""
    if not words:
        return []
    covered = bytearray(int(page_width) + 2)
    for word in words:
        for x in range(max(0, int(word.x0)), min(len(covered), int(word.x1) + 1)):
            covered[x] = 1
    first, last = int(page_width * 0.25), int(page_width * 0.75)
    cuts: list[float] = []
    run_start = None
    for x in range(first, last + 1):
        if not covered[x]:
            run_start = x if run_start is None else run_start
            continue
        if run_start is not None and x - run_start >= GUTTER:
            cuts.append((run_start + x) / 2)
        run_start = None
    if not cuts:
        return [words]
    edges = [float("-inf"), *cuts, float("inf")]
    return [[w for w in words if low <= w.x0 < high] for low, high in zip(edges, edges[1:], strict=False)]


def _lines(words: list[_Word]) -> list[list[_Word]]:
    """Words grouped into lines (by their vertical middle), top to bottom, each left to right."""
    lines: list[list[_Word]] = []
    middles = 0.0  # sum of the last line's word middles: its mean middle, kept as words join
    for word in sorted(words, key=lambda w: ((w.top + w.bottom) / 2, w.x0)):
        middle = (word.top + word.bottom) / 2
        if lines:
            last = lines[-1]
            if abs(middle - middles / len(last)) < (word.bottom - word.top) / 2:
                last.append(word)
                middles += middle
                continue
        lines.append([word])
        middles = middle
    return [sorted(line, key=lambda w: w.x0) for line in lines]


def _pieces(line: list[_Word]) -> list[_Word]:
    """The line cut at gaps wide enough to separate columns."""
    height = _median([w.bottom - w.top for w in line])
    pieces = [_Word(line[0].text, line[0].x0, line[0].x1, line[0].top, line[0].bottom)]
    for word in line[1:]:
        piece = pieces[-1]
        if word.x0 - piece.x1 > COLUMN_GAP * height:
            pieces.append(_Word(word.text, word.x0, word.x1, word.top, word.bottom))
        else:
            piece.text += " " + word.text
            piece.x1 = max(piece.x1, word.x1)
            piece.top, piece.bottom = min(piece.top, word.top), max(piece.bottom, word.bottom)
    return pieces


def _tables(lines: list[list[_Word]]) -> list[AlignedTable]:
    """Runs of consecutive lines whose pieces start on shared column positions."""
    found: list[AlignedTable] = []
    run: list[list[_Word]] = []  # the pieces of each line of the current run
    anchors: list[float] = []

    def close() -> None:
        if run:
            table = _as_table(run, anchors)
            if table is not None:
                found.append(table)

    previous_bottom = None
    for line in lines:
        pieces = _pieces(line)
        height = _median([w.bottom - w.top for w in line])
        near = previous_bottom is not None and line[0].top - previous_bottom < 1.8 * height
        if run and near and _fits(pieces, anchors):
            run.append(pieces)
            anchors = _merged_anchors(anchors, pieces)
        elif len(pieces) >= 2:
            close()
            run, anchors = [pieces], [p.x0 for p in pieces]
        else:
            close()
            run, anchors = [], []
        previous_bottom = max(w.bottom for w in line)
    close()
    return found


def _median(values: list[float]) -> float:
    """statistics.median without its generality (called for every line of every page)."""
    ordered = sorted(values)
    half = len(ordered) // 2
    return ordered[half] if len(ordered) % 2 else (ordered[half - 1] + ordered[half]) / 2


def _column_of(x: float, anchors: list[float]) -> int | None:
    for column, anchor in enumerate(anchors):
        if abs(x - anchor) <= ALIGN:
            return column
    return None


def _fits(pieces: list[_Word], anchors: list[float]) -> bool:
    """Every piece starts on a column, or the line adds a column of its own to a row of two or more."""
    matched = [_column_of(p.x0, anchors) for p in pieces]
    if len(pieces) == 1:
        return matched[0] is not None and matched[0] > 0  # a cell's text wrapped onto the next line
    return sum(m is not None for m in matched) >= 2 and sum(m is None for m in matched) <= 1


def _merged_anchors(anchors: list[float], pieces: list[_Word]) -> list[float]:
    new = [p.x0 for p in pieces if _column_of(p.x0, anchors) is None]
    return sorted(anchors + new)


def _as_table(run: list[list[_Word]], anchors: list[float]) -> AlignedTable | None:
    rows: list[list[str]] = []
    for pieces in run:
        cells = [""] * len(anchors)
        for piece in pieces:
            cells[_column_of(piece.x0, anchors) or 0] = normalize(piece.text)
        if len(pieces) == 1 and rows:  # a wrapped cell: its text continues the row above
            column = cells.index(next(c for c in cells if c))
            rows[-1][column] = f"{rows[-1][column]} {cells[column]}".strip()
            continue
        rows.append(cells)
    if not _is_table(rows, run, anchors):
        return None
    x0 = min(p.x0 for pieces in run for p in pieces)
    x1 = max(p.x1 for pieces in run for p in pieces)
    top = min(p.top for p in run[0])
    bottom = max(p.bottom for p in run[-1])
    return AlignedTable(bbox=(x0, top, x1, bottom), rows=rows)


def _is_table(rows: list[list[str]], run: list[list[_Word]], anchors: list[float]) -> bool:
    """The precision check: what prose, lists and two-column layouts fail."""
    columns = len(anchors)
    if len(rows) < MIN_ROWS or columns < 2:
        return False
    full = sum(sum(bool(c) for c in row) >= 2 for row in rows)
    if full / len(rows) < MIN_FULL_ROWS:
        return False
    for column in range(columns):
        cells = [row[column] for row in rows if row[column]]
        if len(cells) < 2:
            return False  # a column with one cell is a stray word, not a column
        if all(_MARKER.match(c) for c in cells):
            return False  # bullets or numbers beside text: a list
        if _median([len(c) for c in cells]) > MAX_MEDIAN_CELL:
            return False
    for column in range(columns):
        ends = [p.x1 for pieces in run for p in pieces if _column_of(p.x0, anchors) == column]
        flush = sum(end >= max(ends) - FLUSH for end in ends)
        if len(ends) >= MIN_ROWS and flush >= 3 and flush / len(ends) >= MAX_FLUSH_SHARE:
            return False  # justified lines: a page set in columns
    # Pieces of one column must end before the next column starts (no text runs across columns).
    for pieces in run:
        for piece in pieces:
            column = _column_of(piece.x0, anchors)
            if column is not None and column + 1 < columns and piece.x1 > anchors[column + 1] - 1:
                return False
    return True
