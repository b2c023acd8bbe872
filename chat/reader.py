"""The reader: which candidate answers the question, and whether any does.

The rules of chat/candidates.py score each sentence and table row by the question's words and the kind
of fact it asks for. Reading KorQuAD misses by eye showed what they cannot see alone: the fact is often
in the sentence *after* the one that restates the question ("1930년, 한 공동주택이 회현동에 세워졌다." then
"…주택을 3층으로 올린 것은 이례적이었다."), and how well the passage as a whole matches (the rerank pass's
score of its hit) says more than any one sentence. So the reader weighs a few such signals of each
candidate — its rule score, its words, its neighbours, its passage — with weights learned on KorQuAD 1.0
dev questions whose paragraphs are not in the benchmark's sample (bench/train_reader.py writes them to
chat/reader_weights.py), and reorders the rules' top candidates by them.

The second model says whether to answer at all: the chance that the best candidate is a right answer,
learned from replies to questions asked of the user who has the paragraph (right or wrong) and of a
user who does not (always wrong). Below `ANSWER_CONFIDENCE` the reply is "not found".

Table rows keep their rules: KorQuAD has no tables to learn from, and the rules for rows (the row the
question names, the value under the header it asks for) were written from table questions
(bench/questions-tables.jsonl). So when the rules' best candidate is a row, the reader leaves the order
as the rules made it and the reply is given when the row holds enough of the question's words
(`ROW_RELEVANCE`, the rules' threshold before the reader).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from chat.candidates import Candidate, Question
from chat.reader_weights import GATE, RANKER
from pipeline.models import SearchHit

TOP = 30  # of the rules' ranking, reordered by the reader
ROW_RELEVANCE = 0.5  # least share of the question's words a table row answering it holds
# Both models were fitted where search fills its page (10 hits) from a collection of many documents,
# most about something else. A user whose whole collection is a few chunks gets fewer hits, and their
# signals mean something else there (the rerank pass weighs words by their rarity among the hits, so
# few hits score lower; rank and distance from the top hit say little): with fewer hits the rules'
# order stands and the reply is given, as for a row, when the best candidate holds enough of the
# question's words.
FULL_PAGE = 10
KINDS = ("amount", "count", "date", "place", "person", "term")
# A sentence opening on a pronoun or a connective leans on the one before it ("그는 …", "이후 …").
_LEANING = ("그는", "그가", "그의", "이는", "이후", "그러", "그리", "이에", "하지", "또한", "그녀")


def ranker_signals(question: Question, ranked: Sequence[Candidate],
                   hits: Sequence[SearchHit]) -> list[dict[str, float]]:
    """The reader's signals of the rules' top candidates, in their order."""
    by_place = {(c.rank, c.position): c for c in ranked}
    best_coverage: dict[int, float] = {}
    for c in ranked:  # how much of the question the best sentence of each passage holds
        best_coverage[c.rank] = max(c.coverage, best_coverage.get(c.rank, -1.0))
    best_positions = {(c.rank, c.position) for c in ranked if c.coverage == best_coverage[c.rank]}
    wanted = question.wanted[0] if question.wanted else None
    top_score = hits[0].score if hits else 0.0
    signals = []
    for order, c in enumerate(ranked[:TOP]):
        before, after = by_place.get((c.rank, c.position - 1)), by_place.get((c.rank, c.position + 1))
        prose = c.kind == "sentence"
        before_coverage = before.coverage if before and prose else 0.0
        fact = float(c.fact is not None)
        hit_score = hits[c.rank].score
        s = {
            "rule_score": c.score, "coverage": c.coverage, "coverage_squared": c.coverage ** 2,
            "relevance": c.relevance, "fact": fact,
            "hit_rank": c.rank / 10, "first_hit": float(c.rank == 0), "first_hit_coverage": c.coverage * (c.rank == 0),
            "hit_score": hit_score, "hit_score_below_top": hit_score - top_score,
            "overlong": min(max(0, len(c.text) - 160), 300) / 100,
            "before_coverage": before_coverage, "after_coverage": after.coverage if after and prose else 0.0,
            "fact_after_covering_sentence": before_coverage * fact,
            "fact_after_better_sentence": max(0.0, before_coverage - c.coverage) * fact,
            "passage_best_coverage": best_coverage[c.rank], "first_of_passage": float(c.position == 0),
            "is_passage_best": float((c.rank, c.position) in best_positions),
            "after_passage_best": float((c.rank, c.position - 1) in best_positions),
            "before_passage_best": float((c.rank, c.position + 1) in best_positions),
            "fact_after_passage_best": float((c.rank, c.position - 1) in best_positions) * fact,
            "row": float(c.kind == "row"), "rule_order": 1.0 / (1 + order),
            "leans_on_previous": float(c.text[:2] in _LEANING),
            "names": min(len(c.names), 5) / 5, "foreign_words": min(len(c.foreign), 5) / 5,
        }
        for kind in KINDS:
            s[f"fact_{kind}"] = fact * (wanted == kind)
            s[f"no_fact_{kind}"] = (1 - fact) * (wanted == kind)
        signals.append(s)
    return signals


def rerank(question: Question, ranked: list[Candidate], hits: Sequence[SearchHit],
           weights: dict[str, float] = RANKER) -> list[Candidate]:
    """The rules' top candidates reordered by the reader, each `score` now the reader's (a logit: a
    candidate 1.0 above another is e≈2.7 times as likely the answer); the rest after them. A table
    answer, or one from fewer hits than a full page, keeps the rules' order, its scores put on the
    reader's scale."""
    if _rules_decide(ranked, hits):
        for candidate in ranked:
            candidate.score *= weights.get("rule_score", 1.0)
        return ranked
    signals = ranker_signals(question, ranked, hits)
    for candidate, s in zip(ranked, signals, strict=False):
        candidate.score = sum(weights.get(name, 0.0) * value for name, value in s.items())
    head = sorted(ranked[:len(signals)], key=lambda c: (-c.score, c.rank, c.position))
    floor = min((c.score for c in head), default=0.0)
    for candidate in ranked[len(signals):]:
        candidate.score = floor - 1.0
    return head + ranked[len(signals):]


def _rules_decide(ranked: Sequence[Candidate], hits: Sequence[SearchHit]) -> bool:
    """A table answer, or hits fewer than the models were fitted on: the rules' order and threshold."""
    return (bool(ranked) and ranked[0].kind == "row") or len(hits) < FULL_PAGE


def gate_signals(question: Question, ranked: Sequence[Candidate], hits: Sequence[SearchHit]) -> dict[str, float]:
    best = ranked[0]
    second = ranked[1].score if len(ranked) > 1 else best.score - 10.0
    return {"relevance": best.relevance, "coverage": best.coverage, "top_hit_score": hits[0].score,
            "hit_score": hits[best.rank].score, "margin": best.score - second, "fact": float(best.fact is not None),
            "asks_a_kind": float(bool(question.wanted)), "reader_score": best.score,
            "question_words": len(question.terms) / 10}


def confidence(question: Question, ranked: Sequence[Candidate], hits: Sequence[SearchHit],
               weights: dict[str, float] = GATE) -> float:
    """The chance, learned on KorQuAD, that the reader's best candidate is a right answer."""
    if not ranked or not hits:
        return 0.0
    if _rules_decide(ranked, hits):  # the rules' judgement: enough of the question's words
        return 1.0 if ranked[0].relevance >= ROW_RELEVANCE else 0.0
    z = weights.get("bias", 0.0) + sum(weights.get(k, 0.0) * v for k, v in gate_signals(question, ranked, hits).items())
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
