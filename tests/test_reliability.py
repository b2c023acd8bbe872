"""Nothing lost, nothing leaked, every failure explained: kills, concurrent writers, bad files, limits.

The crash and concurrency tests run the real `hanrag` command in child processes on one HANRAG_HOME,
kill them with SIGKILL in the middle of a run, and then ask what a user would: is every document
there once, is every chunk searchable, does `hanrag check` find the index consistent?
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pypdf
import pytest
from conftest import BANK, FIXTURES, SAMPLES, TUNNEL, make_runner

from pipeline.adapters.local.database import Database
from pipeline.adapters.local.integrity import check_integrity
from pipeline.runner import INTERRUPTED

HARD = FIXTURES / "hard"
HANRAG = [sys.executable, "-m", "pipeline.cli"]


def inbox_with(tmp_path: Path, *files: Path) -> Path:
    inbox = tmp_path / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    for file in files:
        shutil.copy(file, inbox / file.name)
    return inbox


def corpus(tmp_path: Path) -> Path:
    """Two Korean PDFs, an HTML page and a UTF-16 text file: real files, a few seconds of work each."""
    return inbox_with(tmp_path, SAMPLES / BANK, SAMPLES / TUNNEL, FIXTURES / "fake-html.html",
                      FIXTURES / "fake-text-utf-16.txt")


def spawn(home: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "HANRAG_HOME": str(home), "HANRAG_PROGRESS": "0"}
    return subprocess.Popen([*HANRAG, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(home: Path, *args: str) -> tuple[int, str]:
    child = spawn(home, *args)
    out, err = child.communicate(timeout=600)
    assert "Traceback" not in err, err
    return child.returncode, out


def chunk_counts(home: Path) -> dict[str, int]:
    rows = Database(home / "hanrag.db").execute(
        "SELECT source, count(*) FROM chunks WHERE user_id = 'u' GROUP BY source")
    return dict(rows)


def running_runs(home: Path) -> int:
    if not (home / "hanrag.db").exists():
        return 0
    try:
        return Database(home / "hanrag.db").execute("SELECT count(*) FROM runs WHERE status = 'running'")[0][0]
    except Exception:  # the schema may not exist yet
        return 0


@pytest.fixture(scope="module")
def clean_counts(tmp_path_factory, embedder) -> dict[str, int]:
    """Chunks per document after one uninterrupted ingest: what every crash-and-restart must end with."""
    tmp = tmp_path_factory.mktemp("clean")
    runner = make_runner(tmp / "home", embedder)
    from pipeline.runner import collect_files

    records = runner.ingest("u", collect_files([corpus(tmp)]))
    assert [r.status for r in records] == ["succeeded"] * 4
    return chunk_counts(tmp / "home")


def test_killed_mid_run_three_times_then_restarted_the_index_is_whole(tmp_path, clean_counts):
    home, inbox = tmp_path / "home", corpus(tmp_path)
    rng = random.Random(20261122)
    kills = 0
    for _ in range(3):
        child = spawn(home, "ingest", str(inbox), "--user", "u", "--json")
        deadline = time.monotonic() + 120
        while running_runs(home) == 0 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 3.0))  # somewhere inside a run: extracting, embedding or writing
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait()
    assert kills >= 2  # the test means nothing unless it really killed runs

    code, out = run(home, "ingest", str(inbox), "--user", "u", "--json")
    assert code == 0, out
    assert chunk_counts(home) == clean_counts
    report = check_integrity(Database(home / "hanrag.db"))
    assert report.ok, report.problems
    code, out = run(home, "status", "--json", "--limit", "100")
    runs = json.loads(out)
    assert not [r for r in runs if r["status"] == "running"]
    assert [r for r in runs if r["reason"] == INTERRUPTED], "a killed run must say it was interrupted"
    code, out = run(home, "search", "결로 발생 시 감속운행", "--user", "u", "--json")
    assert any(hit["source"] == TUNNEL for hit in json.loads(out))
    code, out = run(home, "check", "--json")
    assert code == 0 and json.loads(out)["ok"]


def test_two_ingest_processes_at_once_lose_nothing(tmp_path, clean_counts):
    home, inbox = tmp_path / "home", corpus(tmp_path)
    tunnel_only = inbox_with(tmp_path / "second", SAMPLES / TUNNEL, FIXTURES / "fake-html.html")
    first = spawn(home, "ingest", str(inbox), "--user", "u", "--json")
    second = spawn(home, "ingest", str(tunnel_only), "--user", "u", "--json")
    outputs = [child.communicate(timeout=600) for child in (first, second)]
    for child, (out, err) in zip((first, second), outputs, strict=True):
        assert child.returncode == 0, err
        assert all(json.loads(line)["status"] in ("succeeded", "skipped") for line in out.splitlines())
    assert chunk_counts(home) == clean_counts
    assert check_integrity(Database(home / "hanrag.db")).ok


# ---------------------------------------------------------------------------- bad input


def zip_bomb(kind: str) -> bytes:
    """A small ZIP that declares 300 MB of zeros, dressed as a DOCX or an HWPX."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if kind == "hwpx":
            archive.writestr("mimetype", "application/hwp+zip")
            archive.writestr("Contents/section0.xml", b"\0" * (300 * 2**20))
        else:
            archive.writestr("[Content_Types].xml", "<Types/>")
            archive.writestr("word/document.xml", b"\0" * (300 * 2**20))
    return buffer.getvalue()


def long_pdf(pages: int) -> bytes:
    """A real text PDF repeated to `pages` pages."""
    writer = pypdf.PdfWriter()
    page = pypdf.PdfReader(SAMPLES / BANK).pages[0]
    for _ in range(pages):
        writer.add_page(page)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def bad_inputs(folder: Path) -> dict[str, str]:
    """Generated hard cases, written into `folder`; name → the start of the reason a person reads."""
    tunnel = (SAMPLES / TUNNEL).read_bytes()
    korean = "도로터널 결로 대책 가이드라인은 터널 내부 결로를 줄이기 위한 지침입니다.\n"
    files = {
        "bomb.docx": (zip_bomb("docx"), "too large when unzipped: a Word document (DOCX) of 0.3 MB would expand"),
        "bomb.hwpx": (zip_bomb("hwpx"), "too large when unzipped: an HWPX document"),
        "zero.pdf": (b"", "empty file: there is no text to index"),
        "truncated.pdf": (tunnel[: len(tunnel) // 3], "broken PDF: the file is damaged or cut short"),
        "long.pdf": (long_pdf(2000), "PDF too long: 2000 pages (the limit is 1000"),
        "actually-a-pdf.docx": ((SAMPLES / BANK).read_bytes(), None),  # the content decides: a PDF
        "photo.pdf": ((FIXTURES / "english-and-korean.png").read_bytes(), None),  # an image: OCR
        "cp949.txt": (korean.encode("cp949") * 20, None),
        "binary.bin": (bytes(range(256)) * 8, "unsupported file type: binary data (.bin)"),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    return {name: reason for name, (_, reason) in files.items()}


def test_every_bad_file_ends_with_its_own_reason_and_the_good_one_is_searchable(tmp_path, embedder):
    from pipeline.config import Settings
    from pipeline.options import ExtractOptions
    from pipeline.runner import LocalRunner, collect_files

    inbox = inbox_with(tmp_path, SAMPLES / TUNNEL, *HARD.iterdir(), FIXTURES / "empty.txt",
                       FIXTURES / "encrypted-file.pdf", FIXTURES / "issue-297.pdf")
    expected = bad_inputs(inbox)
    settings = Settings(home=tmp_path / "home", extract=ExtractOptions(max_pages=1000))
    runner = LocalRunner.from_settings(settings, embedder=embedder)
    records = {r.source: r for r in runner.ingest("u", collect_files([inbox]))}

    assert records[TUNNEL].status == "succeeded"
    for name, reason in expected.items():
        record = records[name]
        if reason is None:
            assert record.status == "succeeded", (name, record.reason)
        else:
            assert record.status == "failed" or reason == "", (name, record.status)
            assert record.reason is None or record.reason.startswith(reason), (name, record.reason)
    for record in records.values():  # every outcome is a specific, readable one: never a crash
        assert record.status in ("succeeded", "failed")
        if record.status == "failed":
            assert record.reason and not record.reason.startswith("internal error"), (record.source, record.reason)
    for name in ("encrypted-file.pdf", "crazyones-encrypted-256.pdf", "r4-aes-user-password.pdf"):
        assert records[name].reason == "encrypted PDF: a password is required"
    assert records["empty.txt"].reason == "empty file: there is no text to index"

    from chat.retrieve import Retriever

    hits = Retriever(runner.embedder, runner.index).search("u", "결로 발생 상황 운전자 주의 환기", 5)
    assert hits and hits[0].source == TUNNEL
    hits = Retriever(runner.embedder, runner.index).search("u", "터널 내부 결로를 줄이기 위한 지침", 3)
    assert hits and hits[0].source == "cp949.txt"
    assert check_integrity(runner.index.db).ok


def test_a_file_over_the_time_limit_fails_with_the_limit_named(tmp_path, embedder):
    from pipeline.config import Settings
    from pipeline.runner import LocalRunner

    settings = Settings(home=tmp_path / "home", max_seconds_per_file=0.5)
    runner = LocalRunner.from_settings(settings, embedder=embedder)
    record = runner.ingest_file("u", SAMPLES / TUNNEL, TUNNEL)
    assert record.status == "failed"
    assert record.reason.startswith("processing time limit hit in stage ")
    assert record.reason.endswith("(set HANRAG_MAX_SECONDS to raise it)")
    assert runner.index.count() == 0


def test_an_llm_that_keeps_failing_leaves_the_new_version_searchable_with_an_extractive_summary(tmp_path, embedder):
    from pipeline.errors import TransientError

    class DownLLM:
        calls = 0

        def complete(self, system: str, prompt: str) -> str:
            DownLLM.calls += 1
            raise TransientError("LLM endpoint timed out")

        def stream(self, system: str, prompt: str):
            raise TransientError("LLM endpoint timed out")

    runner = make_runner(tmp_path / "home", embedder, llm=DownLLM(), sleep=lambda s: None)
    record = runner.ingest_file("u", SAMPLES / TUNNEL, TUNNEL)
    assert record.status == "succeeded"
    assert DownLLM.calls == 4  # every attempt the definition's retry policy allows
    assert any(w.startswith("LLM summary failed (LLM endpoint timed out)") for w in record.warnings)
    assert "결로" in record.summary
    assert runner.index.count("u") == record.chunks > 0
