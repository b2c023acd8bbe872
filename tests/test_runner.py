"""The local runner: versions, retries from the pipeline definition, failures that stay contained."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest
from conftest import SAMPLES, TUNNEL, make_runner

from chat.retrieve import Retriever
from pipeline.definition import stage
from pipeline.errors import TransientError
from pipeline.stages.extract import extract

TUNNEL_TEXT = extract((SAMPLES / TUNNEL).read_bytes(), TUNNEL).text
OLD_ONLY = "제습설비는 공기 중에 함유된 수분을 기계적인 힘으로 응결시켜 제거하는 설비"


class FlakyEmbedder:
    """The real embedder behind a fault: the first `failures` batches raise `error`."""

    def __init__(self, real, failures: int, error: Exception) -> None:
        self.real, self.failures, self.error, self.calls = real, failures, error, 0
        self.dim, self.name = real.dim, real.name

    def embed_passages(self, texts):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.real.embed_passages(texts)

    def embed_query(self, text):
        return self.real.embed_query(text)


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def sources_for(runner, user: str, query: str) -> list[str]:
    return [h.source for h in Retriever(runner.embedder, runner.index).search(user, query, 20)]


def test_a_changed_file_replaces_the_old_version(tmp_path, embedder):
    runner = make_runner(tmp_path / "home", embedder)
    path = write(tmp_path, "guide.txt", TUNNEL_TEXT)
    first = runner.ingest_file("u", path, "guide.txt")
    assert first.status == "succeeded"
    assert "guide.txt" in sources_for(runner, "u", OLD_ONLY)

    path.write_text(TUNNEL_TEXT.replace("“제습설비”", "“냉방설비”").split("5.1.6")[0], encoding="utf-8")
    second = runner.ingest_file("u", path, "guide.txt")
    assert second.status == "succeeded" and second.version != first.version
    hits = Retriever(runner.embedder, runner.index).search("u", "제습설비 수분 응결", 50)
    assert all(second.version[:8] in h.chunk_id for h in hits), "only the new version is searchable"
    assert not any("“제습설비”" in h.text for h in hits)
    assert runner.index.count("u") == second.chunks


def test_transient_embedder_failures_are_retried_with_backoff(tmp_path, embedder):
    slept: list[float] = []
    flaky = FlakyEmbedder(embedder, failures=2, error=TransientError("endpoint throttled"))
    runner = make_runner(tmp_path / "home", flaky, sleep=slept.append)
    record = runner.ingest_file("u", write(tmp_path, "guide.txt", TUNNEL_TEXT), "guide.txt")
    assert record.status == "succeeded"
    embed = next(s for s in record.stages if s.stage == "embed")
    assert embed.attempts == 3
    assert slept == stage("embed").retry.delays()[:2] == [2.0, 4.0]


def test_a_stage_that_keeps_failing_fails_the_run_and_keeps_the_previous_version(tmp_path, embedder):
    home = tmp_path / "home"
    path = write(tmp_path, "guide.txt", TUNNEL_TEXT)
    assert make_runner(home, embedder).ingest_file("u", path, "guide.txt").status == "succeeded"

    path.write_text(TUNNEL_TEXT[:3000], encoding="utf-8")
    broken = FlakyEmbedder(embedder, failures=99, error=TimeoutError("embedding endpoint timed out"))
    runner = make_runner(home, broken, sleep=lambda s: None)
    record = runner.ingest_file("u", path, "guide.txt")
    assert record.status == "failed"
    assert record.failed_stage == "embed"
    assert "embedding endpoint timed out" in record.reason
    assert broken.calls == stage("embed").retry.max_attempts
    assert "guide.txt" in sources_for(runner, "u", OLD_ONLY), "the previous version stays searchable"
    assert runner.registry.recent_runs(1)[0].reason == record.reason


def test_an_unexpected_error_is_reported_and_the_next_file_still_runs(tmp_path, embedder):
    class Broken:
        dim, name = embedder.dim, "broken"

        def embed_passages(self, texts):
            return np.zeros((len(texts), 3))  # wrong shape: a bug, not a transient failure

        def embed_query(self, text):
            return embedder.embed_query(text)

    runner = make_runner(tmp_path / "home", Broken())
    good = write(tmp_path, "b.txt", "")
    records = runner.ingest("u", [(write(tmp_path, "a.txt", TUNNEL_TEXT[:2000]), "a.txt"), (good, "b.txt")])
    assert records[0].status == "failed"
    assert records[0].reason.startswith("internal error (ValueError): embedder returned shape")
    assert records[1].status == "failed" and records[1].reason.startswith("empty file")


@pytest.mark.parametrize("user", ["../etc", "A B", "", "x" * 100, "a/b"])
def test_hostile_user_ids_fail_the_run_with_a_reason(tmp_path, embedder, user):
    runner = make_runner(tmp_path / "home", embedder)
    record = runner.ingest_file(user, write(tmp_path, "a.txt", "안녕하세요. 반갑습니다."), "a.txt")
    assert record.status == "failed" and record.reason.startswith("invalid user id")


@pytest.mark.parametrize("source", ["../../secret.txt", "a/../../b.txt", "bad\x07name.txt"])
def test_hostile_source_names_fail_the_run_with_a_reason(tmp_path, embedder, source):
    runner = make_runner(tmp_path / "home", embedder)
    record = runner.ingest_file("u", write(tmp_path, "a.txt", "안녕하세요. 반갑습니다."), source)
    assert record.status == "failed" and record.reason.startswith("invalid source name")


def test_the_webhook_receives_the_run_record_as_json(tmp_path, embedder):
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        from pipeline.adapters.local.notifier import WebhookNotifier

        hook = WebhookNotifier(f"http://127.0.0.1:{server.server_port}/hanrag")
        runner = make_runner(tmp_path / "home", embedder, notifiers=[hook])
        record = runner.ingest_file("u", write(tmp_path, "guide.txt", TUNNEL_TEXT[:3000]), "guide.txt")
    finally:
        server.shutdown()
    (body,) = received
    assert body["status"] == "succeeded" and body["source"] == "guide.txt"
    assert body["chunks"] == record.chunks > 0
    assert set(body["durations"]) >= {"extract", "chunk", "embed", "index", "summarize"}
    assert body["summary"]


def test_pdf_passwords_per_file_per_user_and_for_everyone(tmp_path, embedder):
    from conftest import FIXTURES

    from pipeline.config import Settings
    from pipeline.runner import LocalRunner

    hard = FIXTURES / "hard"
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"u/r4-aes-user-password.pdf": "asdfzxcv", "u": "openpassword", "*": "nope"}))
    settings = Settings.from_env({"HANRAG_HOME": str(tmp_path / "home"), "HANRAG_PDF_PASSWORDS": str(passwords)})
    runner = LocalRunner.from_settings(settings, embedder=embedder)

    def outcome(user: str, name: str) -> tuple[str, str | None]:
        record = runner.ingest_file(user, hard / name, name)
        return record.status, record.reason

    assert outcome("u", "r4-aes-user-password.pdf") == ("succeeded", None)  # its own password
    assert outcome("u", "libreoffice-writer-password.pdf") == ("succeeded", None)  # the user's password
    wrong = ("failed", "encrypted PDF: the configured password is wrong")  # "*" is tried for user v
    assert outcome("v", "libreoffice-writer-password.pdf") == wrong
    assert Retriever(runner.embedder, runner.index).search("v", "password", 5) == []


def test_a_new_version_leaves_only_its_own_artifacts(home, embedder, tmp_path):
    from conftest import make_runner

    path = tmp_path / "공지.txt"
    path.write_text("1차 공지: 접수는 3월 4일까지입니다.", encoding="utf-8")
    runner = make_runner(home, embedder)
    first = runner.ingest("kim", [(path, "공지.txt")])[0]
    path.write_text("2차 공지: 접수는 3월 11일까지로 연장합니다.", encoding="utf-8")
    second = runner.ingest("kim", [(path, "공지.txt")])[0]
    assert first.status == second.status == "succeeded" and first.version != second.version
    assert runner.blobs.children(f"kim/{second.document_id}") == [second.version[:16]]


def test_the_registry_shows_queued_and_processing_files_while_a_batch_runs(tmp_path, embedder, monkeypatch):
    """`hanrag ingest a b` (and `hanrag serve`'s page): while the first file is in a stage, it reads
    `processing` and the second `queued`; afterwards each has its outcome, a failure with its reason."""
    from pipeline import steps

    runner = make_runner(tmp_path / "home", embedder)
    files = [(write(tmp_path, "guide.txt", TUNNEL_TEXT), "guide.txt"), (write(tmp_path, "empty.txt", " "), "empty.txt")]
    during = []
    chunk = steps.STEPS["chunk"]

    def chunk_and_look(ports, state):
        during.append({d["source"]: (d["last_status"], d["version"]) for d in runner.registry.documents("u")})
        return chunk(ports, state)

    monkeypatch.setitem(steps.STEPS, "chunk", chunk_and_look)
    records = runner.ingest("u", files)
    assert during[0] == {"guide.txt": ("processing", ""), "empty.txt": ("queued", "")}
    assert [r.status for r in records] == ["succeeded", "failed"]
    shown = {d["source"]: d for d in runner.registry.documents("u")}
    assert shown["guide.txt"]["last_status"] == "succeeded" and shown["guide.txt"]["version"] == records[0].version
    assert shown["empty.txt"]["last_status"] == "failed" and shown["empty.txt"]["last_reason"] == records[1].reason
