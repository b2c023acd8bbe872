"""`hanrag serve`'s JSON API: each endpoint, Server-Sent Events streaming through a real uvicorn on a
loopback port, and isolation — user b never sees user a's documents, runs or history."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from chat.answer import NOT_FOUND
from chat.server import COOKIE
from pipeline.adapters.local.accounts import ScryptCost, SqliteAccounts
from pipeline.adapters.local.database import Database
from pipeline.config import Settings
from pipeline.serve import local_app
from tests.conftest import BANK, FINTECH, FIXTURES, SAMPLES

WAIT_SECONDS = 600  # an upper bound for a run on a busy 2-core machine, not a speed assertion


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, dict]]:
    event = None
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event, json.loads(line[6:])


def wait_for_run(client, run_id: str) -> dict:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        run = next((r for r in client.get("/api/runs").json()["runs"] if r["run_id"] == run_id), None)
        assert run is not None, f"run {run_id} is not listed"
        if run["status"] not in ("queued", "running"):
            return run
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not finish")


def fintech_document(client) -> dict:
    return next(d for d in client.get("/api/documents").json()["documents"] if d["source"] == FINTECH)


BASE = "http://127.0.0.1:8000"  # the Host a browser on this machine sends; `testserver` is not allowed
PASSWORDS = {"alice": "alice의 비밀번호", "bob": "bob-password-1"}
CHEAP = ScryptCost(n=2**12)  # the stored cost is read back at login; the default's is checked in test_serve_security


def login(client, user: str) -> None:
    response = client.post("/api/login", json={"user": user, "password": PASSWORDS[user]})
    assert response.status_code == 200 and response.json() == {"user": user}


def add_accounts(home: Path) -> None:
    accounts = SqliteAccounts(Database(home / "hanrag.db"), CHEAP)
    for user, password in PASSWORDS.items():
        if user not in {u["user"] for u in accounts.users()}:
            accounts.add(user, password)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("serve-home")


@pytest.fixture(scope="module")
def app(home, embedder):
    add_accounts(home)
    return local_app(Settings(home=home), embedder=embedder)


@pytest.fixture(scope="module")
def alice(app):
    with TestClient(app, base_url=BASE) as client:  # runs the lifespan: the ingest worker starts
        login(client, "alice")
        yield client


@pytest.fixture(scope="module")
def bob(app, alice):
    client = TestClient(app, base_url=BASE)
    login(client, "bob")
    return client


@pytest.fixture(scope="module")
def fintech_run(alice, tmp_path_factory):
    with (SAMPLES / FINTECH).open("rb") as pdf:
        response = alice.post("/api/documents", files=[("files", (FINTECH, pdf, "application/pdf"))])
    assert response.status_code == 202
    queued = response.json()["runs"]
    assert [r["source"] for r in queued] == [FINTECH] and queued[0]["status"] in ("queued", "running")
    return wait_for_run(alice, queued[0]["run_id"])


# ---------------------------------------------------------------------- login


def test_the_page_and_login(app, alice):
    page = alice.get("/")
    assert page.status_code == 200 and "문서 올리기" in page.text and "/static/app.js" in page.text
    assert alice.get("/static/app.js").status_code == 200
    assert alice.get("/api/me").json() == {"user": "alice"}

    anonymous = TestClient(app, base_url=BASE)
    assert anonymous.get("/api/documents").status_code == 401
    assert anonymous.post("/api/login", json={"user": "alice"}).status_code == 401  # a name alone is not enough
    assert anonymous.post("/api/login", json={"user": "../alice", "password": "x" * 8}).status_code == 401
    anonymous.cookies.set(COOKIE, "A" * 43)  # a guessed token
    assert anonymous.get("/api/me").status_code == 401


# ---------------------------------------------------------------------- documents and runs


def test_an_upload_becomes_a_run_then_a_document(alice, fintech_run):
    assert fintech_run["status"] == "succeeded", fintech_run["reason"]
    assert set(fintech_run["durations"]) == {"extract", "chunk", "embed", "index", "summarize", "notify"}
    documents = alice.get("/api/documents").json()["documents"]
    assert [d["source"] for d in documents] == [FINTECH]
    assert documents[0]["pages"] == 6 and documents[0]["chunks"] > 0 and "핀테크" in documents[0]["summary"]


def test_a_failed_run_says_why(alice, tmp_path):
    encrypted = tmp_path / "잠긴 파일.pdf"
    shutil.copy(FIXTURES / "encrypted-file.pdf", encrypted)
    with encrypted.open("rb") as pdf:
        run_id = alice.post("/api/documents", files=[("files", (encrypted.name, pdf))]).json()["runs"][0]["run_id"]
    run = wait_for_run(alice, run_id)
    assert run["status"] == "failed" and "encrypted PDF" in run["reason"] and run["failed_stage"] == "extract"
    [listed] = [d for d in alice.get("/api/documents").json()["documents"] if d["source"] == encrypted.name]
    assert listed["last_status"] == "failed" and "encrypted PDF" in listed["last_reason"]
    assert listed["version"] == "" and listed["chunks"] == 0  # listed with its reason, nothing searchable


def test_an_upload_with_a_hostile_name_is_refused(alice):
    response = alice.post("/api/documents", files=[("files", ("../../etc/passwd", b"x"))])
    assert response.status_code == 400 and "'..' is not allowed" in response.json()["detail"]


# ---------------------------------------------------------------------- chat and history


def chat(client, session: str, message: str) -> list[tuple[str, dict]]:
    with client.stream("POST", "/api/chat", json={"session": session, "message": message}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        return list(sse_events(response.iter_lines()))


def test_chat_streams_tokens_then_the_answer_with_citations(alice, fintech_run):
    events = chat(alice, "s1", "핀테크 혁신펀드 2호 펀드는 얼마 규모로 조성되나요?")
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "final" and set(kinds[:-1]) == {"token"} and len(kinds) > 2
    final = events[-1][1]
    assert "".join(data["text"] for _, data in events[:-1]) == final["answer"]
    assert "5,000억원" in final["answer"]
    assert final["citations"][0]["source"] == FINTECH and final["citations"][0]["page"] == 2
    assert "5,000억원" in final["citations"][0]["text"]  # the passage, for the page to show

    follow_up = chat(alice, "s1", "그럼 투자 대상은?")[-1][1]
    assert "펀드" in follow_up["query"] and follow_up["citations"][0]["source"] == FINTECH


def test_history_is_listed_restored_and_cleared(alice, fintech_run):
    chat(alice, "s2", "2호 펀드는 얼마 규모로 조성되나요?")
    messages = alice.get("/api/history", params={"session": "s2"}).json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["text"] == "2호 펀드는 얼마 규모로 조성되나요?"
    assert messages[1]["citations"][0]["source"] == FINTECH
    assert "s2" in alice.get("/api/sessions").json()["sessions"]
    assert alice.delete("/api/history", params={"session": "s2"}).json()["deleted"] == 2
    assert alice.get("/api/history", params={"session": "s2"}).json()["messages"] == []
    assert alice.get("/api/history", params={"session": "../x"}).status_code == 400


def test_summaries_on_demand(alice, fintech_run):
    summary = fintech_document(alice)["summary"]
    reply = chat(alice, "s3", "이 문서 요약해줘")[-1][1]
    assert reply["answer"] == f"「{FINTECH}」 요약: {summary}"


# ---------------------------------------------------------------------- isolation


def test_user_b_never_sees_user_a(alice, bob, fintech_run):
    chat(alice, "shared-name", "2호 펀드는 얼마 규모로 조성되나요?")
    assert bob.get("/api/documents").json()["documents"] == []
    assert bob.get("/api/runs").json()["runs"] == []
    assert bob.get("/api/history", params={"session": "shared-name"}).json()["messages"] == []
    assert bob.get("/api/sessions").json()["sessions"] == []
    answer = chat(bob, "bob-own", "핀테크 혁신펀드 2호 펀드는 얼마 규모로 조성되나요?")[-1][1]
    assert answer["answer"] == "문서에서 질문에 대한 답을 찾지 못했습니다." == NOT_FOUND and answer["citations"] == []
    document_id = fintech_document(alice)["document_id"]
    assert bob.delete(f"/api/documents/{document_id}").status_code == 404
    assert bob.delete("/api/history", params={"session": "shared-name"}).json()["deleted"] == 0
    assert len(alice.get("/api/history", params={"session": "shared-name"}).json()["messages"]) == 2


# ---------------------------------------------------------------------- streaming through a real server


class GatedLLM:
    """Writes its first token, then waits until the test has read it, then finishes."""

    def __init__(self) -> None:
        self.first_token_read = threading.Event()

    def complete(self, system: str, prompt: str) -> str:
        return "핀테크 혁신펀드 2호 펀드 규모"

    def stream(self, system: str, prompt: str) -> Iterator[str]:
        yield "2호 펀드는"
        assert self.first_token_read.wait(30)
        yield " 5,000억원 규모입니다 [1]"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_first_token_arrives_before_the_answer_is_written(home, embedder, fintech_run):
    llm = GatedLLM()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(local_app(Settings(home=home), embedder=embedder, llm=llm),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            login(client, "alice")
            with client.stream("POST", "/api/chat", json={"session": "live", "message": "그 펀드 규모는?"}) as response:
                events = sse_events(response.iter_lines())
                assert next(events) == ("token", {"text": "2호 펀드는"})  # while the model is still writing
                llm.first_token_read.set()
                rest = list(events)
        assert rest[-1][0] == "final" and rest[-1][1]["answer"] == "2호 펀드는 5,000억원 규모입니다 [1]"
        assert rest[-1][1]["citations"][0]["source"] == FINTECH
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_cli_and_the_server_ingest_into_one_home_at_once(home, alice, fintech_run, tmp_path):
    notice = tmp_path / "notice"
    notice.mkdir()
    (notice / "출입 안내.txt").write_text("모든 방문객은 안내 데스크에서 출입증을 받아야 합니다.\n", encoding="utf-8")
    hanrag = Path(sys.executable).parent / "hanrag"
    cli = subprocess.Popen([str(hanrag), "ingest", str(notice), "--user", "alice", "--json"],
                           env={**os.environ, "HANRAG_HOME": str(home)}, stdout=subprocess.PIPE, text=True)
    with (SAMPLES / BANK).open("rb") as pdf:
        run_id = alice.post("/api/documents", files=[("files", (BANK, pdf))]).json()["runs"][0]["run_id"]
    assert wait_for_run(alice, run_id)["status"] == "succeeded"
    out, _ = cli.communicate(timeout=WAIT_SECONDS)
    assert cli.returncode == 0 and json.loads(out)["status"] == "succeeded"
    sources = {d["source"] for d in alice.get("/api/documents").json()["documents"]}
    assert {FINTECH, BANK, "출입 안내.txt"} <= sources
    assert "출입 안내.txt" in {r["source"] for r in alice.get("/api/runs").json()["runs"]}


def test_deleting_a_document_removes_it_from_answers(alice, fintech_run):
    document_id = fintech_document(alice)["document_id"]
    deleted = alice.delete(f"/api/documents/{document_id}").json()
    assert deleted["deleted"] and deleted["chunks"] > 0 and deleted["source"] == FINTECH
    assert FINTECH not in {d["source"] for d in alice.get("/api/documents").json()["documents"]}
    citations = chat(alice, "after", "2호 펀드는 얼마 규모로 조성되나요?")[-1][1]["citations"]
    assert FINTECH not in {c["source"] for c in citations}


def test_hanrag_serve_refuses_an_llm_it_cannot_reach_with_a_reason(monkeypatch, capsys):
    from pipeline.cli import main

    monkeypatch.setenv("HANRAG_LLM", "openai")
    monkeypatch.delenv("HANRAG_LLM_URL", raising=False)
    assert main(["serve", "--port", "0"]) == 2
    assert "HANRAG_LLM=openai needs HANRAG_LLM_URL" in capsys.readouterr().err
