"""Extraction on real files: Korean spacing survives, pages are counted, bad files say why."""

from __future__ import annotations

import io
import re
import zipfile

import pytest
from conftest import BANK, FIXTURES, SAMPLES, TUNNEL

from pipeline.errors import BrokenDocument, EmptyDocument, EncryptedDocument, UnsupportedFormat
from pipeline.options import ExtractOptions
from pipeline.stages.extract import decode_text, extract


def read(path) -> bytes:
    return path.read_bytes()


def test_pdf_text_keeps_korean_word_spacing_and_page_numbers():
    doc = extract(read(SAMPLES / TUNNEL), TUNNEL)
    assert doc.pages == 9
    assert doc.language == "ko"
    page3 = " ".join(e.text for e in doc.elements if e.page == 3)
    # words a reader sees on page 3, with the spaces between them
    assert "이 가이드라인은 하해저 장대 도로터널의 하계 결로로 인해 발생할 수" in page3
    assert "\t" not in doc.text
    # no run of 15+ Hangul syllables without a space: that is what dropped spaces look like
    assert not re.search(r"[가-힣]{15,}", doc.text)
    assert {e.page for e in doc.elements} == set(range(1, 10))


def test_pdf_section_headings_are_marked():
    doc = extract(read(SAMPLES / TUNNEL), TUNNEL)
    headings = [e.text for e in doc.elements if e.heading]
    assert "1. 목적" in headings
    assert "2. 적용대상" in headings


def test_pdf_page_number_lines_are_dropped():
    doc = extract(read(SAMPLES / TUNNEL), TUNNEL)
    assert not any(line.strip() == "- 2 -" for e in doc.elements for line in e.text.splitlines())


def test_pdf_table_comes_out_as_rows_with_its_header():
    doc = extract(read(SAMPLES / BANK), BANK)
    tables = [e for e in doc.elements if e.kind == "table"]
    assert tables, "the press release has a table of bank types on page 1"
    first = tables[0]
    assert first.page == 1
    assert first.table.rows[0][0].replace(" ", "").startswith("영업방식")
    assert any("인터넷전문은행" in cell for row in first.table.rows for cell in row)
    assert first.text.startswith("| ")  # Markdown rendering for search and models


def test_encrypted_pdf_is_refused_with_a_reason():
    with pytest.raises(EncryptedDocument, match="encrypted PDF: a password is required"):
        extract(read(FIXTURES / "encrypted-file.pdf"), "encrypted-file.pdf")


def test_encrypted_pdf_opens_with_its_password():
    doc = extract(read(FIXTURES / "encrypted-file.pdf"), "encrypted-file.pdf",
                  ExtractOptions(pdf_password="test"))
    assert doc.pages >= 1 and doc.text.strip()


def test_wrong_password_is_named_as_such():
    with pytest.raises(EncryptedDocument, match="password is wrong"):
        extract(read(FIXTURES / "encrypted-file.pdf"), "encrypted-file.pdf",
                ExtractOptions(pdf_password="not-it"))


def test_pdf_with_a_broken_xref_is_still_read():
    doc = extract(read(FIXTURES / "issue-297.pdf"), "issue-297.pdf")
    assert "test example" in doc.text


def test_truncated_pdf_fails_with_a_reason():
    data = read(SAMPLES / BANK)[:4000]
    with pytest.raises((BrokenDocument, EmptyDocument)) as caught:
        extract(data, "truncated.pdf")
    assert "PDF" in str(caught.value)


@pytest.mark.parametrize(("name", "message"), [
    ("empty.txt", "empty file: there is no text to index"),
    ("fake-text-all-whitespace.txt", "empty file: it holds only whitespace"),
])
def test_empty_files_are_refused(name, message):
    with pytest.raises(EmptyDocument, match=message):
        extract(read(FIXTURES / name), name)


def test_the_type_is_decided_by_content_not_extension():
    docx = read(FIXTURES / "docx-tables.docx")
    misnamed = extract(docx, "looks-like-text.txt")  # a misleading extension changes nothing
    assert [e.table.rows[0] for e in misnamed.elements if e.table][0] == ["Header Col 1", "Header Col 2"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("notes.txt", "not an office document")
    with pytest.raises(UnsupportedFormat, match=r"a ZIP archive \(\.docx\)"):
        extract(archive.getvalue(), "looks-like-word.docx")


def test_utf16_text_is_decoded():
    doc = extract(read(FIXTURES / "fake-text-utf-16.txt"), "fake-text-utf-16.txt")
    assert "This is a test document to use for unit tests." in doc.text


def test_cp949_text_is_decoded():
    korean = extract(read(SAMPLES / TUNNEL), TUNNEL).text
    data = korean.encode("cp949", errors="ignore")
    assert decode_text(data)[:200] == data.decode("cp949")[:200]
    doc = extract(data, "legacy.txt")
    assert "도로터널 결로 대책 가이드라인" in doc.text and doc.language == "ko"


def test_html_blocks_and_headings():
    doc = extract(read(FIXTURES / "fake-html.html"), "fake-html.html")
    headings = [e.text for e in doc.elements if e.heading]
    assert headings == ["My First Heading", "My Second Heading", "A Third Heading"]
    assert "With sub-bullets!" in doc.text and "<" not in doc.text
    (table,) = [e.table for e in doc.elements if e.kind == "table"]
    assert table.header == [["Column 1", "Column 2"]]
    assert table.body[0] == ["Row 1, Cell 1", "Row 1, Cell 2"]



def test_html_without_block_tags_keeps_its_visible_text():
    # e-mail bodies and old pages often put text straight into <body>, separated by <br>
    doc = extract("<html><body>지방은행의 시중은행 전환 절차<br>인가 방식은 신규 인가<script>x()</script></body>"
                  "</html>".encode(), "old.html")
    assert doc.text == "지방은행의 시중은행 전환 절차\n인가 방식은 신규 인가"

def test_lines_wrapped_inside_a_korean_word_are_rejoined():
    """The guideline wraps at any syllable (`빠` / `르게`); a reader sees one word, and so do we."""
    doc = extract(read(SAMPLES / TUNNEL), TUNNEL)
    page4 = " ".join(e.text.replace("\n", " ") for e in doc.elements if e.page == 4)
    expected = ("오염물질을 빠르게 배출하기", "운전자에게 결로 발생 상황", "주의를 환기시켜 감속운행", "대용량의 설비")
    for word in expected:
        assert word in page4, word
    # two whole words across a line break keep their space; a heading is never glued to its text
    assert "터널 내 하계 결로 발생이" in page4
    headings = [e.text for e in doc.elements if e.heading]
    assert "1. 목적" in headings and "2. 적용대상" in headings
