"""The configured `SearchIndex` (HANRAG_INDEX=sqlite|opensearch), for the CLI, the server and Lambda.

The OpenSearch client is imported only when chosen, so the embedded default never needs it.
"""

from __future__ import annotations

from pipeline.config import IndexSettings
from pipeline.options import SearchOptions
from pipeline.ports import Embedder, SearchIndex


def build_index(settings: IndexSettings, embedder: Embedder, search: SearchOptions, database=None) -> SearchIndex:
    """`database` is the SQLite `Database` the embedded index shares with the registry."""
    if settings.kind == "opensearch":
        from pipeline.adapters.opensearch import OpenSearchIndex, opensearch_client

        client = opensearch_client(settings.url, settings.auth, username=settings.username,
                                   password=settings.password, region=settings.region,
                                   service=settings.service, timeout=settings.timeout)
        return OpenSearchIndex(client, embedder.dim, embedder.name, search, replicas=settings.replicas)
    from pipeline.adapters.local.sqlite_index import SqliteIndex

    if database is None:
        raise ValueError("the SQLite index needs the database it shares with the registry")
    return SqliteIndex(database, embedder.dim, search)
