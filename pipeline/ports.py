"""The ports: what the stages need from the outside world, as `typing.Protocol`s.

Each port has a local adapter (`pipeline/adapters/local`) and, in the AWS issue, an AWS one. Stages
and the runner depend on these protocols only, so a test can pass a fake and a deployment can pass
a SageMaker endpoint without any stage noticing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pipeline.models import Chunk, DocumentRef, DocumentStatus, RunRecord, SearchHit


class Embedder(Protocol):
    """Turns text into unit-length vectors. Queries and passages may be embedded differently."""

    @property
    def dim(self) -> int: ...

    @property
    def name(self) -> str: ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


class VectorCache(Protocol):
    """Passage vectors already computed, by embedding model and text key (see
    `pipeline.adapters.cached_embedder`): what lets an edited document embed only its changed chunks."""

    def get_many(self, model: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The vectors held for those keys of this model (missing keys are absent); marks them used."""
        ...

    def put_many(self, model: str, vectors: dict[str, np.ndarray]) -> None:
        """Keep these vectors of this model; the store stays within its bound by forgetting the least
        recently used ones."""
        ...


class OcrCache(Protocol):
    """What OCR read from an image, by OCR engine, owner (the user whose document held it) and image key
    (see `pipeline.stages.extract.ocr.OcrMemory`): what lets a re-ingested document skip the recognition
    of pictures and scanned pages it already read. Kept per owner, so that offboarding can erase it."""

    def get(self, engine: str, owner: str, key: str) -> list[tuple[str, float]] | None:
        """The pages (text, mean word confidence) read from that image by that engine, or None; marks it used."""
        ...

    def put(self, engine: str, owner: str, key: str, pages: list[tuple[str, float]]) -> None:
        """Keep what was read; the store stays within its bound by forgetting what was least recently used."""
        ...


class WrappedEmbedder:
    """An `Embedder` around another: the model (`dim`, `name`) is the wrapped one's, the calls are passed
    through; a wrapper overrides only the calls it changes (caching, deadlines, taking turns)."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder

    @property
    def dim(self) -> int:
        return self._embedder.dim

    @property
    def name(self) -> str:
        return self._embedder.name

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embedder.embed_passages(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self._embedder.embed_query(text)

class SearchIndex(Protocol):
    """A per-user hybrid (keyword + vector) index of chunks."""

    def replace_document(
        self, ref: DocumentRef, chunks: Sequence[Chunk], vectors: np.ndarray, sequencer: str = ""
    ) -> bool:
        """Make `chunks` the only searchable version of the document, atomically. With a `sequencer`
        (the order of the file's events), refuse — write nothing and return False — when a later
        version or a later delete of the document was already applied: writes that arrive out of
        order never put an older version back."""
        ...

    def confirm_version(self, ref: DocumentRef, sequencer: str) -> bool:
        """A later upload of the same content: record `sequencer` as the document's latest event if
        `ref`'s version is the searchable one and nothing later was applied (True), else False."""
        ...

    def delete_document(self, user_id: str, document_id: str, sequencer: str = "") -> int:
        """Remove the document's chunks (how many went). With a `sequencer`, a version written later
        stays, and the delete is remembered so that an older version arriving afterwards is refused."""
        ...

    def delete_user(self, user_id: str) -> int:
        """Every chunk of the user (offboarding); returns how many were searchable or stale."""
        ...

    def hybrid_search(
        self, user_id: str, query: str, query_vector: np.ndarray, k: int = 10
    ) -> list[SearchHit]: ...


class Reranker(Protocol):
    """A precise second pass over a search's best candidates: the page that says it before the pages
    that mention it. Works on the hits alone (their text, title, heading and fused score), so every
    `SearchIndex` gets the same pass."""

    def rerank(self, query: str, hits: Sequence[SearchHit], k: int) -> list[SearchHit]:
        """The `k` best of `hits` for `query`, best first, each with its new score."""
        ...


class LLM(Protocol):
    """A text generator. The embedded default has none; extractive fallbacks stand in."""

    def complete(self, system: str, prompt: str) -> str: ...

    def stream(self, system: str, prompt: str) -> Iterator[str]: ...


class Notifier(Protocol):
    def notify(self, record: RunRecord) -> None: ...


class BlobStore(Protocol):
    """Where uploads and the artifacts between stages live: files (under HANRAG_HOME), or S3 objects."""

    def put(self, key: str, data: bytes) -> str: ...

    def get(self, key: str) -> bytes: ...

    def size(self, key: str) -> int:
        """Bytes of the blob, known before reading it (a size limit must not need the whole file)."""
        ...

    def delete_prefix(self, prefix: str) -> None: ...

    def children(self, prefix: str) -> list[str]:
        """The names one level below `prefix` (`kim/<doc>/` → its version folders), sorted."""
        ...


class Registry(Protocol):
    """What documents each user has, at which version, and the record of every run."""

    # Every write about a document takes the `sequencer` of the event behind it (empty: unordered) and
    # is refused — returns False, writes nothing — when an event later than that one (an upload or a
    # delete of the same file) is already recorded: the registry's current version only moves forward.

    def current_version(self, user_id: str, source: str) -> str | None: ...

    def save_document(
        self, ref: DocumentRef, *, pages: int, chunks: int, summary: str, title: str, sequencer: str = ""
    ) -> bool:
        """Make `ref` the current version (and record its sequencer as the file's latest event)."""
        ...

    def mark_deleted(self, user_id: str, source: str, sequencer: str = "") -> str | None:
        """Mark the document deleted; its document id if it was current, else None. With a sequencer
        the delete is recorded even for a document not yet current (its first ingest may be running)."""
        ...

    def confirm_current(self, ref: DocumentRef, sequencer: str) -> bool:
        """A later upload of the same content: record its sequencer if `ref` is still the current version
        (the document's status is then `succeeded`: its latest upload is what is searchable)."""
        ...

    def record_status(self, ref: DocumentRef, status: DocumentStatus, run_id: str, sequencer: str = "") -> bool:
        """The document's run is `queued` or `processing`: shown by `documents` before it is current."""
        ...

    def superseded(self, user_id: str, source: str, sequencer: str) -> bool:
        """Whether an event later than `sequencer` is recorded for the file."""
        ...

    def save_run(self, record: RunRecord) -> None: ...

    def record_run_outcome(self, record: RunRecord, sequencer: str = "") -> bool:
        """Note a finished run's status (`succeeded` / `failed`) and reason with its document."""
        ...

    def recent_runs(self, limit: int = 20, user_id: str | None = None) -> list[RunRecord]: ...

    def documents(self, user_id: str) -> Iterable[dict]:
        """The user's current documents, and files with no current version whose run is queued,
        processing or failed; each with `last_status` (queued / processing / succeeded / failed) and
        `last_reason`, so work in flight and failed uploads are seen before they are searchable."""
        ...

    def running_runs(self) -> list[RunRecord]:
        """Runs recorded as running, so a runner can close the ones whose process is gone."""
        ...


class HistoryStore(Protocol):
    """The messages of each user's chat sessions: in SQLite on one machine, in DynamoDB on AWS. Every
    method takes the user id, so one user's sessions are never reachable with another's id."""

    def append(self, user_id: str, session_id: str, role: str, text: str,
               citations: list[dict] | None = None, now: float | None = None) -> None: ...

    def turns(self, user_id: str, session_id: str, limit: int = 50) -> list[dict]:
        """The last `limit` messages of a session, oldest first: {"role", "text", "citations", "created_at"}."""
        ...

    def sessions(self, user_id: str, limit: int = 200) -> list[str]: ...

    def delete_session(self, user_id: str, session_id: str) -> int: ...


class Ingestion(Protocol):
    """What the web server asks of the pipeline behind it: list an uploaded file as queued, run it,
    remove a document, and close the runs a previous process left open."""

    @property
    def registry(self) -> Registry: ...

    def queue(self, user_id: str, source: str, run_id: str | None = None) -> str: ...

    def ingest_file(self, user_id: str, path: Path, source: str, progress: Any = None,
                    run_id: str | None = None) -> RunRecord:
        """`progress` hears of the file's chunks as they are planned and embedded (a runner Progress)."""

    def delete(self, user_id: str, source: str) -> int | None: ...

    def close_interrupted_runs(self) -> int: ...
