"""Retrieval: a question → the user's best chunks, through the `Embedder`, `SearchIndex` and `Reranker` ports.

Every way in (`hanrag search`, `hanrag ask`, `hanrag eval`, `hanrag serve`, the chat Lambda) searches
through `Retriever.search`, so the rerank pass below holds on both indices alike.
"""

from __future__ import annotations

from pipeline.adapters.local.reranker import LexicalReranker
from pipeline.errors import PipelineError
from pipeline.models import SearchHit
from pipeline.names import validate_user_id
from pipeline.options import MAX_K, SearchOptions
from pipeline.ports import Embedder, Reranker, SearchIndex

MAX_QUERY_CHARS = 1000  # the embedder reads 512 tokens at most; a longer query only costs time, under a shared lock


class InvalidQuery(PipelineError):
    """A query longer than MAX_QUERY_CHARS."""


def default_reranker(options: SearchOptions) -> Reranker | None:
    """The local lexical reranker unless the settings turn it off (HANRAG_RERANK=0)."""
    return LexicalReranker() if options.rerank else None


class Retriever:
    def __init__(self, embedder: Embedder, index: SearchIndex, options: SearchOptions | None = None,
                 reranker: Reranker | None = None) -> None:
        self.embedder = embedder
        self.index = index
        self.options = options or SearchOptions()
        self.reranker = reranker if reranker is not None else default_reranker(self.options)

    def search(self, user_id: str, query: str, k: int = 10) -> list[SearchHit]:
        """Hybrid search in `user_id`'s documents only, then the rerank pass over the best candidates."""
        user_id = validate_user_id(user_id)
        query = query.strip()
        if not query:
            return []
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidQuery(f"검색어는 {MAX_QUERY_CHARS}자까지입니다: {len(query):,}자 "
                               f"(the query is longer than {MAX_QUERY_CHARS} characters)")
        vector = self.embedder.embed_query(query)
        if self.reranker is None:
            return self.index.hybrid_search(user_id, query, vector, k)
        candidates = self.index.hybrid_search(user_id, query, vector, min(MAX_K, max(k, self.options.rerank_depth)))
        return self.reranker.rerank(query, candidates, k)
