"""The OpenSearch `SearchIndex`: one index per user, Korean analysis by nori, vectors by HNSW.

Every request body is built by a pure function below and tested as data (no OpenSearch server runs in
the tests). The adapter only sends them:

- `hanrag-<user>` is created on first use (`index_body`): the `nori_tokenizer` with
  `decompound_mode: mixed` (compounds are indexed whole and split, so 핀테크투자 finds 투자) and a
  `knn_vector` field with an HNSW graph under cosine similarity.
- replace_document writes the new version with one bulk request and waits for the refresh, and only
  then deletes the older versions' chunks. So a reader never sees *neither* version; in the moment
  between the two steps it could see *both*, which `newest_version_only` folds away: of one document
  only the newest version's hits are returned.
- hybrid_search is a `hybrid` query (BM25 over nori + k-NN) through a search pipeline whose
  normalization processor (min-max, weighted arithmetic mean) fuses the two scores, like the SQLite
  index's `minmax` fusion. Each sub-query is filtered by `user_id` on top of living in the user's
  own index, so even a mistaken index name cannot return another user's chunks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.errors import PipelineError, TransientError
from pipeline.models import Chunk, DocumentRef, SearchHit
from pipeline.names import validate_user_id
from pipeline.stages.index import SearchOptions

PIPELINE_NAME = "hanrag-hybrid"
SOURCE_FIELDS = ["chunk_id", "document_id", "version", "source", "title", "page_start", "page_end",
                 "heading", "kind", "text", "created_at"]


def index_name(user_id: str) -> str:
    """`hanrag-<user>`: the validated user id is lower-case letters, digits, '-' and '_' only."""
    return f"hanrag-{validate_user_id(user_id)}"


def index_body(dim: int, shards: int = 1, replicas: int = 1) -> dict:
    return {
        "settings": {
            "index": {"knn": True, "number_of_shards": shards, "number_of_replicas": replicas},
            "analysis": {
                "tokenizer": {
                    "korean": {"type": "nori_tokenizer", "decompound_mode": "mixed", "discard_punctuation": True},
                },
                "analyzer": {
                    "korean": {
                        "type": "custom", "tokenizer": "korean",
                        "filter": ["nori_part_of_speech", "nori_readingform", "lowercase"],
                    },
                },
            },
        },
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "chunk_id": {"type": "keyword"},
                "user_id": {"type": "keyword"},
                "document_id": {"type": "keyword"},
                "version": {"type": "keyword"},
                "source": {"type": "keyword"},
                "title": {"type": "text", "analyzer": "korean"},
                "heading": {"type": "text", "analyzer": "korean"},
                "page_start": {"type": "integer"},
                "page_end": {"type": "integer"},
                "kind": {"type": "keyword"},
                "text": {"type": "text", "analyzer": "korean"},
                "vector": {
                    "type": "knn_vector", "dimension": dim,
                    "method": {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil",
                               "parameters": {"m": 16, "ef_construction": 128}},
                },
                "created_at": {"type": "date", "format": "epoch_millis"},
            },
        },
    }


def search_pipeline_body(options: SearchOptions) -> dict:
    """Min-max normalization of each sub-query's scores, then the weighted mean (keyword, vector)."""
    keyword_weight = round(1.0 - options.dense_weight, 6)
    return {
        "description": "hanrag hybrid search: BM25 over nori + k-NN, min-max normalized",
        "phase_results_processors": [{
            "normalization-processor": {
                "normalization": {"technique": "min_max"},
                "combination": {"technique": "arithmetic_mean",
                                "parameters": {"weights": [keyword_weight, options.dense_weight]}},
            },
        }],
    }


def chunk_document_id(chunk: Chunk) -> str:
    """The OpenSearch `_id`: version-qualified, so a new version never overwrites the live one."""
    return f"{chunk.version[:16]}-{chunk.chunk_id}"


def bulk_body(user_id: str, chunks: Sequence[Chunk], vectors: np.ndarray, now_ms: int) -> list[dict]:
    """Action/document pairs for the `_bulk` API (opensearch-py serializes them as NDJSON)."""
    name = index_name(user_id)
    lines: list[dict] = []
    for chunk, vector in zip(chunks, vectors, strict=True):
        lines.append({"index": {"_index": name, "_id": chunk_document_id(chunk)}})
        lines.append({
            "chunk_id": chunk.chunk_id, "user_id": user_id, "document_id": chunk.document_id,
            "version": chunk.version, "source": chunk.source, "title": chunk.title,
            "heading": chunk.heading, "page_start": chunk.page_start, "page_end": chunk.page_end,
            "kind": chunk.kind, "text": chunk.text, "vector": [float(x) for x in vector],
            "created_at": now_ms,
        })
    return lines


def delete_older_versions_body(user_id: str, document_id: str, keep_version: str) -> dict:
    return {"query": {"bool": {
        "filter": [{"term": {"user_id": user_id}}, {"term": {"document_id": document_id}}],
        "must_not": [{"term": {"version": keep_version}}],
    }}}


def delete_document_body(user_id: str, document_id: str) -> dict:
    return {"query": {"bool": {"filter": [{"term": {"user_id": user_id}}, {"term": {"document_id": document_id}}]}}}


def hybrid_query_body(user_id: str, query: str, query_vector: np.ndarray, k: int, depth: int = 50) -> dict:
    only_user = {"term": {"user_id": user_id}}
    return {
        "size": k,
        "_source": SOURCE_FIELDS,
        "query": {"hybrid": {"queries": [
            {"bool": {
                "must": [{"multi_match": {"query": query, "fields": ["text", "title^0.5", "heading^0.5"]}}],
                "filter": [only_user],
            }},
            {"knn": {"vector": {"vector": [float(x) for x in query_vector], "k": max(k, depth),
                                "filter": only_user}}},
        ]}},
    }


Stamped = tuple[SearchHit, tuple[int, str]]  # a hit and its (created_at, version)


def hits_from_response(response: dict) -> list[Stamped]:
    hits = []
    for hit in response.get("hits", {}).get("hits", []):
        s = hit["_source"]
        found = SearchHit(
            chunk_id=s["chunk_id"], document_id=s["document_id"], source=s["source"], title=s.get("title", ""),
            page_start=s["page_start"], page_end=s["page_end"], heading=s.get("heading", ""),
            kind=s.get("kind", "text"), text=s["text"], score=float(hit.get("_score") or 0.0),
        )
        hits.append((found, (int(s.get("created_at", 0)), s.get("version", ""))))
    return hits


def newest_version_only(hits: list[Stamped]) -> list[SearchHit]:
    """Of each document keep the hits of its newest version (the one written last)."""
    newest: dict[str, tuple[int, str]] = {}
    for hit, stamp in hits:
        if hit.document_id not in newest or stamp > newest[hit.document_id]:
            newest[hit.document_id] = stamp
    return [hit for hit, stamp in hits if stamp == newest[hit.document_id]]


def opensearch_client(endpoint: str, region: str) -> Any:
    """A client signing every request with the Lambda role's credentials (SigV4, service `es`)."""
    import boto3
    from opensearchpy import OpenSearch, RequestsAWSV4SignerAuth, RequestsHttpConnection

    host = endpoint.removeprefix("https://").rstrip("/")
    auth = RequestsAWSV4SignerAuth(boto3.Session().get_credentials(), region, "es")
    return OpenSearch(hosts=[{"host": host, "port": 443}], http_auth=auth, use_ssl=True, verify_certs=True,
                      connection_class=RequestsHttpConnection, timeout=30, http_compress=True)


def _opensearch_call(what: str, call, *args, **kwargs):
    """Run one request; 429 and 5xx answers and connection failures become `TransientError`."""
    from opensearchpy.exceptions import ConnectionError as OSConnectionError
    from opensearchpy.exceptions import TransportError

    try:
        return call(*args, **kwargs)
    except OSConnectionError as error:  # includes ConnectionTimeout
        raise TransientError(f"OpenSearch {what}: {error}") from error
    except TransportError as error:
        if isinstance(error.status_code, int) and (error.status_code == 429 or error.status_code >= 500):
            raise TransientError(f"OpenSearch {what}: HTTP {error.status_code} {error.error}") from error
        raise


class OpenSearchIndex:
    def __init__(self, client: Any, dim: int, options: SearchOptions | None = None, replicas: int = 1) -> None:
        self.client = client
        self.dim = dim
        self.options = options or SearchOptions()
        self.replicas = replicas
        self._ready: set[str] = set()
        self._pipeline_ready = False

    def _request(self, what: str, method: str, url: str, body: Any = None, params: dict | None = None) -> Any:
        return _opensearch_call(what, self.client.transport.perform_request, method, url, params=params, body=body)

    def ensure_index(self, user_id: str) -> str:
        """Create `hanrag-<user>` on first use; a concurrent creator winning the race is fine."""
        name = index_name(user_id)
        if name in self._ready:
            return name
        if not _opensearch_call("index exists", self.client.indices.exists, index=name):
            from opensearchpy.exceptions import RequestError

            try:
                _opensearch_call("create index", self.client.indices.create, index=name,
                                 body=index_body(self.dim, replicas=self.replicas))
            except RequestError as error:
                if "resource_already_exists_exception" not in str(error):
                    raise
        self._ready.add(name)
        return name

    def ensure_search_pipeline(self) -> None:
        if not self._pipeline_ready:
            self._request("put search pipeline", "PUT", f"/_search/pipeline/{PIPELINE_NAME}",
                          body=search_pipeline_body(self.options))
            self._pipeline_ready = True

    def replace_document(self, ref: DocumentRef, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        name = self.ensure_index(ref.user_id)
        now_ms = int(time.time() * 1000)
        for start in range(0, len(chunks), 200):  # bulk requests of a few MB at most
            body = bulk_body(ref.user_id, chunks[start : start + 200], vectors[start : start + 200], now_ms)
            answer = _opensearch_call("bulk write", self.client.bulk, body=body, params={"refresh": "wait_for"})
            if answer.get("errors"):
                failures = [i for i in answer["items"] if i.get("index", {}).get("error")]
                first = failures[0]["index"]
                error = PipelineError if first.get("status") != 429 else TransientError
                raise error(f"OpenSearch rejected {len(failures)} chunk(s) of {ref.source}: {first['error']}")
        self._request("delete older versions", "POST", f"/{name}/_delete_by_query",
                      body=delete_older_versions_body(ref.user_id, ref.document_id, ref.version),
                      params={"refresh": "true", "conflicts": "proceed"})

    def delete_document(self, user_id: str, document_id: str) -> int:
        name = index_name(user_id)
        if not _opensearch_call("index exists", self.client.indices.exists, index=name):
            return 0
        answer = self._request("delete document", "POST", f"/{name}/_delete_by_query",
                               body=delete_document_body(user_id, document_id),
                               params={"refresh": "true", "conflicts": "proceed"})
        return int(answer.get("deleted", 0))

    def hybrid_search(self, user_id: str, query: str, query_vector: np.ndarray, k: int = 10) -> list[SearchHit]:
        name = index_name(user_id)
        self.ensure_search_pipeline()
        if not _opensearch_call("index exists", self.client.indices.exists, index=name):
            return []  # a user with no documents yet
        body = hybrid_query_body(user_id, query, query_vector, k, self.options.depth)
        answer = self._request("hybrid search", "POST", f"/{name}/_search", body=body,
                               params={"search_pipeline": PIPELINE_NAME})
        return newest_version_only(hits_from_response(answer))[:k]
