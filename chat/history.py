"""Chat history: the messages of each user's sessions, and the part of it a model gets to see.

The store is a port (`HistoryStore`) because it lives in SQLite on one machine and in DynamoDB on
AWS (`pipeline.adapters.aws.dynamodb.ChatHistoryTable` has the same methods). Every method takes
the user id, so one user's sessions are never reachable with another's id.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from typing import Protocol

from pipeline.adapters.local.database import Database
from pipeline.errors import InvalidName
from pipeline.names import validate_user_id
from pipeline.stages.chunk import count_tokens

_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def validate_session_id(session_id: str) -> str:
    if not isinstance(session_id, str) or not _SESSION_ID.match(session_id):
        raise InvalidName(
            f"invalid session id {session_id!r}: use 1–64 letters, digits, '-' or '_'"
        )
    return session_id


class HistoryStore(Protocol):
    def append(self, user_id: str, session_id: str, role: str, text: str,
               citations: list[dict] | None = None, now: float | None = None) -> None: ...

    def turns(self, user_id: str, session_id: str, limit: int = 50) -> list[dict]:
        """The last `limit` messages of a session, oldest first: {"role", "text", "citations", "created_at"}."""
        ...

    def sessions(self, user_id: str, limit: int = 200) -> list[str]: ...

    def delete_session(self, user_id: str, session_id: str) -> int: ...


class SqliteHistory:
    """History in the index's SQLite file; every write is one transaction, like the CLI's."""

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


def within_budget(turns: Sequence[dict], max_tokens: int) -> list[dict]:
    """The most recent turns whose text fits in `max_tokens` (cl100k), oldest first.

    What a model sees of the conversation is bounded so a long chat never crowds out the
    retrieved context or overflows the model's window; the newest turns matter most.
    """
    kept: list[dict] = []
    used = 0
    for turn in reversed(turns):
        cost = count_tokens(turn["text"]) + 4  # role marker and separators
        if used + cost > max_tokens:
            break
        kept.append(turn)
        used += cost
    return kept[::-1]
