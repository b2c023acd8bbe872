"""Retrieval: a question → the user's best chunks, through the `Embedder` and `SearchIndex` ports."""

from __future__ import annotations

from pipeline.models import SearchHit
from pipeline.names import validate_user_id
from pipeline.ports import Embedder, SearchIndex


class Retriever:
    def __init__(self, embedder: Embedder, index: SearchIndex) -> None:
        self.embedder = embedder
        self.index = index

    def search(self, user_id: str, query: str, k: int = 10) -> list[SearchHit]:
        """Hybrid search in `user_id`'s documents only."""
        user_id = validate_user_id(user_id)
        query = query.strip()
        if not query:
            return []
        return self.index.hybrid_search(user_id, query, self.embedder.embed_query(query), k)
