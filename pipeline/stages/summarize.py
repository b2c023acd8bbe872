"""Summarize: a short summary in the document's own language.

Without an LLM the summary is extractive: TextRank over Kiwi sentences, where two sentences are
similar when they share content morphemes. The top sentences are returned in document order, so
the summary reads like the document. With an `LLM`, it writes the summary from the opening text.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.korean import analyze_many, sentences
from pipeline.models import ExtractedDocument
from pipeline.ports import LLM

MAX_INPUT_CHARS = 30_000  # TextRank is quadratic in sentences; the opening of a document suffices

SUMMARY_SYSTEM_PROMPT = (
    "당신은 문서를 요약하는 도우미입니다. 주어진 문서의 핵심 내용을 문서와 같은 언어로, "
    "다섯 문장 이내로 요약하세요. 문서에 없는 내용은 쓰지 마세요."
)


def summarize(doc: ExtractedDocument, llm: LLM | None = None, max_sentences: int = 5) -> str:
    text = "\n\n".join(e.text for e in doc.elements if e.kind == "text" and not e.heading)
    text = text[:MAX_INPUT_CHARS]
    if llm is not None:
        return llm.complete(SUMMARY_SYSTEM_PROMPT, f"<document>\n{text}\n</document>").strip()
    return " ".join(textrank(candidate_sentences(text), max_sentences))


def candidate_sentences(text: str) -> list[str]:
    """Sentences worth quoting: whole lines joined, neither fragments nor walls of text."""
    found = []
    for paragraph in text.split("\n\n"):
        for sentence in sentences(paragraph):
            sentence = " ".join(sentence.split())
            if 20 <= len(sentence) <= 300:
                found.append(sentence)
    return found


def textrank(candidates: list[str], limit: int, damping: float = 0.85) -> list[str]:
    if len(candidates) <= limit:
        return candidates
    bags = [set(terms) for terms in analyze_many(candidates)]
    n = len(candidates)
    weights = np.zeros((n, n), dtype=np.float64)
    for i in range(n):
        for j in range(i + 1, n):
            shared = len(bags[i] & bags[j])
            if shared and len(bags[i]) > 1 and len(bags[j]) > 1:
                # the similarity of the original TextRank paper
                weights[i, j] = weights[j, i] = shared / (math.log(len(bags[i])) + math.log(len(bags[j])))
    totals = weights.sum(axis=1)
    totals[totals == 0] = 1.0
    transition = weights / totals[:, None]
    scores = np.full(n, 1.0 / n)
    for _ in range(50):
        updated = (1 - damping) / n + damping * transition.T @ scores
        if np.abs(updated - scores).sum() < 1e-6:
            scores = updated
            break
        scores = updated
    chosen = sorted(np.argsort(-scores, kind="stable")[:limit])
    return [candidates[i] for i in chosen]
