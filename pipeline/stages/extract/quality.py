"""Is this text readable, or mojibake? A check every extractor's output goes through.

When a PDF's font maps its glyphs through a CMap an extractor does not implement, the text layer
comes out as valid Unicode that no person wrote: Hangul syllables nobody uses (`벭 럐 뻏냺`) and
ASCII read as UTF-16 (`⡨祰敲捯慧`). pypdf does exactly this with `corpus/hard/ksc-euc-cmap-journal.pdf`.

Two signals, measured on every real file of `corpus/` (`bench/extract.py` prints the share per file):
- Korean is written in a small set of syllables: 1,060 of the 11,172 make up 99.9% of the syllables of
  the KorQuAD paragraphs (`common_syllables.txt`). On the pages of `corpus/ko` at most 2.5% of the
  syllables fall outside that set; in pypdf's mojibake of the journal, 88–92%.
- Characters from blocks no Korean or English document uses (Braille, CJK Extension A, Yi, private
  use, the replacement character) — ASCII misread as UTF-16 lands there.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

RARE_SYLLABLE_SHARE = 0.30  # real pages: ≤ 0.025; mojibake: ≥ 0.87
ODD_CHARACTER_SHARE = 0.08
MIN_SYLLABLES = 30  # too few syllables to judge by them
MIN_CHARACTERS = 40

_ODD_RANGES = (
    (0x2800, 0x28FF),  # Braille patterns
    (0x3400, 0x4DBF),  # CJK Extension A
    (0xA000, 0xA4CF),  # Yi
    (0xA500, 0xA63F),  # Vai
    (0xD7B0, 0xD7FF),  # Hangul Jamo Extended-B
    (0xE000, 0xF8FF),  # private use
    (0xFFF0, 0xFFFF),  # specials, U+FFFD replacement character
)
# Counting with regular expressions instead of a Python loop per character: every page of every PDF
# goes through this check, and the loop was a tenth of PDF extraction time.
_ODD = re.compile("[" + "".join(f"\\u{low:04x}-\\u{high:04x}" for low, high in _ODD_RANGES) + "]")
_SYLLABLES = re.compile("[\uac00-\ud7a3]")
_SPACE = re.compile(r"\s")


@cache
def common_syllables() -> frozenset[str]:
    text = resources.files(__package__).joinpath("common_syllables.txt").read_text(encoding="utf-8")
    return frozenset("".join(line for line in text.splitlines() if not line.startswith("#")))


def rare_syllable_share(text: str) -> tuple[float, int]:
    """Share of the Hangul syllables of `text` outside the common set, and how many syllables there are."""
    syllables = _SYLLABLES.findall(text)
    if not syllables:
        return 0.0, 0
    common = sum(map(common_syllables().__contains__, syllables))
    return (len(syllables) - common) / len(syllables), len(syllables)


def _visible_characters(text: str) -> int:
    return len(text) - len(_SPACE.findall(text))


def odd_character_share(text: str) -> float:
    characters = _visible_characters(text)
    return len(_ODD.findall(text)) / characters if characters else 0.0


def garbled_reason(text: str) -> str | None:
    """Why `text` looks like mojibake, or None when it reads as ordinary text."""
    share, syllables = rare_syllable_share(text)
    if syllables >= MIN_SYLLABLES and share > RARE_SYLLABLE_SHARE:
        return f"{share:.0%} of its Hangul syllables are ones Korean text almost never uses"
    characters = _visible_characters(text)
    if characters >= MIN_CHARACTERS and (odd := odd_character_share(text)) > ODD_CHARACTER_SHARE:
        return f"{odd:.0%} of its characters come from scripts no document here is written in"
    return None


def looks_garbled(text: str) -> bool:
    return garbled_reason(text) is not None
