"""What only the OpenSearch index has, on a real node: nori's token output, the per-user alias over
one index per embedding model (and `reembed`), the CLI with HANRAG_INDEX=opensearch, and faults —
the node paused mid-ingest, a 429, a bulk request with rejected items — where the file fails with a
reason or is retried, the previous version stays searchable, and nothing is doubled.

The behaviour both indices share is in tests/test_index_contract.py.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import uuid

import numpy as np
import pytest
from conftest import FINTECH, SAMPLES, TUNNEL, make_runner, run_cli

from pipeline.adapters.opensearch import OpenSearchIndex, alias_name, index_body, physical_name
from pipeline.config import IndexSettings, Settings
from pipeline.errors import PipelineError, TransientError
from pipeline.models import Chunk, DocumentRef
from pipeline.options import SearchOptions
from pipeline.runner import LocalRunner


def tokens(client, text: str, **analyzer) -> list[str]:
    answer = client.transport.perform_request("POST", "/_analyze", body={**analyzer, "text": text})
    return [t["token"] for t in answer["tokens"]]


def new_user() -> str:
    return f"os-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------------------------------- nori

def test_nori_splits_compounds_and_drops_particles_under_the_names_amazon_uses(opensearch_node):
    client = opensearch_node.client()
    mixed = {"tokenizer": {"type": "nori_tokenizer", "decompound_mode": "mixed"}}
    assert tokens(client, "핀테크투자", **mixed) == ["핀테크", "투자"]  # not in Lucene's dictionary: two words
    assert tokens(client, "가곡역", **mixed) == ["가곡역", "가곡", "역"]  # a dictionary compound: whole and split
    # the mapping's own analyzer (nori_part_of_speech drops the particle 은, nori_readingform keeps Hangul)
    name = f"analyzer-check-{uuid.uuid4().hex[:6]}"
    client.indices.create(index=name, body=index_body(4, "check", replicas=0))
    try:
        analyzed = client.indices.analyze(index=name, body={"analyzer": "korean", "text": "은행은 漢字"})
        assert [t["token"] for t in analyzed["tokens"]] == ["은행", "한자"]
    finally:
        client.indices.delete(index=name)
    assert tokens(client, "은행은", analyzer="nori") == ["은행"]


# ---------------------------------------------------------------------------------------- aliases and models

class RenamedEmbedder:
    """The real model under another name: what a model change looks like to the index."""

    def __init__(self, embedder, name: str) -> None:
        self._embedder, self.name, self.dim = embedder, name, embedder.dim

    def embed_passages(self, texts):
        return self._embedder.embed_passages(texts)

    def embed_query(self, text):
        return self._embedder.embed_query(text)


def os_settings(home, node) -> Settings:
    return Settings(home=home, index=IndexSettings(kind="opensearch", url=node.url, replicas=0, timeout=5))


def test_each_user_reads_an_alias_over_an_index_named_for_the_model(opensearch_node, embedder, home):
    user = new_user()
    runner = LocalRunner.from_settings(os_settings(home, opensearch_node), embedder=embedder)
    [record] = runner.ingest(user, [(SAMPLES / FINTECH, FINTECH)])
    assert record.status == "succeeded", record.reason
    aliases = opensearch_node.client().indices.get_alias(name=alias_name(user))
    assert list(aliases) == [physical_name(user, embedder.name, embedder.dim)]
    assert f".{embedder.dim}" in next(iter(aliases)) and "e5-small" in next(iter(aliases))


def test_a_new_model_is_refused_until_reembed_moves_the_user_and_search_never_goes_empty(
        opensearch_node, embedder, home):
    user = new_user()
    old = LocalRunner.from_settings(os_settings(home, opensearch_node), embedder=embedder)
    for name in (FINTECH, TUNNEL):
        assert old.ingest(user, [(SAMPLES / name, name)])[0].status == "succeeded"
    new_model = RenamedEmbedder(embedder, "multilingual-e5-small v2")
    new = LocalRunner.from_settings(os_settings(home, opensearch_node), embedder=new_model)
    [refused] = new.ingest(user, [(SAMPLES / FINTECH, "again.pdf")])
    assert refused.status == "failed" and "hanrag reembed" in refused.reason

    query = "핀테크 혁신펀드"
    vector = embedder.embed_query(query)
    found: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            found.append(len(old.index.hybrid_search(user, query, vector, 5)))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert new.reembed(user) == 2
    finally:
        stop.set()
        reader.join()
    assert found and min(found) > 0  # never empty while the user moved
    client = opensearch_node.client()
    assert list(client.indices.get_alias(name=alias_name(user))) == [physical_name(user, new_model.name, embedder.dim)]
    assert not client.indices.exists(index=physical_name(user, embedder.name, embedder.dim))  # the old one is gone
    hits = new.index.hybrid_search(user, query, vector, 3)
    assert hits[0].source == FINTECH
    assert new.reembed(user) == 0  # already moved


# ---------------------------------------------------------------------------------------- the CLI

def test_the_cli_ingests_asks_searches_checks_and_deletes_against_opensearch(opensearch_node, home, monkeypatch):
    monkeypatch.setenv("HANRAG_INDEX", "opensearch")
    monkeypatch.setenv("HANRAG_OPENSEARCH_URL", opensearch_node.url)
    monkeypatch.setenv("HANRAG_OPENSEARCH_REPLICAS", "0")
    user = new_user()
    code, out, err = run_cli(home, "ingest", str(SAMPLES), "--user", user, "--json")
    assert code == 0, err
    assert {json.loads(line)["status"] for line in out.splitlines()} == {"succeeded"}
    code, out, _ = run_cli(home, "search", "터널 결로 대책", "--user", user, "--json")
    assert code == 0 and json.loads(out)[0]["source"] == TUNNEL
    code, out, _ = run_cli(home, "ask", "도로터널 결로 대책 가이드라인은 연장 몇 km 이상의 터널에 적용하나요?",
                           "--user", user, "--json")
    answer = json.loads(out)
    assert code == 0 and "1km" in answer["answer"]
    assert answer["citations"][0] == {**answer["citations"][0], "source": TUNNEL, "page": 3}
    code, out, _ = run_cli(home, "check", "--json")
    assert code == 0 and json.loads(out)["ok"], out
    code, out, _ = run_cli(home, "delete", TUNNEL, "--user", user, "--json")
    assert code == 0 and json.loads(out)["chunks"] > 0
    code, out, _ = run_cli(home, "search", "터널 결로 대책", "--user", user, "--json")
    assert TUNNEL not in {hit["source"] for hit in json.loads(out)}


# ---------------------------------------------------------------------------------------- faults

def plan(user: str, text: str, version: str, embedder, n: int = 3):
    ref = DocumentRef(user, "plan.txt", version * 64)
    chunks = [Chunk(chunk_id=f"{ref.document_id}-{i}", document_id=ref.document_id, version=ref.version,
                    source=ref.source, title="", page_start=i + 1, page_end=i + 1, heading="", kind="text",
                    text=f"{text} {i}쪽", tokens=10) for i in range(n)]
    return ref, chunks, embedder.embed_passages([c.text for c in chunks])


def searchable(index, user: str, embedder) -> list[str]:
    query = "사업 계획 예산"
    return sorted(h.text for h in index.hybrid_search(user, query, embedder.embed_query(query), 20))


def test_a_paused_node_fails_the_write_as_transient_and_the_retry_after_it_resumes_succeeds(
        opensearch_node, embedder, home, tmp_path):
    user = new_user()
    settings = os_settings(home, opensearch_node)
    first = tmp_path / "plan.txt"
    first.write_text("2025년 사업 계획: 예산은 100억 원이다.", encoding="utf-8")
    resumed: list[float] = []

    def resume_then_wait(seconds: float) -> None:  # the runner's retry wait: the node comes back
        os.kill(opensearch_node.pid, signal.SIGCONT)
        resumed.append(seconds)

    runner = make_runner(home, embedder, index=LocalRunner.from_settings(settings, embedder=embedder).index,
                         sleep=resume_then_wait)
    assert runner.ingest(user, [(first, "plan.txt")])[0].status == "succeeded"
    first.write_text("2026년 사업 계획: 예산은 300억 원이다.", encoding="utf-8")

    original = runner.index.write_version

    def pause_then_write(*args):  # the node stops answering just as the index stage starts
        os.kill(opensearch_node.pid, signal.SIGSTOP)
        runner.index.write_version = original
        return original(*args)

    runner.index.write_version = pause_then_write
    try:
        [record] = runner.ingest(user, [(first, "plan.txt")])
    finally:
        os.kill(opensearch_node.pid, signal.SIGCONT)
    assert record.status == "succeeded", record.reason
    index_stage = next(s for s in record.stages if s.stage == "index")
    assert index_stage.attempts == 2 and resumed
    assert searchable(runner.index, user, embedder) == ["2026년 사업 계획: 예산은 300억 원이다."]
    assert runner.index.count(user) == 1


def test_a_node_that_stays_down_fails_the_file_with_a_reason_and_keeps_the_old_version(
        opensearch_node, embedder):
    user = new_user()
    index = OpenSearchIndex(opensearch_node.client(timeout=2), embedder.dim, embedder.name, replicas=0)
    index.replace_document(*plan(user, "2025년 사업 계획 예산", "1", embedder))
    os.kill(opensearch_node.pid, signal.SIGSTOP)
    try:
        with pytest.raises(TransientError, match="did not answer"):
            index.replace_document(*plan(user, "2026년 사업 계획 예산", "2", embedder))
    finally:
        os.kill(opensearch_node.pid, signal.SIGCONT)
    assert searchable(index, user, embedder) == [f"2025년 사업 계획 예산 {i}쪽" for i in range(3)]


def test_a_429_from_a_blocked_index_is_transient_and_leaves_the_old_version(opensearch_node, embedder):
    user = new_user()
    client = opensearch_node.client()
    index = OpenSearchIndex(client, embedder.dim, embedder.name, replicas=0)
    index.replace_document(*plan(user, "2025년 사업 계획 예산", "1", embedder))
    name = physical_name(user, embedder.name, embedder.dim)
    # what a domain does when its disk is full: writes blocked, answered with 429 (retry later)
    client.indices.put_settings(index=name, body={"index.blocks.read_only_allow_delete": True})
    try:
        with pytest.raises(TransientError, match="429"):
            index.replace_document(*plan(user, "2026년 사업 계획 예산", "2", embedder))
    finally:
        client.indices.put_settings(index=name, body={"index.blocks.read_only_allow_delete": None})
    assert searchable(index, user, embedder) == [f"2025년 사업 계획 예산 {i}쪽" for i in range(3)]
    index.replace_document(*plan(user, "2026년 사업 계획 예산", "2", embedder))  # the retry
    assert searchable(index, user, embedder) == [f"2026년 사업 계획 예산 {i}쪽" for i in range(3)]


def test_a_bulk_request_with_rejected_items_fails_alone_and_its_retry_doubles_nothing(opensearch_node, embedder):
    user = new_user()
    index = OpenSearchIndex(opensearch_node.client(), embedder.dim, embedder.name, replicas=0)
    index.replace_document(*plan(user, "2025년 사업 계획 예산", "1", embedder))
    ref, chunks, vectors = plan(user, "2026년 사업 계획 예산", "2", embedder)
    broken = np.array(vectors, copy=True)
    broken[1] = np.nan  # one chunk the node refuses (a vector must be finite); the others are written
    with pytest.raises(PipelineError, match="rejected 1 of 3 chunk"):
        index.replace_document(ref, chunks, broken)
    assert searchable(index, user, embedder) == [f"2025년 사업 계획 예산 {i}쪽" for i in range(3)]
    index.replace_document(ref, chunks, vectors)  # the same version again, whole
    assert searchable(index, user, embedder) == [f"2026년 사업 계획 예산 {i}쪽" for i in range(3)]
    assert index.count(user) == 3
    client = opensearch_node.client()
    client.indices.refresh(index=alias_name(user))
    raw = client.count(index=alias_name(user))["count"]
    assert raw == 3 + 1  # three chunks and the version pointer: the half-written attempt left nothing behind



def test_serve_uploads_and_answers_from_opensearch(opensearch_node, embedder, home):
    from fastapi.testclient import TestClient

    from pipeline.adapters.local.accounts import SqliteAccounts
    from pipeline.adapters.local.database import Database
    from pipeline.serve import local_app
    from tests.test_serve import BASE, CHEAP, chat, wait_for_run

    user = new_user()
    settings = os_settings(home, opensearch_node)
    SqliteAccounts(Database(settings.database_path), CHEAP).add(user, "os-비밀번호-1")
    app = local_app(settings, embedder=embedder)
    with TestClient(app, base_url=BASE) as client:
        assert client.post("/api/login", json={"user": user, "password": "os-비밀번호-1"}).status_code == 200
        with (SAMPLES / FINTECH).open("rb") as pdf:
            queued = client.post("/api/documents", files=[("files", (FINTECH, pdf, "application/pdf"))])
        assert queued.status_code == 202
        run = wait_for_run(client, queued.json()["runs"][0]["run_id"])
        assert run["status"] == "succeeded", run
        final = chat(client, "s1", "핀테크 혁신펀드 2호 펀드는 얼마 규모로 조성되나요?")[-1][1]
        assert "5,000억원" in final["answer"]
        assert final["citations"][0]["source"] == FINTECH and final["citations"][0]["page"] == 2
    assert opensearch_node.client().indices.exists_alias(name=alias_name(user))


# ---------------------------------------------------------------------------------------- auth

class HeaderRecorder:
    """A loopback HTTP server that answers like OpenSearch's root endpoint and keeps each request's headers."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        seen = self.headers = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                seen.append(dict(self.headers))
                body = json.dumps({"version": {"number": "3.5.0", "distribution": "opensearch"}}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_basic_and_sigv4_auth_sign_every_request(monkeypatch):
    from pipeline.adapters.index import build_index

    recorder = HeaderRecorder()
    try:
        basic = IndexSettings(kind="opensearch", url=recorder.url, auth="basic", username="team", password="s3cret")
        build_index(basic, FakeDim(), SearchOptions()).client.info()
        assert recorder.headers[-1]["Authorization"] == "Basic dGVhbTpzM2NyZXQ="  # team:s3cret
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
        sigv4 = IndexSettings(kind="opensearch", url=recorder.url, auth="sigv4", region="ap-northeast-2")
        build_index(sigv4, FakeDim(), SearchOptions()).client.info()
        signed = recorder.headers[-1]["Authorization"]
        assert signed.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
        assert "/ap-northeast-2/es/aws4_request" in signed and "x-amz-date" in {h.lower() for h in recorder.headers[-1]}
    finally:
        recorder.server.shutdown()
    with pytest.raises(ValueError, match="needs a region"):
        build_index(IndexSettings(kind="opensearch", auth="sigv4", region=None), FakeDim(), SearchOptions())
    with pytest.raises(ValueError, match="HANRAG_OPENSEARCH_USER"):
        build_index(IndexSettings(kind="opensearch", auth="basic"), FakeDim(), SearchOptions())


class FakeDim:
    """Only the name and size of a model: these tests never embed."""

    name, dim = "m", 4


def test_settings_read_the_index_from_the_environment():
    settings = Settings.from_env({"HANRAG_INDEX": "opensearch", "HANRAG_OPENSEARCH_URL": "https://search.example:443",
                                  "HANRAG_OPENSEARCH_AUTH": "sigv4", "AWS_REGION": "ap-northeast-2"})
    assert (settings.index.kind, settings.index.url, settings.index.auth, settings.index.region) == (
        "opensearch", "https://search.example:443", "sigv4", "ap-northeast-2")
    assert Settings.from_env({}).index.kind == "sqlite"
    with pytest.raises(ValueError, match="HANRAG_INDEX must be one of sqlite, opensearch"):
        Settings.from_env({"HANRAG_INDEX": "elastic"})
    with pytest.raises(ValueError, match="HANRAG_OPENSEARCH_AUTH must be one of"):
        Settings.from_env({"HANRAG_OPENSEARCH_AUTH": "token"})
