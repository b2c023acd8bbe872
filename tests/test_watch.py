"""`hanrag watch`: a file dropped in <dir>/<user>/ is ingested for that user; removing it deletes it."""

from __future__ import annotations

import shutil

from conftest import FIXTURES, SAMPLES, TUNNEL, make_runner

from chat.retrieve import Retriever
from pipeline.watch import FolderWatcher


def test_watched_folder_ingests_per_user_and_deletes_removed_files(tmp_path, embedder):
    inbox = tmp_path / "inbox"
    (inbox / "kim").mkdir(parents=True)
    (inbox / "Not A User").mkdir()
    shutil.copy(SAMPLES / TUNNEL, inbox / "kim" / TUNNEL)
    shutil.copy(FIXTURES / "encrypted-file.pdf", inbox / "kim" / "locked.pdf")
    runner = make_runner(tmp_path / "home", embedder)
    watcher = FolderWatcher(inbox, runner)

    events = watcher.scan()
    by_source = {e["source"]: e for e in events if e["event"] == "ingested"}
    assert by_source[TUNNEL]["status"] == "succeeded"
    assert by_source["locked.pdf"]["reason"] == "encrypted PDF: a password is required"
    assert any(e["event"] == "ignored" and e["user"] == "Not A User" for e in events)
    search = Retriever(runner.embedder, runner.index)
    assert [h.source for h in search.search("kim", "터널 결로 대응시설", 3)][0] == TUNNEL

    assert [e for e in watcher.scan() if e["event"] != "ignored"] == []  # nothing changed

    (inbox / "kim" / TUNNEL).unlink()
    events = watcher.scan()
    assert {"event": "deleted", "user": "kim", "source": TUNNEL} in [
        {k: e[k] for k in ("event", "user", "source")} for e in events
    ]
    assert search.search("kim", "터널 결로 대응시설", 10) == []


def test_a_file_that_vanishes_fails_alone_in_ingest_and_in_watch(tmp_path, embedder, monkeypatch):
    """Found in issue 13: a file deleted while a folder was being ingested ended the whole run."""
    import pipeline.watch
    from pipeline.runner import SilentProgress, collect_files

    folder = tmp_path / "kim"
    folder.mkdir()
    for name in ("가.txt", "나.txt", "다.txt"):
        (folder / name).write_text(f"{name} 문서입니다. 회의는 목요일 오후 세 시에 열립니다.\n", encoding="utf-8")
    runner = make_runner(tmp_path / "home", embedder)

    class DeletesTheNextFile(SilentProgress):
        def file_started(self, source: str, position: int, total: int) -> None:
            if source == "가.txt":
                (folder / "나.txt").unlink()

    records = runner.ingest("kim", collect_files([folder]), DeletesTheNextFile())
    assert [(r.source, r.status) for r in records] == [("가.txt", "succeeded"), ("나.txt", "failed"),
                                                       ("다.txt", "succeeded")]
    assert "the file is gone" in records[1].reason

    inbox = tmp_path / "inbox"
    (inbox / "kim").mkdir(parents=True)
    (inbox / "kim" / "남은 파일.txt").write_text("남아 있는 문서입니다. 출입증은 안내 데스크에서 받습니다.\n",
                                            encoding="utf-8")
    listed = collect_files([inbox / "kim"]) + [(inbox / "kim" / "사라진 파일.txt", "사라진 파일.txt")]
    monkeypatch.setattr(pipeline.watch, "collect_files", lambda folders: listed)  # listed, then deleted
    events = FolderWatcher(inbox, runner).scan()
    assert [(e["source"], e["status"]) for e in events if e["event"] == "ingested"] == [("남은 파일.txt", "succeeded")]


def test_an_unreadable_user_folder_is_reported_and_keeps_its_documents(tmp_path, embedder, monkeypatch):
    import pipeline.watch

    inbox = tmp_path / "inbox"
    (inbox / "kim").mkdir(parents=True)
    notice = "출입증은 안내 데스크에서 받습니다. 방문 전에 예약하세요.\n"
    (inbox / "kim" / "안내.txt").write_text(notice, encoding="utf-8")
    runner = make_runner(tmp_path / "home", embedder)
    watcher = FolderWatcher(inbox, runner)
    assert [e["status"] for e in watcher.scan()] == ["succeeded"]

    def unreadable(folders):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pipeline.watch, "collect_files", unreadable)
    events = watcher.scan()
    assert [e["event"] for e in events] == ["ignored"] and "Permission denied" in events[0]["reason"]
    assert [d["source"] for d in runner.registry.documents("kim")] == ["안내.txt"]  # not taken for deleted
