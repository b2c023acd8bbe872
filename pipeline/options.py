"""Options that are contracts: how to extract, chunk and rank, shared by the stages, the adapters and
the settings. Plain frozen dataclasses and one pure function; nothing of ours is imported here, so an
adapter or the configuration can use them without importing a stage.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable
from dataclasses import dataclass
from typing import Literal, TypeVar


@dataclass(frozen=True)
class ExtractOptions:
    pdf_tables: bool = True
    pdf_aligned_tables: bool = True  # also tables without ruling lines (columns of aligned words)
    pdf_password: str | None = None
    max_pages: int = 5000
    ocr: bool = True  # read image-only and garbled pages, and images, with Tesseract when it is installed
    ocr_images: bool = True  # also the pictures on pages that have text (charts, labelled photos)
    max_unzipped_bytes: int = 200 * 1024 * 1024  # a ZIP-based file (DOCX, HWPX, …) or an HWP may expand to this


@dataclass(frozen=True)
class ChunkOptions:
    chunk_tokens: int = 512
    overlap_tokens: int = 64


@dataclass(frozen=True)
class SearchOptions:
    fusion: Literal["minmax", "rrf"] = "minmax"
    dense_weight: float = 0.5  # minmax: share of the vector score; the rest is the keyword score
    rrf_k: int = 60
    depth: int = 50  # candidates taken from each ranking before fusion
    # The lexical second pass over the fused candidates (pipeline/adapters/local/reranker.py): KorQuAD R@1
    # 0.917 -> 0.938 (bench/RESULTS.md). HANRAG_RERANK=0 turns it off.
    rerank: bool = True
    rerank_depth: int = 30  # fused candidates the reranker reorders


MAX_K = 100  # the most hits one search returns


def check_k(k: int) -> int:
    """Every index refuses a k outside 1..MAX_K with the same message."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ValueError(f"k must be a whole number from 1 to {MAX_K}, not {k!r}")
    return k


Key = TypeVar("Key", bound=Hashable)


def fuse(
    keyword: list[tuple[Key, float]], vector: list[tuple[Key, float]], options: SearchOptions,
    keyword_blind: Collection[Key] = (),
) -> list[tuple[Key, float]]:
    """Combine two rankings of ids (SQLite rowids, OpenSearch `_id`s) into one, best first.

    `keyword_blind`: candidates the keyword side cannot judge, because they are written in another
    script than the query (an English page for a Korean question). Their keyword share is taken from
    their own vector share (when it is the larger), so an empty keyword side does not bury a strong
    dense hit under pages that merely share a word with the question.
    """
    parts: list[dict[Key, float]] = []
    if options.fusion == "rrf":
        parts = [{rowid: 1.0 / (options.rrf_k + rank) for rank, (rowid, _) in enumerate(ranking, start=1)}
                 for ranking in (keyword, vector)]
        weights = (1.0, 1.0)
    else:
        for ranking in (keyword, vector):
            values = [s for _, s in ranking]
            low, high = (min(values), max(values)) if values else (0.0, 0.0)
            parts.append({rowid: (score - low) / (high - low) if high > low else 1.0 for rowid, score in ranking})
        weights = (1.0 - options.dense_weight, options.dense_weight)
    by_keyword, by_vector = parts
    for rowid in keyword_blind:
        if rowid in by_vector:
            by_keyword[rowid] = max(by_keyword.get(rowid, 0.0), by_vector[rowid])
    scores: dict[Key, float] = {}
    for part, weight in zip(parts, weights, strict=True):
        for rowid, value in part.items():
            scores[rowid] = scores.get(rowid, 0.0) + weight * value
    return sorted(scores.items(), key=lambda item: item[1], reverse=True)


def script_differs(query: str, text: str) -> bool:
    """True when one of the two is written mostly in Hangul and the other is not: keyword search, which
    matches the query's own words, cannot find the text then, whatever it says."""
    first, second = _mostly_hangul(query), _mostly_hangul(text)
    return first is not None and second is not None and first != second


def _mostly_hangul(text: str) -> bool | None:
    """None for a text with too few letters to tell (a table of figures, a one-word query)."""
    letters = [c for c in text[:2000] if c.isalpha()]
    if len(letters) < _LETTERS_TO_TELL:
        return None
    return sum(1 for c in letters if "\uac00" <= c <= "\ud7a3") / len(letters) >= 0.3


_LETTERS_TO_TELL = 4
