"""Office documents, e-mail, Markdown and CSV: what a reader of each file would check.

Real files from `tests/fixtures/` (copies of ../shared/data/corpus, see SOURCES.md): a known
sentence, a known table cell, the number of tables a person counts, the page (slide, sheet), and
the reason a file is refused. They run under the network guard, so a partitioner that tried to
download a model or send telemetry would fail here.
"""

from __future__ import annotations

import io
import unicodedata
import zipfile
from email.message import EmailMessage

import pytest
from conftest import FIXTURES, make_runner

from chat.retrieve import Retriever
from pipeline.errors import BrokenDocument, EncryptedDocument, UnsupportedFormat
from pipeline.models import ExtractedDocument, Table
from pipeline.stages.extract import extract
from pipeline.stages.extract.html_table import table_from_html


def read(name: str) -> ExtractedDocument:
    return extract((FIXTURES / name).read_bytes(), name)


def tables(doc: ExtractedDocument) -> list[Table]:
    return [e.table for e in doc.elements if e.kind == "table" and e.table is not None]


def test_docx_tables_keep_their_cells_and_merged_cells_are_spread():
    doc = read("docx-tables.docx")
    found = tables(doc)
    assert len(found) == 3  # simple, nested, merged: as Word shows them
    assert found[0].rows == [["Header Col 1", "Header Col 2"], ["Lorem ipsum", "A link example"]]
    assert found[1].rows[1] == ["d", "e f g&t h", "i"]  # the nested table's text stays in its cell
    # a spans two rows, b two columns, d two rows, e two columns
    assert found[2].rows == [["a", "b", "b"], ["a", "c", "d"], ["e", "e", "d"]]
    assert "Table with merged cells" in doc.text
    assert {e.page for e in doc.elements} == {1}


def test_docx_with_a_table_and_a_paragraph():
    doc = read("fake_table.docx")
    assert tables(doc)[0].rows[1] == ["Lorem ipsum", "A Link example"]
    assert "Dolor sit amet" in doc.text


def test_pptx_slides_are_pages_and_the_title_is_a_heading():
    doc = read("fake-power-point-table.pptx")
    (table,) = tables(doc)
    assert table.header == [["Column 1", "Column 2", "Column 3"]]
    assert ["Tangerine", "Pink", "Aqua"] in table.body
    assert [e.text for e in doc.elements if e.heading] == ["A Slide with a Table"]

    slides = read("sample-presentation.pptx")
    assert slides.pages == 4
    by_text = {e.text: e.page for e in slides.elements}
    assert by_text["This is the first content slide"] == 2
    assert by_text["Subtopic 1 of subtopic 2"] == 3
    assert tables(slides)[0].rows[1] == ["1", "A1", "B1", "C1"]


def test_xlsx_sheets_are_pages_and_a_header_block_stays_with_its_rows():
    doc = read("2023-half-year-analyses-by-segment.xlsx")
    assert doc.pages == 5  # five sheets
    found = [e for e in doc.elements if e.kind == "table"]
    # Sheet 1 and 3: January–June 2023 and 2022 one above the other; 2, 4 and 5: one table each.
    assert [e.page for e in found] == [1, 1, 2, 3, 3, 4, 5]
    first = found[0].table
    assert first.header_rows == 2
    assert first.header[0][-1] == "January–June 2023"  # the cell's line break became a space
    assert "Sales (a)" in first.header[1]
    assert ["Zone NA", "12553", "2713", "2632", "-81", "-29", "-44", "-337"] in first.body
    assert any(e.heading and e.text == "OS-Rev.and results 30 06 2023" for e in doc.elements)  # sheet name


def test_odt_and_rtf_through_pandoc():
    odt = read("fake.odt")
    assert "Lorem ipsum dolor sit amet." in odt.text
    assert tables(odt)[0].rows[2] == ["Time", "1pm", "2pm", "3pm"]

    rtf = read("fake-doc.rtf")
    assert [e.text for e in rtf.elements if e.heading] == ["My First Heading"]
    assert "My first paragraph." in rtf.text
    # pandoc reads this hand-written table (one row definition for three rows) as a single row
    assert "Row 2, Cell 2" in tables(rtf)[0].rows[0]


def test_markdown_and_csv_are_read_as_tables():
    md = tables(read("simple-table.md"))
    assert md[0].header == [["Item", "Price", "# In stock"]]
    assert md[0].body == [["Juicy Apples", "1.99", "739"], ["Bananas", "1.89", "6"]]

    (csv,) = tables(read("semicolon-delimited.csv"))
    assert csv.rows[0] == ["Lorem, ipsum", "dolor sit", "amet"]  # the delimiter is ';', not ','
    assert csv.rows[-1] == ["Ut enim", "ad minim", "veniam, quis"]


def test_korean_csv_tsv_in_cp949_and_markdown():
    """Spreadsheets exported on Korean Windows are CP949; the cells must come out as written."""
    tsv = extract("구분\t2023년\t2024년\n매출액\t1,200\t1,350\n".encode("cp949"), "실적.tsv")
    assert tables(tsv)[0].rows == [["구분", "2023년", "2024년"], ["매출액", "1,200", "1,350"]]
    csv = extract('구분,2023년\n매출액,"1,200"\n'.encode("cp949"), "실적.csv")
    assert tables(csv)[0].rows == [["구분", "2023년"], ["매출액", "1,200"]] and csv.language == "ko"
    md = extract("# 결로 대책\n\n터널 내부 결로를 줄인다.\n\n| 구분 | 기준 |\n|---|---|\n| 연장 | 1km 이상 |\n"
                 .encode(), "대책.md")
    assert [(e.kind, e.heading) for e in md.elements] == [("text", True), ("text", False), ("table", False)]
    assert tables(md)[0].body == [["연장", "1km 이상"]]


def test_email_body_headers_and_text_attachment():
    doc = read("fake-email-attachment.eml")
    assert doc.title == "Fake email with attachment"
    assert "From: Mallori Harrell <mallori@unstructured.io>" in doc.elements[0].text
    assert "Here's the attachments!" in doc.text
    named = next(e for e in doc.elements if e.text == "첨부 파일: fake-attachment.txt")
    after = doc.elements[doc.elements.index(named) + 1]
    assert named.heading and after.text == "Hey this is a fake attachment!" and after.page == 2
    assert "Violets are blue" in read("fake-email.eml").text


def test_korean_email_in_euc_kr_with_a_docx_attachment_and_an_unreadable_one():
    message = EmailMessage()
    message["Subject"] = "3분기 예산 집행 현황"
    message["From"] = "김민수 <minsu@example.kr>"
    message["To"] = "finance@example.kr"
    message.set_content("안녕하세요.\n3분기 예산 집행 현황을 첨부합니다.\n", charset="euc-kr")
    message.add_attachment((FIXTURES / "docx-tables.docx").read_bytes(), maintype="application",
                           subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
                           filename="집행표.docx")
    message.add_attachment(b"\x00\x01binary\x02" * 20, maintype="application", subtype="octet-stream",
                           filename="data.bin")
    doc = extract(message.as_bytes(), "report.eml")
    assert doc.title == "3분기 예산 집행 현황"
    assert "3분기 예산 집행 현황을 첨부합니다." in doc.text
    assert any(e.heading and e.text == "첨부 파일: 집행표.docx" for e in doc.elements)
    assert tables(doc)[2].rows[2] == ["e", "e", "d"]  # the attached document's merged-cell table
    assert doc.warnings == ["attachment data.bin was not indexed: unsupported file type: binary data (.bin)"]


def test_korean_docx_comes_out_nfc():
    """A file written on a Mac may hold decomposed Hangul (NFD); search needs composed syllables."""
    import docx

    document = docx.Document()
    document.add_heading(unicodedata.normalize("NFD", "도로터널 결로 대책"), level=1)
    document.add_paragraph(unicodedata.normalize("NFD", "제습설비는 공기 중의 수분을 응결시켜 제거한다."))
    grid = document.add_table(rows=2, cols=2)
    for cell, text in zip(grid._cells, ["구분", "기준", "연장", "1km 이상"], strict=True):
        cell.text = unicodedata.normalize("NFD", text)
    buffer = io.BytesIO()
    document.save(buffer)
    doc = extract(buffer.getvalue(), "결로.docx")
    assert doc.elements[0].heading and doc.elements[0].text == "도로터널 결로 대책"
    assert "제습설비는 공기 중의 수분을 응결시켜 제거한다." in doc.text
    assert tables(doc)[0].rows == [["구분", "기준"], ["연장", "1km 이상"]]
    assert doc.language == "ko"


def test_password_protected_xlsx_is_refused_with_its_reason():
    with pytest.raises(EncryptedDocument, match="^encrypted Office document: a password is required$"):
        read("hard/password_protected.xlsx")


def test_encrypted_outlook_message_is_refused_with_its_reason():
    # A PGP-encrypted message (multipart/encrypted) saved from Outlook: its body is ciphertext.
    with pytest.raises(EncryptedDocument, match="^encrypted e-mail: only the recipient's private key"):
        read("hard/fake-encrypted.msg")


def test_pptx_with_a_dangling_placeholder_is_still_read():
    """`fake-power-point-malformed.pptx` has a date placeholder its layout does not define: PowerPoint
    opens it, and so do we."""
    assert "Test Slide" in read("hard/fake-power-point-malformed.pptx").text


def test_pptx_without_its_presentation_part_is_broken():
    with zipfile.ZipFile(FIXTURES / "fake-power-point-table.pptx") as original:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as damaged:
            for item in original.infolist():
                if item.filename != "ppt/presentation.xml":
                    damaged.writestr(item, original.read(item))
    with pytest.raises(BrokenDocument, match="^broken PPTX: "):
        extract(buffer.getvalue(), "damaged.pptx")


@pytest.mark.parametrize("kind, magic_stream", [("doc", "WordDocument"), ("xls", "Workbook")])
def test_legacy_office_files_say_how_to_make_them_readable(monkeypatch, kind, magic_stream):
    import pipeline.stages.extract as extract_package

    monkeypatch.setattr(extract_package, "_ole_kind", lambda data: kind)
    with pytest.raises(UnsupportedFormat, match=rf"97-2003 .*save it as \.{kind}x$"):
        extract(extract_package.OLE_MAGIC + b"\x00" * 512, f"old.{kind}")


def test_html_table_spans_and_header_rows():
    table = table_from_html(
        "<table><thead><tr><th rowspan=2>구분</th><th colspan=2>2024</th></tr>"
        "<tr><th>상반기</th><th>하반기</th></tr></thead>"
        "<tbody><tr><td>매출</td><td>10</td><td>12</td></tr><tr><td></td><td></td><td></td></tr></tbody></table>"
    )
    assert table.header_rows == 2
    assert table.rows == [["구분", "2024", "2024"], ["구분", "상반기", "하반기"], ["매출", "10", "12"]]


def test_a_docx_table_cell_is_found_by_search(tmp_path, embedder):
    runner = make_runner(tmp_path / "home", embedder)
    path = tmp_path / "tables.docx"
    path.write_bytes((FIXTURES / "docx-tables.docx").read_bytes())
    record = runner.ingest_file("u", path, "tables.docx")
    assert record.status == "succeeded", record.reason
    hits = Retriever(runner.embedder, runner.index).search("u", "A link example", 5)
    assert hits and hits[0].source == "tables.docx" and hits[0].kind == "table"
    assert "| Lorem ipsum | A link example |" in hits[0].text
