"""The OpenSearch `SearchIndex`: a team's own cluster or an Amazon OpenSearch Service domain.

One index per user and embedding model, behind one alias per user:

- the physical index `hanrag-<user>.<model>.<dim>` carries the embedding model and its dimension, so
  a new model builds new indices instead of mixing vectors; the alias `hanrag-<user>` names the one
  searches read. `reembed` fills the new model's index and moves the alias in one `_aliases` request,
  so search is never empty. (User ids have no '.', so no user's alias is another user's index.)
- Korean text is analysed by nori (`nori_tokenizer` with `decompound_mode: mixed`, so 핀테크투자 is
  indexed whole and as 핀테크 + 투자; `nori_part_of_speech` drops particles, so 은행은 finds 은행).
  Vectors live in a Lucene HNSW graph under cosine similarity (the `lucene` engine of k-NN).
- A document's version becomes visible atomically. The chunks of a new version are written under
  version-qualified ids, and only when every one of them is written and refreshed does one small
  *pointer* document (`_id` = `current:<document_id>`) switch to the new version (it also names the
  version before it). Searches keep the hits of the pointer's version, or of the previous one when the
  search's view predates the switch (`visible_version`), so a reader sees the old version or the new
  one, never neither and never a half-written one; a failed or interrupted write leaves the old
  version searchable, and its retry overwrites the same ids (nothing is doubled). Older chunks are
  then deleted.
- Writes that arrive out of order (two uploads of a file whose executions end in the other order, a
  delete while an ingest runs) are ordered by the S3 event's `sequencer`, which the pointer keeps:
  the switch is a compare-and-set on the pointer (`if_seq_no`/`if_primary_term`) that only a later
  sequencer wins, and a sequenced delete leaves the pointer as a tombstone (no version) holding its
  sequencer, so an older version arriving afterwards is refused and its chunks removed again. Such a
  write deletes only the versions its switch retired: chunks of a later version may be on their way.
- hybrid_search sends the keyword (BM25 over nori) and the k-NN query in one `_msearch` and fuses the
  two rankings with `pipeline.options.fuse`, the function the SQLite index uses: the same
  options give the same kind of ranking on both indices, and no `neural-search` plugin is needed.

Each query is also filtered by `user_id`, so even a mistaken index name cannot return another user's
chunks. Request bodies are built by pure functions below; the adapter sends them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.errors import PipelineError, TransientError
from pipeline.models import Chunk, DocumentRef, SearchHit
from pipeline.names import validate_user_id
from pipeline.options import SearchOptions, check_k, fuse, script_differs

SOURCE_FIELDS = ["chunk_id", "document_id", "version", "source", "title", "page_start", "page_end",
                 "heading", "kind", "text"]
BULK_CHUNKS = 200  # chunks per bulk request: a few MB at most
POINTER = "pointer"  # the `kind` of a document's version pointer


# ---------------------------------------------------------------------------------------- names

def alias_name(user_id: str) -> str:
    """`hanrag-<user>`: what searches read. The user id is lower-case letters, digits, '-' and '_'."""
    return f"hanrag-{validate_user_id(user_id)}"


def model_slug(model: str) -> str:
    """An embedding model's name as it may appear in an index name (lower case, no '.', ≤ 60)."""
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")
    return (slug or "model")[:60]


def physical_name(user_id: str, model: str, dim: int) -> str:
    return f"{alias_name(user_id)}.{model_slug(model)}.{dim}"


def pointer_id(document_id: str) -> str:
    return f"current:{document_id}"


def chunk_doc_id(chunk: Chunk) -> str:
    """The `_id` of a chunk: version-qualified, so a new version never overwrites the live one."""
    return f"{chunk.version[:16]}-{chunk.chunk_id}"


# ---------------------------------------------------------------------------------------- bodies

def index_body(dim: int, model: str, shards: int = 1, replicas: int = 1) -> dict:
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
            "_meta": {"embedding_model": model, "dimension": dim},
            "properties": {
                "chunk_id": {"type": "keyword"},
                "user_id": {"type": "keyword"},
                "document_id": {"type": "keyword"},
                "version": {"type": "keyword"},
                "previous": {"type": "keyword"},
                "sequencer": {"type": "keyword"},
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


def bulk_body(index: str, user_id: str, chunks: Sequence[Chunk], vectors: np.ndarray, now_ms: int) -> list[dict]:
    """Action/document pairs for the `_bulk` API (opensearch-py serializes them as NDJSON)."""
    lines: list[dict] = []
    for chunk, vector in zip(chunks, vectors, strict=True):
        lines.append({"index": {"_index": index, "_id": chunk_doc_id(chunk)}})
        lines.append({
            "chunk_id": chunk.chunk_id, "user_id": user_id, "document_id": chunk.document_id,
            "version": chunk.version, "source": chunk.source, "title": chunk.title,
            "heading": chunk.heading, "page_start": chunk.page_start, "page_end": chunk.page_end,
            "kind": chunk.kind, "text": chunk.text, "vector": [float(x) for x in vector],
            "created_at": now_ms,
        })
    return lines


def pointer_body(ref: DocumentRef, previous: str | None, now_ms: int, sequencer: str = "") -> dict:
    """The version pointer; a tombstone (a sequenced delete) is one whose `ref` has no version."""
    return {"user_id": ref.user_id, "document_id": ref.document_id, "version": ref.version,
            "previous": previous or "", "source": ref.source, "kind": POINTER, "created_at": now_ms,
            "sequencer": sequencer}


def overtaken(pointer: dict | None, sequencer: str) -> bool:
    """Whether the pointer holds a later write or delete than the one with `sequencer`."""
    return bool(sequencer) and pointer is not None and pointer.get("sequencer", "") > sequencer


def visible_version(present: set[str], pointer: dict | None) -> str | None:
    """Which of the versions a search saw is the document's live one at the moment of that search.

    The pointer names the version committed last and the one before it. A search that ran just before
    the switch saw only the previous version's chunks (the new ones were not yet refreshed into its
    view), so when the current version is absent from its hits the previous one is live for it. Chunks
    of any other version (a half-written attempt, a stale one not yet deleted) are never shown."""
    if pointer is None:
        return None  # a deleted document, or one whose first version is still being written
    for version in (pointer["version"], pointer.get("previous")):
        if version and version in present:
            return version
    return None


def _document_filter(user_id: str, document_id: str) -> list[dict]:
    return [{"term": {"user_id": user_id}}, {"term": {"document_id": document_id}}]


def stale_chunks_body(user_id: str, document_id: str, keep_version: str, only: Sequence[str] | None = None) -> dict:
    """The chunks of every other version of the document (the pointer is not a chunk), or of the
    versions in `only`."""
    chosen = [] if only is None else [{"terms": {"version": list(only)}}]
    return {"query": {"bool": {
        "filter": _document_filter(user_id, document_id) + chosen,
        "must_not": [{"term": {"version": keep_version}}, {"term": {"kind": POINTER}}],
    }}}


def document_chunks_body(user_id: str, document_id: str) -> dict:
    return {"query": {"bool": {"filter": _document_filter(user_id, document_id),
                               "must_not": [{"term": {"kind": POINTER}}]}}}


def keyword_query_body(user_id: str, query: str, size: int) -> dict:
    return {
        "size": size, "_source": SOURCE_FIELDS,
        "query": {"bool": {
            "must": [{"multi_match": {"query": query, "fields": ["text", "title^0.5", "heading^0.5"]}}],
            "filter": [{"term": {"user_id": user_id}}],
        }},
    }


def vector_query_body(user_id: str, query_vector: np.ndarray, size: int) -> dict:
    return {
        "size": size, "_source": SOURCE_FIELDS,
        "query": {"knn": {"vector": {"vector": [float(x) for x in query_vector], "k": size,
                                     "filter": {"term": {"user_id": user_id}}}}},
    }


def ranking(response: dict) -> tuple[list[tuple[str, float]], dict[str, dict]]:
    """(`_id`, score) best first, and each hit's `_source` by `_id`."""
    hits = response.get("hits", {}).get("hits", [])
    return ([(h["_id"], float(h.get("_score") or 0.0)) for h in hits], {h["_id"]: h["_source"] for h in hits})


def search_hit(source: dict, score: float) -> SearchHit:
    return SearchHit(
        chunk_id=source["chunk_id"], document_id=source["document_id"], source=source["source"],
        title=source.get("title", ""), page_start=source["page_start"], page_end=source["page_end"],
        heading=source.get("heading", ""), kind=source.get("kind", "text"), text=source["text"], score=score,
    )


# ---------------------------------------------------------------------------------------- client

def opensearch_client(url: str = "http://127.0.0.1:9200", auth: str = "none", *, username: str | None = None,
                      password: str | None = None, region: str | None = None, service: str = "es",
                      timeout: float = 30.0) -> Any:
    """A client for `url` with no auth, HTTP basic auth, or SigV4 (the caller's AWS credentials)."""
    from urllib.parse import urlsplit

    from opensearchpy import OpenSearch, RequestsAWSV4SignerAuth, RequestsHttpConnection

    parts = urlsplit(url if "://" in url else f"https://{url}")
    tls = parts.scheme == "https"
    host = {"host": parts.hostname, "port": parts.port or (443 if tls else 80)}
    if auth == "basic":
        if not username or password is None:
            raise ValueError("HANRAG_OPENSEARCH_AUTH=basic needs HANRAG_OPENSEARCH_USER and HANRAG_OPENSEARCH_PASSWORD")
        http_auth: Any = (username, password)
    elif auth == "sigv4":
        import boto3

        if not region:
            raise ValueError("HANRAG_OPENSEARCH_AUTH=sigv4 needs a region (HANRAG_OPENSEARCH_REGION or AWS_REGION)")
        http_auth = RequestsAWSV4SignerAuth(boto3.Session().get_credentials(), region, service)
    elif auth == "none":
        http_auth = None
    else:
        raise ValueError(f"HANRAG_OPENSEARCH_AUTH must be none, basic or sigv4, not {auth!r}")
    return OpenSearch(hosts=[host], http_auth=http_auth, use_ssl=tls, verify_certs=tls,
                      connection_class=RequestsHttpConnection, timeout=timeout, http_compress=True,
                      max_retries=0)


def _call(what: str, call, *args, **kwargs):
    """Run one request; 429 and 5xx answers and connection failures become `TransientError`."""
    from opensearchpy.exceptions import ConnectionError as OSConnectionError
    from opensearchpy.exceptions import TransportError

    try:
        return call(*args, **kwargs)
    except OSConnectionError as error:  # includes ConnectionTimeout
        raise TransientError(f"OpenSearch did not answer ({what}): {error.__class__.__name__}") from error
    except TransportError as error:
        status = error.status_code
        if isinstance(status, int) and (status == 429 or status >= 500):
            raise TransientError(f"OpenSearch is busy or failing ({what}): HTTP {status} {error.error}") from error
        raise PipelineError(f"OpenSearch refused {what}: HTTP {status} {error.error}: {error.info}") from error


def _not_found(error: PipelineError) -> bool:
    from opensearchpy.exceptions import NotFoundError

    return isinstance(error.__cause__, NotFoundError)


def _conflict(error: PipelineError) -> bool:
    """A conditional write lost to another writer (HTTP 409)."""
    from opensearchpy.exceptions import ConflictError

    return isinstance(error.__cause__, ConflictError)


# ---------------------------------------------------------------------------------------- index

class OpenSearchIndex:
    def __init__(self, client: Any, dim: int, model: str, options: SearchOptions | None = None,
                 replicas: int = 1) -> None:
        self.client = client
        self.dim = dim
        self.model = model
        self.options = options or SearchOptions()
        self.replicas = replicas
        self._ready: set[str] = set()
        self._sequenced: set[str] = set()  # indices known to map the pointer's `sequencer`

    def _request(self, what: str, method: str, url: str, body: Any = None, params: dict | None = None) -> Any:
        return _call(what, self.client.transport.perform_request, method, url, params=params, body=body)

    # ------------------------------------------------------------------ aliases and indices

    def alias_target(self, user_id: str) -> str | None:
        """The physical index the user's alias points at (one request; every search asks), or None for
        a user with no index yet."""
        try:
            targets = self._request("get alias", "GET", f"/_alias/{alias_name(user_id)}")
        except PipelineError as error:
            if _not_found(error):
                return None
            raise
        return sorted(targets)[0] if targets else None

    def create_physical(self, user_id: str) -> str:
        """Create this model's index for the user if missing; a concurrent creator winning is fine."""
        name = physical_name(user_id, self.model, self.dim)
        if name in self._ready or _call("index exists", self.client.indices.exists, index=name):
            self._ready.add(name)
            return name
        try:
            _call("create index", self.client.indices.create, index=name,
                  body=index_body(self.dim, self.model, replicas=self.replicas))
        except PipelineError as error:
            if "resource_already_exists_exception" not in str(error):
                raise
        self._ready.add(name)
        return name

    def writable_index(self, user_id: str) -> str:
        """The index new chunks go to: the alias's target, which must hold this model's vectors."""
        mine = physical_name(user_id, self.model, self.dim)
        target = self.alias_target(user_id)
        if target is None:
            self.create_physical(user_id)
            self._request("create alias", "POST", "/_aliases", body={"actions": [
                {"add": {"index": mine, "alias": alias_name(user_id), "is_write_index": True}}]})
            return mine
        if target != mine:
            raise PipelineError(
                f"{user_id}'s index {target} holds the vectors of another embedding model; this pipeline "
                f"embeds with {self.model} ({self.dim} dimensions): run `hanrag reembed --user {user_id}` first"
            )
        return mine

    # ------------------------------------------------------------------ writes

    def replace_document(self, ref: DocumentRef, chunks: Sequence[Chunk], vectors: np.ndarray,
                         sequencer: str = "") -> bool:
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        return self.write_version(self.writable_index(ref.user_id), ref, chunks, vectors, sequencer)

    def write_version(self, index: str, ref: DocumentRef, chunks: Sequence[Chunk], vectors: np.ndarray,
                      sequencer: str = "") -> bool:
        """Chunks first, then the pointer, then the cleanup: see the module's docstring."""
        if sequencer:
            self._map_sequencer(index)
            if overtaken(self._pointer(index, ref.document_id)[0], sequencer):
                return False  # nothing written
        now_ms = int(time.time() * 1000)
        for start in range(0, len(chunks), BULK_CHUNKS):
            body = bulk_body(index, ref.user_id, chunks[start:start + BULK_CHUNKS],
                             vectors[start:start + BULK_CHUNKS], now_ms)
            answer = _call("bulk write", self.client.bulk, body=body)
            if answer.get("errors"):
                self._raise_rejected(ref, answer["items"])
        self._request("refresh", "POST", f"/{index}/_refresh")
        retired = self._switch(index, ref, now_ms, sequencer)
        if retired is None:
            return False
        # pointers are read with real-time gets and stale chunks are hidden by them: no refresh needed
        self._request("delete older versions", "POST", f"/{index}/_delete_by_query",
                      body=stale_chunks_body(ref.user_id, ref.document_id, ref.version,
                                             only=retired if sequencer else None),
                      params={"conflicts": "proceed"})
        return True

    def confirm_version(self, ref: DocumentRef, sequencer: str) -> bool:
        """The pointer keeps its version and takes the later sequencer (compare-and-set)."""
        index = self.alias_target(ref.user_id)
        if index is None:
            return False
        self._map_sequencer(index)
        while True:
            current, condition = self._pointer(index, ref.document_id)
            if current is None or current["version"] != ref.version or overtaken(current, sequencer):
                return False
            try:
                self._request("confirm version", "PUT", f"/{index}/_doc/{pointer_id(ref.document_id)}",
                              body={**current, "sequencer": sequencer}, params=condition)
            except PipelineError as error:
                if _conflict(error):
                    continue
                raise
            return True

    def _switch(self, index: str, ref: DocumentRef, now_ms: int, sequencer: str) -> list[str] | None:
        """Point the document at `ref`'s version: the versions that retires, or None when a later
        write or delete won the pointer first (this version's chunks are then removed again)."""
        while True:
            current, condition = self._pointer(index, ref.document_id)
            known = [v for v in (current["version"], current.get("previous")) if v] if current else []
            if overtaken(current, sequencer):
                if ref.version not in known:
                    self._request("delete overtaken version", "POST", f"/{index}/_delete_by_query",
                                  body=stale_chunks_body(ref.user_id, ref.document_id, "", only=[ref.version]),
                                  params={"conflicts": "proceed"})
                return None
            previous = None if current is None else (
                current["version"] if current["version"] != ref.version else current.get("previous"))
            try:
                self._request("switch version", "PUT", f"/{index}/_doc/{pointer_id(ref.document_id)}",
                              body=pointer_body(ref, previous, now_ms, sequencer), params=condition)
            except PipelineError as error:
                if _conflict(error):
                    continue  # another writer switched it between our read and our write: look again
                raise
            return [v for v in known if v != ref.version]

    def _pointer(self, index: str, document_id: str) -> tuple[dict | None, dict]:
        """The document's pointer (a real-time get) and the condition that writes over exactly it."""
        try:
            answer = self._request("read pointer", "GET", f"/{index}/_doc/{pointer_id(document_id)}")
        except PipelineError as error:
            if _not_found(error):
                return None, {"op_type": "create"}
            raise
        return answer["_source"], {"if_seq_no": answer["_seq_no"], "if_primary_term": answer["_primary_term"]}

    def _map_sequencer(self, index: str) -> None:
        """Indices made before pointers carried a sequencer learn the field (the mapping is strict)."""
        if index not in self._sequenced:
            self._request("map sequencer", "PUT", f"/{index}/_mapping",
                          body={"properties": {"sequencer": {"type": "keyword"}}})
            self._sequenced.add(index)

    @staticmethod
    def _raise_rejected(ref: DocumentRef, items: list[dict]) -> None:
        failed = [i["index"] for i in items if i.get("index", {}).get("error")]
        first = failed[0]
        reason = first["error"].get("reason", first["error"]) if isinstance(first["error"], dict) else first["error"]
        statuses = ", ".join(str(status) for status in sorted({f.get("status", 0) for f in failed}))
        message = (f"OpenSearch rejected {len(failed)} of {len(items)} chunk(s) of {ref.source} "
                   f"(HTTP {statuses}): {reason}")
        if any(f.get("status") == 429 or f.get("status", 0) >= 500 for f in failed):
            raise TransientError(message)
        raise PipelineError(message)

    def delete_document(self, user_id: str, document_id: str, sequencer: str = "") -> int:
        """The pointer goes first (the document vanishes from searches at once), then its chunks. A
        sequenced delete leaves the pointer as a tombstone, unless a later version holds it."""
        validate_user_id(user_id)
        target = self.writable_index(user_id) if sequencer else self.alias_target(user_id)
        if target is None:
            return 0
        if sequencer and not self._bury(target, user_id, document_id, sequencer):
            return 0
        if not sequencer:
            try:
                self._request("delete pointer", "DELETE", f"/{target}/_doc/{pointer_id(document_id)}")
            except PipelineError as error:
                if not _not_found(error):
                    raise
        answer = self._request("delete document", "POST", f"/{target}/_delete_by_query",
                               body=document_chunks_body(user_id, document_id), params={"conflicts": "proceed"})
        return int(answer.get("deleted", 0))

    def delete_user(self, user_id: str) -> int:
        """Every index of the user (one per embedding model) with the alias on it, so nothing named after the
        user is left on the cluster; returns the chunks they held. `hanrag-<user>.*` cannot match another
        user's index: user ids have no '.'."""
        pattern = f"{alias_name(user_id)}.*"
        names = sorted(_call("list user indices", self.client.indices.get, index=pattern,
                             params={"expand_wildcards": "open,closed", "allow_no_indices": "true"}))
        if not names:
            return 0
        counted = self._request("count chunks", "POST", f"/{','.join(names)}/_count", body={
            "query": {"bool": {"must_not": [{"term": {"kind": POINTER}}]}}})
        for name in names:  # by name: a wildcard delete may be refused (action.destructive_requires_name)
            self.drop_index(name)
            self._ready.discard(name)
        return int(counted.get("count", 0))

    def _bury(self, index: str, user_id: str, document_id: str, sequencer: str) -> bool:
        """Replace the pointer with a tombstone holding the delete's sequencer; False when a later
        version holds the pointer (then the delete changes nothing)."""
        self._map_sequencer(index)
        tombstone = DocumentRef(user_id, "", "")
        while True:
            current, condition = self._pointer(index, document_id)
            if overtaken(current, sequencer):
                return False
            body = {**pointer_body(tombstone, None, int(time.time() * 1000), sequencer), "document_id": document_id}
            try:
                self._request("bury pointer", "PUT", f"/{index}/_doc/{pointer_id(document_id)}", body=body,
                              params=condition)
            except PipelineError as error:
                if _conflict(error):
                    continue
                raise
            return True

    # ------------------------------------------------------------------ reads

    def hybrid_search(self, user_id: str, query: str, query_vector: np.ndarray, k: int = 10) -> list[SearchHit]:
        check_k(k)
        target = self.alias_target(user_id)
        if target is None:
            return []  # a user with no documents yet
        alias = alias_name(user_id)
        depth = max(k, self.options.depth)
        searches: list[dict] = []
        if query.strip():
            searches += [{"index": alias}, keyword_query_body(user_id, query, depth)]
        # while the alias still points at another model's index (a re-embed under way), keyword only
        dense = target == physical_name(user_id, self.model, self.dim)
        if dense:
            searches += [{"index": alias}, vector_query_body(user_id, query_vector, depth)]
        if not searches:
            return []
        answer = _call("hybrid search", self.client.msearch, body=searches)
        rankings, sources = [], {}
        for response in answer["responses"]:
            if "error" in response:
                raise PipelineError(f"OpenSearch search failed: {response['error']}")
            ids, found = ranking(response)
            rankings.append(ids)
            sources.update(found)
        keyword = rankings[0] if query.strip() else []
        vector = rankings[-1] if dense else []
        blind = {i for i, _ in vector if script_differs(query, sources[i].get("text", ""))}
        fused = fuse(keyword, vector, self.options, blind)
        pointers = self._pointers(target, sorted({sources[i]["document_id"] for i, _ in fused}))
        present: dict[str, set[str]] = {}
        for i, _ in fused:
            present.setdefault(sources[i]["document_id"], set()).add(sources[i]["version"])
        live = {d: visible_version(versions, pointers.get(d)) for d, versions in present.items()}
        hits = [search_hit(sources[i], score) for i, score in fused
                if live[sources[i]["document_id"]] == sources[i]["version"]]
        return hits[:k]

    def _pointers(self, index: str, document_ids: list[str]) -> dict[str, dict]:
        """document_id → its pointer (a real-time get: it needs no refresh)."""
        if not document_ids:
            return {}
        answer = _call("read pointers", self.client.mget, index=index,
                       body={"ids": [pointer_id(d) for d in document_ids]},
                       params={"_source_includes": "document_id,version,previous"})
        return {d["_source"]["document_id"]: d["_source"] for d in answer["docs"] if d.get("found")}

    def count(self, user_id: str) -> int:
        """Searchable chunks of the user (pointers and stale versions excluded)."""
        return sum(chunks for _, chunks in self.live_documents(user_id).values())

    def live_documents(self, user_id: str) -> dict[str, tuple[str, int]]:
        """document_id → (version its pointer names, that version's chunk count), for `hanrag check`."""
        target = self.alias_target(user_id)
        if target is None:
            return {}
        self._request("refresh", "POST", f"/{target}/_refresh")  # what a search sees is what a reader sees
        pointers = _call("read pointers", self.client.search, index=target, body={
            "size": 10000, "_source": ["document_id", "version"], "query": {"term": {"kind": POINTER}}})
        counts = _call("count chunks", self.client.search, index=target, body={
            "size": 0, "query": {"bool": {"must_not": [{"term": {"kind": POINTER}}]}},
            "aggs": {"docs": {"terms": {"field": "document_id", "size": 10000},
                              "aggs": {"versions": {"terms": {"field": "version", "size": 10}}}}}})
        chunks = {(d["key"], v["key"]): v["doc_count"] for d in counts["aggregations"]["docs"]["buckets"]
                  for v in d["versions"]["buckets"]}
        live = {}
        for hit in pointers["hits"]["hits"]:
            document_id, version = hit["_source"]["document_id"], hit["_source"]["version"]
            if version:  # not a deleted document's tombstone
                live[document_id] = (version, chunks.get((document_id, version), 0))
        return live

    # ------------------------------------------------------------------ a new embedding model

    def move_alias(self, user_id: str, to_index: str) -> str | None:
        """Point the user's alias at `to_index` in one request; returns the index it left."""
        alias = alias_name(user_id)
        previous = self.alias_target(user_id)
        actions: list[dict] = [{"add": {"index": to_index, "alias": alias, "is_write_index": True}}]
        if previous and previous != to_index:
            actions.insert(0, {"remove": {"index": previous, "alias": alias}})
        self._request("move alias", "POST", "/_aliases", body={"actions": actions})
        return previous if previous != to_index else None

    def drop_index(self, name: str) -> None:
        self._request("delete index", "DELETE", f"/{name}")
