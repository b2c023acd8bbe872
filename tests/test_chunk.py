"""Chunking real documents: sizes in tokens, sentence boundaries, pages, headings, whole tables."""

from __future__ import annotations

import hashlib

import pytest
from conftest import BANK, SAMPLES, TUNNEL

from pipeline.korean import sentences
from pipeline.models import DocumentRef, Element, ExtractedDocument, Table
from pipeline.options import ChunkOptions
from pipeline.stages.chunk import chunk_document, count_tokens
from pipeline.stages.extract import extract


def extracted(name: str) -> tuple[ExtractedDocument, DocumentRef]:
    data = (SAMPLES / name).read_bytes()
    return extract(data, name), DocumentRef("u", name, hashlib.sha256(data).hexdigest())


@pytest.fixture(scope="module")
def tunnel():
    doc, ref = extracted(TUNNEL)
    return doc, ref, chunk_document(doc, ref)


def test_chunks_fit_the_token_budget_and_carry_their_document(tunnel):
    doc, ref, chunks = tunnel
    assert chunks
    for chunk in chunks:
        assert chunk.tokens == count_tokens(chunk.text) <= 512
        assert (chunk.document_id, chunk.version, chunk.source) == (ref.document_id, ref.version, TUNNEL)
    assert len({c.chunk_id for c in chunks}) == len(chunks)


def test_every_chunk_stays_on_one_page_and_every_page_is_covered(tunnel):
    doc, _, chunks = tunnel
    assert all(c.page_start == c.page_end for c in chunks)
    assert {c.page_start for c in chunks} == {e.page for e in doc.elements if e.text.strip()}


def test_text_of_each_page_is_kept(tunnel):
    doc, _, chunks = tunnel
    for page in range(1, doc.pages + 1):
        page_words = set(" ".join(e.text for e in doc.elements if e.page == page).split())
        chunk_words = set(" ".join(c.text for c in chunks if c.page_start == page).split())
        assert page_words <= chunk_words, page


def test_chunks_start_on_a_sentence_boundary():
    """With a small budget (200 tokens), every chunk of page 4 starts where a Kiwi sentence starts and ends
    where one ends: no sentence is cut (none of them is longer than the budget)."""
    doc, ref = extracted(TUNNEL)
    page_text = "\n\n".join(e.text for e in doc.elements if e.page == 4)
    found = sentences(page_text)
    assert max(count_tokens(s) for s in found) < 200
    chunks = [c for c in chunk_document(doc, ref, ChunkOptions(chunk_tokens=200, overlap_tokens=30))
              if c.page_start == 4]
    assert len(chunks) >= 3
    for chunk in chunks:
        flat = " ".join(chunk.text.split())
        assert any(flat.startswith(s[:20]) for s in found), flat[:40]
        assert any(flat.endswith(s[-20:]) for s in found), flat[-40:]


_FILM = "2003년에는 처음으로 공포 영화 《4인용 식탁》에 박신양과 함께 주연으로 출연했다."
_DEBATE = "러시아를 비롯한 여러 지역의 사상도 포함시킬 것이냐에 대한 논란이 있다."


@pytest.mark.parametrize(("text", "expected"), [
    # KorQuAD 1.0 dev (ko.wikipedia 박신양 and 철학 articles): a title in brackets opening a sentence was
    # ended with the sentence before it, and the sentence after began with its particle (은, 이라는)
    (f"{_FILM} 《4인용 식탁》은 전국적으로 71만 명의 관객수를 기록했다.",
     [_FILM, "《4인용 식탁》은 전국적으로 71만 명의 관객수를 기록했다."]),
    (f'{_DEBATE} "철학"이라는 용어 자체는 고대 그리스어에서 유래한 것이다.',
     [_DEBATE, '"철학"이라는 용어 자체는 고대 그리스어에서 유래한 것이다.']),
])
def test_a_sentence_that_opens_with_a_title_in_brackets_keeps_it(text, expected):
    """Else the chunk reads "…출연했다. 《4인용 식탁》" and, on the next line, "은 전국적으로 …": the reply
    quoting that sentence lost its subject, and a line break sat inside a word."""
    assert sentences(text) == expected


def test_overlap_repeats_whole_sentences():
    doc, ref = extracted(TUNNEL)
    chunks = [c for c in chunk_document(doc, ref, ChunkOptions(chunk_tokens=120, overlap_tokens=40))
              if c.page_start == 4]
    repeated = 0
    for before, after in zip(chunks, chunks[1:], strict=False):
        first_line = after.text.splitlines()[0]
        repeated += first_line in before.text
    assert repeated >= 1


def test_heading_follows_the_section(tunnel):
    _, _, chunks = tunnel
    purpose = next(c for c in chunks if "하해저 장대 도로터널의 하계 결로" in c.text)
    assert purpose.heading in ("1. 목적", "2. 적용대상")
    assert purpose.title


def test_a_small_table_is_one_chunk_with_its_header():
    doc, ref = extracted(BANK)
    chunks = chunk_document(doc, ref)
    tables = [c for c in chunks if c.kind == "table"]
    assert tables
    assert tables[0].text.splitlines()[0].replace(" ", "").startswith("|영업방식")
    assert "인터넷전문은행" in tables[0].text


def test_a_long_table_is_split_between_rows_with_the_header_repeated():
    doc, ref = extracted(BANK)
    source = next(e.table for e in doc.elements if e.kind == "table")
    # the real header and rows, repeated into a table too long for one chunk
    long_table = Table(rows=source.rows[:1] + source.body * 40, header_rows=1)
    doc = ExtractedDocument(BANK, "t", 1, [Element("table", 1, long_table.to_markdown(), table=long_table)])
    chunks = chunk_document(doc, ref, ChunkOptions(chunk_tokens=120, overlap_tokens=0))
    assert len(chunks) > 3
    header = long_table.to_markdown(rows=[]).splitlines()
    body_lines = {line for line in long_table.to_markdown().splitlines()[len(header):]}
    for chunk in chunks:
        lines = chunk.text.splitlines()
        assert lines[: len(header)] == header
        assert set(lines[len(header):]) <= body_lines  # whole rows only, none cut in half
        assert chunk.tokens <= 120
    assert sum(len(c.text.splitlines()) - len(header) for c in chunks) == len(long_table.body)


def test_a_table_is_named_by_the_lines_just_above_it_and_a_continued_table_keeps_that_name():
    from conftest import AVIATION, FIXTURES

    data = (FIXTURES / AVIATION).read_bytes()
    doc = extract(data, AVIATION)
    tables = [c for c in chunk_document(doc, DocumentRef("u", AVIATION, hashlib.sha256(data).hexdigest()))
              if c.kind == "table"]
    by_page = {}
    for chunk in tables:
        by_page.setdefault(chunk.page_start, chunk.heading)
    # page 2 lists the pilot schools under "• 조종사 양성 교육기관 : 총 19개"; page 3 the mechanics' ones
    assert by_page[2].startswith("• 조종사 양성 교육기관 : 총 19개"), by_page[2]
    assert by_page[3].startswith("• 항공정비사 양성 교육기관"), by_page[3]
    # pages 6 and 7 hold no text: their tables continue page 5's list of training organisations
    assert by_page[5].startswith("□ 항공훈련기관 : 총 23개") and by_page[6] == by_page[7] == by_page[5]
    # the name is what the keyword index and the embedder see with the rows
    assert all(c.search_text.startswith(f"{c.title} · {c.heading}\n|") for c in tables)
