"""The embedded `OcrCache`: a table in the index's SQLite file, beside the vector cache.

Bounded by a row count (HANRAG_OCR_CACHE_ROWS): when a write passes it, the least recently used rows go.
A row holds what Tesseract read from one picture or scanned page (a few hundred bytes to a few KB of
text), so the default 20,000 rows stay within tens of MB. Readings of one engine only: the first time
the store sees an engine (another Tesseract version or language data), the rows of every other engine
are dropped, as they could never be used again.
"""

from __future__ import annotations

import json
import time

from pipeline.adapters.local.database import Database, keep_within

DEFAULT_ROWS = 20_000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS ocr_cache (
    rowid     INTEGER PRIMARY KEY,
    engine    TEXT NOT NULL,
    owner     TEXT NOT NULL,   -- the user whose document held the image
    key       TEXT NOT NULL,
    pages     TEXT NOT NULL,   -- JSON: [[text, confidence], ...], one pair per page of the image
    last_used REAL NOT NULL,
    UNIQUE (engine, owner, key)
);
CREATE INDEX IF NOT EXISTS ocr_cache_by_use ON ocr_cache (last_used);
"""


class SqliteOcrCache:
    def __init__(self, db: Database, max_rows: int = DEFAULT_ROWS) -> None:
        if max_rows < 1:
            raise ValueError(f"an OCR cache holds at least one row, not {max_rows}")
        self.db = db
        self.max_rows = max_rows
        self._engine: str | None = None
        with db.transaction() as c:
            c.execute(_SCHEMA)

    def get(self, engine: str, owner: str, key: str) -> list[tuple[str, float]] | None:
        self._use(engine)
        rows = self.db.execute("SELECT rowid, pages FROM ocr_cache WHERE engine = ? AND owner = ? AND key = ?",
                               (engine, owner, key))
        if not rows:
            return None
        (rowid, pages), = rows
        with self.db.transaction() as c:
            c.execute("UPDATE ocr_cache SET last_used = ? WHERE rowid = ?", (time.time(), rowid))
        return [(text, confidence) for text, confidence in json.loads(pages)]

    def put(self, engine: str, owner: str, key: str, pages: list[tuple[str, float]]) -> None:
        self._use(engine)
        with self.db.transaction() as c:
            c.execute(
                "INSERT INTO ocr_cache (engine, owner, key, pages, last_used) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (engine, owner, key)"
                " DO UPDATE SET pages = excluded.pages, last_used = excluded.last_used",
                (engine, owner, key, json.dumps([[text, confidence] for text, confidence in pages], ensure_ascii=False),
                 time.time()),
            )
            keep_within(c, "ocr_cache", self.max_rows)

    def rows(self) -> int:
        return self.db.execute("SELECT count(*) FROM ocr_cache")[0][0]

    def _use(self, engine: str) -> None:
        if engine != self._engine:
            with self.db.transaction() as c:
                c.execute("DELETE FROM ocr_cache WHERE engine != ?", (engine,))
            self._engine = engine
