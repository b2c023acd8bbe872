"""Cell grids of Hangul documents (HWPX and HWP 5): addressed cells with spans → `Table` rows.

Both formats give each cell its row, column, row span and column span; this lays them on a grid and
decides what a merged area shows so the Markdown rendering reads right:

- a column span in the header repeats its label over every column it covers, so each column is named;
  in the body, and for a title across the whole header, the covered columns stay empty (a note
  spanning the table is not written seven times);
- a row span repeats short labels (`기술능력평가`, `필수`) on every row it covers, so a row read alone
  (a chunk split between rows) still says what it belongs to; longer text stays in its first row,
  and so does a label spanning the header rows (`구분` over two header rows is written once).

The header is the first row, or the first two when the first row's cells span two rows (a two-level
header: a group label over its sub-columns). Rows with no text at all are dropped (an empty first
row leaves the header to the next).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.models import Table

_REPEATED_LABEL_CHARS = 40


@dataclass(frozen=True)
class CellSpan:
    row: int
    col: int
    row_span: int
    col_span: int
    text: str


def build_table(cells: list[CellSpan]) -> Table | None:
    """The table these cells form, or None when no cell holds text."""
    if not any(cell.text.strip() for cell in cells):
        return None
    # The grid ends at the last row and column where a cell starts: a span running past it adds only
    # repeats, and a damaged span (65535 rows) cannot make the grid explode.
    height = max(cell.row for cell in cells) + 1
    width = max(cell.col for cell in cells) + 1
    first_row_span = max((cell.row_span for cell in cells if cell.row == 0), default=1)
    header_rows = 2 if first_row_span == 2 and height > 2 else 1
    grid: list[list[str | None]] = [[None] * width for _ in range(height)]
    for cell in cells:
        for r in range(cell.row, min(cell.row + max(cell.row_span, 1), height)):
            for c in range(cell.col, min(cell.col + max(cell.col_span, 1), width)):
                if grid[r][c] is not None:
                    continue  # overlapping spans in a damaged file: the first cell wins
                if (r, c) == (cell.row, cell.col) or _repeats(cell, r, c, header_rows, width):
                    grid[r][c] = cell.text
                else:
                    grid[r][c] = ""
    rows = [[text or "" for text in row] for row in grid]
    kept_header = max(1, sum(1 for row in rows[:header_rows] if any(row)))
    return Table(rows=[row for row in rows if any(row)], header_rows=kept_header)


def _repeats(cell: CellSpan, row: int, col: int, header_rows: int, width: int) -> bool:
    """Whether a position covered by `cell`'s span shows its text (the rules in the module docstring)."""
    if col != cell.col:
        return row < header_rows and cell.col_span < width
    return row >= header_rows and len(cell.text) <= _REPEATED_LABEL_CHARS
