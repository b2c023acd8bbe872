"""Tables without ruling lines, prose that must stay prose, and the words inside pictures on text pages.

Files: `korean-text-with-tables.pdf` (two card-benefit tables with no column rules),
`monetary-policy-two-column-p3.pdf` (a page of justified Korean prose in two columns, which a naive
alignment finder takes for a table), both in `tests/fixtures` (sources in its SOURCES.md), and the
FinTech press release in `samples/`, whose page 5 is a diagram (a picture) of the fund's structure:
its investors' names (코스콤, 대구은행) are in the picture only, not in the text layer.
"""

from __future__ import annotations

import json

import pytest
from conftest import FINTECH, FIXTURES, SAMPLES, run_cli

from pipeline.config import Settings
from pipeline.options import ExtractOptions
from pipeline.stages.extract import extract, ocr

TEXT_ONLY = ExtractOptions(ocr_images=False)


def _tables(name: str, options: ExtractOptions = TEXT_ONLY):
    doc = extract((FIXTURES / name).read_bytes(), name, options)
    return doc, [e.table for e in doc.elements if e.kind == "table"]


def test_a_table_without_column_rules_is_found_with_its_cells():
    doc, tables = _tables("korean-text-with-tables.pdf")
    assert len(tables) == 2
    shopping, cafes = tables
    assert shopping.rows[0] == ["업종", "적립 대상"]
    assert ["할인점", "이마트, 이마트 트레이더스, 롯데마트, 홈플러스"] in shopping.rows
    assert ["주유", "모든 주유소"] in shopping.rows
    # a cell wrapped over two lines stays one cell of its row
    assert ["온라인쇼핑몰", "삼성카드 쇼핑, G마켓, 옥션, 11번가, 인터파크, 쿠팡, 티몬, 위메프"] in shopping.rows
    assert cafes.rows[0] == ["업종", "적립 대상"] and ["제과점", "파리바게뜨, 뚜레쥬르"] in cafes.rows
    assert len(shopping.rows) == 4 and len(cafes.rows) == 4
    # the table's words are not repeated as loose text, and the prose around the tables is kept
    loose = "\n".join(e.text for e in doc.elements if e.kind == "text")
    assert "모든 주유소" not in loose
    assert "전월 이용금액 40만원 이상 시 제공" in loose and "상품권 구매건" in loose


def test_the_setting_turns_the_borderless_finder_off():
    _, tables = _tables("korean-text-with-tables.pdf", ExtractOptions(ocr_images=False, pdf_aligned_tables=False))
    assert tables == []
    assert Settings.from_env({"HANRAG_PDF_ALIGNED_TABLES": "0"}).extract.pdf_aligned_tables is False


def test_prose_set_in_two_columns_yields_no_table():
    doc, tables = _tables("monetary-policy-two-column-p3.pdf")
    _, ruled = _tables("monetary-policy-two-column-p3.pdf", ExtractOptions(ocr_images=False, pdf_aligned_tables=False))
    # the page's one ruled table (the growth forecast grid) and nothing more: its prose stays text
    assert len(ruled) == 1 and tables == ruled
    loose = "\n".join(e.text for e in doc.elements if e.kind == "text")
    assert "가계 실질소득 개선에 힘입어" in loose and "불확실성이 높은 상" in loose


needs_ocr = pytest.mark.skipif(not ocr.available(), reason=ocr.missing() or "")


@needs_ocr
def test_words_inside_a_picture_on_a_text_page_are_found_by_search(home):
    code, out, _ = run_cli(home, "ingest", str(SAMPLES / FINTECH), "--user", "kim", "--json")
    assert code == 0, out
    code, out, _ = run_cli(home, "search", "코스콤 대구은행", "--user", "kim", "--json")
    hits = json.loads(out)
    assert hits and hits[0]["page"] == 5
    assert "코스콤" in hits[0]["text"]


@needs_ocr
def test_a_pictures_text_is_an_image_element_with_its_confidence_and_the_setting_turns_it_off():
    data = (SAMPLES / FINTECH).read_bytes()
    doc = extract(data, FINTECH)
    (picture,) = [e for e in doc.elements if e.kind == "image"]
    assert picture.page == 5 and picture.confidence is not None and picture.confidence >= 60
    assert "코스콤" in picture.text and "대구은행" in picture.text
    # the page's own text layer does not have these words: only the picture does
    assert all("코스콤" not in e.text for e in doc.elements if e.kind != "image" and e.page == 5)
    off = extract(data, FINTECH, Settings.from_env({"HANRAG_OCR_IMAGES": "0"}).extract)
    assert [e for e in off.elements if e.kind == "image"] == []
    assert [e.text for e in off.elements] == [e.text for e in doc.elements if e.kind != "image"]
