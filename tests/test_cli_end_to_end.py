"""The README's story, through the real CLI: two users ingest real Korean PDFs, ask questions, get
answers that cite the right file and page, and never see each other's documents."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import AVIATION, BANK, FINTECH, FIXTURES, SAMPLES, TUNNEL, run_cli

pytestmark = pytest.mark.e2e


def hanrag(home: Path, *args: str) -> tuple[int, str]:
    """Run `hanrag ARGS` in-process against `home`; returns (exit code, stdout)."""
    code, out, _ = run_cli(home, *args)
    return code, out


def as_json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def two_users(tmp_path_factory) -> tuple[Path, list[dict], list[dict]]:
    home = tmp_path_factory.mktemp("e2e") / "home"
    inbox = tmp_path_factory.mktemp("inbox")
    shutil.copy(FIXTURES / "encrypted-file.pdf", inbox / "encrypted-file.pdf")
    code_a, out_a = hanrag(home, "ingest", str(SAMPLES), str(inbox / "encrypted-file.pdf"),
                           "--user", "a", "--json")
    assert code_a == 1, "one file failed, so the exit code must say so"
    code_b, out_b = hanrag(home, "ingest", str(FIXTURES / AVIATION), "--user", "b", "--json")
    assert code_b == 0
    return home, as_json_lines(out_a), as_json_lines(out_b)


def test_ingest_reports_every_file_and_the_encrypted_one_fails_alone(two_users):
    _, records, _ = two_users
    by_source = {r["source"]: r for r in records}
    assert set(by_source) == {BANK, FINTECH, TUNNEL, "encrypted-file.pdf"}
    for name in (BANK, FINTECH, TUNNEL):
        record = by_source[name]
        assert record["status"] == "succeeded", record
        assert record["pages"] > 0 and record["chunks"] > 0
        assert set(record["durations"]) == {"extract", "chunk", "embed", "index", "summarize", "notify"}
    failed = by_source["encrypted-file.pdf"]
    assert failed["status"] == "failed"
    assert failed["reason"] == "encrypted PDF: a password is required"
    assert failed["chunks"] == 0


@pytest.mark.parametrize(
    ("question", "source", "page", "words"),
    [
        ("도로터널 결로 대책 가이드라인은 연장 몇 km 이상의 터널에 적용하나요?", TUNNEL, 3, ["1km"]),
        ("핀테크 혁신펀드 2호 펀드는 얼마 규모로 조성되나요?", FINTECH, 2, ["5,000억원"]),
        ("지방은행이 시중은행으로 전환하면 비금융주력자 주식보유한도는 어떻게 바뀌나요?", BANK, 7, ["4%"]),
    ],
)
def test_ask_answers_from_the_page_that_holds_the_answer(two_users, question, source, page, words):
    home, _, _ = two_users
    code, out = hanrag(home, "ask", question, "--user", "a", "--json")
    assert code == 0
    result = json.loads(out)
    first = result["citations"][0]
    assert (first["source"], first["page"]) == (source, page), result
    for word in words:
        assert word in result["answer"], result["answer"]
    assert set(first) == {"source", "page", "chunk_id", "score"}


def test_plain_ask_prints_the_answer_and_its_sources(two_users):
    home, _, _ = two_users
    code, out = hanrag(home, "ask", "도로터널 결로 대책 가이드라인은 연장 몇 km 이상의 터널에 적용하나요?",
                       "--user", "a")
    assert code == 0
    assert "1km" in out
    assert f"[1] {TUNNEL}, 3쪽" in out


def test_users_never_see_each_others_documents(two_users):
    home, _, _ = two_users
    # b asks about a's documents: whatever comes back is b's own
    for question in ("핀테크 혁신펀드 2호 펀드 규모", "지방은행 시중은행 전환 인가", "터널 결로"):
        code, out = hanrag(home, "search", question, "--user", "b", "--json", "--k", "20")
        assert code == 0
        assert {hit["source"] for hit in json.loads(out)} <= {AVIATION}
    code, out = hanrag(home, "search", "전문교육기관 항공훈련기관 지정", "--user", "a", "--json", "--k", "20")
    assert AVIATION not in {hit["source"] for hit in json.loads(out)}
    code, out = hanrag(home, "search", "핀테크", "--user", "nobody", "--json")
    assert json.loads(out) == []


def test_search_json_lists_ranked_chunks_with_text(two_users):
    home, _, _ = two_users
    code, out = hanrag(home, "search", "전문교육기관은 모두 몇 개인가요?", "--user", "b", "--json", "--k", "3")
    hits = json.loads(out)
    assert code == 0 and 1 <= len(hits) <= 3
    assert all(set(h) == {"source", "page", "chunk_id", "score", "text"} for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert "68개" in " ".join(h["text"] for h in hits)


def test_reingesting_unchanged_files_skips_them(two_users):
    home, _, _ = two_users
    code, out = hanrag(home, "ingest", str(FIXTURES / AVIATION), "--user", "b", "--json")
    (record,) = as_json_lines(out)
    assert code == 0 and record["status"] == "skipped"


def test_status_shows_runs_with_timings_and_failure_reasons(two_users):
    home, _, _ = two_users
    code, out = hanrag(home, "status", "--limit", "50")
    assert code == 0
    assert "encrypted PDF: a password is required" in out
    assert "failed in stage: extract" in out
    assert "embed" in out and TUNNEL in out


def test_delete_removes_the_document_from_search(tmp_path):
    home = tmp_path / "home"
    hanrag(home, "ingest", str(SAMPLES / TUNNEL), str(SAMPLES / FINTECH), "--user", "c")
    question = "결로 유도설비는 무엇을 열원으로 하나요?"
    _, out = hanrag(home, "search", question, "--user", "c", "--json")
    assert TUNNEL in {h["source"] for h in json.loads(out)}

    code, out = hanrag(home, "delete", TUNNEL, "--user", "c")
    assert code == 0 and "deleted" in out
    _, out = hanrag(home, "search", question, "--user", "c", "--json", "--k", "50")
    assert TUNNEL not in {h["source"] for h in json.loads(out)}
    assert {h["source"] for h in json.loads(out)} <= {FINTECH}

    code, out = hanrag(home, "delete", TUNNEL, "--user", "c")
    assert code == 1 and "no such document" in out


def test_the_installed_command_reports_a_bad_file_and_exits_1(tmp_path):
    """The `hanrag` console script itself, as a user runs it (a child process, no progress bar)."""
    import subprocess
    import sys

    command = Path(sys.executable).with_name("hanrag")
    env = {**os.environ, "HANRAG_HOME": str(tmp_path / "home")}
    done = subprocess.run([str(command), "ingest", str(FIXTURES / "empty.txt"), "--user", "a"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    assert "✗ empty.txt  empty file: there is no text to index" in done.stdout
    assert "Traceback" not in done.stderr
    done = subprocess.run([str(command), "ingest", str(tmp_path / "missing.pdf"), "--user", "a"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and "no such file or folder" in done.stderr


# ---------------------------------------------------------------------- bounds and a shared machine (issue 13)


def test_files_under_hanrag_home_are_readable_by_their_owner_only(two_users):
    home, _, _ = two_users
    assert home.stat().st_mode & 0o777 == 0o700
    written = [p for p in home.rglob("*")]
    assert (home / "hanrag.db") in written and any("artifacts" in p.parts for p in written)
    assert [p for p in written if p.stat().st_mode & 0o077] == []  # nothing for the group or others


@pytest.mark.parametrize("k", ["1000000", "-5", "0", "two"])
def test_k_out_of_bounds_is_refused_with_the_reason(two_users, k):
    home, _, _ = two_users
    code, out, err = run_cli_catching_exit(home, "search", "펀드 규모", "--user", "a", "--k", k)
    assert code == 2 and "1부터 100까지의 정수" in err and out == ""


def test_a_huge_query_and_a_user_id_with_a_newline_are_refused_at_once(two_users):
    home, _, _ = two_users
    code, _, err = run_cli(home, "search", "펀드 " * 50_000, "--user", "a")
    assert code == 2 and "검색어는 1000자까지입니다" in err
    code, _, err = run_cli(home, "ingest", str(FIXTURES / "empty.txt"), "--user", "kim\n")
    assert code == 2 and "invalid user id" in err
    assert not (home / "artifacts" / "kim\n").exists()


def run_cli_catching_exit(home: Path, *args: str) -> tuple[int, str, str]:
    """Like `run_cli`, but a command line argparse refuses ends in SystemExit(2) after printing why."""
    import contextlib
    import io

    from pipeline.cli import main

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        patch.setenv("HANRAG_HOME", str(home))
        try:
            code = main(list(args))
        except SystemExit as stop:
            code = int(stop.code)
    return code, out.getvalue(), err.getvalue()


def test_a_closed_pipe_ends_quietly(two_users):
    """`hanrag search … --json | head -1`: the reader leaves after one line; no BrokenPipe traceback."""
    import subprocess
    import sys

    home, _, _ = two_users
    command = Path(sys.executable).with_name("hanrag")
    process = subprocess.Popen([str(command), "search", "펀드", "--user", "a", "--json", "--k", "100"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "HANRAG_HOME": str(home)})
    assert process.stdout.readline().strip() == "["
    process.stdout.close()  # far more than a pipe buffer is still to come
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0 and "Traceback" not in err and "BrokenPipe" not in err


def test_each_file_is_reported_as_soon_as_it_is_done(tmp_path, monkeypatch):
    """A long folder ingest shows each file's line when that file ends, not all of them at the end."""
    import sys

    from pipeline.cli import BarProgress

    printed_before: dict[str, str] = {}  # source → what stdout held when its turn began (the bar names it)
    original = BarProgress.file_started

    def noting(self, source, *args, **kwargs):
        printed_before[source] = sys.stdout.getvalue()
        return original(self, source, *args, **kwargs)

    monkeypatch.setattr(BarProgress, "file_started", noting)
    code, out = hanrag(tmp_path / "home", "ingest", str(FIXTURES / "empty.txt"), str(FIXTURES / "fake-html.html"),
                       "--user", "a")
    assert code == 1
    assert printed_before["empty.txt"] == ""
    assert printed_before["fake-html.html"].startswith("✗ empty.txt  empty file")
    assert "✓ fake-html.html" in out and out.rstrip().endswith(f"· index {tmp_path / 'home' / 'hanrag.db'}")
