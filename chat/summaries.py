"""Summaries on demand: "이 문서 요약해줘" returns the document's stored summary (made at ingest, so
it costs nothing now); "대화 요약해줘" / "summarize this conversation" summarizes the session with
the same summarizer the pipeline uses for documents (extractive, or the LLM when one is set)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal

from pipeline.korean import analyze, sentences
from pipeline.models import Element, ExtractedDocument
from pipeline.ports import LLM
from pipeline.summarizer import summarize

SummaryKind = Literal["document", "conversation"]

_ASKS_SUMMARY = re.compile(
    r"요약\s*(?:해|하|좀|부탁|을|을\s*해|정리)|요약\s*[?.!]*$|\bsummari[sz]e\b|\bsummary\b|\btl;?dr\b", re.IGNORECASE
)
_CONVERSATION = re.compile(r"대화|채팅|지금까지|conversation|chat", re.IGNORECASE)
_CITATION_MARK = re.compile(r"\s*\[\d+\]")
NO_CONVERSATION = "아직 요약할 대화가 없습니다."
NO_DOCUMENTS = "요약할 문서가 없습니다. 먼저 문서를 올려 주세요."


def summary_request(message: str) -> SummaryKind | None:
    """Is the message asking for a summary, and of what? Only short requests count: a question that
    merely mentions 요약 ("요약 재무제표의 기준은?") is a question for the documents."""
    if len(message) > 80 or not _ASKS_SUMMARY.search(message):
        return None
    return "conversation" if _CONVERSATION.search(message) else "document"


def pick_document(message: str, documents: Sequence[dict], history: Sequence[dict]) -> dict | None:
    """The document "이 문서" means: one the message names, else the one the last answer cited,
    else the user's only document. None when that leaves a choice to make."""
    named = _named_document(message, documents)
    if named is not None:
        return named
    by_source = {d["source"]: d for d in documents}
    for turn in reversed(history):
        for citation in turn.get("citations") or []:
            if citation.get("source") in by_source:
                return by_source[citation["source"]]
    return documents[0] if len(documents) == 1 else None


def _named_document(message: str, documents: Sequence[dict]) -> dict | None:
    lowered = message.lower()
    for document in documents:
        stem = document["source"].rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()
        if stem and stem in lowered or (document.get("title") and document["title"].lower() in lowered):
            return document
    wanted = set(analyze(message)) - {"요약", "문서", "하", "주"}
    best, best_shared = None, 1  # at least two shared words
    for document in documents:
        shared = len(wanted & set(analyze(f"{document['source']} {document.get('title', '')}")))
        if shared > best_shared:
            best, best_shared = document, shared
    return best


def document_summary(message: str, documents: Sequence[dict], history: Sequence[dict]) -> str:
    if not documents:
        return NO_DOCUMENTS
    document = pick_document(message, documents, history)
    if document is None:
        names = ", ".join(f"「{d['source']}」" for d in documents[:10])
        return f"어느 문서를 요약할까요? 문서 이름을 함께 적어 주세요: {names}"
    summary = document.get("summary") or "이 문서에는 저장된 요약이 없습니다."
    return f"「{document['source']}」 요약: {summary}"


def conversation_summary(history: Iterable[dict], llm: LLM | None = None, max_sentences: int = 5) -> str:
    """The session as a document, summarized like one. Citation marks are dropped, and a sentence
    quoted by two answers counts once (extractive answers often repeat the best one)."""
    seen: set[str] = set()
    elements = []
    for turn in history:
        fresh = [s for s in sentences(_CITATION_MARK.sub("", turn["text"])) if s not in seen]
        seen.update(fresh)
        if fresh:
            elements.append(Element("text", 1, " ".join(fresh)))
    if not elements:
        return NO_CONVERSATION
    conversation = ExtractedDocument(source="conversation", title="", pages=1, elements=elements)
    return summarize(conversation, llm, max_sentences) or NO_CONVERSATION
