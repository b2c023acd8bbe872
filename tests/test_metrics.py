"""Retrieval metrics on rankings small enough to check by hand."""

from __future__ import annotations

import math

import pytest

from pipeline.evaluate import LatencySummary, ndcg_at_k, recall_at_k, reciprocal_rank, score_rankings


def test_recall_counts_a_relevant_document_once_even_when_two_of_its_chunks_rank():
    ranking = ["b", "a", "a", "c"]
    assert recall_at_k(ranking, {"a"}, 1) == 0.0
    assert recall_at_k(ranking, {"a"}, 2) == 1.0
    assert recall_at_k(ranking, {"a", "c"}, 3) == 0.5  # c is fourth
    assert recall_at_k(ranking, {"a", "c"}, 10) == 1.0


def test_reciprocal_rank_is_one_over_the_first_relevant_rank_within_k():
    assert reciprocal_rank(["x", "y", "a"], {"a"}, 10) == pytest.approx(1 / 3)
    assert reciprocal_rank(["a"], {"a"}) == 1.0
    assert reciprocal_rank(["x", "y", "a"], {"a"}, 2) == 0.0  # beyond k
    assert reciprocal_rank([], {"a"}) == 0.0


def test_ndcg_rewards_relevant_ids_near_the_top_and_ignores_repeats():
    assert ndcg_at_k(["a", "x"], {"a"}) == 1.0
    assert ndcg_at_k(["x", "a"], {"a"}) == pytest.approx(1 / math.log2(3))
    # two relevant: found at ranks 1 and 3 (the repeated "a" at rank 2 earns nothing)
    expected = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(["a", "a", "b"], {"a", "b"}) == pytest.approx(expected)
    assert ndcg_at_k(["x"], {"a"}) == 0.0


def test_score_rankings_averages_over_questions():
    scores = score_rankings([(["a", "b"], {"a"}), (["b", "a"], {"a"}), (["c"], {"a"})], ks=(1, 5))
    assert scores["recall@1"] == pytest.approx(1 / 3)
    assert scores["recall@5"] == pytest.approx(2 / 3)
    assert scores["mrr@10"] == pytest.approx((1 + 0.5 + 0) / 3)


def test_a_question_without_relevant_ids_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="no relevant id"):
        recall_at_k(["a"], set(), 5)
    with pytest.raises(ValueError, match="no questions"):
        score_rankings([])


def test_latency_summary_reports_milliseconds_and_percentiles():
    summary = LatencySummary.of([0.001 * i for i in range(1, 101)])  # 1 … 100 ms
    assert summary.count == 100
    assert summary.p50_ms == pytest.approx(50.5)
    assert summary.p95_ms == pytest.approx(95.05)
    assert summary.max_ms == pytest.approx(100.0)
    assert summary.to_dict()["mean_ms"] == 50.5
