"""The embedded `VectorCache`: a table in the index's SQLite file.

Bounded by a row count (HANRAG_VECTOR_CACHE_ROWS): when a write passes it, the least recently used
rows go. A row is ~1.6 KB with 384 float32 dimensions, so the default 100,000 rows stay under 160 MB —
about 40,000 pages of documents. Vectors of one model only: the first time the store sees a model,
the rows of every other model are dropped (they could never be used again, and would only take the
room of vectors that can).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from pipeline.adapters.local.database import Database, keep_within

DEFAULT_ROWS = 100_000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS vector_cache (
    rowid     INTEGER PRIMARY KEY,
    model     TEXT NOT NULL,
    key       TEXT NOT NULL,
    vector    BLOB NOT NULL,   -- float32, little-endian
    last_used REAL NOT NULL,
    UNIQUE (model, key)
);
CREATE INDEX IF NOT EXISTS vector_cache_by_use ON vector_cache (last_used);
"""
_BATCH = 500  # keys per statement, well below SQLite's limit on bound parameters


class SqliteVectorCache:
    def __init__(self, db: Database, max_rows: int = DEFAULT_ROWS) -> None:
        if max_rows < 1:
            raise ValueError(f"a vector cache holds at least one row, not {max_rows}")
        self.db = db
        self.max_rows = max_rows
        self._model: str | None = None
        with db.transaction() as c:
            c.execute(_SCHEMA)

    def get_many(self, model: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        self._use(model)
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), _BATCH):
            part = list(keys[start:start + _BATCH])
            marks = ",".join("?" * len(part))
            rows = self.db.execute(f"SELECT key, vector FROM vector_cache WHERE model = ? AND key IN ({marks})",
                                   (model, *part))
            found.update((key, np.frombuffer(blob, dtype="<f4")) for key, blob in rows)
        if found:
            self._touch(model, list(found))
        return found

    def put_many(self, model: str, vectors: dict[str, np.ndarray]) -> None:
        self._use(model)
        now = time.time()
        with self.db.transaction() as c:
            c.executemany(
                "INSERT INTO vector_cache (model, key, vector, last_used) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (model, key) DO UPDATE SET vector = excluded.vector, last_used = excluded.last_used",
                [(model, key, np.asarray(v, dtype="<f4").tobytes(), now) for key, v in vectors.items()],
            )
            keep_within(c, "vector_cache", self.max_rows)

    def rows(self) -> int:
        return self.db.execute("SELECT count(*) FROM vector_cache")[0][0]

    def _touch(self, model: str, keys: list[str]) -> None:
        now = time.time()
        with self.db.transaction() as c:
            c.executemany("UPDATE vector_cache SET last_used = ? WHERE model = ? AND key = ?",
                          [(now, model, key) for key in keys])

    def _use(self, model: str) -> None:
        if model != self._model:
            with self.db.transaction() as c:
                c.execute("DELETE FROM vector_cache WHERE model != ?", (model,))
            self._model = model
