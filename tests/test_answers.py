"""The extractive answer names the fact, from the right passage (issue 14): the three questions a new
user asked of real documents, the fact marked, no markers copied from the document, "not found" for
a user who lacks the document, and the same candidates in an LLM's prompt."""

from __future__ import annotations

import json
import re

import pytest

from chat.answer import NOT_FOUND, extractive_answer
from chat.candidates import read_hits, read_question, score
from chat.retrieve import Retriever
from chat.service import ChatService, ChatTurn
from pipeline.adapters.local.history import SqliteHistory
from pipeline.models import SearchHit
from tests.conftest import AVIATION, FIXTURES, SAMPLES, TUNNEL, as_hits, fixture_chunks, make_runner

PLAN = "2020중기부업무계획.pdf"
SHEET = "2023-half-year-analyses-by-segment.xlsx"
TENDER = "hwp/real-44-tables.hwpx"
BENEFITS = "복리후생 안내.docx"
STRAY = re.compile(r"\*\s*\[\d+\]|^\s*(?:\d+(?:\.\d+)+|[□ㅇ•\-*※])\s")


@pytest.fixture(scope="module")
def runner(tmp_path_factory, embedder):
    """`kim` holds the aviation table PDF, the 2020 SME work plan and the benefits DOCX; `park` only
    the tunnel guideline."""
    runner = make_runner(tmp_path_factory.mktemp("answers-home"), embedder)
    records = runner.ingest("kim", [(FIXTURES / AVIATION, AVIATION), (FIXTURES / PLAN, PLAN),
                                    (FIXTURES / BENEFITS, BENEFITS)])
    records += runner.ingest("park", [(SAMPLES / TUNNEL, TUNNEL)])
    assert [r.status for r in records] == ["succeeded"] * 4, [r.reason for r in records]
    return runner


def ask(runner, user: str, question: str, llm=None) -> ChatTurn:
    chat = ChatService(Retriever(runner.embedder, runner.index), SqliteHistory(runner.index.db), runner.registry, llm)
    final = list(chat.respond(user, "answers", question))[-1]
    assert isinstance(final, ChatTurn)
    return final


@pytest.mark.parametrize(("question", "fact", "source", "page"), [
    ("한서대학교 조종사 양성과정의 연간 정원은?", "108명", AVIATION, 2),
    ("2019년 벤처투자 규모는 얼마였나요?", "4.3조원", PLAN, 11),
    ("건강검진 지원 금액은?", "연 50만 원", BENEFITS, 1),
    # the page-3 table's total, not a school's subtotal row (총계 in its 지정일 column) nor a training
    # course named "… 항공정비사" on page 7: 항공정비사 is in the table's caption, not in its rows
    ("항공정비사 전문교육기관의 정원 총계는?", "3,465명", AVIATION, 3),
    # the row of 신한에어 itself, not 신라대학교's row whose aircraft cell says "신한에어 위탁"
    ("신한에어의 조종사 양성 정원은 연간 몇 명인가요?", "45명", AVIATION, 2),
    # 몇 대: the number under 훈련기(대), the unit in its header; 초당대학교 has three rows in the report
    ("초당대학교 조종 전문교육기관의 훈련기는 몇 대인가요?", "14", AVIATION, 2),
    ("극동대학교가 조종 전문교육기관으로 지정된 날은 언제인가요?", "2021.06.21", AVIATION, 2),
])
def test_the_reply_names_the_fact_from_the_right_passage(runner, question, fact, source, page):
    reply = ask(runner, "kim", question).to_dict()
    text = reply["answer"]
    assert fact in text, text
    assert reply["fact"]["text"] == fact and text[reply["fact"]["start"]:reply["fact"]["end"]] == fact
    assert [(c["source"], c["page"]) for c in reply["citations"]] == [(source, page)]
    assert text.endswith(" [1]") and text.count("[") == 1, text  # one citation mark, none copied
    assert not STRAY.search(text), text
    assert len(text) <= 160 + len(" [1]"), text


def test_a_table_row_is_read_with_its_header(runner):
    text = ask(runner, "kim", "한서대학교 조종사 양성과정의 연간 정원은?").answer.text
    assert "교육기관: 한서대학교" in text and "정원(年): 108명" in text and "|" not in text, text


def test_no_leading_section_number_and_no_unasked_sentence(runner):
    # the tunnel guideline's scope sentence is numbered "3.1" in the document
    text = ask(runner, "park", "도로터널 결로 대책 가이드라인은 연장 몇 km 이상의 터널에 적용하나요?").answer.text
    assert "1km" in text.replace(" ", "") or "1 km" in text, text
    assert not text.startswith(("3.1", "3. ", "1.")) and text.count("[") == 1, text


def test_a_user_without_the_document_is_told_nothing_was_found(runner):
    reply = ask(runner, "park", "건강검진 지원 금액은?").answer
    assert reply.text.startswith(NOT_FOUND) and "50만" not in reply.text, reply.text
    # with the closest passages to look at, each cited
    assert reply.citations and all(c.source == TUNNEL for c in reply.citations)
    assert f"「{TUNNEL}」" in reply.text and reply.fact is None


class RecordingLLM:
    def __init__(self) -> None:
        self.prompts: list[str] = []

    def complete(self, system: str, prompt: str) -> str:
        self.prompts.append(prompt)
        return "연 50만 원입니다 [1]"

    def stream(self, system: str, prompt: str):
        self.prompts.append(prompt)
        yield "연 50만 원입니다 [1]"


def test_an_llm_reads_the_same_candidates_tables_as_rows_with_headers(runner):
    llm = RecordingLLM()
    reply = ask(runner, "kim", "건강검진 지원 금액은?", llm)
    prompt = llm.prompts[-1]
    first = prompt.split("</passage>")[0]
    assert "항목: 건강검진, 지원 금액: 연 50만 원, 대상: 임직원 및 배우자" in first, first
    assert "| 건강검진 |" not in prompt
    assert reply.answer.citations[0].source == BENEFITS


def _passage(text: str, source: str = "위키백과.txt") -> SearchHit:
    return SearchHit("c1", "d1", source, source, 1, 1, "", "text", text, 1.0)


@pytest.mark.parametrize(("question", "passage", "fact"), [
    # "몇 위" asks for a rank: the number followed by 위, not the year nor another count of the sentence
    ("방탄소년단은 2017 파워셀러브리티 몇 위에 선정됐나?",
     "방탄소년단은 2017년 포브스코리아 파워셀러브리티 조사에서 멤버 7명이 함께 5위에 선정됐다.", "5위"),
    ("LTE Cat.6의 최대 다운로드 속도는 몇 Mbps인가?",
     "LTE Cat.6 모델은 20MHz 대역 2개를 묶어 최대 300 Mbps의 다운로드 속도를 낸다.", "300 Mbps"),
    # 얼마나 asks for an amount even when the question also names a country (국가)
    ("2009년 국가부채는 2007년 말에 비해 얼마나 증가하였는가?",
     "2009년 대한민국의 국가부채는 2007년 말에 비해 21.7% 증가하였다.", "21.7%"),
])
def test_the_fact_is_of_the_kind_the_question_asks_for(question, passage, fact):
    reply = extractive_answer(question, [_passage(passage)])
    assert reply.found and reply.fact is not None and reply.fact["text"] == fact, reply
    assert reply.text[reply.fact["start"]:reply.fact["end"]] == fact



# KorQuAD 1.0 dev paragraphs (정월_대보름, 테드_번디, 이명박), verbatim: a count or an ordinal written in
# Korean words is the fact, not a year or another number of the passage
@pytest.mark.parametrize(("question", "passage", "fact"), [
    ("대보름이란 새해가 시작된 뒤 몇번째로 맞이하는 보름달을 의미하는가?",
     "보름달은 한 달에 한 번 뜨게 되는데, 정월 대보름에 뜨는 보름달이 가장 크려면, 그 때, 보름달이 지구에서 가장 "
     "가까워야 한다. 그래서 정월 대보름은 \"大보름\"이 아닐 수도 있다. "
     "음력 새해를 시작하고 맞이하는 첫 번째 보름달이기에 \"大보름\"이라고 부르는 것일 뿐이다.", "첫 번째"),
    ("번디는 1969년 아틀랜틱 시티에서 몇 명의 여성을 살해했다고 아트 노만에게 말했나?",
     "번디는 넬슨에게 1969년 뉴저지주 오션 시티에서 처음으로 납치를 시도했지만 1971년 어느 시점에 시애틀에서 살인을 "
     "저지르기 전까지 누구도 죽이지 않았다고 말했다. 번디는 정신과의사 아트 노만에게 필라델리아에 있는 가족을 만나는 "
     "동안인 1969년에 아틀랜틱 시티에서 두 명의 여성을 살해했다고 말했다.", "두 명"),
    ("2009년 11월 10일 해상교정에서 조선민주주의인민공화국의 함정은 몇채 반파되었는가?",
     "2009년 11월 10일, 조선민주주의인민공화국의 해군 함정이 서해 북방한계선(NLL)을 침입하면서 남한과의 해상 교전이 "
     "발생했다. 이 교전에서 조선민주주의인민공화국의 함정 한척은 반파되었으며, 남한 함정은 경미한 피해를 입었다.",
     "한척"),
])
def test_a_number_written_in_words_is_the_fact(question, passage, fact):
    reply = extractive_answer(question, [_passage(passage)])
    assert reply.found and reply.fact is not None and reply.fact["text"] == fact, reply


def test_a_cell_that_starts_with_a_number_keeps_it():
    # the tunnel guideline's condensation levels (corpus/ko, page 9): "7.6 g/kg 미만" is not a section number
    from chat.candidates import table_rows
    rows = table_rows(["| 등급 | 외기 절대습도 | 시점부 |", "|---|---|---|", "| Level 2 | 7.6 g/kg 미만 | 건조 |"])
    assert [r.text for r in rows] == ["등급: Level 2, 외기 절대습도: 7.6 g/kg 미만, 시점부: 건조"]


def test_a_spreadsheet_row_is_read_under_its_period_with_its_signed_numbers():
    """The XLSX of tests/fixtures heads each table with two rows: the period (January–June 2023 / 2022)
    above the measures (Sales, …). The row of the asked year is the answer, and -101 keeps its sign."""
    chunks = [c for c in fixture_chunks(SHEET) if c.kind == "table" and c.page_start == 3 and "| Water |" in c.text]
    assert len(chunks) == 2  # January–June 2023 and January–June 2022
    hits = as_hits(reversed(chunks))
    reply = extractive_answer("2023년 상반기 Water 부문의 Sales는?", hits)
    assert reply.found and "Water, Sales: 1706" in reply.text, reply.text
    rows = [c.text for c in read_hits(hits)]
    assert any("Powdered and Liquid Beverages" in r and ": -101" in r for r in rows), rows


def test_a_total_row_is_read_as_the_total_of_its_captioned_table_not_as_the_row_above():
    """Page 3 of the aviation report ends its mechanics' schools table with `| 총계 | | | | 3,465명 |`, 총계 in
    the serial-number column. Read as a label, the row is the total; carried down from the row above it
    would say the air force (공군) trains 3,465 a year. (That "정원 총계는?" gets this row and not a school's
    subtotal is asked of the whole index above.)"""
    hits = as_hits(c for c in fixture_chunks(AVIATION) if c.kind == "table" and c.page_start == 3)
    rows = [c.text for c in read_hits(hits) if "3,465명" in c.text]
    assert rows == ["총계, 정원(年): 3,465명"], rows


def test_a_sheet_title_row_dates_every_row_and_a_date_range_finds_no_stray_numbers():
    """Page 1 of the XLSX has two tables whose first header row holds one cell, the period
    ("January–June 2023"), over the measures. That row titles the whole table: every row of the 2023
    table is a 2023 row. "1~6월" names the period; its 1 and 6 are not words to look for (they found
    Nespresso's "-6" before Zone NA)."""
    hits = as_hits(c for c in fixture_chunks(SHEET) if c.kind == "table" and c.page_start == 1)
    reply = extractive_answer("2023년 1~6월 Zone NA의 Sales는 얼마인가요?", hits).to_dict()
    assert reply["answer"].startswith("Zone NA, Sales (a): 12553,"), reply["answer"]
    assert reply["fact"]["text"] == "12553"


def test_a_bare_number_under_the_asked_header_is_the_fact():
    """The tender HWPX scores firms in tables whose cells are bare numbers (`| 5인 미만 | 4 |`,
    `| 행사장 및 시설물 설치분야 | 20 | 16 | …`): the number under the header the question names is the
    fact, and the row the question quotes ("5인 미만") beats one that merely contains its words
    ("5인 이상∼10인 미만")."""
    hits = as_hits(c for c in fixture_chunks(TENDER) if c.kind == "table" and c.page_start in (12, 13))
    reply = extractive_answer("근무인원이 5인 미만인 업체의 근무인력 점수는?", hits).to_dict()
    assert reply["answer"].startswith("근무인원: 5인 미만, 점수: 4"), reply["answer"]
    assert reply["fact"]["text"] == "4"
    reply = extractive_answer("행사장 및 시설물 설치분야 평가에서 우수의 점수는?", hits).to_dict()
    assert "행사장 및 시설물 설치분야, 우수: 20" in reply["answer"], reply["answer"]
    assert reply["fact"]["text"] == "20"


def test_a_count_is_not_read_as_a_bare_year():
    """A passage names its year without 년 in English ("January–June 2023") or before a period word
    ("2023 상반기"); "2000명" and "2020개" are counts, and a question about the year 2000 must not find them."""
    from chat.candidates import _bare_years

    assert _bare_years("January–June 2023, 2023 상반기, 정원 2000명, 2020개 기업") == {"year:2023"}


def test_a_term_asked_of_a_row_is_the_cell_under_the_header_it_names(runner):
    """Page 9 of the tunnel guideline grades condensation in two tables: Level 4 is "12.7 g/kg 이상" of outside
    humidity in one, "터널 내부 습도 95% 이상 터널 외부 습도 90% 이상" under 터널 내외기상태 in the other. Asked
    for the tunnel's inside humidity condition (무엇), the fact is that cell — not a foreign word of the row
    (LCS, CCTV), which the reply was cut around before, losing the condition."""
    reply = ask(runner, "park", "결로 Level 4 등급에서 터널 내부 습도 조건은 무엇인가요?").to_dict()
    assert reply["fact"]["text"] == "터널 내부 습도 95% 이상 터널 외부 습도 90% 이상", reply
    assert "터널 내외기상태: 터널 내부 습도 95% 이상" in reply["answer"], reply["answer"]
    assert [(c["source"], c["page"]) for c in reply["citations"]] == [(TUNNEL, 9)]


# KorQuAD 1.0 dev (대한민국_아파트의_역사), verbatim. A sentence restates the question and the fact is in the
# one after it: the best candidate is the restating sentence (it holds all the question's words), and
# the sentence after it, which holds the fact but few of the question's words, is read with it.
APARTMENTS = (
    "1930년, 한 공동주택이 회현동에 세워졌다. 일반 사무실이나 백화점은 그 이전에도 고층 건물이 있었지만 주택을 3층으로 "
    "올린 것은 이례적이었다. 더욱이 한 건물에 한 세대가 아닌 여러 세대가 함께 거주하는 '공동주택' 개념은 당시에는 전 "
    "세계적으로 매우 생소했다. 경성 미쿠니상사는 1935년 더욱 진보된 건축 기술로 내자동에 또 하나의 관사(아파트)를 "
    "짓는다. 이 건축물에 대해서는 더 많은 정보가 전해진다. 회현동 관사는 벽돌로 지었으나 이 아파트는 콘크리트 자재를 "
    "썼고 4층 높이에 외관도 현대식으로 설계됐다. 평면 구조는 4개의 다다미 방과 부엌, 화장실을 갖추었고 개별 난방을 "
    "제공했다."
)


@pytest.mark.parametrize(("question", "fact", "not_it"), [
    ("1930년 회현동에 세워진 공동주택의 층수는 얼마인가?", "3층", "4층"),
])
def test_the_fact_after_the_sentence_restating_the_question_is_the_answer(question, fact, not_it):
    reply = extractive_answer(question, [_passage(APARTMENTS)])
    assert reply.found and fact in reply.text and not_it not in reply.text, reply.text


def _korquad_hits() -> dict[str, tuple[str, list[SearchHit]]]:
    """Real retrieval: four KorQuAD 1.0 dev questions and the 10 hits `hanrag search` returned for them
    over the index of all 964 dev paragraphs (tests/fixtures/korquad-hits.json says how they were made)."""
    asked = json.loads((FIXTURES / "korquad-hits.json").read_text(encoding="utf-8"))["questions"]
    return {q["question"]: (q["answer"], [SearchHit(**hit) for hit in q["hits"]]) for q in asked}


@pytest.mark.parametrize("question", [
    "전현희의 출신 지역은 어디인가?",  # the rules: a sentence about 지역감정 that names no place of hers
    "2010년 국가 채무에 대한 정부의 매년 이자 지출액은?",  # the rules: "채무가 400조를 돌파하였다"
    "정성공의 아버지는 누구인가?",  # the rules: "정성공은 아버지를 따르지 않고 …"
])
def test_the_reader_picks_the_sentence_that_answers_where_the_rules_alone_do_not(question):
    gold, hits = _korquad_hits()[question]
    reply = extractive_answer(question, hits)
    assert reply.found and gold in reply.text, reply.text
    by_rules = score(read_question(question), read_hits(hits), hits)  # the rules' order, no reader
    assert gold not in extractive_answer(question, hits, threshold=0.0, ranked=by_rules).text


def test_the_gate_says_not_found_where_a_sentence_shares_the_question_words_but_cannot_answer():
    question = "반포주공아파트의 최대 평수는?"  # asked of a user who has every dev paragraph but its own
    _, hits = _korquad_hits()[question]
    by_rules = score(read_question(question), read_hits(hits), hits)
    assert by_rules[0].relevance >= 0.7  # a list of other apartments: the words, not the answer
    reply = extractive_answer(question, hits)
    assert reply.text.startswith(NOT_FOUND) and reply.citations, reply.text
