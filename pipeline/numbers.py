"""Korean number forms: "5천억", "5,000억 원" and "500,000,000,000원" are one amount.

Documents write large amounts with the myriad units (만 10⁴, 억 10⁸, 조 10¹²), often mixed with
digits and thousands separators, and questions rarely use the document's form. `amounts` reads every
number of a text with the unit written after it as one canonical (value, unit) pair, so the reranker
can match a question's amount to a page whatever form each uses; `written_forms` gives the common
spellings of a value, which the keyword query adds so the index's morphemes can match too. Pure
functions, no imports of ours.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SMALL = {"십": 10, "백": 100, "천": 1000}
_LARGE = {"만": 10**4, "억": 10**8, "조": 10**12}
# Units a number is counted in; the longest first so that "개소" wins over "개".
UNITS = ("퍼센트", "개소", "가구", "달러", "시간", "%", "％", "원", "명", "개", "건", "곳", "년", "월", "일", "배",
         "회", "톤", "세", "대", "종", "점", "분", "초", "km", "kg", "m", "ha", "㎡", "호", "항", "조", "위")
_UNIT = "|".join(re.escape(u) for u in UNITS)
# One group: digits (with separators or a decimal part), then an optional 천/백/십 and an optional 만/억/조;
# groups written one after another ("1조 2,000억") add up.
_GROUP = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?\s?[십백천]?\s?[만억조]?"
_AMOUNT = re.compile(rf"(?<![\d.,])((?:{_GROUP})(?:\s?{_GROUP})*)\s?({_UNIT})?")
_PIECE = re.compile(r"((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)\s?([십백천])?\s?([만억조])?")


def _value(expression: str) -> Decimal | None:
    """3천6백만 → 36,000,000: the digits and 천/백/십 before a 만/억/조 add up, then take its scale."""
    total, group, last_large = Decimal(0), Decimal(0), None
    for digits, small, large in _PIECE.findall(expression):
        try:
            number = Decimal(digits.replace(",", ""))
        except InvalidOperation:
            return None
        group += number * _SMALL.get(small, 1)
        if large:
            scale = _LARGE[large]
            if last_large is not None and scale >= last_large:
                return None  # "3억 5억": two amounts side by side, not one
            last_large = scale
            total += group * scale
            group = Decimal(0)
    return total + group


def amounts(text: str) -> set[tuple[str, str]]:
    """Every number of `text` as (canonical value, unit); the unit is "" when none follows.

    A 조 right after digits is ambiguous (10¹² or an article, "제65조"): an article number is preceded
    by 제, and is read as the unit 조 rather than a multiplier.
    """
    found: set[tuple[str, str]] = set()
    for match in _AMOUNT.finditer(text):
        expression, unit = match.group(1), match.group(2) or ""
        if text[max(0, match.start() - 1) : match.start()] == "제" and expression.rstrip().endswith("조"):
            expression, unit = expression.rstrip()[:-1], "조"
        value = _value(expression)
        if value is None:
            continue
        if unit == "％" or unit == "퍼센트":
            unit = "%"
        found.add((_canonical(value), unit))
    return found


def _canonical(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def written_forms(value: Decimal) -> list[str]:
    """Common spellings of a whole amount: 500000000000 → ["500,000,000,000", "5000억", "5,000억", "5천억"]."""
    if value != value.to_integral_value() or value < 10**4:
        return []
    whole = int(value)
    forms = [f"{whole:,}"]
    for name, scale in (("조", 10**12), ("억", 10**8), ("만", 10**4)):
        if whole % scale == 0 and scale <= whole < 10**4 * scale:
            head = whole // scale
            forms += [f"{head}{name}", f"{head:,}{name}"]
            if head >= 1000 and head % 100 == 0:
                forms.append(_sino(head) + name)
            break
    return list(dict.fromkeys(forms))


def _sino(head: int) -> str:
    """3600 → 3천6백, 5000 → 5천: how a head below 만 is written with 천 and 백."""
    thousands, hundreds = divmod(head, 1000)
    return f"{thousands}천" + (f"{hundreds // 100}백" if hundreds else "")


def expand_amounts(query: str) -> str:
    """The query with the other spellings of each large amount it names appended (for keyword search)."""
    extra: list[str] = []
    for value, _unit in amounts(query):
        forms = written_forms(Decimal(value))
        extra += [form for form in forms if form not in query]
    return f"{query} {' '.join(extra)}" if extra else query
