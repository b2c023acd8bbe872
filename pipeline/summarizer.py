"""The summarizer: a short summary in the document's own language, for the summarize stage and for
chat's conversation summaries (a pure helper, like `pipeline.korean`).

Without an LLM the summary is extractive: TextRank over Kiwi sentences (bullets and item numbers
dropped), where two sentences are similar when they share content morphemes. It opens with the lede —
the best of the document's first sentences — and takes the best sentence of each section in turn, so
it spans the document; the picks read in document order. A document of tables only says what its
tables hold. With an `LLM`, it writes the summary from the opening text, tables included.
"""

from __future__ import annotations

import math
import re

import numpy as np

from pipeline.korean import analyze_many, clean_sentence, sentences
from pipeline.models import ExtractedDocument
from pipeline.ports import LLM

MAX_INPUT_CHARS = 30_000  # TextRank is quadratic in sentences; the opening of a document suffices
_DOT_LEADER = re.compile(r"(?:[·.…ㆍ]\s?){4,}")  # a table of contents line: "상생과 공존 ········14"
LEDE_WINDOW = 4  # the summary opens with the best of the document's first sentences

SUMMARY_SYSTEM_PROMPT = (
    "당신은 문서를 요약하는 도우미입니다. 주어진 문서의 핵심 내용을 문서와 같은 언어로, "
    "다섯 문장 이내로 요약하세요. 문서에 없는 내용은 쓰지 마세요."
)


def summarize(doc: ExtractedDocument, llm: LLM | None = None, max_sentences: int = 5) -> str:
    if llm is not None:
        text = "\n\n".join(e.text for e in doc.elements if e.text)[:MAX_INPUT_CHARS]
        return llm.complete(SUMMARY_SYSTEM_PROMPT, f"<document>\n{text}\n</document>").strip()
    sections = section_sentences(doc)
    if not any(sections):
        return describe_tables(doc)
    return " ".join(_closed(sentence) for sentence in spanning_summary(sections, max_sentences))


_CLOSED = tuple(".!?。…\"'”’)」』]")


def _closed(sentence: str) -> str:
    """A 개조식 item ("…희망할 경우에는 진행", "…판단함") ends without a period in the document; joined to
    the next one it would run on, so in a summary it gets one."""
    return sentence if sentence.endswith(_CLOSED) else sentence + "."


def section_sentences(doc: ExtractedDocument) -> list[list[str]]:
    """The quotable sentences of the document's opening, one list per section (a heading opens one)."""
    sections: list[list[str]] = [[]]
    used = 0
    for element in doc.elements:
        if used >= MAX_INPUT_CHARS:
            break
        if element.heading:
            if sections[-1]:
                sections.append([])
            continue
        if element.kind == "text":
            sections[-1] += candidate_sentences(element.text)
            used += len(element.text)
    return [section for section in sections if section] or [[]]


def spanning_summary(sections: list[list[str]], limit: int) -> list[str]:
    """The lede (the best of the document's first sentences), then the best sentence of each further
    section in turn, then the best of the rest; read in document order."""
    flat: list[tuple[int, str]] = []
    seen: set[str] = set()
    for n, section in enumerate(sections):
        for sentence in section:
            if sentence not in seen:
                seen.add(sentence)
                flat.append((n, sentence))
    if len(sections) == 1 and limit > 1:  # no headings: the text's parts stand for its sections
        flat = [(i * (limit - 1) // len(flat), sentence) for i, (_, sentence) in enumerate(flat)]
    if len(flat) <= limit:
        return [s for _, s in flat]
    scores = textrank_scores([s for _, s in flat])
    lede = max(range(min(LEDE_WINDOW, len(flat))), key=lambda i: scores[i])
    chosen = [lede]
    by_section: dict[int, list[int]] = {}
    for i, (n, _) in enumerate(flat):
        by_section.setdefault(n, []).append(i)
    order = sorted(by_section, key=lambda n: -len(by_section[n]))  # the larger sections first
    for n in order:
        if len(chosen) >= limit:
            break
        best = max(by_section[n], key=lambda i: scores[i])
        if best not in chosen:
            chosen.append(best)
    for i in np.argsort(-scores, kind="stable"):
        if len(chosen) >= limit:
            break
        if int(i) not in chosen:
            chosen.append(int(i))
    return [flat[i][1] for i in sorted(chosen)]


def describe_tables(doc: ExtractedDocument, shown: int = 3) -> str:
    """A document of tables only says what its tables hold: their columns and first row labels."""
    tables = [e for e in doc.elements if e.kind == "table" and e.table is not None and e.table.rows]
    if not tables:
        return ""
    parts = [f"표 {len(tables)}개로 된 문서입니다."]
    for number, element in enumerate(tables[:shown], start=1):
        table = element.table
        header = [clean_sentence(c) for c in (table.header[0] if table.header else table.rows[0]) if c.strip()]
        if not table.body:  # a one-cell or one-row table is a caption
            parts.append(f"표 {number}({element.page}쪽): {', '.join(header[:6])}.")
            continue
        column = next((i for i in range(len(table.body[0])) if any(
            row[i].strip() and not row[i].strip().isdigit() for row in table.body if len(row) > i)), 0)
        labels = list(dict.fromkeys(clean_sentence(row[column]) for row in table.body
                                    if len(row) > column and row[column].strip()))
        part = f"표 {number}({element.page}쪽): {', '.join(header[:6])} 열, {len(table.body)}행"
        if labels:
            part += f" ({', '.join(labels[:4])}{' 등' if len(labels) > 4 else ''})"
        parts.append(part + ".")
    return " ".join(parts)


def candidate_sentences(text: str) -> list[str]:
    """Sentences worth quoting: whole lines joined, bullets and item numbers dropped, neither fragments,
    walls of text nor table-of-contents lines."""
    found = []
    for paragraph in text.split("\n\n"):
        for sentence in sentences(paragraph):
            sentence = clean_sentence(sentence)
            if 20 <= len(sentence) <= 300 and not _DOT_LEADER.search(sentence):
                found.append(sentence)
    return found


def textrank(candidates: list[str], limit: int) -> list[str]:
    """The `limit` most central sentences, in document order."""
    if len(candidates) <= limit:
        return candidates
    scores = textrank_scores(candidates)
    return [candidates[i] for i in sorted(np.argsort(-scores, kind="stable")[:limit])]


def textrank_scores(candidates: list[str], damping: float = 0.85) -> np.ndarray:
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
    return scores
