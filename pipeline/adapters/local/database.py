"""One SQLite file holds a user's whole embedded deployment: chunks, keyword index, vectors,
the document registry and the run log.

apsw, because the standard library's sqlite3 here cannot load extensions (sqlite-vec is one). WAL
mode lets searches read a consistent snapshot while an ingest writes; every write is one
transaction, so a crash leaves either the old state or the new one.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import apsw
import sqlite_vec

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS chunks (
    rowid       INTEGER PRIMARY KEY,
    chunk_id    TEXT NOT NULL UNIQUE,
    user_id     TEXT NOT NULL,
    document_id TEXT NOT NULL,
    version     TEXT NOT NULL,
    source      TEXT NOT NULL,
    title       TEXT NOT NULL,
    page_start  INTEGER NOT NULL,
    page_end    INTEGER NOT NULL,
    heading     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    text        TEXT NOT NULL,
    created_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks (user_id, document_id);

-- Kiwi content morphemes, space-separated; rowid = chunks.rowid
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5 (terms, tokenize = 'unicode61 remove_diacritics 0');

CREATE TABLE IF NOT EXISTS documents (
    user_id     TEXT NOT NULL,
    source      TEXT NOT NULL,
    document_id TEXT NOT NULL,
    version     TEXT NOT NULL,
    title       TEXT NOT NULL DEFAULT '',
    pages       INTEGER NOT NULL DEFAULT 0,
    chunks      INTEGER NOT NULL DEFAULT 0,
    summary     TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL DEFAULT 'active',
    updated_at  REAL NOT NULL,
    PRIMARY KEY (user_id, source)
);

-- per file: its latest run's status (queued / processing / succeeded / failed / deleted) and reason,
-- and the sequencer of the latest upload or delete applied to it (empty: unordered writes)
CREATE TABLE IF NOT EXISTS document_state (
    user_id     TEXT NOT NULL,
    source      TEXT NOT NULL,
    document_id TEXT NOT NULL,
    run_id      TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    sequencer   TEXT NOT NULL DEFAULT '',
    updated_at  REAL NOT NULL,
    PRIMARY KEY (user_id, source)
);

-- the index's side of the same order: the sequencer of the latest version or delete it applied
CREATE TABLE IF NOT EXISTS index_order (
    user_id     TEXT NOT NULL,
    document_id TEXT NOT NULL,
    sequencer   TEXT NOT NULL,
    PRIMARY KEY (user_id, document_id)
);

CREATE TABLE IF NOT EXISTS runs (
    run_id     TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    source     TEXT NOT NULL,
    status     TEXT NOT NULL,
    started_at REAL NOT NULL,
    record     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs (started_at);

-- chat history (chat/history.py): one row per message; citations as JSON
CREATE TABLE IF NOT EXISTS chat_messages (
    id         INTEGER PRIMARY KEY,
    user_id    TEXT NOT NULL,
    session_id TEXT NOT NULL,
    role       TEXT NOT NULL,
    text       TEXT NOT NULL,
    citations  TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS chat_by_session ON chat_messages (user_id, session_id, id);
"""


class Database:
    """An apsw connection per thread to one SQLite file, with sqlite-vec loaded."""

    def __init__(self, path: Path | str, busy_timeout_ms: int = 30_000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        with self.transaction() as db:
            db.execute(SCHEMA)

    @property
    def connection(self) -> apsw.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = apsw.Connection(str(self.path))
            connection.set_busy_timeout(self._busy_timeout_ms)
            connection.enable_load_extension(True)
            connection.load_extension(sqlite_vec.loadable_path())
            connection.enable_load_extension(False)
            _switch_to_wal(connection, self._busy_timeout_ms / 1000)
            self._local.connection = connection
        return connection

    def transaction(self) -> apsw.Connection:
        """`with db.transaction() as c:` — one atomic unit; BEGIN IMMEDIATE so writers queue."""
        return _Immediate(self.connection)

    def execute(self, sql: str, params: tuple | dict = ()) -> list[tuple]:
        return list(self.connection.execute(sql, params))

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


class _Immediate:
    """BEGIN IMMEDIATE … COMMIT / ROLLBACK: the write lock is taken up front, not on first write,
    so two writers wait on the busy timeout instead of failing with SQLITE_BUSY mid-transaction."""

    def __init__(self, connection: apsw.Connection) -> None:
        self._connection = connection

    def __enter__(self) -> apsw.Connection:
        self._connection.execute("BEGIN IMMEDIATE")
        return self._connection

    def __exit__(self, exc_type, exc, tb) -> None:
        self._connection.execute("ROLLBACK" if exc_type else "COMMIT")


def _switch_to_wal(connection: apsw.Connection, within_seconds: float) -> None:
    """WAL mode, retried: two processes opening a new database at once can get SQLITE_BUSY from the
    journal-mode change itself, which SQLite does not hand to the busy handler (tests/test_reliability.py
    saw it as "database is locked" in one ingest of two started together)."""
    deadline = time.monotonic() + within_seconds
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
            return
        except apsw.BusyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def keep_within(connection, table: str, max_rows: int) -> None:
    """Inside a write transaction: forget the least recently used rows of a cache table (`last_used`)
    beyond `max_rows`. `table` is one of ours, never user input."""
    (count,), = connection.execute(f"SELECT count(*) FROM {table}")
    if count > max_rows:
        connection.execute(f"DELETE FROM {table} WHERE rowid IN"
                           f" (SELECT rowid FROM {table} ORDER BY last_used, rowid LIMIT ?)", (count - max_rows,))
