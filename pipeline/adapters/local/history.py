"""The embedded `HistoryStore`: chat messages in the index's SQLite file, one transaction per write."""

from __future__ import annotations

import json
import time

from pipeline.adapters.local.database import Database
from pipeline.names import validate_session_id, validate_user_id


class SqliteHistory:
    def __init__(self, db: Database) -> None:
        self.db = db

    def append(self, user_id: str, session_id: str, role: str, text: str,
               citations: list[dict] | None = None, now: float | None = None) -> None:
        user_id, session_id = validate_user_id(user_id), validate_session_id(session_id)
        with self.db.transaction() as c:
            c.execute(
                "INSERT INTO chat_messages (user_id, session_id, role, text, citations, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (user_id, session_id, role, text, json.dumps(citations or [], ensure_ascii=False),
                 time.time() if now is None else now),
            )

    def turns(self, user_id: str, session_id: str, limit: int = 50) -> list[dict]:
        rows = self.db.execute(
            "SELECT role, text, citations, created_at FROM chat_messages WHERE user_id = ? AND session_id = ?"
            " ORDER BY id DESC LIMIT ?",
            (validate_user_id(user_id), validate_session_id(session_id), limit),
        )
        return [{"role": role, "text": text, "citations": json.loads(citations), "created_at": created}
                for role, text, citations, created in reversed(rows)]

    def sessions(self, user_id: str, limit: int = 200) -> list[str]:
        """The user's sessions, most recently used first."""
        rows = self.db.execute(
            "SELECT session_id FROM chat_messages WHERE user_id = ? GROUP BY session_id"
            " ORDER BY MAX(id) DESC LIMIT ?",
            (validate_user_id(user_id), limit),
        )
        return [r[0] for r in rows]

    def delete_session(self, user_id: str, session_id: str) -> int:
        user_id, session_id = validate_user_id(user_id), validate_session_id(session_id)
        with self.db.transaction() as c:
            c.execute("DELETE FROM chat_messages WHERE user_id = ? AND session_id = ?", (user_id, session_id))
            return c.changes()
