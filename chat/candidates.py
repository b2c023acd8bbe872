"""Answer candidates: every sentence and every table row of the retrieved chunks, scored against the
question.

A sentence is cleaned of what the document drew around it (bullets, section numbers, footnote stars,
copied citation marks); a table row is read with its header (`교육기관: 한서대학교, 정원(年): 108명`),
a merged cell carried down from the row above. Each candidate is scored by the question's content
words (Kiwi morphemes, the rarer among the candidates the heavier) and by the kind of answer the
question asks for: 얼마 wants an amount with its unit, 몇 a count, 언제 a date, 어디 a place, 누구 a
name, 무엇 a term. The fact itself — the expression of that kind nearest the question's words — is
located in the candidate, so the reply can mark it.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pipeline.korean import CONTENT_TAGS, analyze_many, clean_sentence, kiwi, sentences
from pipeline.korean import _lock as kiwi_lock
from pipeline.models import SearchHit

AnswerType = Literal["amount", "count", "date", "place", "person", "term", "change"]

# Question words and light nouns: they say what kind of answer is wanted, not what about.
_QUESTION_WORDS = frozenset({"얼마", "얼마나", "언제", "무엇", "뭐", "무슨", "어디", "누구", "몇", "어떻", "어떠", "왜",
                             "어느", "어떤", "것", "수", "때", "정도", "경우", "하", "있", "되", "이", "나", "알"})
# Words that name the kind of answer in a question without a question word ("지원 금액은?").
_TYPE_NOUNS: dict[str, AnswerType] = {
    "금액": "amount", "규모": "amount", "비용": "amount", "예산": "amount", "가격": "amount", "액수": "amount",
    "요금": "amount", "액": "amount", "비율": "amount", "금리": "amount", "이율": "amount", "매출": "amount",
    "정원": "count", "인원": "count", "개수": "count", "기간": "count", "거리": "amount", "높이": "amount",
    "연도": "date", "날짜": "date", "일자": "date", "시기": "date", "연대": "date", "년도": "date",
    "장소": "place", "위치": "place", "지역": "place", "소재지": "place", "국가": "place", "나라": "place",
    "도시": "place",
    "이름": "term", "명칭": "term", "제목": "term",
    "화소": "amount", "속도": "amount", "면적": "amount", "길이": "amount", "무게": "amount", "온도": "amount",
    "득표율": "amount", "인구": "count", "순위": "count", "점수": "count", "나이": "count", "층수": "count",
    "횟수": "count",
}
# The same word written three ways in Korean tables: 연간 정원, 정원(年), 정원(연).
_SYNONYMS = {"年": "연", "연간": "연", "매년": "연", "월간": "월", "月": "월", "日": "일", "人": "명"}

_UNIT = (r"(?:조|억|만|천|백)?\s*(?:원|달러|불|엔|유로|위안|%|퍼센트|%p|배|톤|t|kg|g|km|m|cm|mm|㎞|㎡|평|리터|ℓ|L|GB|MB"
         r"|Wh|kWh|MW|GW)")
_NUMBER = r"\d[\d,]*(?:\.\d+)?"
_PATTERNS: dict[str, re.Pattern] = {
    "amount": re.compile(rf"(?:연\s*|월\s*|약\s*|총\s*)?{_NUMBER}\s*(?:조|억|만|천)\s*"
                         rf"(?:{_NUMBER}\s*(?:억|만|천)\s*)?원?"
                         rf"|(?:연\s*|월\s*|약\s*|총\s*)?{_NUMBER}\s*{_UNIT}(?![가-힣A-Za-z])"
                         rf"|(?:연\s*|월\s*|약\s*|총\s*)?{_NUMBER}\s*{_UNIT}|전액|무료"),
    "count": re.compile(rf"(?:연\s*|약\s*|총\s*)?{_NUMBER}\s*"
                        r"(?:명|개사|개소|개국|개월|개|곳|건|회|차수|차|가지|대|척|편|권|"
                        r"마리|종|번|위|층|세|살|년|주|일|시간|분|초|호|기|부|장|쪽|석|표|점)"),
    "date": re.compile(r"(?:1[0-9]|20)\d{2}\s*년(?:\s*\d{1,2}\s*월)?(?:\s*\d{1,2}\s*일)?|(?:1[0-9]|20)\d{2}\.\s?\d{1,2}"
                       r"(?:\.\s?\d{1,2})?\.?|[‘'’]\d{2}(?:\.\s?\d{1,2}){0,2}\.?(?:\s*월)?|\d{1,2}\s*월\s*\d{1,2}\s*일|"
                       r"\d{1,2}\s*월(?:\s*[초중말])?|\d{1,2}\s*세기|\d{1,4}\s*년대|\d{3,4}\s*년|"
                       r"\d{1,2}:\d{2}(?:\s*[~∼-]\s*\d{1,2}:\d{2})?"),  # 몇 시: 19:20 ~ 20:40
}
# Numbers written in Korean words before a counter (세 명, 네 번째, 열두 척) and ordinals (첫째, 셋째),
# a share in words (과반수, 3분의 2): as common in prose as digits. The counter must end the word
# (세 명이, not 한 대학).
_NATIVE = r"(?:첫|한|두|세|네|다섯|여섯|일곱|여덟|아홉|열|스무|서른|마흔|쉰|예순|일흔|여든|아흔|수십|수백|수천|수만)"
_WORD_END = r"(?=[^가-힣]|[은는이가을를의도만에와과로째]|$)"  # a particle may follow, not more of a word
_COUNTERS = r"(?:명|개|번째|번|차례|가지|권|마리|대|살|곳|해|달|척|편|채|장|배|층|세대|그루|자루|벌|쌍|회)"
_IN_WORDS = (rf"(?<![가-힣]){_NATIVE}(?:\s?{_NATIVE})?\s*{_COUNTERS}{_WORD_END}"
             r"|(?<![가-힣])(?:첫|둘|셋|넷|다섯|여섯|일곱|여덟|아홉|열)째"
             r"|(?<![가-힣])(?:과반수?|절반|만장일치)")
_PATTERNS["count"] = re.compile(rf"{_NUMBER}\s*분의\s*{_NUMBER}|{_PATTERNS['count'].pattern}|{_IN_WORDS}")
_PATTERNS["change"] = re.compile(r"[^\s(]*\d[^\s→]*\s*(?:→|⇒|->)\s*[^\s)]+|[^\s(]+\s*(?:→|⇒)\s*[^\s)]+")
_QUOTED = re.compile(r"[「『“‘\"'<《]([^」』”’\"'>》]{1,40})[」』”’\"'>》]")
_SERIAL_HEADERS = frozenset({"순번", "번호", "연번", "no", "no.", "#", "순위"})
_ROW_SEPARATOR = re.compile(r"^\|?\s*:?-{2,}")
_CELL_ITEMS = re.compile(r"\s(?=(?:[ㅇ○◦□■•\-*※]|[①-⑳])\s)")
_YEAR = re.compile(r"(?<![\d.])(?:(1[0-9]|20)(\d{2})\s*년|[‘'’](\d{2})(?!\d))")


@dataclass
class Candidate:
    """One sentence or one table row of one hit, as a reply could quote it."""

    text: str
    rank: int  # of the hit it comes from, 0 = the top hit
    position: int  # in the hit
    kind: Literal["sentence", "row"]
    cells: list[tuple[str, str]] = field(default_factory=list)  # (header, value) of a row
    terms: set[str] = field(default_factory=set)
    context: set[str] = field(default_factory=set)  # words of its chunk, heading and page around it
    caption: str = ""  # a row's table caption ("• 조종사 양성 교육기관 : 총 19개"): what the row is about
    coverage: float = 0.0  # weighted share of the question's words it holds (context counts a third)
    relevance: float = 0.0  # the same share with every word alike (names double): what the threshold reads
    score: float = 0.0
    fact: tuple[int, int] | None = None  # span of `text` holding the asked-for fact
    names: list[tuple[int, int]] = field(default_factory=list)  # proper nouns (NNP), merged when adjacent
    foreign: list[tuple[int, int]] = field(default_factory=list)  # foreign words (SL) of 2+ letters


@dataclass(frozen=True)
class Question:
    text: str
    terms: list[str]  # content words, question words removed, normalized
    wanted: tuple[AnswerType, ...]  # kinds of answer asked for, most specific first
    emphasis: dict[str, float] = field(default_factory=dict)  # names count double, 금액/규모 a third
    counter: str = ""  # the word after 몇 (몇 위, 몇 Mbps, 몇 명): the fact is a number followed by it


def read_question(text: str) -> Question:
    with kiwi_lock:
        tokens = kiwi().tokenize(text)
    forms = [(t.form.lower(), t.tag) for t in tokens]
    wanted: list[AnswerType] = []
    named: list[AnswerType] = []  # kinds named by a noun of the question (금액, 정원)
    counter = ""

    def tag_after(i: int) -> str:
        return forms[i + 1][1] if i + 1 < len(forms) else ""

    def want(kind: AnswerType) -> None:
        if kind not in wanted:
            wanted.append(kind)

    for i, (form, tag) in enumerate(forms):
        following = forms[i + 1][0] if i + 1 < len(forms) else ""
        if form in ("얼마", "얼마나"):
            want("amount")
            want("count")
        elif form == "몇":
            if tag_after(i) in _COUNTER_TAGS and following not in ("년도", "월", "일", "시"):
                counter = following
            want("date" if following in ("년도", "월", "일", "시") else "count")
            want("amount")
        elif form == "언제" or (form == "어느" and following in ("해", "날", "때", "시기", "연도")):
            want("date")
        elif form in ("어디", "어느") and following not in ("해", "날", "때"):
            want("place")
        elif form in ("누구", "누가") or (form == "어떤" and following in ("사람", "인물")):
            want("person")
        elif form in ("무엇", "뭐", "무슨", "어떤"):
            want("term")
        elif form in ("바뀌", "변하", "달라지", "변경", "변화", "변동"):  # 어떻게 바뀌나요: from what to what
            want("change")
        elif form in _TYPE_NOUNS and tag.startswith("NN"):
            named.append(_TYPE_NOUNS[form])
    for kind in named if not wanted else ():  # a question word says it better: "국가 부채는 얼마나" wants an amount
        want(kind)
    if "amount" in wanted and "count" not in wanted:
        wanted.append("count")
    years = _years(text)
    labels = _labels(tokens, years)
    joined = {i for i in labels for i in (i, i + 1)} | _date_parts(tokens)
    terms = [_normal(form) for i, (form, tag) in enumerate(forms) if tag in _CONTENT and form not in _QUESTION_WORDS
             and not (tag == "SN" and f"year:{form}" in years) and i not in joined]
    terms += years + list(labels.values())
    emphasis = {_normal(form): 2.0 for form, tag in forms if tag in ("NNP", "SL", "SH")}
    emphasis.update({term: 2.0 for term in [*years, *labels.values()]})
    emphasis.update({form: 0.3 for form, tag in forms if form in _TYPE_NOUNS})
    return Question(text, list(dict.fromkeys(terms)), tuple(wanted), emphasis, counter)


def _date_parts(tokens) -> set[int]:
    """The numbers of "1~6월", "3월 5일": a date's parts, not words to look for (a table writes
    "January–June"; a bare 6 would find every cell holding a 6)."""
    parts = set()
    for i, token in enumerate(tokens):
        if token.tag != "SN":
            continue
        after = tokens[i + 1].form if i + 1 < len(tokens) else ""
        before = tokens[i - 1].form if i else ""
        if after in ("~", "∼", "-", "월", "일") or before in ("~", "∼"):
            parts.add(i)
    return parts


def _labels(tokens, years: list[str]) -> dict[int, str]:
    """Numbers that name something with the word they are written with, one term each, by the index
    of their first token: 2부, 5인, 90%, 3층, A+, Level 4. Apart, "2" would find every 2 of a page
    and "부" nothing (a bound noun is not a content word)."""
    labels: dict[int, str] = {}
    for i, (token, after) in enumerate(itertools.pairwise(tokens)):
        touching = after.start == token.start + token.len
        if token.tag == "SN" and f"year:{token.form}" not in years and touching and (
                after.tag == "SW" and after.form == "%"
                or after.tag in ("NNB", "NNG") and len(after.form) == 1 and after.form not in "년월일"):
            labels[i] = f"{token.form}{after.form}".lower()
        elif token.tag == "SL" and (after.tag == "SN" or (touching and after.form == "+")):
            labels[i] = f"{token.form}{after.form}".lower()  # matched against squeezed text: "level4"
    return labels


# What holding (or lacking) an expression of the asked-for kind adds to a candidate's score. A term
# (무엇, 어떤) is often a common noun no pattern can see, so a proper noun weighs less there.
# (KorQuAD dev seed 99, first 50 questions: 35 short gold replies with 0.25/-0.15 for terms too, 35 with
# 0.1/-0.05, 36 with none; bench/RESULTS.md)
_TYPED_SCORE: dict[str, tuple[float, float]] = {"default": (0.25, -0.15), "term": (0.1, -0.05)}
_COUNTER_TAGS = frozenset({"NNB", "NNG", "SL"})  # 몇 [위 / 명 / 배 / Mbps]
_CONTENT = frozenset({"NNG", "NNP", "NR", "SL", "SH", "SN", "XR", "VV", "VA", "MAG"})


def _normal(term: str) -> str:
    return _SYNONYMS.get(term, term)


def _years(text: str) -> list[str]:
    """'19, ’19년, 19년 and 2019년 all name the year 2019."""
    found = []
    for match in _YEAR.finditer(text):
        century, short, quoted = match.groups()
        digits = short or quoted
        full = (century or ("20" if int(digits) < 50 else "19")) + digits
        found.append(f"year:{full}")
    for match in re.finditer(r"(?<!\d)(\d{2})\s*년(?!대)", text):  # 19년 추진현황
        if not re.match(r"\d", text[match.start() - 1:match.start()] if match.start() else ""):
            found.append(f"year:{'20' if int(match.group(1)) < 50 else '19'}{match.group(1)}")
    return found


_BARE_YEAR = re.compile(r"(?<![\d.,])(?:19|20)\d{2}(?![\d.,]|(?!년)[가-힣])")  # not 2000명, 2020개


def _bare_years(text: str) -> set[str]:
    """A passage names a year without 년 too ("January–June 2023", "2023 Q1"): a question's 2023년
    finds it. (Only passages are read this way; in a question a bare number stays a number.)"""
    return {f"year:{m.group()}" for m in _BARE_YEAR.finditer(text)}


# ---------------------------------------------------------------------- reading the hits


def read_hits(hits: Sequence[SearchHit]) -> list[Candidate]:
    """Every sentence and table row of the hits, each hit once, none repeated."""
    found: list[Candidate] = []
    seen: set[str] = set()
    page_words: dict[tuple[str, int], list[str]] = {}
    for rank, hit in enumerate(hits):
        position = 0
        for is_table, lines in _blocks(hit.text):
            if is_table:
                read = table_rows(lines, rank, position)
            else:
                read = [Candidate(cleaned, rank, position, "sentence")
                        for cleaned in map(clean_sentence, sentences("\n".join(lines))) if len(cleaned) >= 8]
            for candidate in read:
                if candidate.text not in seen:
                    seen.add(candidate.text)
                    candidate.position = position
                    found.append(candidate)
                    position += 1
        if hit.kind != "table":
            page_words.setdefault((hit.document_id, hit.page_start), []).append(hit.text)
    if not found:
        return found
    with kiwi_lock:
        tokenized = list(kiwi().tokenize([c.text for c in found]))
    analyses = [[t.form.lower() for t in tokens if t.tag in CONTENT_TAGS] for tokens in tokenized]
    for candidate, tokens in zip(found, tokenized, strict=True):
        candidate.names = _merge_adjacent([(t.start, t.end) for t in tokens if t.tag == "NNP"], candidate.text)
        candidate.foreign = [(t.start, t.end) for t in tokens if t.tag == "SL" and t.len > 1]
    contexts = analyze_many([f"{h.heading}\n{h.title}\n{_strip_table(h.text)}" for h in hits])
    page_terms = analyze_many(["\n".join(v) for v in page_words.values()])
    pages = {key: set(terms) for key, terms in zip(page_words, page_terms, strict=True)}
    # a row is terse: what it is about is its table's caption and section ("• 조종사 양성 교육기관", then
    # "한서대학교 … 108명"), so their words are the row's own, not context
    for candidate in found:
        if candidate.kind == "row":  # the chunk's caption, then the table's own title row
            hit = hits[candidate.rank]
            candidate.caption = " ".join(filter(None, [hit.heading if hit.kind == "table" else "", candidate.caption]))
    distinct = list(dict.fromkeys(c.caption for c in found if c.caption))
    captions = dict(zip(distinct, analyze_many(distinct), strict=True))
    for candidate, terms in zip(found, analyses, strict=True):
        hit = hits[candidate.rank]
        candidate.terms = {_normal(t) for t in terms} | set(_years(candidate.text)) | _bare_years(candidate.text)
        if candidate.caption:
            candidate.terms |= {_normal(t) for t in captions[candidate.caption]}
            candidate.terms |= set(_years(candidate.caption)) | _bare_years(candidate.caption)
        around = set(contexts[candidate.rank]) | pages.get((hit.document_id, hit.page_start), set())
        candidate.context = {_normal(t) for t in around} | set(_years(hit.heading))
    return found


def _blocks(text: str) -> list[tuple[bool, list[str]]]:
    """Runs of Markdown table lines and runs of other lines, in order."""
    blocks: list[tuple[bool, list[str]]] = []
    for line in text.splitlines():
        is_table = line.lstrip().startswith("|")
        if blocks and blocks[-1][0] == is_table:
            blocks[-1][1].append(line)
        else:
            blocks.append((is_table, [line]))
    return blocks


def _strip_table(text: str) -> str:
    """A table chunk's words that are not in its cells: none; a text chunk: all of it."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("|"))


def _cells(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|"):
        line = line[:-1]
    return [" ".join(cell.replace("<br>", " ").split()) for cell in line.split("|")]


def table_rows(lines: Sequence[str], rank: int = 0, position: int = 0) -> list[Candidate]:
    """A Markdown table's rows read with their header; a long cell (a list in one cell) is split into
    its items, each read with the column's header and the row's label."""
    is_rule = [bool(_ROW_SEPARATOR.match(line.strip().lstrip("|").strip())) for line in lines]
    rows = [_cells(line) for line, rule in zip(lines, is_rule, strict=True) if not rule]
    # the header is every row above the |---| rule (a spreadsheet's two header rows: the period over
    # the measure), one row when there is no rule
    above_rule = is_rule.index(True) if True in is_rule else 1
    if len(rows) < 2:
        header_rows, body = [], rows
    else:
        header_rows, body = rows[:max(1, above_rule)], rows[max(1, above_rule):]
    width = max(len(r) for r in rows)
    # a header row holding one cell besides the first column ("January–June 2023" over a whole sheet)
    # is the table's title, not one column's name: every row is about it
    titles = [h for h in header_rows[:-1] if sum(1 for cell in h[1:] if cell) == 1]
    title = " ".join(cell for h in titles for cell in h[1:] if cell)
    header_rows = [h for h in header_rows if not any(h is t for t in titles)]
    padded = [(h + [""] * width)[:width] for h in header_rows]
    header = [" ".join(dict.fromkeys(h[i] for h in padded if h[i])) for i in range(width)]
    for i in range(1, width):  # a header cell merged over two columns is written once
        if not header[i] and header[i - 1] and header[i - 1].lower() not in _SERIAL_HEADERS:
            header[i] = header[i - 1]
    serial = {i for i, name in enumerate(header) if name.lower() in _SERIAL_HEADERS}
    found: list[Candidate] = []
    above: list[str] = []
    for raw in body:
        row = (raw + [""] * width)[:width]
        # a word in the number column (총계, 합계) labels the row: it is read, and nothing is carried into it
        labelled = {i for i in serial if row[i] and not row[i].replace(".", "").isdigit()}
        filled = [i for i, cell in enumerate(row) if cell and i not in serial]
        if above and filled and not labelled:
            # merged cells: the empty ones left of the first filled one repeat the row above
            row = [above[i] if not cell and i < filled[0] and i not in serial else cell for i, cell in enumerate(row)]
        above = row
        pairs = _pairs(header, row, serial - labelled, labelled)
        if not pairs:
            continue
        long_cells = [i for i, (_, value) in enumerate(pairs) if len(value) > 120]
        if not long_cells:
            found.append(_row_candidate(pairs, rank, position + len(found), title))
            continue
        label = [p for i, p in enumerate(pairs) if i not in long_cells and len(p[1]) <= 40][:2]
        for i in long_cells:
            name, value = pairs[i]
            for item in _CELL_ITEMS.split(value):
                item = clean_sentence(item)
                if len(item) >= 8:
                    found.append(_row_candidate([*label, (name, item)], rank, position + len(found), title))
    return found


_LEADING_NUMBER = re.compile(r"[-−]?\d[\d,.]*\s*")
_NUMERIC = re.compile(r"[-−+]?[\d,.%]+")


def _clean_cell(value: str) -> str:
    """A cell is cleaned as a sentence is, but a number it starts with is its value, not a section
    number or a bullet: "7.6 g/kg 미만" and "-101" stay whole."""
    flat = " ".join(value.split())
    number = _LEADING_NUMBER.match(flat)
    if not number:
        return clean_sentence(value)
    rest = flat[number.end():]
    return (number.group() + (clean_sentence(rest) if rest else "")).strip()


def _pairs(header: list[str], row: list[str], serial: set[int],
           labels: set[int] | frozenset[int] = frozenset()) -> list[tuple[str, str]]:
    """(header, value) of a row's cells; a serial number is left out, a label in its column (총계) is
    kept without the column's name."""
    pairs: list[tuple[str, str]] = []
    for i, value in enumerate(row):
        value = _clean_cell(value) if value else ""
        if value and i in labels:
            pairs.append(("", value))
            continue
        if not value or i in serial or (pairs and pairs[-1][1] == value):
            continue
        name = header[i] if header[i] != value else ""
        pairs.append((name, value))
    return pairs


def _row_candidate(pairs: list[tuple[str, str]], rank: int, position: int, title: str = "") -> Candidate:
    text = ", ".join(f"{name}: {value}" if name else value for name, value in pairs)
    return Candidate(text, rank, position, "row", cells=pairs, caption=title)


# ---------------------------------------------------------------------- scoring


def score(question: Question, candidates: list[Candidate], hits: Sequence[SearchHit]) -> list[Candidate]:
    """Candidates best first, each with its coverage, score and fact span."""
    if not candidates:
        return []
    n = len(candidates)
    weights = {}
    for term in question.terms:
        df = sum(1 for c in candidates if term in c.terms or (_part_of_word(term) and term in c.text.lower()))
        weights[term] = math.log(1 + (n + 1) / (df + 0.5)) * question.emphasis.get(term, 1.0)
    total = sum(weights.values()) or 1.0
    for c in candidates:
        squeezed = "".join(f"{c.text} {c.caption}".lower().split())  # 항공정비사 in "항공정비사 양성 교육기관"
        holds = {t for t in weights if t in c.terms or (_part_of_word(t) and t in squeezed)}
        held = sum(w for t, w in weights.items() if t in holds)
        around = sum(w for t, w in weights.items() if t not in holds and t in c.context)
        c.coverage = (held + around / 3) / total
        plain = {t: question.emphasis.get(t, 1.0) for t in weights}
        c.relevance = (sum(w for t, w in plain.items() if t in holds)
                       + sum(w for t, w in plain.items() if t not in holds and t in c.context) / 3) / (
                           sum(plain.values()) or 1.0)
        c.fact = locate_fact(question, c)
        typed = 0.0
        if question.wanted:
            bonus, malus = _TYPED_SCORE.get(question.wanted[0], _TYPED_SCORE["default"])
            typed = bonus if c.fact is not None else malus
        length = len(c.text)
        named = 0.1 * _named_row(question.text, weights, c) / total
        c.score = (c.coverage + typed + named - 0.005 * c.rank + 0.05 * hits[c.rank].score
                   - 0.0015 * max(0, length - 160) - (0.3 if c.text.endswith("?") else 0.0)
                   - (0.1 if length < 15 else 0.0))
    return sorted(candidates, key=lambda c: (-c.score, c.rank, c.position))


def _part_of_word(term: str) -> bool:
    """Whether a term is found inside longer words too (조종 in 조종사), not only as a word of its own:
    not a year, not one letter, not a short Latin word ("NA" is not in "financial")."""
    return len(term) > 1 and not term.startswith("year:") and not (term.isascii() and term.isalpha() and len(term) <= 3)


def _named_row(question: str, weights: dict[str, float], candidate: Candidate) -> float:
    """The weight of the question's words in the cells the question quotes whole: the row named
    "신한에어" or "5인 미만", not one mentioning them in passing ("신한에어 위탁", "5인 이상∼10인 미만")."""
    asked = "".join(question.lower().split())
    quoted = [cell for cell in ("".join(value.lower().split()) for _, value in candidate.cells)
              if len(cell) > 1 and not _NUMERIC.fullmatch(cell) and cell in asked]
    return sum(w for t, w in weights.items() if any(t in cell for cell in quoted))


def locate_fact(question: Question, candidate: Candidate) -> tuple[int, int] | None:
    """The span of the asked-for kind nearest the question's words, not itself in the question."""
    if not question.wanted:
        return None
    text = candidate.text
    spans: list[tuple[int, int]] = []
    if question.counter:  # "몇 위" wants "5위", not any number of the sentence
        # 몇 번째 → "첫 번째", not "첫 번"
        counted = re.compile(rf"(?:{_NUMBER}|(?<![가-힣]){_NATIVE})\s*{re.escape(question.counter)}째?", re.IGNORECASE)
        spans = [m.span() for m in counted.finditer(text) if not _in_question(m.group(), question.text)]
        spans = spans or _counted_cells(question.counter, candidate)
    for kind in () if spans else question.wanted:
        spans = [s for s in _spans(kind, candidate) if not _in_question(text[s[0]:s[1]], question.text)]
        if spans:
            break
    if not spans and candidate.kind == "row" and {"count", "amount"} & set(question.wanted):
        spans = _numbers_under(question, candidate)
    if not spans:
        return None
    lowered = text.lower()
    years = {t for t in question.terms if t.startswith("year:")}
    anchors = [m.end() for m in _YEAR.finditer(text) if set(_years(m.group())) & years]
    anchors += [m.end() for m in re.finditer(r"(?<!\d)\d{2}\s*년", text) if set(_years(m.group())) & years]
    if not anchors:
        anchors = [m.start() for t in question.terms if not t.startswith("year:") and len(t) > 1
                   for m in re.finditer(re.escape(t), lowered)]
    if candidate.kind == "row":
        # the value under a header the question names is the fact when it holds one; a header naming
        # the kind of answer (정원, 금액) before one merely sharing a word (훈련과정)
        under = []
        for name, value, start in _cells_at(candidate):
            named = [t for t in question.terms if len(t) > 1 and t in name.lower()]
            inside = [s for s in spans if start <= s[0] < start + len(value)]
            if named and inside:
                typed = any(t in _TYPE_NOUNS for t in named)
                # "20명×6차수 = 120명": the total after the equals sign
                pick = inside[-1] if "=" in value else inside[0]
                under.append((0 if typed else 1, pick))
            elif named and question.wanted[0] == "term":  # 조건은 무엇: the cell under 터널 내외기상태 is the term
                under.append((2, (start, start + len(value))))
        if under:
            return min(under)[1]
    if not anchors:
        return spans[0]
    return min(spans, key=lambda s: min(abs(s[0] - a) if s[0] >= a else 2 * (a - s[1]) for a in anchors))


def _cells_at(candidate: Candidate) -> Iterator[tuple[str, str, int]]:
    """A row's (header, value, where the value starts in its text "header: value, header: value")."""
    offset = 0
    for name, value in candidate.cells:
        start = offset + (len(name) + 2 if name else 0)
        yield name, value, start
        offset = start + len(value) + 2


def _counted_cells(counter: str, candidate: Candidate) -> list[tuple[int, int]]:
    """A row's numbers counted in its header's unit: "훈련기(대): 14" answers 몇 대."""
    unit = re.compile(rf"\(\s*{re.escape(counter)}\s*\)$")
    return [(start, start + number.end()) for name, value, start in _cells_at(candidate)
            if unit.search(name) and (number := re.match(_NUMBER, value))]


def _numbers_under(question: Question, candidate: Candidate) -> list[tuple[int, int]]:
    """A bare number under a header the question names: 점수는? → "점수: 4"; 우수의 점수는? → "우수: 20"."""
    asked = [t.removeprefix("year:") for t in question.terms if len(t) > 1]  # a year: "January–June 2023"
    return [(start, start + len(value)) for name, value, start in _cells_at(candidate)
            if any(t in name.lower() for t in asked) and re.fullmatch(_NUMBER, value)]


def _in_question(span: str, question: str) -> bool:
    return "".join(span.split()) in "".join(question.split())


def _spans(kind: AnswerType, candidate: Candidate) -> list[tuple[int, int]]:
    text = candidate.text
    if kind in _PATTERNS:
        return [(m.start(), m.end()) for m in _PATTERNS[kind].finditer(text) if m.group().strip()]
    if kind in ("place", "person"):
        return candidate.names
    # a term: a quoted name, a proper noun, a foreign word
    return sorted([(m.start(1), m.end(1)) for m in _QUOTED.finditer(text)] + candidate.names + candidate.foreign)


def _merge_adjacent(spans: list[tuple[int, int]], text: str) -> list[tuple[int, int]]:
    """한국 항공 대학교 tokens next to each other are one name."""
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and (start == merged[-1][1] or (start == merged[-1][1] + 1 and text[merged[-1][1]] == " ")):
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged
