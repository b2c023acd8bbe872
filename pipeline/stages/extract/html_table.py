"""An HTML `<table>` → `Table`: merged cells spread over the grid, header rows kept as the header.

Office readers hand tables over as HTML (`text_as_html`); the chunker and the index want rows of
cells. A merged cell's text is repeated in every position it covers, so each row stays readable on
its own when a long table is split between chunks.
"""

from __future__ import annotations

from pipeline.korean import normalize
from pipeline.models import Table

_MAX_SPAN = 1000  # a span beyond this is a broken attribute, not a real merge


def _span(value: str | None) -> int:
    try:
        return min(max(int(value or 1), 1), _MAX_SPAN)
    except ValueError:
        return 1


def table_from_html(html: str, header_rows: int | None = None) -> Table | None:
    """The first table in `html` as rows of cell texts, or None when it holds no text.

    Header rows are the first `header_rows` rows when given, else the leading rows inside
    `<thead>` or made only of `<th>` cells; a table without any is taken to have one header row
    (its first), as spreadsheets and CSV files do.
    """
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    table = soup.find("table")
    if table is None:
        return None
    grid: dict[tuple[int, int], str] = {}
    given, header_rows = header_rows, 0
    in_header = True
    rows = [tr for tr in table.find_all("tr") if tr.find_parent("table") is table]
    for r, tr in enumerate(rows):
        cells = tr.find_all(["td", "th"], recursive=False)
        is_header = tr.find_parent("thead") is not None or (cells and all(c.name == "th" for c in cells))
        if in_header and is_header:
            header_rows += 1
        else:
            in_header = False
        c = 0
        for cell in cells:
            while (r, c) in grid:  # skip positions taken by a rowspan from above
                c += 1
            text = normalize(cell.get_text(" ", strip=True)).strip()
            for dr in range(min(_span(cell.get("rowspan")), len(rows) - r)):
                for dc in range(_span(cell.get("colspan"))):
                    grid.setdefault((r + dr, c + dc), text)
            c += _span(cell.get("colspan"))
    if not grid or not any(grid.values()):
        return None
    height = max(r for r, _ in grid) + 1
    width = max(c for _, c in grid) + 1
    matrix = [[grid.get((r, c), "") for c in range(width)] for r in range(height)]
    # Spreadsheets space their tables out with empty columns and rows; they carry nothing.
    kept_columns = [c for c in range(width) if any(row[c] for row in matrix)]
    kept_rows = [r for r in range(height) if any(matrix[r])]
    header_rows = sum(1 for r in kept_rows if r < (given or header_rows)) or 1
    return Table(rows=[[matrix[r][c] for c in kept_columns] for r in kept_rows], header_rows=header_rows)
