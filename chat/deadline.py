"""A time budget for one chat turn, and the ports wrapped so that every remote call keeps to it.

API Gateway ends an HTTP request at 29 s whatever the function is doing, and a WebSocket function
that runs into its own timeout is killed before it can tell the client why. So the chat Lambda gives
each turn a `Deadline` and builds its `ChatService` over `TimedEmbedder`, `TimedIndex` and `TimedLLM`:
a call that would outlive the budget is abandoned with `AnswerTimeout`, which the handler reports (a
504 JSON body or an error frame), and an LLM that runs out of time before it has written anything is
replaced by the extractive answer (`ChatService` falls back on any LLM failure before the first token).

The calls run in a small thread pool so a blocking socket read can be abandoned: boto3 has no
per-call timeout and the clients are shared by the container. An abandoned call finishes (or hits its
client's own socket timeout) in the background; its result is dropped.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import numpy as np

from pipeline.errors import TransientError
from pipeline.models import SearchHit
from pipeline.ports import LLM, Embedder, SearchIndex, WrappedEmbedder

T = TypeVar("T")
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="hanrag-chat-call")
_DONE = object()


class AnswerTimeout(TransientError):
    """The turn ran out of its time budget; asking again may well succeed."""


class Deadline:
    """`seconds` from now, by a monotonic clock."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._ends = clock() + seconds

    def remaining(self) -> float:
        return self._ends - self._clock()

    def budget(self, what: str, reserve: float = 0.0, limit: float | None = None) -> float:
        """Seconds a call may take, keeping `reserve` for what must follow it; none left is a timeout."""
        left = self.remaining() - reserve
        if limit is not None:
            left = min(left, limit)
        if left <= 0:
            raise AnswerTimeout(f"no time left for {what} (the answer's budget is {self.seconds:.0f} s)")
        return left

    def call(self, what: str, function: Callable[..., T], *args: Any, reserve: float = 0.0,
             limit: float | None = None) -> T:
        """`function(*args)`, or `AnswerTimeout` when it has not returned within the budget."""
        seconds = self.budget(what, reserve, limit)
        future = _POOL.submit(function, *args)
        try:
            return future.result(timeout=seconds)
        except FutureTimeout:
            future.cancel()
            raise AnswerTimeout(f"{what} did not answer within {seconds:.1f} s") from None

    def stream(self, what: str, pieces: Callable[[], Iterator[T]], reserve: float = 0.0) -> Iterator[T]:
        """The items of `pieces()` as they come, each awaited only as long as the budget allows."""
        self.budget(what, reserve)
        items: queue.Queue = queue.Queue()
        stop = threading.Event()

        def produce() -> None:
            try:
                for item in pieces():
                    if stop.is_set():
                        return
                    items.put((True, item))
                items.put((True, _DONE))
            except BaseException as error:  # handed to the consumer, raised there
                items.put((False, error))

        _POOL.submit(produce)
        try:
            while True:
                try:
                    ok, item = items.get(timeout=self.budget(what, reserve))
                except queue.Empty:
                    raise AnswerTimeout(f"{what} stopped within the answer's {self.seconds:.0f} s budget") from None
                if not ok:
                    raise item
                if item is _DONE:
                    return
                yield item
        finally:
            stop.set()


class TimedEmbedder(WrappedEmbedder):
    def __init__(self, embedder: Embedder, deadline: Deadline, reserve: float = 0.0) -> None:
        self._embedder, self._deadline, self._reserve = embedder, deadline, reserve

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._deadline.call("the embedding model", self._embedder.embed_passages, texts, reserve=self._reserve)

    def embed_query(self, text: str) -> np.ndarray:
        return self._deadline.call("the embedding model", self._embedder.embed_query, text, reserve=self._reserve)


class TimedIndex:
    """Searches only: the chat never writes an index."""

    def __init__(self, index: SearchIndex, deadline: Deadline, reserve: float = 0.0) -> None:
        self._index, self._deadline, self._reserve = index, deadline, reserve

    def hybrid_search(self, user_id: str, query: str, query_vector: np.ndarray, k: int = 10) -> list[SearchHit]:
        return self._deadline.call("the search index", self._index.hybrid_search, user_id, query, query_vector, k,
                                   reserve=self._reserve)


class TimedLLM:
    """`reserve`: seconds kept for the extractive answer and the history writes after the LLM gives up.
    `complete_limit`: at most this long for a `complete` (the follow-up rewrite must leave time to answer).
    `whole`: the answer is wanted in one piece (HTTP), so `stream` asks for it with one `complete`, and a
    timeout before it is done still leaves the extractive answer."""

    def __init__(self, llm: LLM, deadline: Deadline, reserve: float = 0.0, complete_limit: float | None = None,
                 whole: bool = False) -> None:
        self._llm, self._deadline = llm, deadline
        self._reserve, self._complete_limit, self._whole = reserve, complete_limit, whole

    def complete(self, system: str, prompt: str) -> str:
        return self._deadline.call("the LLM", self._llm.complete, system, prompt, reserve=self._reserve,
                                   limit=self._complete_limit)

    def stream(self, system: str, prompt: str) -> Iterator[str]:
        if self._whole:
            yield self._deadline.call("the LLM", self._llm.complete, system, prompt, reserve=self._reserve)
            return
        yield from self._deadline.stream("the LLM", lambda: self._llm.stream(system, prompt), reserve=self._reserve)
