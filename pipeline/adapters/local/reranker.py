"""The local `Reranker`: a precise lexical second pass over the fused candidates, offline, no model.

Hybrid search finds pages that *mention* the question's words; this pass prefers the page that *says*
it. It reads each candidate's text once and scores signals a cross-encoder would learn, cheaply:

- coverage: the share of the question's content words (weighted by how rare they are among the
  candidates) the chunk holds at all;
- proximity: the largest share held inside one window of about a sentence — words together, not
  scattered over a page (in a table, one row read with its header);
- phrase: the question's compounds and adjacent word pairs ("관세법 시행령", "국가 채무") written
  together in the chunk;
- anchors: article and section numbers (제65조 제1항 제1호) and numbers with their units (5천억 원 =
  5,000억 원 = 500,000,000,000원; 1987년) found in the chunk as the question writes them;
- title: the question's words in the document title and the chunk's heading.

Rarity is measured among the candidates, not the index, so the same code serves SQLite and OpenSearch.
A candidate in another script than the question (an English page for a Korean question) that holds
none of the question's Latin words cannot be judged by its words: it gets the median of each signal,
neither rewarded nor punished, so a strong dense hit is not buried by the lexical pass (cross-lingual
retrieval).

The fused score stays the base: signals only add to it, each with a weight measured on KorQuAD
(bench/korquad_rerank.py) and the page-level question sets (bench/RESULTS.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pipeline.korean import analyze_query
from pipeline.models import SearchHit
from pipeline.numbers import amounts

SIGNALS = ("coverage", "proximity", "phrase", "anchors", "title")
WINDOW_CHARS = 100  # about one Korean sentence
_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_LETTER = re.compile(r"[^\W\d_]")
# 제65조, 제65조의2, 제1항, 제1호, 제3장, 제2절: the article and section numbers of laws and guidelines
_LATIN = re.compile(r"[a-z]")
_RULE = re.compile(r"^\s*\|?\s*:?-{2,}")  # the |---|---| line under a Markdown table's header
_ARTICLE = re.compile(r"제\s?(\d+)\s?(조(?:\s?의\s?\d+)?|항|호|장|절|편|관|목)")


@dataclass(frozen=True)
class RerankWeights:
    """How much each signal (0..1) adds to the fused score (normalised to 0..1 among the candidates)."""

    coverage: float = 0.3
    proximity: float = 0.3
    phrase: float = 0.2
    anchors: float = 0.3
    title: float = 0.1

    def only(self, *names: str) -> RerankWeights:
        """These weights with every signal but `names` off (to measure one signal at a time)."""
        return RerankWeights(**{name: getattr(self, name) if name in names else 0.0 for name in SIGNALS})


@dataclass(frozen=True)
class _Query:
    terms: tuple[str, ...]  # distinct content words, lower-cased, in question order
    pairs: tuple[tuple[str, str], ...]  # words written next to each other in the question
    together: tuple[re.Pattern[str], ...]  # each pair written together: a space or a particle between
    articles: frozenset[str]
    amounts: frozenset[tuple[str, str]]
    korean: bool


def _script_is_korean(text: str) -> bool:
    letters = _LETTER.findall(text[:600])  # the opening of a chunk tells its script; the rest only costs time
    return bool(letters) and sum(1 for c in letters if _HANGUL.match(c)) / len(letters) >= 0.3


def _articles(text: str) -> frozenset[str]:
    return frozenset(number + re.sub(r"\s", "", kind) for number, kind in _ARTICLE.findall(text))


def _read_query(query: str) -> _Query:
    words = analyze_query(query)
    terms: list[str] = []
    for form, _start, _end in words:
        if form not in terms:
            terms.append(form)
    pairs = tuple((a[0], b[0]) for a, b in zip(words, words[1:], strict=False)
                  if b[1] - a[2] <= 1 and a[0] != b[0])
    together = tuple(re.compile(re.escape(a) + r".{0,2}?" + re.escape(b)) for a, b in pairs)
    return _Query(tuple(terms), pairs, together, _articles(query), frozenset(amounts(query)), _script_is_korean(query))


class LexicalReranker:
    """`Reranker` by the question's own words, numbers and article references (see the module doc)."""

    def __init__(self, weights: RerankWeights | None = None, window: int = WINDOW_CHARS) -> None:
        self.weights = weights or RerankWeights()
        self.window = window

    def rerank(self, query: str, hits: Sequence[SearchHit], k: int) -> list[SearchHit]:
        if len(hits) < 2:
            return list(hits)[:k]
        signals = self.signals(query, hits)
        top = max(hit.score for hit in hits)
        scored = []
        for hit, values in zip(hits, signals, strict=True):
            base = hit.score / top if top > 0 else 0.0
            bonus = sum(getattr(self.weights, name) * values[name] for name in SIGNALS)
            scored.append(replace(hit, score=base + bonus))
        scored.sort(key=lambda hit: hit.score, reverse=True)
        return scored[:k]

    def signals(self, query: str, hits: Sequence[SearchHit]) -> list[dict[str, float]]:
        """Each candidate's signals, 0..1 each."""
        q = _read_query(query)
        texts = [hit.text.lower() for hit in hits]
        heads = [f"{hit.title} {hit.heading}".lower() for hit in hits]
        present = [{t for t in q.terms if t in text or t in head} for text, head in zip(texts, heads, strict=True)]
        n = len(hits)
        idf = {t: math.log(1 + (n + 1) / (sum(t in p for p in present) + 0.5)) for t in q.terms}
        findable = sum(idf[t] for t in q.terms if any(t in p for p in present)) or 1.0
        pair_weight = [(pattern, idf[a] + idf[b]) for (a, b), pattern in zip(q.pairs, q.together, strict=True)]
        total_pairs = sum(w for _, w in pair_weight) or 1.0
        anchors_wanted = len(q.articles) + len(q.amounts)
        results: list[dict[str, float] | None] = []
        for hit, text, head, held in zip(hits, texts, heads, present, strict=True):
            if q.korean != _script_is_korean(hit.text) and not any(_LATIN.search(t) for t in held):
                # another script and none of the question's Latin words ("Water 부문의 Sales"): it cannot
                # be read by words, so it is judged after, by the median of the others
                results.append(None)
                continue
            values = {
                "coverage": sum(idf[t] for t in held) / findable,
                "proximity": (self._best_row(text, hit.heading.lower(), held, idf) if hit.kind == "table"
                              else self._best_window(text, held, idf)) / findable,
                "phrase": sum(w for pattern, w in pair_weight if pattern.search(text)) / total_pairs,
                "anchors": self._anchors(q, hit.text) / anchors_wanted if anchors_wanted else 0.0,
                "title": sum(idf[t] for t in q.terms if t in head) / findable,
            }
            results.append(values)
        judged = [r for r in results if r is not None]
        neutral = {name: _median([r[name] for r in judged]) if judged else 0.0 for name in SIGNALS}
        return [r if r is not None else neutral for r in results]

    def _best_window(self, text: str, held: set[str], idf: dict[str, float]) -> float:
        """The most term weight (each term once) inside any `window` characters of the text."""
        if not held:
            return 0.0
        places = sorted((position, term) for term in held for position in _positions(text, term))
        best, counts, weight, left = 0.0, {}, 0.0, 0
        for position, term in places:
            counts[term] = counts.get(term, 0) + 1
            if counts[term] == 1:
                weight += idf[term]
            while position - places[left][0] > self.window:
                gone = places[left][1]
                counts[gone] -= 1
                if counts[gone] == 0:
                    weight -= idf[gone]
                left += 1
            best = max(best, weight)
        return best

    @staticmethod
    def _best_row(text: str, caption: str, held: set[str], idf: dict[str, float]) -> float:
        """A table's window is a row read with its header and its caption (the chunk's heading): the
        most term weight in one of them. (A Markdown row is long and its header far from its values,
        so characters are the wrong ruler.)"""
        lines = [line for line in text.splitlines() if line.lstrip().startswith("|")]
        if not lines or not held:
            return 0.0
        header, rows = lines[0], [line for line in lines[1:] if not _RULE.match(line)] or [""]
        in_header = {t for t in held if t in header or t in caption}
        return max(sum(idf[t] for t in held if t in in_header or t in row) for row in rows)

    @staticmethod
    def _anchors(q: _Query, text: str) -> float:
        found = 0.0
        if q.articles:
            found += len(q.articles & _articles(text))
        if q.amounts:
            found += len(q.amounts & amounts(text))
        return found


def _positions(text: str, term: str) -> list[int]:
    found, at = [], text.find(term)
    while at >= 0:
        found.append(at)
        at = text.find(term, at + len(term))
    return found


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
