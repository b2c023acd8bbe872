"""Retrieval metrics and latency summaries, shared by `hanrag eval` and the KorQuAD benchmark.

A ranking is the list of ids a search returned, best first; ids may repeat (two chunks of the same
document both rank), and a relevant id counts once, where it first appears. What an id is — a
document, a page, a paragraph — is the caller's choice, so the same functions score document-level
and page-level relevance.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np


def _first_ranks(ranking: Sequence[Hashable], relevant: set, k: int) -> list[int]:
    """1-based ranks within the top k where a relevant id appears for the first time."""
    seen: set = set()
    ranks = []
    for rank, item in enumerate(ranking[:k], start=1):
        if item in relevant and item not in seen:
            seen.add(item)
            ranks.append(rank)
    return ranks


def recall_at_k(ranking: Sequence[Hashable], relevant: set, k: int) -> float:
    """Share of the relevant ids found in the top k (with one relevant id: 1 if it is there, else 0)."""
    if not relevant:
        raise ValueError("recall is undefined for a question with no relevant id")
    return len(_first_ranks(ranking, relevant, k)) / len(relevant)


def reciprocal_rank(ranking: Sequence[Hashable], relevant: set, k: int = 10) -> float:
    """1 / rank of the first relevant id in the top k, 0 if none; its mean over questions is MRR@k."""
    ranks = _first_ranks(ranking, relevant, k)
    return 1.0 / ranks[0] if ranks else 0.0


def ndcg_at_k(ranking: Sequence[Hashable], relevant: set, k: int = 10) -> float:
    """Binary-gain nDCG@k: each relevant id earns 1/log2(rank+1) once; the ideal puts them all first."""
    if not relevant:
        raise ValueError("nDCG is undefined for a question with no relevant id")
    dcg = sum(1.0 / math.log2(rank + 1) for rank in _first_ranks(ranking, relevant, k))
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(relevant), k) + 1))
    return dcg / ideal


def score_rankings(
    rankings: Iterable[tuple[Sequence[Hashable], set]], ks: Sequence[int] = (1, 5, 10), depth: int = 10
) -> dict[str, float]:
    """Mean recall@k for each k, MRR@depth and nDCG@depth over (ranking, relevant ids) pairs."""
    totals: dict[str, float] = {f"recall@{k}": 0.0 for k in ks}
    totals[f"mrr@{depth}"] = 0.0
    totals[f"ndcg@{depth}"] = 0.0
    count = 0
    for ranking, relevant in rankings:
        count += 1
        for k in ks:
            totals[f"recall@{k}"] += recall_at_k(ranking, relevant, k)
        totals[f"mrr@{depth}"] += reciprocal_rank(ranking, relevant, depth)
        totals[f"ndcg@{depth}"] += ndcg_at_k(ranking, relevant, depth)
    if not count:
        raise ValueError("no questions to score")
    return {name: value / count for name, value in totals.items()}


@dataclass(frozen=True)
class LatencySummary:
    """Milliseconds; p95 is what a user waits on one search in twenty."""

    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> LatencySummary:
        if not len(seconds):
            raise ValueError("no latencies to summarize")
        ms = np.asarray(seconds, dtype=np.float64) * 1000.0
        return cls(len(ms), float(ms.mean()), float(np.percentile(ms, 50)), float(np.percentile(ms, 95)),
                   float(ms.max()))

    def to_dict(self) -> dict[str, float]:
        return {"count": self.count, "mean_ms": round(self.mean_ms, 3), "p50_ms": round(self.p50_ms, 3),
                "p95_ms": round(self.p95_ms, 3), "max_ms": round(self.max_ms, 3)}
