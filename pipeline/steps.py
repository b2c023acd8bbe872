"""The steps: each stage of `pipeline.definition` with its I/O, the one piece of glue both runners call.

A step reads its inputs through the ports (the upload and the artifacts through `BlobStore`s), calls
the pure stage, writes its outputs and returns the next `IngestState`. `pipeline.runner.LocalRunner`
loops over the definition and calls them in one process; each Lambda handler of
`pipeline.lambdas.ingest` turns its event into a state and calls one of them. Retries belong to the
runners (the local loop, the state machine's `Retry`); the failure policy of the definition (`fail`,
or `warn` and fall back) is applied here, by `run_step`, so both runners fall back alike.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np

from pipeline.adapters.cached_embedder import reuse_within
from pipeline.config import Settings
from pipeline.definition import RETRYABLE, Stage
from pipeline.errors import EmptyDocument, LimitExceeded, PipelineError, Superseded
from pipeline.models import (
    Batch,
    Chunk,
    DocumentRef,
    EmbeddedBatch,
    ExtractedDocument,
    IngestState,
    RunRecord,
    StageTiming,
    artifact_prefix,
)
from pipeline.ports import LLM, BlobStore, Embedder, Notifier, OcrCache, Registry, SearchIndex
from pipeline.stages.chunk import chunk_document
from pipeline.stages.embed import embed_chunks
from pipeline.stages.extract import OcrMemory
from pipeline.stages.extract import extract as extract_document
from pipeline.stages.index import index_document
from pipeline.stages.notify import notify as announce
from pipeline.stages.summarize import summarize as summarize_document


class Ports(Protocol):
    """What the steps use; a step touches only the ports it needs, so an AWS function builds only those."""

    @property
    def settings(self) -> Settings: ...

    @property
    def uploads(self) -> BlobStore: ...

    @property
    def blobs(self) -> BlobStore: ...  # the artifacts between stages

    @property
    def embedder(self) -> Embedder: ...

    @property
    def index(self) -> SearchIndex: ...

    @property
    def registry(self) -> Registry: ...

    @property
    def notifiers(self) -> Sequence[Notifier]: ...

    @property
    def llm(self) -> LLM | None: ...

    @property
    def ocr_cache(self) -> OcrCache | None: ...  # what OCR read before (extract's), or None: read every image


def retryable(error: BaseException) -> bool:
    """Our TransientError, or a failure of the network or the OS: worth another attempt."""
    return bool(getattr(error, "retryable", False)) or isinstance(error, RETRYABLE)


def reason(error: BaseException) -> str:
    """The message a person reads: ours verbatim; anything unexpected named by its type."""
    if isinstance(error, PipelineError):
        return str(error)
    if isinstance(error, FileNotFoundError):  # moved or deleted while the run was on its way to it
        return f"the file is gone: it was moved or deleted before it was read ({error.filename or error})"
    if isinstance(error, PermissionError):
        return f"the file cannot be read: permission denied ({error.filename or error})"
    return f"internal error ({type(error).__name__}): {error}"


# ---------------------------------------------------------------------------- the steps

def extract(ports: Ports, state: IngestState) -> IngestState:
    """Upload → `extracted.json`. The size is checked before a byte is read; a file whose content is
    the current version comes back `skipped`."""
    settings = ports.settings
    size = ports.uploads.size(state.upload.key)
    if size > settings.max_file_bytes:
        raise LimitExceeded(f"file too large: {size / 2**20:.0f} MB (the limit is "
                            f"{settings.max_file_bytes / 2**20:.0f} MB; set HANRAG_MAX_FILE_MB to raise it)")
    data = ports.uploads.get(state.upload.key)
    ref = replace(state.ref, version=hashlib.sha256(data).hexdigest())
    state = replace(state, ref=ref)
    if ports.registry.current_version(ref.user_id, ref.source) == ref.version and _confirmed(ports, state):
        return replace(state, skipped=True)
    if not ports.registry.record_status(ref, "processing", state.run_id, state.upload.sequencer):
        raise _overtaken(state.ref)
    options = replace(settings.extract, pdf_password=settings.pdf_password_for(ref.user_id, ref.source))
    memory = OcrMemory(ports.ocr_cache, ref.user_id) if ports.ocr_cache is not None else None
    document = extract_document(data, ref.source, options, memory)
    _write_json(ports, state, "extracted.json", document.to_dict())
    return replace(state, pages=document.pages, title=document.title).warned(*document.warnings)


def _confirmed(ports: Ports, state: IngestState) -> bool:
    """An unchanged upload is skipped only once its event is recorded as the file's latest, in the
    index first and then the registry: else an upload still running from before it (other content)
    could become current afterwards. If either has moved on, the file is ingested again instead."""
    sequencer = state.upload.sequencer
    return not sequencer or (ports.index.confirm_version(state.ref, sequencer)
                             and ports.registry.confirm_current(state.ref, sequencer))


def chunk(ports: Ports, state: IngestState) -> IngestState:
    """`extracted.json` → `chunks.json`, and the batches the embed stage fans out over."""
    chunks = chunk_document(_document(ports, state), state.ref, ports.settings.chunk)
    if not chunks:
        raise EmptyDocument("empty document: extraction found no text to index")
    _write_json(ports, state, "chunks.json", [c.to_dict() for c in chunks])
    size = ports.settings.embed_batch_chunks
    batches = tuple(Batch(i, min(i + size, len(chunks))) for i in range(0, len(chunks), size))
    return replace(state, chunks=len(chunks), batches=batches)


def embed(ports: Ports, ref: DocumentRef, batch: Batch,
          on_batch: Callable[[int], None] | None = None, sequencer: str = "") -> EmbeddedBatch:
    """One fan-out item: chunks [start, end) → a `.npy` artifact."""
    prefix = artifact_prefix(ref)
    try:
        chunks = read_chunks(ports, prefix)[batch.start:batch.end]
        with reuse_within(ref.user_id) as reuse:
            vectors = embed_chunks(chunks, ports.embedder, ports.settings.embed_batch_size, on_batch=on_batch)
        buffer = io.BytesIO()
        np.save(buffer, vectors.astype(np.float32), allow_pickle=False)
        key = f"{prefix}vectors/{batch.start:06d}.npy"
        ports.blobs.put(key, buffer.getvalue())
    except Exception:
        _raise_if_overtaken(ports, ref, sequencer)
        raise
    return EmbeddedBatch(batch.start, batch.end, key, embedded=len(chunks) - reuse.reused, reused=reuse.reused)


def index(ports: Ports, state: IngestState) -> IngestState:
    """Chunks and the fan-out's vectors → the user's index (the new version replaces the old)."""
    chunks = read_chunks(ports, state.artifacts)
    parts = sorted(state.embedded, key=lambda part: part.start)
    covered = sum(p.end - p.start for p in parts)
    if covered != len(chunks):
        raise PipelineError(f"embedding covered {covered} of {len(chunks)} chunks")
    vectors = np.vstack([np.load(io.BytesIO(ports.blobs.get(p.key)), allow_pickle=False) for p in parts])
    if not index_document(ports.index, state.ref, chunks, vectors, state.upload.sequencer):
        raise _overtaken(state.ref)
    return replace(state, embedded=(), chunks_embedded=sum(p.embedded for p in parts),
                   chunks_reused=sum(p.reused for p in parts))


def summarize(ports: Ports, state: IngestState) -> IngestState:
    return _store_summary(ports, state, ports.llm)


def notify(ports: Ports, state: IngestState) -> IngestState:
    """Announce the run, then store it as succeeded (the fallback stores it with a warning). The stored
    record names this stage's time too: a run shown as succeeded lists every stage it ran."""
    started = time.perf_counter()
    announce(state.record("succeeded"), ports.notifiers)
    done = state
    if not any(timing.stage == "notify" for timing in state.stages):
        done = replace(state, stages=(*state.stages, StageTiming("notify", time.perf_counter() - started)))
    _save_outcome(ports, done.record("succeeded"), state.upload.sequencer)
    return state


def record_failure(ports: Ports, state: IngestState, why: str, failed_stage: str | None) -> RunRecord:
    """A failed run: stored with its reason (the previous version stays current) and announced; a
    lost announcement becomes a warning, never hides the failure."""
    record = state.record("failed", reason=why, failed_stage=failed_stage)
    try:
        announce(record, ports.notifiers)
    except Exception as error:
        record.warnings.append(f"notification failed: {reason(error)}")
    _save_outcome(ports, record, state.upload.sequencer)
    return record


def delete_document(ports: Ports, user_id: str, source: str, sequencer: str = "") -> tuple[int, str | None]:
    """The document leaves the user's index, the registry and the artifacts: (chunks removed, the
    document id if it was registered). A delete older than the file's latest upload (`sequencer`)
    changes nothing; a later one is remembered, so the ingest still running for an older upload stops."""
    document_id = DocumentRef(user_id, source, "").document_id
    removed = ports.index.delete_document(user_id, document_id, sequencer)
    known = ports.registry.mark_deleted(user_id, source, sequencer)
    if not ports.registry.superseded(user_id, source, sequencer):
        ports.blobs.delete_prefix(f"{user_id}/{document_id}/")
    return removed, known


def embed_again(ports: Ports, ref: DocumentRef) -> tuple[list[Chunk], np.ndarray]:
    """A current version's chunks (kept as artifacts) with vectors from this embedder (reembed)."""
    chunks = read_chunks(ports, artifact_prefix(ref))
    with reuse_within(ref.user_id):
        return chunks, embed_chunks(chunks, ports.embedder, ports.settings.embed_batch_size)


# ---------------------------------------------------------------------------- failure policy

def _summary_fallback(ports: Ports, state: IngestState, error: BaseException) -> IngestState:
    if ports.llm is None:  # the extractive summary itself failed: nothing to fall back to
        raise error
    state = state.warned(f"LLM summary failed ({reason(error)}); an extractive summary was stored instead")
    return _store_summary(ports, state, None)


def _notify_fallback(ports: Ports, state: IngestState, error: BaseException) -> IngestState:
    state = state.warned(f"notification failed: {reason(error)}")
    _save_outcome(ports, state.record("succeeded"), state.upload.sequencer)
    return state


STEPS: dict[str, Callable[[Ports, IngestState], IngestState]] = {
    "extract": extract, "chunk": chunk, "index": index, "summarize": summarize, "notify": notify,
}
FALLBACKS: dict[str, Callable[[Ports, IngestState, BaseException], IngestState]] = {
    "summarize": _summary_fallback, "notify": _notify_fallback,
}


def run_step(stage: Stage, ports: Ports, state: IngestState, attempt: int = 1) -> IngestState:
    """One attempt of a (not fanned-out) stage under the definition's failure policy: a `warn` stage
    falls back once no attempt is left; a `fail` stage, or a retry still to come, raises. A stage that
    fails after a later upload or delete of the file was recorded was overtaken, not broken (the delete
    may have taken its artifacts): it raises `Superseded`."""
    try:
        return STEPS[stage.name](ports, state)
    except Superseded:
        raise
    except Exception as error:
        _raise_if_overtaken(ports, state.ref, state.upload.sequencer)
        last = not retryable(error) or attempt >= stage.retry.max_attempts
        if stage.on_failure == "warn" and last:
            return FALLBACKS[stage.name](ports, state, error)
        raise


def _overtaken(ref: DocumentRef) -> Superseded:
    return Superseded(f"a later upload or delete of {ref.source} came after this one; its result stays")


def _raise_if_overtaken(ports: Ports, ref: DocumentRef, sequencer: str) -> None:
    """Called while an error is being handled: `Superseded` (from it) when a later event is recorded."""
    if sequencer and ports.registry.superseded(ref.user_id, ref.source, sequencer):
        raise _overtaken(ref)


# ---------------------------------------------------------------------------- artifacts

def _write_json(ports: Ports, state: IngestState, name: str, payload: object) -> None:
    ports.blobs.put(state.artifacts + name, json.dumps(payload, ensure_ascii=False).encode())


def _document(ports: Ports, state: IngestState) -> ExtractedDocument:
    return ExtractedDocument.from_dict(json.loads(ports.blobs.get(state.artifacts + "extracted.json")))


def read_chunks(ports: Ports, prefix: str) -> list[Chunk]:
    return [Chunk(**c) for c in json.loads(ports.blobs.get(prefix + "chunks.json"))]


def _store_summary(ports: Ports, state: IngestState, llm: LLM | None) -> IngestState:
    """The summary (by `llm`, else extractive) is stored and the version becomes the registry's current
    one, unless a later upload or delete got there first."""
    summary = summarize_document(_document(ports, state), llm, ports.settings.summary_sentences)
    if not ports.registry.save_document(state.ref, pages=state.pages, chunks=state.chunks, summary=summary,
                                        title=state.title, sequencer=state.upload.sequencer):
        raise _overtaken(state.ref)
    return replace(state, summary=summary)


def _save_outcome(ports: Ports, record: RunRecord, sequencer: str = "") -> None:
    """The run log keeps every run; the document shows this one's outcome unless a later event owns it
    (the document first: a reader that sees the run finished finds its document's status too)."""
    ports.registry.record_run_outcome(record, sequencer)
    ports.registry.save_run(record)
