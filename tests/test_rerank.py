"""The ranking's second pass and its helpers, as a user would check them: the page that says it comes
before the page that only mentions it, one amount written three ways is one amount, and a page in
another language that the dense side finds is not buried by pages that merely share a word.

Passages are quoted from real documents: the 4th school-library plan (corpus/ko/제4차(24_28)+학교도서관
+진흥+기본계획.pdf, pages 4 and 19) and the tunnel guideline in samples/ (pages 3 and 4).
"""

from __future__ import annotations

from decimal import Decimal

from pipeline.adapters.local.reranker import LexicalReranker
from pipeline.models import SearchHit
from pipeline.numbers import amounts, expand_amounts, written_forms
from pipeline.options import SearchOptions, fuse, script_differs

LIBRARY = "제4차(24_28)+학교도서관+진흥+기본계획.pdf"
PAGE_4 = ("(성격)「학교도서관진흥법」에 따라 교육부장관이 5년마다 수립 해야하는 법정 기본 계획(법 제7조제1항) "
          "(내용) 학교도서관 진흥을 위한 전반적 사항(법 제7조제2항), 학교의 독서 교육과 정보이용교육을 지원에 관한 "
          "계획 포함(법 제15조제1항)")
PAGE_19 = ("'한 학기 한 권 읽기' 등 교과 독서수업이 학생 독서활동 실천으로 확장될 수 있도록 교과기반 독서교육을 "
           "학교교육과정 운영계획에 반영 ※ 독서교육과 정보이용교육은 학교의 교육과정 운영계획 포함(학교도서관진흥법 "
           "제15조2항) - 교과시간, 창의적 체험활동, 학교자율시간 등과 연계하여 독서시간을 충분히 확보")


def hit(text: str, page: int, score: float, source: str = LIBRARY, title: str = "") -> SearchHit:
    return SearchHit(f"{source}-{page}", source, source, title, page, page, "", "text", text, score)


def test_the_page_that_cites_the_article_beats_the_page_that_mentions_the_law():
    question = "학교도서관진흥법 제15조제1항에 따라 기본계획에 포함해야 하는 교육은 무엇인가요?"
    hits = [hit(PAGE_19, 19, 0.95), hit(PAGE_4, 4, 0.80)]  # fusion put the neighbour first
    reranked = LexicalReranker().rerank(question, hits, 2)
    assert [h.page_start for h in reranked] == [4, 19]
    assert reranked[0].score > reranked[1].score


def test_words_written_together_beat_the_same_words_scattered():
    question = "결로 발생정보 안내시설"
    together = "결로 사고 방지시설은 결로 발생정보 안내 시설과 미끄럼방지시설로 나눌 수 있다."
    scattered = ("터널 안 결로는 여름에 늘어난다. " + "환기설비의 운영을 함께 검토한다. " * 6
                 + "발생 상황은 CCTV로 본다. " + "제습설비를 둔다. " * 6 + "정보 제공과 안내 방안을 세운다.")
    reranked = LexicalReranker().rerank(question, [hit(scattered, 5, 1.0), hit(together, 4, 0.9)], 2)
    assert reranked[0].page_start == 4


def test_an_amount_written_another_way_still_counts():
    question = "주택 전·반파 피해 주택지원금은 최대 3,600만원인가요?"
    says = "주택전·반파 피해에 대한 주택지원금 상향 ▶ 주택지원금(2.25배): (기존) 1천6백만원 → (개선) 최대 3천6백만원"
    other = "주택 피해 지원금과 소상공인 재난피해 지원을 확대하고 주택 복구를 돕는다"
    reranked = LexicalReranker().rerank(question, [hit(other, 18, 1.0), hit(says, 17, 0.9)], 2)
    assert reranked[0].page_start == 17


def test_korean_number_forms_are_one_amount():
    assert amounts("5천억 원") == amounts("5,000억원") == amounts("500,000,000,000원") == {("500000000000", "원")}
    assert amounts("1조 2,000억 원") == {("1200000000000", "원")}
    assert amounts("3천6백만원") == amounts("3,600만원")
    assert amounts("2023년 3.5% 증가") == {("2023", "년"), ("3.5", "%")}
    # an article number is not a trillion
    assert amounts("관세법 제65조 제1항") == {("65", "조"), ("1", "항")}
    assert "5천억" in written_forms(Decimal(500000000000)) and "500,000,000,000" in written_forms(Decimal(5 * 10**11))
    assert expand_amounts("예산 5천억 원") == "예산 5천억 원 500,000,000,000 5000억 5,000억"
    assert expand_amounts("사업 3곳") == "사업 3곳"  # nothing to add to a small count


def test_an_english_page_is_judged_by_neither_side_it_cannot_read():
    """A Korean question, an English page that the dense side ranks first, and a Korean page that
    shares only a word: the keyword side cannot see the English page, so it must not bury it."""
    assert script_differs("애플의 아이폰 매출은 얼마인가요?", "iPhone net sales decreased during the first quarter")
    assert not script_differs("애플의 아이폰 매출", "아이폰 매출이 늘었다")
    assert not script_differs("매출은?", "| 2022 | 65,775 | 71,628 |")  # figures alone: no script to tell
    keyword = [("korean", 12.0), ("other", 3.0)]
    vector = [("english", 0.86), ("korean", 0.80), ("other", 0.79)]
    options = SearchOptions()
    assert fuse(keyword, vector, options)[0][0] == "korean"  # before: the English page is buried
    assert fuse(keyword, vector, options, keyword_blind={"english"})[0][0] == "english"
    # and the second pass does not push it back down: it is neither rewarded nor punished by words
    question = "애플의 아이폰 순매출은 얼마였나요?"
    english = hit("Net sales by category: iPhone $ 65,775 $ 71,628 (8)% Mac 7,735 10,852", 20, 1.0,
                  source="2023 Q1 AAPL.pdf")
    korean = hit("스마트폰 매출 증가로 수출이 늘었다. 애플과 경쟁하는 국내 기업의 순매출은 늘었다.", 3, 0.9,
                 source="수출동향.pdf")
    assert LexicalReranker().rerank(question, [english, korean], 2)[0].source == "2023 Q1 AAPL.pdf"


def test_a_reranker_keeps_k_and_orders_by_its_score():
    hits = [hit(PAGE_19, 19, 0.9), hit(PAGE_4, 4, 0.8), hit("무관한 문장", 1, 0.1)]
    reranked = LexicalReranker().rerank("정보이용교육", hits, 2)
    assert len(reranked) == 2
    assert [h.score for h in reranked] == sorted((h.score for h in reranked), reverse=True)
    assert LexicalReranker().rerank("아무것도", [], 5) == []


def test_a_table_row_read_with_its_header_and_caption_beats_rows_that_share_a_name(tmp_path):
    """The aviation report lists 한서대학교 twice: as a pilot school (page 2, 108명 a year) and as a
    maintenance-training centre (page 6, three courses). Asked about its pilot course, the table whose
    caption says 조종사 양성 and whose row holds the name under the 정원 header comes first, even from
    behind in the fused order."""
    from conftest import AVIATION, as_hits, fixture_chunks

    tables = [c for c in fixture_chunks(AVIATION)
              if c.kind == "table" and "한서대학교" in c.text and c.page_start in (2, 6)]
    assert sorted(c.page_start for c in tables) == [2, 6]
    hits = as_hits(tables, lambda c: 1.0 if c.page_start == 6 else 0.9)
    reranked = LexicalReranker().rerank("한서대학교 조종사 양성과정의 연간 정원은?", hits, 2)
    assert [h.page_start for h in reranked] == [2, 6]


def test_an_english_table_holding_the_questions_english_words_is_judged_by_them():
    """A Korean question naming English row and column labels ("Water", "Sales") over the English XLSX
    of tests/fixtures (2023-half-year-analyses-by-segment.xlsx, sheet 3): the table holding them beats a
    Korean contents page that shares only "2023" (real-44-tables.hwpx, page 2)."""
    xlsx = ("| In millions of CHF |  |  |  |  |  | January–June 2023 |\n"
            "|  | Sales | Underlying Trading operating profit (a) | Trading operating profit |\n"
            "|---|---|---|---|\n| Powdered and Liquid Beverages | 12339 | 2607 | 2506 |\n| Water | 1706 | 187 | 57 |")
    contents = ("|  | 순 서 |  |\n|---|---|---|\n| Ⅰ. 과업안내 1 Ⅱ. 과업 세부내용 2 Ⅲ. 입찰 및 계약 5 "
                "Ⅳ. 제안서 및 입찰서류 작성 지침 13 Ⅴ. 과업의 일반지침 16 Ⅵ. 제출목록 및 서식 20 |  |  |")
    hits = [SearchHit("h", "h", "real-44-tables.hwpx", "2023 행사대행 용역 제안요청서", 2, 2, "2023. 7. 5.", "table",
                      contents, 1.0),
            SearchHit("x", "x", "2023-half-year-analyses-by-segment.xlsx", "Prod.Rev.and results 30 06 2023", 3, 3,
                      "Revenue and results", "table", xlsx, 0.9)]
    reranked = LexicalReranker().rerank("2023년 상반기 Water 부문의 Sales는?", hits, 2)
    assert reranked[0].source == "2023-half-year-analyses-by-segment.xlsx"
