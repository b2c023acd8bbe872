"""One chat turn, start to end: summary requests, follow-up rewriting, retrieval in the user's index
only, the streamed answer, and the history it leaves. Shared by `hanrag serve` and the chat Lambda:
both build a `ChatService` from their own adapters and relay its events.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from chat.answer import Answer, AnswerEvent, in_pieces, stream_answer
from chat.citations import quotable, with_checked_marks
from chat.history import within_budget
from chat.retrieve import MAX_QUERY_CHARS, Retriever
from chat.rewrite import standalone_query
from chat.summaries import conversation_summary, document_summary, summary_request
from pipeline.errors import PipelineError
from pipeline.models import SearchHit
from pipeline.names import validate_session_id, validate_user_id
from pipeline.ports import LLM, HistoryStore, Registry

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2000


class InvalidMessage(PipelineError):
    """An empty or oversized chat message."""


def checked_message(message: str) -> str:
    """The message stripped; refused when empty or longer than MAX_MESSAGE_CHARS. A caller that streams
    the answer checks it first, so the refusal is a plain 400 rather than an event in the stream."""
    message = (message or "").strip()
    if not message:
        raise InvalidMessage("메시지가 비어 있습니다 (the message is empty)")
    if len(message) > MAX_MESSAGE_CHARS:
        raise InvalidMessage(f"메시지는 {MAX_MESSAGE_CHARS}자까지입니다 "
                             f"(the message is longer than {MAX_MESSAGE_CHARS} characters)")
    return message


@dataclass(frozen=True)
class ChatOptions:
    k: int = 10  # chunks an answer is chosen from (every sentence and table row of each is a candidate)
    history_tokens: int = 1500  # of earlier turns sent to a model (cl100k tokens)
    history_turns: int = 50  # read from the store per turn


@dataclass
class ChatTurn:
    """The final event of a turn, with what a page shows: the answer, its citations (with passages)
    and the query that was searched (the follow-up rewritten)."""

    answer: Answer
    query: str
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {**self.answer.to_dict(with_text=True), "query": self.query, "warnings": self.warnings}


class ChatService:
    def __init__(self, retriever: Retriever, history: HistoryStore, registry: Registry,
                 llm: LLM | None = None, options: ChatOptions | None = None) -> None:
        self.retriever = retriever
        self.history = history
        self.registry = registry
        self.llm = llm
        self.options = options or ChatOptions()

    def respond(self, user_id: str, session_id: str, message: str) -> Iterator[str | ChatTurn]:
        """Pieces of the answer (str) as they are written, then one `ChatTurn`. The question and the
        answer are stored only when the answer is complete."""
        user_id, session_id = validate_user_id(user_id), validate_session_id(session_id)
        message = checked_message(message)
        earlier = self.history.turns(user_id, session_id, self.options.history_turns)

        query = message
        warnings: list[str] = []
        kind = summary_request(message)
        if kind == "conversation":
            events = _spoken(conversation_summary(earlier, self.llm))
        elif kind == "document":
            current = [d for d in self.registry.documents(user_id) if d["version"]]  # not the ones in flight
            events = _spoken(document_summary(message, current, earlier))
        else:
            recent = within_budget(earlier, self.options.history_tokens)
            query = standalone_query(message, recent, self.llm)[:MAX_QUERY_CHARS]  # the search reads no more
            hits = quotable(self.retriever.search(user_id, query, self.options.k))
            events = self._answer(message, query, hits, recent, warnings)

        for event in events:
            if event.kind == "token":
                yield event.text
                continue
            assert event.answer is not None
            answer = with_checked_marks(event.answer)
            citations = [c.to_dict(with_text=True) for c in answer.citations]
            self.history.append(user_id, session_id, "user", message)
            self.history.append(user_id, session_id, "assistant", answer.text, citations)
            yield ChatTurn(answer, query, warnings)

    def _answer(self, message: str, query: str, hits: list[SearchHit], recent: list[dict],
                warnings: list[str]) -> Iterator[AnswerEvent]:
        """The LLM's answer; the extractive one when there is no LLM, or when it fails before writing
        anything (an unreachable endpoint should cost the user the prose, not the answer)."""
        if self.llm is not None:
            started = False
            try:
                for event in stream_answer(message, hits, self.llm, recent):
                    started = True
                    yield event
                return
            except Exception as error:
                if started:
                    raise
                reason = str(error) if isinstance(error, PipelineError) else f"{type(error).__name__}: {error}"
                log.warning("LLM answer failed (%s); answering extractively", reason)
                warnings.append(f"the LLM failed ({reason}); this answer is extractive")
        # Without an LLM the sentences are chosen by the words of the standalone query.
        yield from stream_answer(query, hits, None, recent)


def _spoken(text: str) -> Iterator[AnswerEvent]:
    """A ready answer, streamed like a written one so every reply reaches the page the same way."""
    answer = Answer(text)
    yield from (AnswerEvent("token", piece) for piece in in_pieces(text))
    yield AnswerEvent("final", text, answer)
