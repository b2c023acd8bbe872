"""The local runner over many files: the next file is extracted and chunked while the current one
embeds, and the per-file time limit counts time without progress, not a file's whole run."""

from __future__ import annotations

import shutil
import threading
import time

import pytest
from conftest import FIXTURES, SAMPLES, TUNNEL, make_runner

from chat.retrieve import Retriever
from pipeline import steps
from pipeline.config import Settings
from pipeline.options import ChunkOptions
from pipeline.runner import LocalRunner, collect_files
from pipeline.stages.extract import extract

TUNNEL_TEXT = extract((SAMPLES / TUNNEL).read_bytes(), TUNNEL).text
NOTICE = ("2호 펀드는 총 3,000억원 규모로 조성되며, 정책금융기관이 마중물 자금을 출자한다. "
          "운용사 선정은 3월에 공고하고, 투자는 하반기부터 시작한다.\n") * 6


def folder_with_a_broken_file_in_the_middle(tmp_path):
    """A text file, a PDF that is not one (cut off after its header), and a real Korean PDF."""
    folder = tmp_path / "자료"
    folder.mkdir()
    (folder / "1-guide.txt").write_text(TUNNEL_TEXT, encoding="utf-8")
    (folder / "2-broken.pdf").write_bytes((FIXTURES / "2020중기부업무계획.pdf").read_bytes()[:2000])
    shutil.copy(SAMPLES / "240409(보도자료) 금융위 핀테크 투자 생태계 활성화 나선다.pdf", folder / "3-fintech.pdf")
    return folder


class GatedEmbedder:
    """The real embedder, whose first batch waits (up to a minute) for `gate`: it is set when the
    next file's extraction starts, so a runner that extracts only after embedding waits in vain."""

    def __init__(self, real, gate: threading.Event) -> None:
        self.real, self.gate, self.waited_in_vain = real, gate, None
        self.dim, self.name = real.dim, real.name

    def embed_passages(self, texts):
        if self.waited_in_vain is None:
            self.waited_in_vain = not self.gate.wait(timeout=60)
        return self.real.embed_passages(texts)

    def embed_query(self, text):
        return self.real.embed_query(text)


def test_a_broken_file_in_the_middle_fails_alone_while_the_next_file_is_prepared_ahead(
        tmp_path, embedder, monkeypatch):
    folder = folder_with_a_broken_file_in_the_middle(tmp_path)
    gate = threading.Event()
    extract_step = steps.STEPS["extract"]

    def extract_and_open_the_gate(ports, state):
        if state.ref.source != "1-guide.txt":
            gate.set()
        return extract_step(ports, state)

    monkeypatch.setitem(steps.STEPS, "extract", extract_and_open_the_gate)
    gated = GatedEmbedder(embedder, gate)
    runner = make_runner(tmp_path / "home", gated)
    records = runner.ingest("u", collect_files([folder]))

    assert gated.waited_in_vain is False, "the second file was extracted while the first one embedded"
    assert [(r.source, r.status) for r in records] == [
        ("1-guide.txt", "succeeded"), ("2-broken.pdf", "failed"), ("3-fintech.pdf", "succeeded")]
    broken = records[1]
    assert broken.failed_stage == "extract" and not broken.reason.startswith("internal error"), broken.reason
    retriever = Retriever(embedder, runner.index)
    assert retriever.search("u", "터널 결로 발생 시 운전자 주의", 3)[0].source == "1-guide.txt"
    assert retriever.search("u", "핀테크 혁신펀드 조성 규모", 3)[0].source == "3-fintech.pdf"
    shown = {d["source"]: d for d in runner.registry.documents("u")}
    assert shown["2-broken.pdf"]["last_status"] == "failed" and shown["2-broken.pdf"]["last_reason"] == broken.reason
    assert runner.registry.running_runs() == []


def index_rows(runner: LocalRunner) -> list[tuple]:
    """Every chunk as the index holds it: id, pages, heading, kind, text, keyword terms, vector bytes."""
    return runner.index.db.execute(
        "SELECT c.chunk_id, c.page_start, c.page_end, c.heading, c.kind, c.text, f.terms, v.embedding"
        " FROM chunks c JOIN chunks_fts f ON f.rowid = c.rowid JOIN chunk_vectors v ON v.chunk_rowid = c.rowid"
        " WHERE c.user_id = 'u' ORDER BY c.chunk_id")


def test_running_ahead_gives_the_same_chunks_and_vectors_as_one_file_at_a_time(tmp_path, embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "guide.txt").write_text(TUNNEL_TEXT[:6000], encoding="utf-8")
    (folder / "notice.txt").write_text(NOTICE, encoding="utf-8")
    shutil.copy(SAMPLES / "240130(보도자료) 지방은행의 시중은행 전환시 인가방식 및 절차.pdf", folder / "bank.pdf")
    files = collect_files([folder])

    ahead = make_runner(tmp_path / "ahead", embedder)
    in_turn = make_runner(tmp_path / "in-turn", embedder, files_ahead=0)
    assert ahead.files_ahead == 1
    records_ahead, records_in_turn = ahead.ingest("u", files), in_turn.ingest("u", files)

    assert [(r.source, r.status, r.version, r.pages, r.chunks) for r in records_ahead] == \
           [(r.source, r.status, r.version, r.pages, r.chunks) for r in records_in_turn]
    assert all(r.status == "succeeded" for r in records_ahead)
    rows = index_rows(ahead)
    assert len(rows) == sum(r.chunks for r in records_ahead)
    assert rows == index_rows(in_turn), "same chunk ids, pages, text, keyword terms and vector bytes"


class SlowEmbedder:
    """The real embedder behind an endpoint that takes `seconds` for every call, the first `stalls`
    calls `stall` seconds instead."""

    def __init__(self, real, seconds: float, stall: float = 0.0, stalls: int = 0) -> None:
        self.real, self.seconds, self.stall, self.stalls, self.calls = real, seconds, stall, stalls, 0
        self.dim, self.name = real.dim, real.name

    def embed_passages(self, texts):
        self.calls += 1
        time.sleep(self.stall if self.calls <= self.stalls else self.seconds)
        return self.real.embed_passages(texts)

    def embed_query(self, text):
        return self.real.embed_query(text)


@pytest.fixture
def small_batches(tmp_path):
    """Short chunks embedded one at a time: many progress points in a file of a few hundred words."""
    from pipeline.korean import kiwi

    kiwi()  # loaded before the clock runs: its one-second load is not what these tests are about
    path = tmp_path / "notice.txt"
    # no chunk repeats another, so the vector cache cannot spare a single call
    path.write_text(TUNNEL_TEXT[:1500], encoding="utf-8")
    settings = Settings(home=tmp_path / "home", max_seconds_per_file=3, embed_batch_size=1,
                        chunk=ChunkOptions(chunk_tokens=40, overlap_tokens=0))
    return path, settings


def test_a_file_that_keeps_making_progress_is_not_failed_by_the_time_limit(small_batches, embedder):
    path, settings = small_batches
    slow = SlowEmbedder(embedder, seconds=0.4)
    runner = LocalRunner.from_settings(settings, embedder=slow)
    record = runner.ingest_file("u", path, "notice.txt")
    assert record.status == "succeeded", record.reason
    assert slow.calls >= 10
    assert record.durations["embed"] > settings.max_seconds_per_file, "the old whole-run limit would have failed it"
    assert runner.index.count("u") == record.chunks


def test_a_stage_without_progress_for_longer_than_the_limit_fails_the_file_with_the_limit_named(
        small_batches, embedder):
    path, settings = small_batches
    runner = LocalRunner.from_settings(settings, embedder=SlowEmbedder(embedder, seconds=0.0, stall=3.5, stalls=1))
    record = runner.ingest_file("u", path, "notice.txt")
    assert record.status == "failed" and record.failed_stage == "embed"
    assert record.reason.startswith("processing time limit hit in stage embed: no progress for ")
    assert record.reason.endswith("(set HANRAG_MAX_SECONDS to raise it)")
    assert runner.index.count() == 0
