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
    return Kiwi()


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
    found: list[str] = []
    for item in _ITEM_START.split(text):
        if not item.strip():
            continue
        with _lock:
            parts = kiwi().split_into_sents(item)
        found += [" ".join(p.text.split()) for p in parts if p.text.strip()]
    return found


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
