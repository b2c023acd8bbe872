"""OCR of images and image-only pages, and mojibake kept out of the index — on real files.

OCR needs Tesseract with Korean data (Debian's tesseract-ocr, tesseract-ocr-kor), which `make setup`
installs; these tests use it for real. The "not installed" path is tested by telling the module so.
"""

from __future__ import annotations

import io
from pathlib import Path

import pypdf
import pytest
from PIL import Image

from pipeline.errors import EmptyDocument
from pipeline.models import Element, ExtractedDocument
from pipeline.stages.extract import drop_garbled_pages, extract, ocr
from pipeline.stages.extract.quality import garbled_reason, looks_garbled, rare_syllable_share

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = Path(__file__).parent.parent / "samples"
JOURNAL = FIXTURES / "hard" / "ksc-euc-cmap-journal.pdf"  # 1999 journal, KSCpc-EUC-H CMap
IMAGE = FIXTURES / "english-and-korean.png"


def pypdf_mojibake() -> list[str]:
    """What pypdf really makes of the journal: it cannot decode the old CMap and reads UTF-16."""
    return [page.extract_text() for page in pypdf.PdfReader(JOURNAL).pages]


def test_pypdf_output_of_the_old_cmap_journal_is_flagged_as_garbled():
    pages = [text for text in pypdf_mojibake() if len(text) > 500]
    assert len(pages) >= 4
    for text in pages:
        reason = garbled_reason(text)
        assert reason and "Hangul syllables" in reason, text[:200]


def test_our_extraction_of_the_same_journal_is_readable_korean():
    doc = extract(JOURNAL.read_bytes(), JOURNAL.name)
    assert not any("garbled" in w for w in doc.warnings), doc.warnings
    text = doc.text
    assert "암환자의 뇌혈관질환은 일반환자의 뇌혈" in text
    assert "연세대학교 원주의과대학 원주기독병원 신경과" in text
    # letter-spaced Latin and numbers are put back together; a hyphen at a line end is undone
    assert "1865년 Trousseau" in text and "51.3%로" in text
    assert "nonbacterial thrombotic endocarditis" in text
    assert "\ufffe" not in text
    assert rare_syllable_share(text)[0] < 0.01


@pytest.mark.parametrize("pdf", sorted(SAMPLES.glob("*.pdf")), ids=lambda p: p.name[:12])
def test_real_korean_documents_are_not_flagged(pdf):
    doc = extract(pdf.read_bytes(), pdf.name)
    pages: dict[int, str] = {}
    for element in doc.elements:
        pages[element.page] = pages.get(element.page, "") + element.text
    assert not [n for n, text in pages.items() if looks_garbled(text)]


def test_garbled_pages_are_dropped_with_a_warning_and_the_readable_ones_kept():
    readable = extract(JOURNAL.read_bytes(), JOURNAL.name)
    mojibake = pypdf_mojibake()
    doc = ExtractedDocument(
        "journal.txt", "journal", 2,
        [Element("text", 1, readable.text[:3000]), Element("text", 2, mojibake[1])],
    )
    drop_garbled_pages(doc)
    assert [e.page for e in doc.elements] == [1]
    assert doc.warnings and doc.warnings[0].startswith("page 2 looks garbled")
    assert "was not indexed" in doc.warnings[0]


def test_an_image_is_read_by_ocr_in_korean_and_english():
    doc = extract(IMAGE.read_bytes(), IMAGE.name)
    text = doc.text
    assert "RULES AND INSTRUCTIONS" in text
    assert "안녕하세요" in text and "팬입니다" in text
    assert doc.pages == 1 and doc.language in ("ko", "en")
    assert any("OCR" in w for w in doc.warnings)


def test_a_page_the_automatic_layout_misreads_is_read_again_as_one_column():
    """A leaflet page with a strip of vertical text in its margin: Tesseract's automatic layout returns
    noise ("051 HO RD …"); the reading kept is the one-column one, with the table's words."""
    image = (FIXTURES / "leaflet-page-11.png").read_bytes()
    [(automatic, confidence)] = ocr._tesseract(image, ocr.LAYOUTS[0], timeout=300)
    assert confidence < ocr.RETRY_BELOW and "특례보증" not in automatic
    [(text, kept_confidence)] = ocr.read_image_scored(image, timeout=300)
    assert kept_confidence > confidence
    assert "특례보증" in text and "재해대책자금" in text and "간이신용조사" in text


def image_only_pdf() -> bytes:
    """A one-page scan: the real image, saved as a PDF page with no text layer."""
    buffer = io.BytesIO()
    Image.open(IMAGE).convert("RGB").save(buffer, format="PDF", resolution=150)
    return buffer.getvalue()


def test_an_image_only_pdf_page_is_read_by_ocr_and_says_so():
    doc = extract(image_only_pdf(), "scan.pdf")
    assert "RULES AND INSTRUCTIONS" in doc.text and "안녕하세요" in doc.text
    assert doc.warnings == ["page 1 of 1 has no usable text layer and was read by OCR "
                            "(recognition errors are possible)"]


def test_without_ocr_the_reason_names_what_is_missing(monkeypatch):
    monkeypatch.setattr(ocr, "missing", lambda: "OCR is not installed (Debian packages tesseract-ocr and "
                        "tesseract-ocr-kor)")
    with pytest.raises(EmptyDocument, match="PNG image: its text can only be read by OCR, and OCR is not installed"):
        extract(IMAGE.read_bytes(), IMAGE.name)
    with pytest.raises(EmptyDocument, match="no readable text on any of the 1 pages.*OCR is not installed"):
        extract(image_only_pdf(), "scan.pdf")


def test_ocr_can_be_turned_off():
    from pipeline.options import ExtractOptions

    with pytest.raises(EmptyDocument, match="OCR is turned off"):
        extract(IMAGE.read_bytes(), IMAGE.name, ExtractOptions(ocr=False))
