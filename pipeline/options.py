"""Options that are contracts: how to extract, chunk and rank, shared by the stages, the adapters and
the settings. Plain frozen dataclasses and one pure function; nothing of ours is imported here, so an
adapter or the configuration can use them without importing a stage.
"""

from __future__ import annotations

from collections.abc import Hashable
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


MAX_K = 100  # the most hits one search returns


def check_k(k: int) -> int:
    """Every index refuses a k outside 1..MAX_K with the same message."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ValueError(f"k must be a whole number from 1 to {MAX_K}, not {k!r}")
    return k


Key = TypeVar("Key", bound=Hashable)


def fuse(
    keyword: list[tuple[Key, float]], vector: list[tuple[Key, float]], options: SearchOptions
) -> list[tuple[Key, float]]:
    """Combine two rankings of ids (SQLite rowids, OpenSearch `_id`s) into one, best first."""
    scores: dict[Key, float] = {}
    if options.fusion == "rrf":
        for ranking in (keyword, vector):
            for rank, (rowid, _) in enumerate(ranking, start=1):
                scores[rowid] = scores.get(rowid, 0.0) + 1.0 / (options.rrf_k + rank)
    else:
        for ranking, weight in ((keyword, 1.0 - options.dense_weight), (vector, options.dense_weight)):
            if not ranking:
                continue
            values = [s for _, s in ranking]
            low, high = min(values), max(values)
            for rowid, score in ranking:
                normalized = (score - low) / (high - low) if high > low else 1.0
                scores[rowid] = scores.get(rowid, 0.0) + weight * normalized
    return sorted(scores.items(), key=lambda item: item[1], reverse=True)
