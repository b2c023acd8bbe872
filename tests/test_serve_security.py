"""`hanrag serve` tried the way an attacker would (issue 13): logins that need a password and end on
logout, a one-time link when there are no accounts, hostile Host and Origin headers, an oversize
upload streamed at the server, a multi-file upload with one bad name."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from chat.guard import LoginThrottle
from chat.server import COOKIE, OneTimeLogin
from pipeline.adapters.local.accounts import ScryptCost, SqliteAccounts
from pipeline.adapters.local.database import Database
from pipeline.config import Settings
from pipeline.serve import local_app
from tests.conftest import run_cli

BASE = "http://127.0.0.1:8000"
CHEAP = ScryptCost(n=2**12)  # verification reads the cost stored with the hash; tests need not pay 128 MiB
PASSWORD = "한강 뷰 비밀번호 42"


def accounts_in(home: Path) -> SqliteAccounts:
    return SqliteAccounts(Database(home / "hanrag.db"), CHEAP)


@pytest.fixture
def make_app(tmp_path, embedder):
    """An app over a fresh home with the account kim; the ingest worker runs while the client is open."""
    def make(**settings):
        home = tmp_path / "home"
        accounts = accounts_in(home)
        if not accounts.any():
            accounts.add("kim", PASSWORD)
        throttle = settings.pop("throttle", LoginThrottle(pause=0))
        return local_app(Settings(home=home, **settings), embedder=embedder, throttle=throttle)
    return make


def logged_in(app) -> TestClient:
    client = TestClient(app, base_url=BASE)
    assert client.post("/api/login", json={"user": "kim", "password": PASSWORD}).status_code == 200
    return client


# ---------------------------------------------------------------------- accounts and sessions


def test_accounts_from_the_cli_and_passwords_stored_memory_hard(tmp_path):
    home = tmp_path / "home"
    code, out, err = _cli_with_stdin(home, "correct horse battery\n", "user", "add", "kim", "--password-stdin")
    assert code == 0, err
    assert _cli_with_stdin(home, "short\n", "user", "add", "lee", "--password-stdin")[0] == 2  # under 8 characters
    assert _cli_with_stdin(home, "again and again\n", "user", "add", "kim", "--password-stdin")[0] == 2  # exists
    code, out, _ = run_cli(home, "user", "list")
    assert code == 0 and out.startswith("kim ") and "lee" not in out

    stored = Database(home / "hanrag.db").execute("SELECT password_hash FROM accounts WHERE user_id = 'kim'")[0][0]
    assert stored.startswith("scrypt$131072$8$1$")  # 128 MiB per check: OWASP's minimum for scrypt
    assert b"correct horse" not in (home / "hanrag.db").read_bytes()
    accounts = accounts_in(home)
    assert accounts.check("kim", "correct horse battery") and not accounts.check("kim", "correct horse batter")

    assert _cli_with_stdin(home, "a new password\n", "user", "passwd", "kim", "--password-stdin")[0] == 0
    assert accounts.check("kim", "a new password")
    assert run_cli(home, "user", "remove", "kim")[0] == 0
    assert not accounts.check("kim", "a new password") and run_cli(home, "user", "remove", "kim")[0] == 2
    assert _cli_with_stdin(home, "kim's password\n", "user", "add", "kim\n", "--password-stdin")[0] == 2


def _cli_with_stdin(home: Path, text: str, *args: str):
    import io

    previous, sys.stdin = sys.stdin, io.StringIO(text)
    try:
        return run_cli(home, *args)
    finally:
        sys.stdin = previous


def test_a_session_is_random_server_side_and_ends_on_logout_and_on_a_new_password(make_app, tmp_path):
    app = make_app()
    first, second = logged_in(app), logged_in(app)
    token = first.cookies[COOKIE]
    assert token != second.cookies[COOKIE] and len(token) >= 40
    assert token not in str(Database(tmp_path / "home" / "hanrag.db").execute("SELECT * FROM login_sessions"))
    assert first.get("/api/me").json() == {"user": "kim"}

    first.post("/api/logout")
    stolen = TestClient(app, base_url=BASE)
    stolen.cookies.set(COOKIE, token)  # the cookie someone copied before the logout
    assert stolen.get("/api/me").status_code == 401

    assert second.get("/api/me").status_code == 200
    accounts_in(tmp_path / "home").set_password("kim", "an entirely new one")
    assert second.get("/api/me").status_code == 401


def test_a_session_expires(make_app):
    client = logged_in(make_app(session_hours=1 / 3600))  # one second
    assert client.get("/api/me").status_code == 200
    time.sleep(1.2)
    assert client.get("/api/me").status_code == 401


def test_failed_logins_are_slowed_then_stopped(make_app):
    app = make_app(throttle=LoginThrottle(max_failures=5, pause=0.3))
    client = TestClient(app, base_url=BASE)
    started = time.monotonic()
    for _ in range(5):
        wrong = client.post("/api/login", json={"user": "kim", "password": "guess guess"})
        assert wrong.status_code == 401 and "비밀번호가 맞지 않습니다" in wrong.json()["detail"]
    assert time.monotonic() - started >= 5 * 0.3
    stopped = client.post("/api/login", json={"user": "kim", "password": PASSWORD})  # even the right one
    assert stopped.status_code == 429 and int(stopped.headers["retry-after"]) > 0
    assert "로그인 실패가 너무 많습니다" in stopped.json()["detail"]
    assert client.post("/api/login", json={"user": "nobody", "password": "x" * 8}).status_code == 401


# ---------------------------------------------------------------------- one person, no accounts


def test_without_accounts_only_the_one_time_link_logs_in(tmp_path, embedder):
    link = OneTimeLogin("the-printed-token", "kim")
    app = local_app(Settings(home=tmp_path / "home"), embedder=embedder, one_time=link)
    visitor = TestClient(app, base_url=BASE, follow_redirects=False)
    assert visitor.get("/api/auth").json() == {"mode": "link"}
    assert visitor.get("/api/documents").status_code == 401
    assert visitor.post("/api/login", json={"user": "kim", "password": "anything at all"}).status_code == 401
    assert visitor.get("/?token=a-guess").headers["location"] == "/?login=expired"
    assert COOKIE not in visitor.cookies

    opened = visitor.get("/?token=the-printed-token")
    assert opened.status_code == 303 and opened.headers["location"] == "/"  # the token leaves the address bar
    assert visitor.get("/api/me").json() == {"user": "kim"}
    again = TestClient(app, base_url=BASE, follow_redirects=False)
    assert again.get("/?token=the-printed-token").headers["location"] == "/?login=expired"  # one time only


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hanrag_serve_prints_a_login_link_and_serves_nothing_without_it(tmp_path):
    port = free_port()
    hanrag = Path(sys.executable).parent / "hanrag"
    server = subprocess.Popen([str(hanrag), "serve", "--port", str(port), "--user", "kim"],
                              env={**os.environ, "HANRAG_HOME": str(tmp_path / "home")},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = [server.stdout.readline() for _ in range(3)]
        url = next(line.strip() for line in lines if "?token=" in line)
        assert url.startswith(f"http://127.0.0.1:{port}/?token=") and len(url.split("=", 1)[1]) >= 30
        _wait_for_port(port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as stranger:
            assert stranger.get("/api/documents").status_code == 401
            assert stranger.get("/?token=wrong", follow_redirects=False).headers["location"] == "/?login=expired"
        with httpx.Client(timeout=30, follow_redirects=True) as owner:
            assert owner.get(url).status_code == 200
            assert owner.get(f"http://127.0.0.1:{port}/api/me").json() == {"user": "kim"}
        assert (tmp_path / "home").stat().st_mode & 0o777 == 0o700
    finally:
        server.terminate()
        server.wait(30)


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError("hanrag serve did not start listening")


def test_a_network_bind_without_accounts_refuses_to_start_and_says_why(tmp_path):
    code, out, err = run_cli(tmp_path / "home", "serve", "--host", "0.0.0.0", "--port", str(free_port()))
    assert code == 2 and "hanrag user add" in err and "계정이 없어" in err and "?token=" not in out


# ---------------------------------------------------------------------- Host and Origin


def test_a_hostile_host_is_refused_before_anything_runs(make_app):
    app = make_app()
    client = TestClient(app, base_url="http://attacker.example:8000")  # DNS rebinding: the page's own name
    for response in (client.get("/"), client.get("/api/auth"),
                     client.post("/api/login", json={"user": "kim", "password": PASSWORD})):
        assert response.status_code == 400 and "HANRAG_ALLOWED_HOSTS" in response.json()["detail"]
    assert COOKIE not in client.cookies
    allowed = make_app(allowed_hosts=("rag.example.org",))
    assert TestClient(allowed, base_url="https://rag.example.org").get("/api/auth").status_code == 200
    assert TestClient(allowed, base_url="http://[::1]:8000").get("/api/auth").status_code == 200


def test_a_cross_origin_post_is_refused_and_a_same_origin_one_works(make_app):
    with TestClient(make_app(), base_url=BASE) as client:
        assert client.post("/api/login", json={"user": "kim", "password": PASSWORD}).status_code == 200
        note = [("files", ("메모.txt", "회의는 목요일 오후 세 시에 열립니다.".encode()))]
        for hostile in ({"Origin": "http://127.0.0.1:9999"},  # another port on this machine: the same "site"
                        {"Origin": "http://attacker.example"}, {"Origin": "null"},
                        {"Sec-Fetch-Site": "same-site"}):  # a browser that sent no Origin
            refused = client.post("/api/documents", files=note, headers=hostile)
            assert refused.status_code == 403 and "다른 사이트" in refused.json()["detail"]
            assert client.delete("/api/history", params={"session": "s"}, headers=hostile).status_code == 403
        assert client.get("/api/runs").json()["runs"] == []
        assert client.post("/api/documents", files=note, headers={"Origin": BASE}).status_code == 202
        assert client.post("/api/documents", files=note).status_code == 202  # a script: no Origin, no Sec-Fetch
        assert len(client.get("/api/runs").json()["runs"]) == 2


def test_security_headers_and_no_third_party_assets(make_app):
    client = TestClient(make_app(), base_url=BASE)
    for path in ("/", "/static/app.js", "/api/auth", "/api/me"):
        headers = client.get(path).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "default-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"
    assert client.get("/api/auth").headers["cache-control"] == "no-store"  # answers about documents stay uncached
    assert client.get("/api/docs").status_code == 404  # FastAPI's Swagger page loads from a CDN
    static = Path(__file__).resolve().parent.parent / "chat" / "static"
    pages = [path for path in static.rglob("*") if path.suffix in (".html", ".js", ".css")]
    assert {path.name for path in pages} >= {"index.html", "app.js", "style.css"}
    for page in pages:  # fonts are binary and name their foundry's URL, which nothing loads
        assert "http://" not in page.read_text() and "https://" not in page.read_text(), page.name


# ---------------------------------------------------------------------- uploads


def multipart_stream(name: str, blocks: int, block: bytes, sent: list[int], boundary: str = "hanragBoundary"):
    yield (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
           "Content-Type: application/octet-stream\r\n\r\n").encode()
    for _ in range(blocks):
        sent.append(len(block))
        yield block
    yield f"\r\n--{boundary}--\r\n".encode()


def send_until_answered(url: str, cookie: str, body: Iterator[bytes]) -> str:
    """POST a chunked body over a raw socket, stopping as soon as the server answers; its answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall((f"POST /api/documents HTTP/1.1\r\nHost: {host}:{port}\r\nCookie: {COOKIE}={cookie}\r\n"
                            "Content-Type: multipart/form-data; boundary=hanragBoundary\r\n"
                            "Transfer-Encoding: chunked\r\n\r\n").encode())
        for piece in body:
            if select.select([connection], [], [], 0)[0]:
                break
            try:
                connection.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            except OSError:  # closed after answering
                break
        connection.settimeout(30)
        return read_response(connection)


def read_response(connection: socket.socket) -> str:
    """The whole answer: its headers, then as many body bytes as Content-Length says (a busy server
    may send the two in separate packets)."""
    answer = b""
    while b"\r\n\r\n" not in answer and (piece := connection.recv(65536)):
        answer += piece
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length and (piece := connection.recv(65536)):
        body += piece
    return (head + b"\r\n\r\n" + body).decode("utf-8", "replace")


def disk_use(*folders: Path) -> int:
    """Bytes in files under `folders`, counting the temporary files already unlinked but still open in
    this process (the form parser's spooled parts are such files: O_TMPFILE, never in a listing)."""
    listed = sum(p.stat().st_size for f in folders if f.exists() for p in f.rglob("*") if p.is_file())
    hidden = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.endswith("(deleted)") and any(target.startswith(str(f)) for f in folders):
                hidden += os.stat(f"/proc/self/fd/{fd}").st_size
        except OSError:
            continue
    return listed + hidden


@contextlib.contextmanager
def running(app) -> Iterator[str]:
    """The app under a real uvicorn on a loopback port: it reads the body as the client sends it."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        _wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_an_oversize_upload_is_refused_while_it_streams(make_app, tmp_path, monkeypatch):
    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))  # where the form parser spools file parts
    uploads = tmp_path / "home" / "uploads"
    sent: list[int] = []
    peak = [0]

    def measured():
        for piece in multipart_stream("큰 파일.bin", 300, b"\0" * 2**20, sent):  # 300 MB if all were sent
            peak[0] = max(peak[0], disk_use(spool, uploads))
            yield piece

    with running(make_app(max_file_bytes=2 * 2**20)) as url, httpx.Client(base_url=url, timeout=60) as client:
        assert client.post("/api/login", json={"user": "kim", "password": PASSWORD}).status_code == 200
        answer = send_until_answered(url, client.cookies[COOKIE], measured())
        assert answer.startswith("HTTP/1.1 413") and "파일이 너무 큽니다" in answer
        assert sum(sent) <= 12 * 2**20  # refused near the 2 MB limit (plus socket buffers), not after 300 MB
        assert peak[0] <= 3 * 2**20
        assert disk_use(spool, uploads) == 0  # the spooled part is gone
        assert client.get("/api/runs").json()["runs"] == []

    client = logged_in(make_app())
    declared = client.post("/api/documents", content=b"x" * 10,
                           headers={"Content-Type": "multipart/form-data; boundary=b", "Content-Length": str(2**40)})
    assert declared.status_code == 413  # a body announced as 1 TB is refused before a byte is read


def test_one_bad_name_refuses_the_whole_upload(make_app, tmp_path):
    with TestClient(make_app(), base_url=BASE) as client:
        assert client.post("/api/login", json={"user": "kim", "password": PASSWORD}).status_code == 200
        response = client.post("/api/documents", files=[("files", ("good.txt", "좋은 문서입니다.".encode())),
                                                        ("files", ("../bad.txt", b"x"))])
        assert response.status_code == 400 and "'..' is not allowed" in response.json()["detail"]
        time.sleep(0.5)  # the worker would have picked good.txt up by now
        assert client.get("/api/runs").json()["runs"] == []
        assert client.get("/api/documents").json()["documents"] == []
        assert disk_use(tmp_path / "home" / "uploads") == 0


def test_chat_and_search_inputs_are_bounded(make_app):
    client = logged_in(make_app())
    with client.stream("POST", "/api/chat", json={"session": "s", "message": "가" * 5000}) as response:
        body = response.read().decode()
    assert response.status_code in (400, 422) and ("characters" in body or "자" in body)
    assert client.post("/api/chat", json={"session": "s\n", "message": "안녕"}).status_code == 400
    assert client.post("/api/chat", content=b"{" + b" " * 100_000 + b"}",
                       headers={"Content-Type": "application/json"}).status_code == 413
