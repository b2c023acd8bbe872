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
