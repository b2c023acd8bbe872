"""`hanrag serve`: the JSON API and the one web page over the embedded default.

FastAPI, because it gives request validation, multipart uploads, streaming responses and a test
client in one well-kept package, and uvicorn serves it without a build step. Everything writes
through the same `Database` transactions as the CLI, so `hanrag ingest` can run beside it on one
HANRAG_HOME. Uploads are ingested one at a time by a background worker (the machine has two cores;
a second concurrent ingest would only slow both), so an upload returns at once with its run id.

Login: with accounts (`hanrag user add`), a user name and password; without any, one person on
this machine opens the one-time link `hanrag serve` prints (as Jupyter does). Either way the browser
gets a random session token, stored server-side as a hash with an expiry and revoked on logout and
on a new password. `chat/guard.py` checks Host, Origin and body size before any endpoint runs. The
AWS deployment puts Cognito in front instead.
"""

from __future__ import annotations

import hmac
import json
import logging
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.formparsers import MultiPartException

from chat.guard import LoginThrottle, RequestGuard
from chat.service import MAX_MESSAGE_CHARS, ChatService, ChatTurn, checked_message
from chat.uploads import FileTooLarge, UploadedFile, read_upload
from pipeline.adapters.local.accounts import MAX_PASSWORD_CHARS
from pipeline.adapters.local.accounts import SqliteAccounts as Accounts
from pipeline.config import Settings
from pipeline.errors import PipelineError
from pipeline.models import RunRecord
from pipeline.names import validate_session_id
from pipeline.ports import HistoryStore, Ingestion

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "hanrag_session"
JSON_LIMIT = 64 * 1024  # the body of any request but an upload


@dataclass
class QueuedRun:
    """An upload waiting for the worker or being run; also the runner's progress listener, so the
    page can say which stage a running file is in (extract and chunk, embed n of m, the rest)."""

    run_id: str
    user_id: str
    source: str
    path: Path
    queued_at: float
    started: bool = False
    stage: str | None = None
    chunks_total: int = 0
    chunks_done: int = 0

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "user_id": self.user_id, "source": self.source,
                "status": "running" if self.started else "queued", "started_at": self.queued_at,
                "finished_at": None, "stages": [], "durations": {}, "warnings": [], "reason": None,
                **self.progress()}

    def progress(self) -> dict:
        return {"stage": self.stage, "chunks_done": self.chunks_done, "chunks_total": self.chunks_total}

    def file_started(self, source: str, position: int, total: int) -> None:
        self.stage = "extract"

    def stage_started(self, stage: str) -> None:
        self.stage = stage

    def chunks_planned(self, count: int) -> None:
        self.chunks_total = count

    def chunks_embedded(self, count: int) -> None:
        self.chunks_done += count

    def file_finished(self, record: RunRecord) -> None:
        self.stage = None


class IngestWorker:
    """One thread that runs queued uploads through the runner, in order."""

    def __init__(self, pipeline: Ingestion) -> None:
        self.pipeline = pipeline
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
            item.file_started(item.source, 1, 1)
            try:
                self.pipeline.ingest_file(item.user_id, item.path, item.source, progress=item, run_id=item.run_id)
            except Exception:  # the runner records stage failures itself; this is a bug, keep serving
                log.exception("ingest of %s failed outside the runner", item.source)
            finally:
                shutil.rmtree(item.path.parent, ignore_errors=True)
                with self._lock:
                    self._pending.pop(item.run_id, None)


class LoginRequest(BaseModel):
    user: str = Field("", max_length=200)
    password: str = Field("", max_length=MAX_PASSWORD_CHARS)
    token: str = Field("", max_length=200)  # the one-time link's token, for a page or script that has it


class ChatRequest(BaseModel):
    session: str = Field(max_length=200)
    message: str = Field(max_length=MAX_MESSAGE_CHARS * 2)  # the service gives the precise reason


@dataclass
class OneTimeLogin:
    """With no accounts on a loopback bind: the token of the link `hanrag serve` printed, good
    for one login as `user`."""

    token: str
    user: str
    used: bool = False

    def redeem(self, offered: str) -> bool:
        if self.used or not offered or not hmac.compare_digest(offered.encode(), self.token.encode()):
            return False
        self.used = True
        return True


def create_app(settings: Settings, pipeline: Ingestion, chat: ChatService, history: HistoryStore,
               accounts: Accounts, one_time: OneTimeLogin | None = None,
               throttle: LoginThrottle | None = None) -> FastAPI:
    """The app over one HANRAG_HOME: uploads go to `pipeline` (one worker thread, in order), questions
    to `chat`, logins to `accounts`. `pipeline.serve.local_app` builds it on the local runner."""
    registry = pipeline.registry
    worker = IngestWorker(pipeline)
    uploads = settings.home / "uploads"
    lifetime = settings.session_hours * 3600
    throttle = throttle or LoginThrottle()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        pipeline.close_interrupted_runs()
        worker.start()
        yield
        worker.stop()

    # No Swagger page: FastAPI's loads its script from a CDN. The schema itself stays at /api/openapi.json.
    app = FastAPI(title="hanrag", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.worker = worker
    app.state.chat = chat
    app.state.one_time = one_time
    app.add_middleware(RequestGuard, allowed_hosts=settings.allowed_hosts,
                       body_limit=lambda path: settings.max_upload_bytes if path == "/api/documents" else JSON_LIMIT)

    @app.exception_handler(PipelineError)
    async def pipeline_error(request: Request, error: PipelineError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=400)

    @app.exception_handler(MultiPartException)
    async def upload_error(request: Request, error: MultiPartException) -> JSONResponse:
        return JSONResponse({"detail": error.message}, status_code=413 if isinstance(error, FileTooLarge) else 400)

    def current_user(request: Request) -> str:
        user = accounts.session_user(request.cookies.get(COOKIE, ""))
        if user is None:
            raise HTTPException(401, "로그인이 필요합니다 (not logged in: POST /api/login "
                                     "{\"user\": …, \"password\": …} first)")
        return user

    def start_session(user: str, request: Request, response: Response) -> None:
        response.set_cookie(COOKIE, accounts.open_session(user, lifetime), httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", max_age=int(lifetime), path="/")

    # ------------------------------------------------------------------ login

    @app.get("/api/auth")
    def auth_mode() -> dict:
        """How this server is logged into, for the login form: a password, or the printed link."""
        return {"mode": "password" if accounts.any() else "link"}

    @app.post("/api/login")
    def login(body: LoginRequest, request: Request, response: Response) -> dict:
        if body.token:
            if one_time is None or not one_time.redeem(body.token):
                raise HTTPException(401, "로그인 링크가 맞지 않거나 이미 쓰였습니다 "
                                         "(the login token is wrong or was used; restart hanrag serve for a new one)")
            start_session(one_time.user, request, response)
            return {"user": one_time.user}
        name = body.user.strip().lower()
        address = request.client.host if request.client else ""
        wait = throttle.wait_seconds(name, address)
        if wait > 0:
            raise HTTPException(429, f"로그인 실패가 너무 많습니다. {wait / 60:.0f}분 뒤에 다시 하세요 "
                                     "(too many failed logins; try again later)",
                                headers={"Retry-After": str(int(wait) + 1)})
        if not accounts.check(name, body.password):
            throttle.failed(name, address)
            hint = "" if accounts.any() else " — 계정이 없습니다: hanrag serve가 출력한 링크로 여세요"
            raise HTTPException(401, f"사용자 이름이나 비밀번호가 맞지 않습니다{hint} (wrong user name or password)")
        throttle.succeeded(name)
        start_session(name, request, response)
        return {"user": name}

    @app.post("/api/logout")
    def logout(request: Request, response: Response) -> dict:
        accounts.close_session(request.cookies.get(COOKIE, ""))
        response.delete_cookie(COOKIE, path="/")
        return {"user": None}

    @app.get("/api/me")
    def me(user: str = Depends(current_user)) -> dict:
        return {"user": user}

    # ------------------------------------------------------------------ documents and runs

    @app.post("/api/documents", status_code=202)
    async def upload(request: Request, user: str = Depends(current_user)) -> dict:
        """Each file becomes a queued run; the response names the runs without waiting for them. The
        whole upload is read (and every name checked) before any file is queued."""
        received = await read_upload(request, settings.max_file_bytes)
        try:
            staged = await run_in_threadpool(_stage_files, received, uploads / user)
        finally:
            for item in received:
                await item.file.close()
        for source, _, run_id in staged:
            pipeline.queue(user, source, run_id)  # listed as queued until the worker takes it
        return {"runs": [worker.submit(user, source, path, run_id).to_dict() for source, path, run_id in staged]}

    @app.get("/api/documents")
    def documents(user: str = Depends(current_user)) -> dict:
        return {"documents": list(registry.documents(user))}

    @app.delete("/api/documents/{document_id}")
    def delete_document(document_id: str, user: str = Depends(current_user)) -> dict:
        found = next((d for d in registry.documents(user) if d["document_id"] == document_id), None)
        if found is None:
            raise HTTPException(404, f"no document {document_id!r} for user {user}")
        removed = pipeline.delete(user, found["source"])
        return {"document_id": document_id, "source": found["source"], "deleted": True, "chunks": removed or 0}

    @app.get("/api/runs")
    def runs(limit: int = 50, user: str = Depends(current_user)) -> dict:
        recorded = registry.recent_runs(min(max(limit, 1), 500), user)
        live = {q.run_id: q for q in worker.pending(user)}
        known = {r.run_id for r in recorded}
        waiting = [q.to_dict() for q in live.values() if q.run_id not in known]
        shown = [{**_run_json(r), **(live[r.run_id].progress() if r.status == "running" and r.run_id in live else {})}
                 for r in recorded]
        return {"runs": waiting + shown}

    # ------------------------------------------------------------------ chat and history

    @app.post("/api/chat")
    def chat_turn(body: ChatRequest, user: str = Depends(current_user)) -> StreamingResponse:
        """Server-Sent Events: `token` events as the answer is written, then one `final` event with
        the whole answer, its citations (with passages) and the query searched; `error` if it fails."""
        session = validate_session_id(body.session)
        checked_message(body.message)
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
    def page(request: Request, token: str = "") -> Response:
        """The page; opened through the one-time link, it logs in first and drops the token from the URL."""
        if token:
            if one_time is None or not one_time.redeem(token):
                return RedirectResponse("/?login=expired", status_code=303)
            redirect = RedirectResponse("/", status_code=303)
            start_session(one_time.user, request, redirect)
            return redirect
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


def _stage_files(received: list[UploadedFile], folder: Path) -> list[tuple[str, Path, str]]:
    """Each file into a folder of its own run, owner-only; all of them or, on a failure, none."""
    staged: list[tuple[str, Path, str]] = []
    try:
        for item in received:
            run_id = uuid.uuid4().hex[:16]
            path = folder / run_id / Path(item.source).name
            path.parent.mkdir(parents=True, mode=0o700)
            with path.open("wb") as out:
                shutil.copyfileobj(item.file.file, out, 1 << 20)
            staged.append((item.source, path, run_id))
    except BaseException:
        for _, path, _ in staged:
            shutil.rmtree(path.parent, ignore_errors=True)
        raise
    return staged
