"""Ruled tables found on pdfium pages: the cells a reader sees, whole rows, Korean word spacing.

The fixture is a 7-page Korean government report (국토교통부) whose pages 2-7 are ruled tables; the
expected cells below were read off the PDF (pdfplumber's `find_tables` finds the same 7 tables).
"""

from __future__ import annotations

import re
import unicodedata

import pypdfium2 as pdfium
import pytest
from conftest import AVIATION, FIXTURES

from pipeline.stages.extract import extract
from pipeline.stages.extract.pdf_tables import FoundTable, find_tables


@pytest.fixture(scope="module")
def tables_by_page() -> dict[int, list[FoundTable]]:
    pdf = pdfium.PdfDocument(FIXTURES / AVIATION)
    try:
        found = {}
        for index in range(len(pdf)):
            page = pdf[index]
            textpage = page.get_textpage()
            found[index + 1] = find_tables(page, textpage)
            textpage.close()
            page.close()
        return found
    finally:
        pdf.close()


def test_one_table_per_ruled_grid_and_none_on_the_prose_page(tables_by_page):
    assert {page: len(tables) for page, tables in tables_by_page.items()} == {
        1: 0, 2: 1, 3: 1, 4: 2, 5: 1, 6: 1, 7: 1,
    }


def test_header_row_has_the_column_names_a_reader_sees(tables_by_page):
    (table,) = tables_by_page[2]
    # "교육기관" spans two columns (institution, campus): the merged cell's second half is empty
    assert table.rows[0] == ["순번", "구분", "교육기관", "", "지정일", "훈련기(대)", "정원(年)", "운영공항"]
    assert all(len(row) == 8 for row in table.rows)


def test_rows_are_whole_not_split_or_merged_with_their_neighbours(tables_by_page):
    (table,) = tables_by_page[2]
    rows = {row[2]: row for row in table.rows if row[2]}
    assert rows["항공대학교"] == ["1", "대학교", "항공대학교", "수색", "1986.10", "6", "75명", "정석(제주)"]
    # a cell wrapped over two lines stays in its row, its lines joined by a space
    assert rows["가톨릭관동대학교"] == [
        "8", "", "가톨릭관동대학교", "", "2019.02", "에어플렉스항공 위탁(훈련기 없음)", "30명", "양양",
    ]
    assert rows["극동대학교"][4] == "2021.06.21"
    assert table.rows[-1][0] == "총계" and table.rows[-1][6] == "783명"
    # 19 numbered institutions + 2 second campuses + header + total
    assert len(table.rows) == 23


def test_cells_keep_the_spaces_between_korean_words(tables_by_page):
    (table,) = tables_by_page[5]
    assert table.rows[0][:5] == ["순번", "구분", "교육기관", "인가일", "훈련과정"]
    boeing = next(row for row in table.rows if row[2] == "Boeing Korea 훈련캠퍼스")
    # pdfplumber reads this cell as "조종사지상학및비행훈련"
    assert boeing[4] == "•비행훈련과정(세부 4개과정) - 모의비행장치를 이용한 조종사 지상학 및 비행훈련"
    assert "인천 중구" in boeing


def test_two_tables_on_one_page_come_top_to_bottom_with_their_own_headers(tables_by_page):
    upper, lower = tables_by_page[4]
    assert upper.bbox[3] <= lower.bbox[1]
    assert upper.rows[0][2] == "교육기관" and lower.rows[0][2] == "기관명칭"
    assert upper.rows[1][2] == "항공대 항공교통관제교육원"
    assert lower.rows[1][2] == "에어랜드항공 경량비행교육원"


def test_bbox_is_top_left_origin_points_and_cells_are_clean_text(tables_by_page):
    for tables in tables_by_page.values():
        for table in tables:
            x0, top, x1, bottom = table.bbox
            assert 0 <= x0 < x1 <= 595.3 and 0 <= top < bottom <= 841.9
            for row in table.rows:
                for cell in row:
                    assert cell == cell.strip() and "\n" not in cell and "\r" not in cell
                    assert "  " not in cell
                    assert cell == unicodedata.normalize("NFC", cell)
    # the page-2 table starts below the page title and the lines above it
    assert 150 < tables_by_page[2][0].bbox[1] < 200


def test_extract_reads_text_around_tables_in_order_and_tables_once():
    doc = extract((FIXTURES / AVIATION).read_bytes(), AVIATION)
    tables = [e for e in doc.elements if e.kind == "table"]
    assert [e.page for e in tables] == [2, 3, 4, 4, 5, 6, 7]
    page2 = [e for e in doc.elements if e.page == 2]
    kinds = [e.kind for e in page2]
    table_at = kinds.index("table")
    before = " ".join(e.text for e in page2[:table_at])
    assert "조종사 양성 교육기관 : 총 19개" in before
    # the table's cells are not read a second time as loose text
    loose = " ".join(e.text for e in page2 if e.kind == "text")
    assert "가톨릭관동대학교" not in loose
    assert tables[0].text.startswith("| 순번 | 구분 | 교육기관 |")
    # 15+ Hangul syllables without a space is what dropped word spacing looks like; the only such
    # run is a name the PDF itself writes without a space (its page text has it the same way)
    runs = set(re.findall(r"[가-힣]{15,}", " ".join(e.text for e in tables)))
    assert runs == {"가톨릭관동대학교항공기술교육원"}
