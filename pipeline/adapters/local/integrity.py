"""Does the SQLite file still hold one consistent index? `hanrag check` and the crash tests ask this.

Every chunk must have its keyword row and its vector row and nothing else may have either; each
document in the index holds exactly one version (chunk ids are unique by schema); the registry's active documents
are the ones the index holds, with the chunk counts it recorded; and SQLite's own integrity check passes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pipeline.adapters.local.database import Database


@dataclass
class IntegrityReport:
    chunks: int = 0
    documents: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def _count(db: Database, sql: str) -> int:
    return int(db.execute(sql)[0][0])


def check_integrity(db: Database) -> IntegrityReport:
    report = IntegrityReport()
    problems = report.problems
    sqlite_says = [r[0] for r in db.execute("PRAGMA integrity_check")]
    if sqlite_says != ["ok"]:
        problems.append("SQLite integrity check: " + "; ".join(map(str, sqlite_says[:5])))
    report.chunks = _count(db, "SELECT count(*) FROM chunks")
    checks = {
        "chunks without keyword rows": "SELECT count(*) FROM chunks c"
        " WHERE NOT EXISTS (SELECT 1 FROM chunks_fts f WHERE f.rowid = c.rowid)",
        "keyword rows without chunks": "SELECT count(*) FROM chunks_fts f"
        " WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.rowid = f.rowid)",
        "chunks without vectors": "SELECT count(*) FROM chunks c"
        " WHERE NOT EXISTS (SELECT 1 FROM chunk_vectors v WHERE v.chunk_rowid = c.rowid)",
        "vectors without chunks": "SELECT count(*) FROM chunk_vectors v"
        " WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.rowid = v.chunk_rowid)",
        "vectors filed under another user": "SELECT count(*) FROM chunk_vectors v"
        " JOIN chunks c ON c.rowid = v.chunk_rowid WHERE v.user_id != c.user_id",
        "documents holding more than one version": "SELECT count(*) FROM (SELECT 1 FROM chunks"
        " GROUP BY user_id, document_id HAVING count(DISTINCT version) > 1)",
        "documents in the index the registry does not list as active": "SELECT count(*) FROM (SELECT DISTINCT"
        " c.user_id, c.document_id, c.version FROM chunks c WHERE NOT EXISTS (SELECT 1 FROM documents d"
        " WHERE d.user_id = c.user_id AND d.document_id = c.document_id AND d.version = c.version"
        " AND d.status = 'active'))",
        "active documents with no chunks in the index": "SELECT count(*) FROM documents d"
        " WHERE d.status = 'active' AND NOT EXISTS (SELECT 1 FROM chunks c"
        " WHERE c.user_id = d.user_id AND c.document_id = d.document_id AND c.version = d.version)",
        "active documents whose chunk count differs from the index": "SELECT count(*) FROM documents d"
        " WHERE d.status = 'active' AND d.chunks != (SELECT count(*) FROM chunks c"
        " WHERE c.user_id = d.user_id AND c.document_id = d.document_id AND c.version = d.version)",
    }
    for problem, sql in checks.items():
        if (n := _count(db, sql)) > 0:
            problems.append(f"{problem}: {n}")
    report.documents = _count(db, "SELECT count(*) FROM documents WHERE status = 'active'")
    return report


def check_opensearch(index, registry_db: Database) -> IntegrityReport:
    """The registry's active documents against an OpenSearch index: every document has exactly the
    version the registry names, with the chunk count it recorded, and the index holds no others."""
    report = IntegrityReport()
    users = [r[0] for r in registry_db.execute("SELECT DISTINCT user_id FROM documents")]
    for user in users:
        expected = {r[0]: (r[1], r[2]) for r in registry_db.execute(
            "SELECT document_id, version, chunks FROM documents WHERE user_id = ? AND status = 'active'", (user,))}
        live = index.live_documents(user)
        report.documents += len(live)
        report.chunks += sum(chunks for _, chunks in live.values())
        for document_id, (version, chunks) in expected.items():
            if document_id not in live:
                report.problems.append(f"{user}: document {document_id} is in the registry but not searchable")
            elif live[document_id] != (version, chunks):
                report.problems.append(f"{user}: document {document_id} is searchable as version "
                                       f"{live[document_id][0][:12]} with {live[document_id][1]} chunks; the "
                                       f"registry has {version[:12]} with {chunks}")
        for document_id in live.keys() - expected.keys():
            report.problems.append(f"{user}: document {document_id} is searchable but not in the registry")
    return report
