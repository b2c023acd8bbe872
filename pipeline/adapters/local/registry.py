"""The embedded `Registry`: documents per user and the log of runs, in the index's SQLite file."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from pipeline.adapters.local.database import Database
from pipeline.models import DocumentRef, RunRecord


class SqliteRegistry:
    def __init__(self, db: Database) -> None:
        self.db = db

    def current_version(self, user_id: str, source: str) -> str | None:
        rows = self.db.execute(
            "SELECT version FROM documents WHERE user_id = ? AND source = ? AND status = 'active'",
            (user_id, source),
        )
        return rows[0][0] if rows else None

    def save_document(self, ref: DocumentRef, *, pages: int, chunks: int, summary: str, title: str) -> None:
        with self.db.transaction() as c:
            c.execute(
                "INSERT INTO documents (user_id, source, document_id, version, title, pages, chunks,"
                " summary, status, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'active', ?)"
                " ON CONFLICT (user_id, source) DO UPDATE SET version = excluded.version,"
                " title = excluded.title, pages = excluded.pages, chunks = excluded.chunks,"
                " summary = excluded.summary, status = 'active', updated_at = excluded.updated_at",
                (ref.user_id, ref.source, ref.document_id, ref.version, title, pages, chunks, summary,
                 time.time()),
            )

    def mark_deleted(self, user_id: str, source: str) -> str | None:
        """Mark the document deleted; returns its document id, or None if there was none."""
        with self.db.transaction() as c:
            rows = list(c.execute(
                "SELECT document_id FROM documents WHERE user_id = ? AND source = ? AND status = 'active'",
                (user_id, source),
            ))
            if not rows:
                return None
            c.execute(
                "UPDATE documents SET status = 'deleted', chunks = 0, updated_at = ?"
                " WHERE user_id = ? AND source = ?",
                (time.time(), user_id, source),
            )
            return rows[0][0]

    def documents(self, user_id: str) -> Iterator[dict]:
        columns = ("source", "document_id", "version", "title", "pages", "chunks", "summary", "updated_at")
        for row in self.db.execute(
            f"SELECT {', '.join(columns)} FROM documents WHERE user_id = ? AND status = 'active'"
            " ORDER BY source",
            (user_id,),
        ):
            yield dict(zip(columns, row, strict=True))

    def save_run(self, record: RunRecord) -> None:
        with self.db.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO runs (run_id, user_id, source, status, started_at, record)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (record.run_id, record.user_id, record.source, record.status, record.started_at,
                 json.dumps(record.to_dict(), ensure_ascii=False)),
            )

    def record_run_outcome(self, record: RunRecord) -> None:
        """Nothing more to write: here the runs table, which `save_run` keeps, is read for outcomes."""

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
