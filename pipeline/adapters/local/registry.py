"""The embedded `Registry`: documents per user and the log of runs, in the index's SQLite file.

`documents` holds each file's current version; `document_state` its latest run's status and the
sequencer of the latest upload or delete applied to it. A write whose event is older than that is
refused inside the same transaction that would make it, as the DynamoDB registry refuses it with a
condition: the embedded runner has no sequencer (one process takes files in order), so its writes are
unordered and always apply.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from pipeline.adapters.local.database import Database
from pipeline.models import DocumentRef, RunRecord

# a file with no current version is still listed while its first run waits or runs, or when it failed
WITHOUT_VERSION = ("queued", "processing", "failed")


def _in_order(c, user_id: str, source: str, sequencer: str) -> bool:
    """The event is the file's latest recorded one, or the same one again (a retried step)."""
    if not sequencer:
        return True
    rows = list(c.execute("SELECT sequencer FROM document_state WHERE user_id = ? AND source = ?",
                          (user_id, source)))
    return not rows or rows[0][0] <= sequencer


def _set_state(c, ref: DocumentRef, *, status: str | None = None, run_id: str | None = None,
               reason: str | None = None, sequencer: str = "") -> None:
    """Upsert the file's state row; a None field keeps what the row holds."""
    c.execute(
        "INSERT INTO document_state (user_id, source, document_id, run_id, status, reason, sequencer, updated_at)"
        " VALUES (?, ?, ?, coalesce(?, ''), coalesce(?, ''), coalesce(?, ''), ?, ?)"
        " ON CONFLICT (user_id, source) DO UPDATE SET run_id = coalesce(?, run_id),"
        " status = coalesce(?, status), reason = coalesce(?, reason),"
        " sequencer = CASE WHEN excluded.sequencer = '' THEN sequencer ELSE excluded.sequencer END,"
        " updated_at = excluded.updated_at",
        (ref.user_id, ref.source, ref.document_id, run_id, status, reason, sequencer, time.time(),
         run_id, status, reason),
    )


class SqliteRegistry:
    def __init__(self, db: Database) -> None:
        self.db = db

    def current_version(self, user_id: str, source: str) -> str | None:
        rows = self.db.execute(
            "SELECT version FROM documents WHERE user_id = ? AND source = ? AND status = 'active'",
            (user_id, source),
        )
        return rows[0][0] if rows else None

    def save_document(self, ref: DocumentRef, *, pages: int, chunks: int, summary: str, title: str,
                      sequencer: str = "") -> bool:
        with self.db.transaction() as c:
            if not _in_order(c, ref.user_id, ref.source, sequencer):
                return False
            c.execute(
                "INSERT INTO documents (user_id, source, document_id, version, title, pages, chunks,"
                " summary, status, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'active', ?)"
                " ON CONFLICT (user_id, source) DO UPDATE SET version = excluded.version,"
                " title = excluded.title, pages = excluded.pages, chunks = excluded.chunks,"
                " summary = excluded.summary, status = 'active', updated_at = excluded.updated_at",
                (ref.user_id, ref.source, ref.document_id, ref.version, title, pages, chunks, summary,
                 time.time()),
            )
            _set_state(c, ref, sequencer=sequencer)
            return True

    def mark_deleted(self, user_id: str, source: str, sequencer: str = "") -> str | None:
        """Mark the document deleted; returns its document id, or None if it was not current."""
        ref = DocumentRef(user_id, source, "")
        with self.db.transaction() as c:
            if not _in_order(c, user_id, source, sequencer):
                return None
            rows = list(c.execute(
                "SELECT document_id FROM documents WHERE user_id = ? AND source = ? AND status = 'active'",
                (user_id, source),
            ))
            if rows or sequencer:  # a sequenced delete is remembered even before a first version lands
                _set_state(c, ref, status="deleted", reason="", sequencer=sequencer)
            if not rows:
                return None
            c.execute(
                "UPDATE documents SET status = 'deleted', chunks = 0, updated_at = ?"
                " WHERE user_id = ? AND source = ?",
                (time.time(), user_id, source),
            )
            return rows[0][0]

    def confirm_current(self, ref: DocumentRef, sequencer: str) -> bool:
        with self.db.transaction() as c:
            if self._current(c, ref) != ref.version or not _in_order(c, ref.user_id, ref.source, sequencer):
                return False
            _set_state(c, ref, status="succeeded", reason="", sequencer=sequencer)
            return True

    @staticmethod
    def _current(c, ref: DocumentRef) -> str | None:
        rows = list(c.execute("SELECT version FROM documents WHERE user_id = ? AND source = ? AND status = 'active'",
                              (ref.user_id, ref.source)))
        return rows[0][0] if rows else None

    def record_status(self, ref: DocumentRef, status: str, run_id: str, sequencer: str = "") -> bool:
        with self.db.transaction() as c:
            if not _in_order(c, ref.user_id, ref.source, sequencer):
                return False
            _set_state(c, ref, status=status, run_id=run_id, reason="")
            return True

    def superseded(self, user_id: str, source: str, sequencer: str) -> bool:
        if not sequencer:
            return False
        with self.db.transaction() as c:
            return not _in_order(c, user_id, source, sequencer)

    def record_run_outcome(self, record: RunRecord, sequencer: str = "") -> bool:
        ref = DocumentRef(record.user_id, record.source, record.version)
        with self.db.transaction() as c:
            if not _in_order(c, ref.user_id, ref.source, sequencer):
                return False
            _set_state(c, ref, status=record.status, run_id=record.run_id, reason=record.reason or "")
            return True

    def documents(self, user_id: str) -> Iterator[dict]:
        """Current documents, and files with no current version whose run waits, runs or failed."""
        columns = ("source", "document_id", "version", "title", "pages", "chunks", "summary", "updated_at",
                   "last_status", "last_reason")
        rows = self.db.execute(
            "SELECT d.source, d.document_id, d.version, d.title, d.pages, d.chunks, d.summary, d.updated_at,"
            " s.status, s.reason FROM documents AS d LEFT JOIN document_state AS s USING (user_id, source)"
            " WHERE d.user_id = ? AND d.status = 'active'"
            " UNION ALL"
            " SELECT s.source, s.document_id, '', '', 0, 0, '', s.updated_at, s.status, s.reason"
            " FROM document_state AS s WHERE s.user_id = ? AND s.status IN (?, ?, ?) AND NOT EXISTS ("
            "  SELECT 1 FROM documents AS d WHERE d.user_id = s.user_id AND d.source = s.source"
            "  AND d.status = 'active')"
            " ORDER BY 1",
            (user_id, user_id, *WITHOUT_VERSION),
        )
        for row in rows:
            yield dict(zip(columns, row, strict=True))

    def save_run(self, record: RunRecord) -> None:
        with self.db.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO runs (run_id, user_id, source, status, started_at, record)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (record.run_id, record.user_id, record.source, record.status, record.started_at,
                 json.dumps(record.to_dict(), ensure_ascii=False)),
            )

    def recent_runs(self, limit: int = 20, user_id: str | None = None) -> list[RunRecord]:
        if user_id is None:
            rows = self.db.execute("SELECT record FROM runs ORDER BY started_at DESC LIMIT ?", (limit,))
        else:
            rows = self.db.execute(
                "SELECT record FROM runs WHERE user_id = ? ORDER BY started_at DESC LIMIT ?", (user_id, limit)
            )
        return [RunRecord.from_dict(json.loads(r[0])) for r in rows]

    def running_runs(self) -> list[RunRecord]:
        rows = self.db.execute("SELECT record FROM runs WHERE status = 'running' ORDER BY started_at")
        return [RunRecord.from_dict(json.loads(r[0])) for r in rows]
