"""HWPX and HWP 5 on real Hangul documents: text in order, tables cell by cell, refusals with reasons."""

from __future__ import annotations

import io
import struct
import zipfile

import pytest
from conftest import FIXTURES, make_runner

from chat.retrieve import Retriever
from pipeline.errors import BrokenDocument, EncryptedDocument, LimitExceeded
from pipeline.models import ExtractedDocument, Table
from pipeline.options import ExtractOptions
from pipeline.stages.extract import extract
from pipeline.stages.extract.hwpx import extract_hwpx

HWP = FIXTURES / "hwp"
NO_MANIFEST = FIXTURES / "hard" / "no_manifest.hwpx"


def read(path, options: ExtractOptions | None = None) -> ExtractedDocument:
    return extract(path.read_bytes(), path.name, options)


def tables(doc: ExtractedDocument) -> list[Table]:
    return [e.table for e in doc.elements if e.kind == "table" and e.table is not None]


def row_starting(doc: ExtractedDocument, first_cell: str) -> list[str]:
    return next(row for table in tables(doc) for row in table.rows if row and row[0] == first_cell)


def test_hwpx_tables_are_counted_and_their_cells_stay_in_place():
    doc = read(HWP / "real-8-tables.hwpx")
    assert len(tables(doc)) == 8
    assert row_starting(doc, "소관기관") == ["소관기관", "국토교통부"]
    detail = next(t for t in tables(doc) if t.rows[0][:2] == ["NO", "항목명"])
    assert detail.rows[0][-1] == "예시"
    assert detail.rows[1] == ["1", "환승센터명", "필수", "고시에 명기된 복합환승센터의 명칭", "", "text",
                              "서울역복합환승센터"]
    assert "| 소관기관 | 국토교통부 |" in doc.text
    assert len(tables(read(HWP / "real-44-tables.hwpx"))) == 44


def test_hwpx_keeps_korean_word_spacing_and_paragraph_order():
    doc = read(HWP / "real-44-tables.hwpx")
    text = doc.text
    assert "가. 행 사 명: 제2회 가을밤의 음악축제" in text
    assert "1) 본 과업은 가을밤의 음악축제의 성공적인 개최를 목적으로 함" in text
    headings = [e.text for e in doc.elements if e.heading]
    assert headings[:2] == ["1. 행사개요", "가. 행 사 명: 제2회 가을밤의 음악축제"]
    assert "2. 과업개요" in headings and "1) 문화행사" not in headings
    # The chapter titles sit in one-cell tables (boxes); the table of contents names them first.
    chapters = ("| I. 과업안내 |", "| Ⅱ. 과업 세부내용 |", "| Ⅵ. 제출목록 및 서식 |")
    assert [text.index(c) for c in chapters] == sorted(text.index(c) for c in chapters)


def test_hwpx_pages_follow_the_saved_layout_as_the_table_of_contents_numbers_them():
    doc = read(HWP / "real-44-tables.hwpx")
    titles = ("I. 과업안내", "Ⅱ. 과업 세부내용", "Ⅲ. 입찰 및 계약", "Ⅳ. 제안서 및 입찰서류 작성 지침",
              "Ⅴ. 과업의 일반지침", "Ⅵ. 제출목록 및 서식")
    pages = [next(e.page for e in doc.elements if e.kind == "table" and e.text.startswith(f"| {t} |")) for t in titles]
    # The printed numbers (contents: 1, 2, 5, 13, 16, 20) skip the cover and the contents page.
    assert [p - 2 for p in pages] == [1, 2, 5, 13, 16, 20]
    assert doc.pages == 39


def test_hwpx_merged_cells_repeat_labels_down_the_rows_they_span():
    doc = read(HWP / "real-44-tables.hwpx")
    assert row_starting(doc, "음악축제 1부")[1] == "18:30 ~ 19:20"
    evaluation = next(t for t in tables(doc) if t.rows[0][2:] == ["평 가 사 항", "세 부 내 용"])
    assert evaluation.rows[0][:2] == ["구 분", "구 분"], "a header spanning two columns names both"
    by_item = {row[2]: row for row in evaluation.body}
    assert by_item["(2) 수행실적 (8점)"][1].split() == ["객관적", "평", "가", "(20)"]
    assert by_item["(4) 행사 운영 분야 (20점)"][1].split() == ["주관적", "평", "가", "(70)"]
    price = next(row for row in evaluation.body if row[0].replace("\n", " ").startswith("가 격 평 가"))
    assert price[1] == "" and price[3] == "", "a body cell spanning columns is written once"


def test_a_nested_table_is_a_table_of_its_own_and_stays_readable_in_its_cell():
    doc = read(HWP / "real-8-tables.hwpx")
    codes = next(t for t in tables(doc) if t.rows[0][0] == "구분")
    assert codes.rows[0] == ["구분", "코드체계", "코드체계", "코드체계"]
    assert ["코드설명", "➂➃➄", "숫자", "시군구"] in codes.rows
    parent = row_starting(doc, "5")
    assert parent[1] == "시군구코드" and "➂➃➄ 숫자 시군구" in parent[3]


def test_hwpx_sections_follow_the_spine_or_else_their_numbers(tmp_path):
    doc = read(NO_MANIFEST)
    assert doc.text.index("입 법 예 고") < doc.text.index("신ㆍ구조문대비표")
    assert row_starting(doc, "제1절 재산분") == ["제1절 재산분", "제1절 사업소분"]

    # The same package without container or content.hpf, its sections stored in reverse order.
    source = zipfile.ZipFile(NO_MANIFEST)
    names = [n for n in source.namelist() if n not in ("META-INF/container.xml", "Contents/content.hpf")]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as stripped:
        for name in sorted(names, reverse=True):
            stripped.writestr(name, source.read(name))
    path = tmp_path / "stripped.hwpx"
    path.write_bytes(buffer.getvalue())
    fallback = read(path)
    assert fallback.text == doc.text


def test_a_password_protected_hwpx_is_refused_by_its_manifest(tmp_path):
    """OWPML encrypts parts the ODF way and lists them in META-INF/manifest.xml (no real sample here)."""
    manifest = ('<odf:manifest xmlns:odf="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
                '<odf:file-entry full-path="Contents/section0.xml" media-type="application/xml">'
                '<odf:encryption-data checksum-type="SHA256" checksum="AAAA">'
                '<odf:algorithm algorithm-name="AES256" initialisation-vector="AAAA"/>'
                '</odf:encryption-data></odf:file-entry></odf:manifest>')
    source = zipfile.ZipFile(NO_MANIFEST)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as locked:
        for name in source.namelist():
            locked.writestr(name, source.read(name) if name != "Contents/section0.xml" else bytes(range(256)))
        locked.writestr("META-INF/manifest.xml", manifest)
    path = tmp_path / "암호.hwpx"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(EncryptedDocument, match="encrypted HWPX: the document is protected by a password"):
        read(path)


def test_a_zip_bomb_named_hwpx_is_refused_with_its_reason(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as bomb:  # level 1: quick to make
        bomb.writestr("mimetype", "application/hwp+zip")
        with bomb.open("Contents/section0.xml", "w") as member:
            zeros = bytes(1024 * 1024)
            for _ in range(201):  # 201 MB, one over the default limit
                member.write(zeros)
    path = tmp_path / "보고서.hwpx"
    path.write_bytes(buffer.getvalue())
    assert path.stat().st_size < 1024 * 1024  # under a megabyte on disk
    with pytest.raises(LimitExceeded, match="HANRAG_MAX_UNZIPPED_MB") as refused:
        read(path)
    assert "ZIP bomb" in str(refused.value)
    small = ExtractOptions(max_unzipped_bytes=100_000)
    with pytest.raises(LimitExceeded):
        read(HWP / "real-8-tables.hwpx", small)
    # The reader counts what it really inflates too, for callers that skip `extract`'s check.
    with pytest.raises(LimitExceeded, match="HWPX archive unpacks to more than"):
        extract_hwpx((HWP / "real-8-tables.hwpx").read_bytes(), "real-8-tables.hwpx", small)


def test_hwp5_table_cells_come_out_in_their_places():
    doc = read(HWP / "표.hwp")
    (table,) = tables(doc)
    assert table.rows == [["ABC\n123", "DEF", "GHI"], ["LMN", "OPQ", "STR"], ["UVM", "123", "456"]]

    (grid,) = tables(read(HWP / "merging-cell.hwp"))
    assert len(grid.rows) == 7 and all(len(row) == 7 for row in grid.rows)
    assert all(grid.rows[r][c] == f"{r},{c}" for r in range(7) for c in range(7))


def test_hwp_streams_inflate_only_up_to_the_limit():
    with pytest.raises(LimitExceeded, match="HWP document inflates to more than"):
        read(HWP / "merging-cell.hwp", ExtractOptions(max_unzipped_bytes=1000))


@pytest.mark.parametrize("name", ["real-8-tables.hwpx", "표.hwp", "merging-cell.hwp"])
def test_a_truncated_file_is_a_broken_document_not_a_crash(name):
    data = (HWP / name).read_bytes()
    with pytest.raises(BrokenDocument, match=r"^broken (ZIP container|HWP)"):
        extract(data[: len(data) * 6 // 10], name)


def test_hwp_distribution_document_is_refused_with_a_clear_reason():
    with pytest.raises(EncryptedDocument, match=r"HWP distribution document: its text is encrypted \(배포용 문서\)"):
        read(HWP / "distribution.hwp")


def test_an_ingested_hwpx_is_found_by_search(tmp_path, embedder):
    runner = make_runner(tmp_path / "home", embedder)
    record = runner.ingest_file("u", NO_MANIFEST, "입법예고.hwpx")
    assert record.status == "succeeded", record.reason
    hits = Retriever(runner.embedder, runner.index).search("u", "주민세 세세목의 명칭 정비", 5)
    assert hits and hits[0].source == "입법예고.hwpx"
    assert any("주민세 세세목의 명칭을 상위법에 맞게 정비함" in hit.text for hit in hits)


def _record(tag: int, level: int, data: bytes) -> bytes:
    return struct.pack("<I", tag | level << 10 | len(data) << 20) + data


def _cell(row: int, col: int, row_span: int, col_span: int, text: str) -> bytes:
    """A cell as HWP 5 stores it: list header (address, spans, size), then its paragraph and text."""
    header = struct.pack("<HHI4H2I", 1, 0, 0, col, row, col_span, row_span, 7000, 1000) + bytes(10)
    return (_record(72, 2, header) + _record(66, 2, bytes(24))
            + _record(67, 3, (text + "\r").encode("utf-16-le")))


def test_hwp5_merged_cells_land_like_hwpx_ones():
    """No real HWP 5 sample has merged cells, so this one is written record by record."""
    from pipeline.stages.extract.hwp import PARA_HEADER, _BodyReader, _records, _tree

    table = struct.pack("<IHH", 0, 3, 3) + bytes(20)
    body = (_record(66, 0, bytes(24)) + _record(67, 1, "\x0b\0\0\0\0\0\0\x0b\r".encode("utf-16-le"))
            + _record(71, 1, b" lbt" + bytes(40)) + _record(77, 2, table)
            + _cell(0, 0, 1, 1, "구분") + _cell(0, 1, 1, 2, "예산(억원)")
            + _cell(1, 0, 2, 1, "국비") + _cell(1, 1, 1, 1, "2024년") + _cell(1, 2, 1, 1, "120")
            + _cell(2, 1, 1, 1, "2025년") + _cell(2, 2, 1, 1, "150"))
    reader = _BodyReader(set())
    reader.pages.start_section()
    for paragraph in _tree(_records(body)):
        assert paragraph.tag == PARA_HEADER
        reader.paragraph(paragraph)
    (element,) = reader.elements
    assert element.table is not None
    assert element.table.rows == [["구분", "예산(억원)", "예산(억원)"],
                                  ["국비", "2024년", "120"],
                                  ["국비", "2025년", "150"]]
