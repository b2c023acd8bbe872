"""Korean text analysis with Kiwi: sentence boundaries for the chunker, morphemes for the index.

One Kiwi instance per process (it loads a ~100 MB model in about a second), created on first use,
never at import time.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache

from kiwipiepy import Kiwi

# Morpheme tags that carry meaning for search: nouns, numerals, foreign words, Hanja, roots, verb and
# adjective stems. Particles, endings and affixes are dropped (they are what whitespace BM25 trips on).
CONTENT_TAGS = frozenset(
    {"NNG", "NNP", "NNB", "NR", "NP", "SL", "SH", "SN", "XR", "VV", "VA", "MAG", "XSN"}
)
_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_PRIVATE_USE = re.compile("[\ue000-\uf8ff]")
# A line that opens with a bullet or an item number starts a new sentence even without a period:
# Korean public documents are written in such items ("□ 추진 배경", "ㅇ 지원 확대", "※ 참고").
_ITEM_START = re.compile(r"\n(?=[ \t]*(?:[□■◆◇○●◦ㅇ▲△▶▷➡→※*•·▪◈\-–]|\d{1,2}[.)]\s|[가-하][.)]\s|\(\d{1,2}\)))")
_lock = threading.Lock()


@lru_cache(maxsize=1)
def kiwi() -> Kiwi:
    # Without the multi-word dictionary Kiwi takes ~330 MiB instead of ~510 (over half of an ingest's
    # peak memory); on the sample PDFs its sentences and content morphemes came out the same either way.
    return Kiwi(load_multi_dict=False)


def normalize(text: str) -> str:
    """NFC, no control characters, no runs of spaces (tabs become spaces)."""
    text = unicodedata.normalize("NFC", text)
    # Hangul word processors draw bullets with private-use glyphs of their own fonts.
    text = _PRIVATE_USE.sub("•", text)
    text = text.replace("\x00", "").replace("\t", " ").replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[^\S\n]+", " ", text)
    return text


def is_mostly_korean(text: str) -> bool:
    letters = [c for c in text[:5000] if c.isalpha()]
    if not letters:
        return False
    return sum(1 for c in letters if _HANGUL.match(c)) / len(letters) >= 0.3


def sentences(text: str) -> list[str]:
    """Sentences of Korean (and mixed) text, whitespace collapsed: a wrapped line is rejoined."""
    return list(_sentences(text))


# The chunker and the summarizer split the same paragraphs of a document, one after the other (in one
# process, the local runner): the second split is a lookup. 4,096 paragraphs is a few MB at most.
@lru_cache(maxsize=4096)
def _sentences(text: str) -> tuple[str, ...]:
    found: list[str] = []
    for item in _ITEM_START.split(text):
        if not item.strip():
            continue
        with _lock:
            parts = kiwi().split_into_sents(item)
        found += _titles_rejoined([" ".join(p.text.split()) for p in parts if p.text.strip()])
    return tuple(found)


# Kiwi ends a sentence after a title in brackets that opens the next one: "…출연했다. 《4인용 식탁》" |
# "은 전국적으로 71만 명…". A part that starts with a particle was cut inside a word; its title goes back.
_CLOSING = {"》": "《", "」": "「", "』": "『", "〉": "〈", "”": "“", '"': '"', "’": "‘", "'": "'"}
_PARTICLE_START = re.compile(r"(?:은|는|이|가|을|를|의|에|에서|에게|으로|로|와|과|도|만|까지|부터|처럼|보다"
                             r"|이라는|라는)(?=[\s,.!?]|$)")


def _titles_rejoined(parts: list[str]) -> list[str]:
    out: list[str] = []
    for part in parts:
        previous = out[-1] if out else ""
        opening = _CLOSING.get(previous[-1:], "")
        start = previous.rfind(opening, 0, len(previous) - 1) if opening else -1
        if start > 0 and previous[:start].rstrip()[-1:] in ".!?…" and _PARTICLE_START.match(part):
            out[-1] = previous[:start].rstrip()
            part = previous[start:] + part
        out.append(part)
    return out


def analyze(text: str) -> list[str]:
    """Content morphemes, lower-cased: what the keyword index stores and queries with."""
    if not text.strip():
        return []
    with _lock:
        tokens = kiwi().tokenize(text)
    return [t.form.lower() for t in tokens if t.tag in CONTENT_TAGS]


def analyze_many(texts: list[str]) -> list[list[str]]:
    """`analyze` for many texts at once (Kiwi batches them internally)."""
    with _lock:
        results = kiwi().tokenize(texts)
    return [[t.form.lower() for t in tokens if t.tag in CONTENT_TAGS] for tokens in results]


_CONTEXT = 16  # characters on each side of a line break that Kiwi sees
# Morphemes that cannot start a word: particles, endings, suffixes, the copula.
_BOUND_TAGS = ("J", "E", "XS", "VCP")


def join_wrapped_lines(lines: list[str]) -> list[str]:
    """Rejoin lines that a PDF wrapped inside a Korean word (`빠` / `르게` → `빠르게`).

    Hangul word processors wrap at any syllable, so a break between two Hangul syllables is either
    a space or nothing. Kiwi reads the text around the break written without it: when a verb or
    adjective stem spans the break (빠르-, 정하-) or the right side starts with a particle, an
    ending or a suffix (-하기, -을), the break was inside a word. When a noun spans it, Kiwi may be
    guessing an unknown compound (하계결로), so the glued reading must also score clearly better
    than the spaced one (운전자). Breaks after a space, after a short line (a heading or the last
    line of a paragraph: wrapping happens only on full lines) or next to anything but Hangul stay.
    """
    full = 0.6 * max((len(line.strip()) for line in lines), default=0)
    candidates: list[tuple[int, str, str]] = []  # (line index, left context, right context)
    for i in range(len(lines) - 1):
        before, after = lines[i], lines[i + 1].lstrip()
        if (before and not before[-1].isspace() and len(before.strip()) >= full
                and _HANGUL.match(before[-1]) and _HANGUL.match(after[:1])):
            candidates.append((i, before[-_CONTEXT:], after[:_CONTEXT]))
    if not candidates:
        return lines
    with _lock:
        analyses = list(kiwi().tokenize([left + right for _, left, right in candidates]))
    glue: set[int] = set()
    nouns: list[tuple[int, str, str]] = []
    for (i, left, right), tokens in zip(candidates, analyses, strict=True):
        verdict = _break_inside_word(tokens, len(left))
        if verdict == "noun":
            nouns.append((i, left, right))
        elif verdict:
            glue.add(i)
    if nouns:
        with _lock:
            glued = [kiwi().analyze(left + right, top_n=1)[0][1] for _, left, right in nouns]
            spaced = [kiwi().analyze(f"{left} {right}", top_n=1)[0][1] for _, left, right in nouns]
        glue |= {i for (i, _, _), g, s in zip(nouns, glued, spaced, strict=True) if g - s >= _CLEARLY_BETTER}
    joined: list[str] = []
    for i, line in enumerate(lines):
        if i - 1 in glue:
            joined[-1] = joined[-1] + line.lstrip()
        else:
            joined.append(line)
    return joined


_CLEARLY_BETTER = 5.0  # log-probability margin; word-internal breaks measured 15–30, compounds 0–3


def _break_inside_word(tokens, junction: int) -> bool | str:
    """True if the break at `junction` is inside a word, 'noun' if only a noun spans it."""
    for token in tokens:
        if token.start < junction < token.start + token.len:
            return "noun" if token.tag.startswith("NN") else True
        if token.start + token.len == junction and token.tag == "XPN":
            return True  # a prefix (대-, 비-) belongs to the next word
        if token.start == junction:
            return token.tag.startswith(_BOUND_TAGS)
    return False


# What a document draws around a sentence: bullets, item and section numbers at its start ("□", "ㅇ",
# "- ", "3.1 ", "가. ", "(2)", "①", "참고 1"), footnote stars after a word ("스마트오더*"), and citation
# marks copied from another answer or a paper ("* [1]", "[2]").
_LEADING_MARKS = re.compile(
    r"^(?:[□■◆◇○●◦ㅇ▲△▶▷➡→※*•·▪◈\-–⦁ㆍ>#]+\s*|\d{1,2}(?:\.\d{1,2})+\.?\s+|\d{1,2}[.)]\s+|[가-하][.)]\s+"
    r"|\(\d{1,2}\)\s*|[①-⑳]\s*|<[^<>]{1,20}>\s*|\[[^\[\]]{1,20}\]\s+|참고\s*\d*\s+|붙임\s*\d*\s+)+"
)
_CITATION_MARKS = re.compile(r"\s*\*?\s*\[\d{1,3}\](?:\s*\[\d{1,3}\])*")
_FOOTNOTE_STARS = re.compile(r"(?<=[가-힣A-Za-z0-9)\]」’”])\*{1,3}(?=[\s,.)·」가-힣]|$)")
_TRAILING_MARKS = re.compile(r"(?:\s+[□■◆◇○●◦ㅇ▲△▶▷➡→※*•·▪◈\-–⦁ㆍ]+)+$")


def clean_sentence(text: str) -> str:
    """A sentence as a reply or a summary quotes it: one line, without the marks the document drew."""
    text = " ".join(text.split())
    text = _CITATION_MARKS.sub("", text)
    text = _FOOTNOTE_STARS.sub("", text)
    previous = None
    while previous != text:
        previous = text
        text = _LEADING_MARKS.sub("", text).strip()
    text = re.sub(r"\s+<(?:표|그림|참고)\s*\d*>.*$", "", text)  # the caption of the next table
    text = _TRAILING_MARKS.sub("", text)
    text = re.sub(r"\s+([,.)\]」』])", r"\1", text)
    return " ".join(text.split()).strip(" *")


# Words that ask rather than tell: a page never holds them with the answer ("언제 설립되었나" → 설립).
QUESTION_WORDS = frozenset({"무엇", "누구", "언제", "어디", "얼마", "얼마나", "몇", "무슨", "어느", "어떤", "어떻",
                            "왜"})
# Stems that almost every Korean sentence holds; they tell one page from another no better than a particle.
LIGHT_STEMS = frozenset({"하", "있", "되", "없", "않", "이", "그", "것", "수", "등", "때"})


def analyze_query(text: str) -> list[tuple[str, int, int]]:
    """A question's telling words with their character span: content morphemes without question words,
    light stems, and one-character Hangul or digit tokens that occur inside almost any word."""
    if not text.strip():
        return []
    with _lock:
        tokens = kiwi().tokenize(text)
    words = []
    for t in tokens:
        form = t.form.lower()
        if t.tag not in CONTENT_TAGS or form in QUESTION_WORDS or form in LIGHT_STEMS:
            continue
        if len(form) < 2 and t.tag != "SH":
            continue
        words.append((form, t.start, t.start + t.len))
    return words
