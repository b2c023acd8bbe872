"""The embedded `SearchIndex`: FTS5 over Kiwi morphemes + sqlite-vec, in one SQLite file.

Every query is filtered by user id (the vector table is partitioned by it). Hybrid search fuses the
keyword and vector rankings; `SearchOptions.fusion` picks min-max score fusion or reciprocal rank
fusion, and `bench/korquad.py` measures both.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from pipeline.adapters.local.database import Database
from pipeline.korean import analyze, analyze_many
from pipeline.models import Chunk, DocumentRef, SearchHit
from pipeline.names import validate_user_id
from pipeline.options import SearchOptions, check_k, fuse, script_differs

_HIT_COLUMNS = "chunk_id, document_id, source, title, page_start, page_end, heading, kind, text"


class SqliteIndex:
    def __init__(self, db: Database, dim: int, options: SearchOptions | None = None) -> None:
        self.db = db
        self.dim = dim
        self.options = options or SearchOptions()
        with db.transaction() as c:
            row = list(c.execute("SELECT value FROM meta WHERE key = 'vector_dim'"))
            if row and int(row[0][0]) != dim:
                raise ValueError(
                    f"the index at {db.path} holds {row[0][0]}-dimensional vectors but the embedder "
                    f"makes {dim}; use another HANRAG_HOME or re-ingest into a new one"
                )
            if not row:
                c.execute("INSERT INTO meta VALUES ('vector_dim', ?)", (str(dim),))
            c.execute(
                "CREATE VIRTUAL TABLE IF NOT EXISTS chunk_vectors USING vec0 ("
                " chunk_rowid INTEGER PRIMARY KEY, user_id TEXT PARTITION KEY,"
                f" embedding float[{dim}] distance_metric=cosine)"
            )

    # ------------------------------------------------------------------ writes

    def replace_document(self, ref: DocumentRef, chunks: Sequence[Chunk], vectors: np.ndarray,
                         sequencer: str = "") -> bool:
        """One transaction: the old version's rows go and the new ones arrive together, so a
        concurrent search (WAL snapshot) sees exactly one version; the order check is in it too."""
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        validate_user_id(ref.user_id)
        terms = analyze_many([c.search_text for c in chunks])  # outside the write lock
        now = time.time()
        with self.db.transaction() as c:
            if not self._take_turn(c, ref.user_id, ref.document_id, sequencer):
                return False
            self._delete(c, ref.user_id, ref.document_id)
            for chunk, vector, chunk_terms in zip(chunks, vectors, terms, strict=True):
                c.execute(
                    "INSERT INTO chunks (chunk_id, user_id, document_id, version, source, title,"
                    " page_start, page_end, heading, kind, text, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (chunk.chunk_id, ref.user_id, chunk.document_id, chunk.version, chunk.source,
                     chunk.title, chunk.page_start, chunk.page_end, chunk.heading, chunk.kind,
                     chunk.text, now),
                )
                rowid = c.last_insert_rowid()
                c.execute("INSERT INTO chunks_fts (rowid, terms) VALUES (?, ?)", (rowid, " ".join(chunk_terms)))
                c.execute(
                    "INSERT INTO chunk_vectors (chunk_rowid, user_id, embedding) VALUES (?, ?, ?)",
                    (rowid, ref.user_id, np.asarray(vector, dtype=np.float32).tobytes()),
                )
        return True

    def confirm_version(self, ref: DocumentRef, sequencer: str) -> bool:
        with self.db.transaction() as c:
            live = list(c.execute("SELECT 1 FROM chunks WHERE user_id = ? AND document_id = ? AND version = ? LIMIT 1",
                                  (ref.user_id, ref.document_id, ref.version)))
            return bool(live) and self._take_turn(c, ref.user_id, ref.document_id, sequencer)

    def delete_document(self, user_id: str, document_id: str, sequencer: str = "") -> int:
        validate_user_id(user_id)
        with self.db.transaction() as c:
            if not self._take_turn(c, user_id, document_id, sequencer):
                return 0
            return self._delete(c, user_id, document_id)

    def delete_user(self, user_id: str) -> int:
        """Every chunk of the user, whatever its document (offboarding)."""
        validate_user_id(user_id)
        with self.db.transaction() as c:
            rowids = [r[0] for r in c.execute("SELECT rowid FROM chunks WHERE user_id = ?", (user_id,))]
            for rowid in rowids:
                c.execute("DELETE FROM chunks_fts WHERE rowid = ?", (rowid,))
                c.execute("DELETE FROM chunk_vectors WHERE chunk_rowid = ?", (rowid,))
            c.execute("DELETE FROM chunks WHERE user_id = ?", (user_id,))
        return len(rowids)

    @staticmethod
    def _take_turn(c, user_id: str, document_id: str, sequencer: str) -> bool:
        """Record `sequencer` as the document's latest applied event, unless a later one is recorded
        (then the caller writes nothing). No sequencer: an unordered write, always applied."""
        if not sequencer:
            return True
        rows = list(c.execute("SELECT sequencer FROM index_order WHERE user_id = ? AND document_id = ?",
                              (user_id, document_id)))
        if rows and rows[0][0] > sequencer:
            return False
        c.execute("INSERT INTO index_order (user_id, document_id, sequencer) VALUES (?, ?, ?)"
                  " ON CONFLICT (user_id, document_id) DO UPDATE SET sequencer = excluded.sequencer",
                  (user_id, document_id, sequencer))
        return True

    @staticmethod
    def _delete(c, user_id: str, document_id: str) -> int:
        rowids = [r[0] for r in c.execute(
            "SELECT rowid FROM chunks WHERE user_id = ? AND document_id = ?", (user_id, document_id)
        )]
        for rowid in rowids:
            c.execute("DELETE FROM chunks_fts WHERE rowid = ?", (rowid,))
            c.execute("DELETE FROM chunk_vectors WHERE chunk_rowid = ?", (rowid,))
        c.execute("DELETE FROM chunks WHERE user_id = ? AND document_id = ?", (user_id, document_id))
        return len(rowids)

    # ------------------------------------------------------------------ reads

    def keyword_search(self, user_id: str, query: str, k: int) -> list[tuple[int, float]]:
        """(rowid, score) best first; score = -bm25, so higher is better."""
        terms = sorted(set(analyze(query)))
        if not terms:
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        rows = self.db.execute(
            "SELECT f.rowid, -bm25(chunks_fts) AS score FROM chunks_fts AS f"
            " JOIN chunks AS c ON c.rowid = f.rowid"
            " WHERE chunks_fts MATCH ? AND c.user_id = ? ORDER BY score DESC LIMIT ?",
            (match, user_id, k),
        )
        return [(int(r[0]), float(r[1])) for r in rows]

    def vector_search(self, user_id: str, query_vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(rowid, cosine similarity) best first."""
        rows = self.db.execute(
            "SELECT chunk_rowid, distance FROM chunk_vectors"
            " WHERE embedding MATCH ? AND k = ? AND user_id = ? ORDER BY distance",
            (np.asarray(query_vector, dtype=np.float32).tobytes(), k, user_id),
        )
        return [(int(r[0]), 1.0 - float(r[1])) for r in rows]

    def hybrid_search(self, user_id: str, query: str, query_vector: np.ndarray, k: int = 10) -> list[SearchHit]:
        validate_user_id(user_id)
        check_k(k)
        depth = max(k, self.options.depth)
        keyword = self.keyword_search(user_id, query, depth)
        vector = self.vector_search(user_id, query_vector, depth)
        fused = fuse(keyword, vector, self.options, self._keyword_blind(user_id, query, vector))[:k]
        return self._hits(user_id, fused)

    def _keyword_blind(self, user_id: str, query: str, vector: list[tuple[int, float]]) -> set[int]:
        """The vector candidates written in another script than the query (see `fuse`)."""
        if not vector:
            return set()
        marks = ",".join("?" * len(vector))
        rows = self.db.execute(
            f"SELECT rowid, substr(text, 1, 2000) FROM chunks WHERE user_id = ? AND rowid IN ({marks})",
            (user_id, *[rowid for rowid, _ in vector]),
        )
        return {int(rowid) for rowid, text in rows if script_differs(query, text)}

    def _hits(self, user_id: str, scored: list[tuple[int, float]]) -> list[SearchHit]:
        if not scored:
            return []
        marks = ",".join("?" * len(scored))
        rows = {
            r[0]: r[1:]
            for r in self.db.execute(
                f"SELECT rowid, {_HIT_COLUMNS} FROM chunks WHERE user_id = ? AND rowid IN ({marks})",
                (user_id, *[rowid for rowid, _ in scored]),
            )
        }
        return [SearchHit(*rows[rowid], score=score) for rowid, score in scored if rowid in rows]

    def count(self, user_id: str | None = None) -> int:
        if user_id is None:
            return int(self.db.execute("SELECT count(*) FROM chunks")[0][0])
        return int(self.db.execute("SELECT count(*) FROM chunks WHERE user_id = ?", (user_id,))[0][0])
