"""Retrieval: a question → the user's best chunks, through the `Embedder` and `SearchIndex` ports."""

from __future__ import annotations

from pipeline.errors import PipelineError
from pipeline.models import SearchHit
from pipeline.names import validate_user_id
from pipeline.ports import Embedder, SearchIndex

MAX_QUERY_CHARS = 1000  # the embedder reads 512 tokens at most; a longer query only costs time, under a shared lock


class InvalidQuery(PipelineError):
    """A query longer than MAX_QUERY_CHARS."""


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
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidQuery(f"검색어는 {MAX_QUERY_CHARS}자까지입니다: {len(query):,}자 "
                               f"(the query is longer than {MAX_QUERY_CHARS} characters)")
        return self.index.hybrid_search(user_id, query, self.embedder.embed_query(query), k)
