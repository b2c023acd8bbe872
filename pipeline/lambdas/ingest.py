"""The ingestion state machine's Lambda functions: one per stage, plus delete and the failure recorder.

Each function gets the state (S3 references, ids, counts, timings — never document text or vectors),
calls the same stage function as `pipeline.runner.LocalRunner`, writes its artifact to S3 under
`artifacts/<user>/<document>/<version>/`, and returns the state with its references added. The
state machine (infra/stack.py, built from `pipeline.definition`) retries `TransientError` with the
definition's backoff and routes anything else to `record_failure`.

Every stage is idempotent on (bucket, key, object version) through Powertools idempotency with
DynamoDB: a retried or re-driven execution returns the stored result instead of redoing the work.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from urllib.parse import unquote_plus

import numpy as np
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from pipeline import errors
from pipeline.lambdas.wiring import components
from pipeline.models import Chunk, DocumentRef, ExtractedDocument, RunRecord, StageTiming
from pipeline.names import validate_source, validate_user_id
from pipeline.stages.chunk import chunk_document
from pipeline.stages.embed import embed_chunks
from pipeline.stages.extract import extract
from pipeline.stages.index import index_document
from pipeline.stages.notify import notify
from pipeline.stages.summarize import summarize

UPLOAD_PREFIX = "uploads/"
MAX_WARNINGS = 20  # warnings ride in the state; the 256 KiB limit must never be near

logger = Logger(service="hanrag-ingest")
metrics = Metrics(namespace="hanrag", service="ingest")
tracer = Tracer(service="hanrag-ingest")


# ---------------------------------------------------------------------------- keys and references

def parse_upload_key(key: str) -> tuple[str, str]:
    """`uploads/<user_id>/<path>` → (user id, source). Anything else is refused with a reason."""
    if not key.startswith(UPLOAD_PREFIX):
        raise errors.InvalidName(f"object {key!r} is not under {UPLOAD_PREFIX}<user_id>/")
    user_id, _, source = key[len(UPLOAD_PREFIX):].partition("/")
    return validate_user_id(user_id), validate_source(source)


def upload_from_event(event: dict) -> dict:
    """The S3 object an EventBridge `Object Created` / `Object Deleted` event names."""
    detail = event["detail"]
    return {
        "bucket": detail["bucket"]["name"],
        "key": detail["object"]["key"],
        "version_id": detail["object"].get("version-id") or "",  # empty when versioning is off
        "etag": detail["object"].get("etag") or "",
    }


def artifact_prefix(ref: DocumentRef) -> str:
    return f"{ref.user_id}/{ref.document_id}/{ref.version[:16]}/"


def _ref(state: dict) -> DocumentRef:
    return DocumentRef(**state["ref"])


def _timing(state: dict, stage: str, started: float, attempt: int) -> None:
    """Seconds of the attempt that succeeded, and which attempt it was (Step Functions retried the others)."""
    seconds = round(time.perf_counter() - started, 3)
    state["run"]["stages"].append({"stage": stage, "seconds": seconds, "attempts": attempt})
    metrics.add_dimension(name="stage", value=stage)
    metrics.add_metric(name="StageSeconds", unit=MetricUnit.Seconds, value=seconds)


def _read_json(key: str):
    return json.loads(components().blobs.get(key))


def _write_json(key: str, payload: object) -> None:
    components().blobs.put(key, json.dumps(payload, ensure_ascii=False).encode())


# ---------------------------------------------------------------------------- idempotency

@tracer.capture_method
def _idempotent(function: Callable[..., dict], key_path: str, state: dict, context) -> dict:
    """Run `function(state=state)` once per key; without a table configured, just run it."""
    table = components().settings.idempotency_table
    if not table:
        return function(state=state)
    config = IdempotencyConfig(event_key_jmespath=key_path, raise_on_no_idempotency_key=True,
                               expires_after_seconds=7 * 86400)
    if context is not None:
        config.register_lambda_context(context)
    store = DynamoDBPersistenceLayer(table_name=table, boto3_client=components().client("dynamodb"))
    return idempotent_function(data_keyword_argument="state", persistence_store=store, config=config)(function)(
        state=state)


UPLOAD_KEY = "[upload.bucket, upload.key, upload.version_id, upload.etag]"
BATCH_KEY = "[upload.bucket, upload.key, upload.version_id, upload.etag, batch.start]"


# ---------------------------------------------------------------------------- stages

def extract_stage(state: dict) -> dict:
    started, attempt = time.perf_counter(), state.pop("attempt", 1)
    upload = state["upload"]
    key, data = _read_upload(upload)
    user_id, source = parse_upload_key(key)
    ref = DocumentRef(user_id, source, hashlib.sha256(data).hexdigest())
    run = {"run_id": uuid.uuid4().hex[:16], "started_at": time.time(), "pages": 0, "chunks": 0,
           "warnings": [], "stages": [], "summary": ""}
    state = {"upload": upload, "ref": asdict(ref), "run": run, "artifacts": artifact_prefix(ref)}
    settings = components().settings
    if components().registry.current_version(user_id, source) == ref.version:
        logger.info("unchanged since the last ingest", extra={"source": source})
        return {**state, "skipped": True}
    if len(data) > settings.pipeline.max_file_bytes:
        raise errors.PipelineError(f"file too large: {len(data) / 2**20:.0f} MB (the limit is "
                                   f"{settings.pipeline.max_file_bytes / 2**20:.0f} MB)")
    document = extract(data, source, settings.pipeline.extract)
    run["pages"] = document.pages
    run["warnings"] = document.warnings[:MAX_WARNINGS]
    _write_json(state["artifacts"] + "extracted.json", document.to_dict())
    _timing(state, "extract", started, attempt)
    return {**state, "skipped": False}


def key_spellings(key: str) -> list[str]:
    """An event's key as given, then URL-decoded: S3 notifications encode keys (`보고서 1.pdf` arrives
    as `%EB%B3%B4%EA%B3%A0%EC%84%9C+1.pdf`), and a real key may itself contain `+` or `%`, so the
    spelling that names an actual object (or registered document) wins."""
    return list(dict.fromkeys((key, unquote_plus(key))))


def _missing(error: Exception) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") in (
        "404", "NoSuchKey", "NotFound", "NoSuchVersion")


def _read_upload(upload: dict) -> tuple[str, bytes]:
    """(the object's real key, its bytes) for the version the event names."""
    s3 = components().client("s3")
    version = {"VersionId": upload["version_id"]} if upload.get("version_id") else {}
    for key in key_spellings(upload["key"]):
        try:
            return key, s3.get_object(Bucket=upload["bucket"], Key=key, **version)["Body"].read()
        except Exception as error:
            if not _missing(error):
                raise
    raise errors.PipelineError(f"the uploaded object s3://{upload['bucket']}/{upload['key']} is gone")


def _existing_key(bucket: str, key: str) -> str | None:
    """The spelling of `key` that has a current version, or None when the file is gone."""
    s3 = components().client("s3")
    for name in key_spellings(key):
        try:
            s3.head_object(Bucket=bucket, Key=name)
            return name
        except Exception as error:
            if not _missing(error):
                raise
    return None


def chunk_stage(state: dict) -> dict:
    started, attempt = time.perf_counter(), state.pop("attempt", 1)
    document = ExtractedDocument.from_dict(_read_json(state["artifacts"] + "extracted.json"))
    chunks = chunk_document(document, _ref(state), components().settings.pipeline.chunk)
    if not chunks:
        raise errors.EmptyDocument("empty document: extraction found no text to index")
    _write_json(state["artifacts"] + "chunks.json", [c.to_dict() for c in chunks])
    size = components().settings.embed_batch_chunks
    state["batches"] = [{"start": i, "end": min(i + size, len(chunks))} for i in range(0, len(chunks), size)]
    state["run"]["chunks"] = len(chunks)
    _timing(state, "chunk", started, attempt)
    return state


def _chunks(state: dict) -> list[Chunk]:
    return [Chunk(**c) for c in _read_json(state["artifacts"] + "chunks.json")]


def embed_stage(state: dict) -> dict:
    """One Map item: the chunks [start, end) → a .npy artifact. Returns its reference and seconds."""
    started, attempt = time.perf_counter(), state.pop("attempt", 1)
    batch = state["batch"]
    chunks = _chunks(state)[batch["start"] : batch["end"]]
    c = components()
    vectors = embed_chunks(chunks, c.embedder, c.settings.pipeline.embed_batch_size)
    buffer = io.BytesIO()
    np.save(buffer, vectors.astype(np.float32), allow_pickle=False)
    key = f"{state['artifacts']}vectors/{batch['start']:06d}.npy"
    c.blobs.put(key, buffer.getvalue())
    return {"start": batch["start"], "end": batch["end"], "key": key,
            "seconds": round(time.perf_counter() - started, 3), "attempts": attempt}


def index_stage(state: dict) -> dict:
    started, attempt = time.perf_counter(), state.pop("attempt", 1)
    chunks = _chunks(state)
    parts = sorted(state.pop("embedded", []), key=lambda part: part["start"])
    if sum(p["end"] - p["start"] for p in parts) != len(chunks):
        raise errors.PipelineError(f"embedding covered {sum(p['end'] - p['start'] for p in parts)} of "
                                   f"{len(chunks)} chunks")
    vectors = np.vstack([np.load(io.BytesIO(components().blobs.get(p["key"])), allow_pickle=False) for p in parts])
    embed_seconds = round(sum(p["seconds"] for p in parts), 3)  # the Map's batches, added up
    embed_attempts = max((p.get("attempts", 1) for p in parts), default=1)  # the most any batch needed
    state["run"]["stages"].append({"stage": "embed", "seconds": embed_seconds, "attempts": embed_attempts})
    with single_metric(name="StageSeconds", unit=MetricUnit.Seconds, value=embed_seconds, namespace="hanrag",
                       default_dimensions={"service": "ingest"}) as metric:
        metric.add_dimension(name="stage", value="embed")
    index_document(components().index, _ref(state), chunks, vectors)
    metrics.add_metric(name="ChunksIndexed", unit=MetricUnit.Count, value=len(chunks))
    _timing(state, "index", started, attempt)
    return state


def summarize_stage(state: dict) -> dict:
    started, attempt = time.perf_counter(), state.pop("attempt", 1)
    c = components()
    document = ExtractedDocument.from_dict(_read_json(state["artifacts"] + "extracted.json"))
    summary = summarize(document, c.llm, c.settings.pipeline.summary_sentences)
    state["run"]["summary"] = summary
    c.registry.save_document(_ref(state), pages=document.pages, chunks=state["run"]["chunks"],
                             summary=summary, title=document.title)
    _timing(state, "summarize", started, attempt)
    return state


def run_record(state: dict, status: str, reason: str | None = None, failed_stage: str | None = None) -> RunRecord:
    ref, run = state["ref"], state["run"]
    document_id = DocumentRef(ref["user_id"], ref["source"], "").document_id
    return RunRecord(
        run_id=run["run_id"], user_id=ref["user_id"], source=ref["source"], document_id=document_id,
        version=ref["version"], status=status, started_at=run["started_at"],  # type: ignore[arg-type]
        finished_at=time.time(), stages=[StageTiming(**s) for s in run["stages"]], pages=run["pages"],
        chunks=run["chunks"], warnings=run["warnings"], reason=reason, failed_stage=failed_stage,
        summary=run["summary"],
    )


def notify_stage(state: dict) -> dict:
    started, attempt = time.perf_counter(), state.pop("attempt", 1)
    c = components()
    _timing(state, "notify", started, attempt)  # the announcement carries its own (tiny) stage time
    record = run_record(state, "succeeded")
    c.registry.save_run(record)
    c.registry.record_run_outcome(record)
    notify(record, c.notifiers)
    metrics.add_metric(name="DocumentsIngested", unit=MetricUnit.Count, value=1)
    return {"status": "succeeded", "run_id": record.run_id, "user_id": record.user_id, "source": record.source,
            "pages": record.pages, "chunks": record.chunks, "durations": record.durations}


# ---------------------------------------------------------------------------- failures

PIPELINE_ERRORS = {cls.__name__ for cls in (
    errors.PipelineError, errors.UnsupportedFormat, errors.EmptyDocument, errors.EncryptedDocument,
    errors.BrokenDocument, errors.InvalidName, errors.TransientError,
)}


def failure_reason(error: dict) -> str:
    """The reason a person reads, from a Catch's `{"Error", "Cause"}` (Lambda puts its error JSON in Cause)."""
    name, cause = error.get("Error", "Error"), error.get("Cause") or ""
    try:
        detail = json.loads(cause)
        message, name = detail.get("errorMessage", cause), detail.get("errorType", name)
    except (ValueError, AttributeError):
        message = cause
    if name in PIPELINE_ERRORS:
        return message
    if name.startswith("States."):
        return f"the {name.removeprefix('States.').lower()} limit of the step was reached: {message}".strip(": ")
    return f"internal error ({name}): {message}"


def record_failure_stage(state: dict) -> dict:
    """Catch path: the registry says why (the previous version stays current), SNS says so too."""
    c = components()
    if "ref" not in state:  # failed before extract knew the document: name it from the upload
        upload = state.get("upload") or upload_from_event(state)
        try:
            user_id, source = parse_upload_key(_existing_key(upload["bucket"], upload["key"]) or upload["key"])
        except errors.InvalidName:
            user_id, source = "unknown", upload["key"]
        state = {**state, "upload": upload, "ref": {"user_id": user_id, "source": source, "version": ""},
                 "run": {"run_id": uuid.uuid4().hex[:16], "started_at": time.time(), "pages": 0, "chunks": 0,
                         "warnings": [], "stages": [], "summary": ""}}
    reason = failure_reason(state.get("error", {}))
    record = run_record(state, "failed", reason=reason, failed_stage=state.get("failed_stage"))
    c.registry.save_run(record)
    if record.user_id != "unknown":
        c.registry.record_run_outcome(record)
    try:
        notify(record, c.notifiers)
    except Exception as error:  # the failure is recorded; a lost e-mail must not hide it
        logger.warning("failure notification failed", extra={"reason": str(error)})
    metrics.add_metric(name="DocumentsFailed", unit=MetricUnit.Count, value=1)
    logger.info("document failed", extra={"source": record.source, "reason": reason, "stage": record.failed_stage})
    return {"status": "failed", "run_id": record.run_id, "source": record.source, "reason": reason,
            "failed_stage": record.failed_stage}


def delete_document(event: dict) -> dict:
    """`Object Deleted`: the document's chunks leave the user's index and its registry entry is marked
    deleted. Deleting a file nobody ingested is not an error. In a versioned bucket an old version
    can be deleted (by a person or by the lifecycle rule) while the file stays: then nothing changes."""
    c = components()
    upload = upload_from_event(event)
    names = [parse_upload_key(key) for key in key_spellings(upload["key"])]
    user_id, source = next((n for n in names if c.registry.current_version(*n)), names[-1])
    if _existing_key(upload["bucket"], upload["key"]):
        logger.info("an old version was deleted; the file is still there", extra={"source": source})
        return {"user_id": user_id, "source": source, "chunks_removed": 0, "was_registered": False,
                "ignored": "the file still exists (an older version was deleted)"}
    document_id = DocumentRef(user_id, source, "").document_id
    removed = c.index.delete_document(user_id, document_id)
    known = c.registry.mark_deleted(user_id, source)
    c.blobs.delete_prefix(f"{user_id}/{document_id}/")
    metrics.add_metric(name="DocumentsDeleted", unit=MetricUnit.Count, value=1 if known else 0)
    return {"user_id": user_id, "source": source, "chunks_removed": removed, "was_registered": known is not None}


# ---------------------------------------------------------------------------- Lambda entry points

def _entry(handler):
    """Powertools Logger (with the Lambda context), Tracer and Metrics around a handler."""
    return logger.inject_lambda_context(clear_state=True)(tracer.capture_lambda_handler(metrics.log_metrics(handler)))


def unwrap(event: dict) -> dict:
    """The state machine sends `{"state": $, "attempt": $$.State.RetryCount}`; the stage gets the state
    with `attempt` counted from 1 (a direct invocation is attempt 1)."""
    if "state" in event and "attempt" in event:
        return {**event["state"], "attempt": int(event["attempt"]) + 1}
    return event


@_entry
def extract_handler(event: dict, context) -> dict:
    state = unwrap(event)
    if "detail" in state:  # the EventBridge event itself
        state = {"upload": upload_from_event(state), "attempt": state.get("attempt", 1)}
    return _idempotent(extract_stage, UPLOAD_KEY, state, context)


@_entry
def chunk_handler(event: dict, context) -> dict:
    return _idempotent(chunk_stage, UPLOAD_KEY, unwrap(event), context)


@_entry
def embed_handler(event: dict, context) -> dict:
    return _idempotent(embed_stage, BATCH_KEY, unwrap(event), context)


@_entry
def index_handler(event: dict, context) -> dict:
    return _idempotent(index_stage, UPLOAD_KEY, unwrap(event), context)


@_entry
def summarize_handler(event: dict, context) -> dict:
    return _idempotent(summarize_stage, UPLOAD_KEY, unwrap(event), context)


@_entry
def notify_handler(event: dict, context) -> dict:
    return _idempotent(notify_stage, UPLOAD_KEY, unwrap(event), context)


@_entry
def record_failure_handler(event: dict, context) -> dict:
    return record_failure_stage(event)


@_entry
def delete_handler(event: dict, context) -> dict:
    return delete_document(event)


HANDLERS = {  # the state machine's task names → handler paths (infra/stack.py reads this)
    "extract": "pipeline.lambdas.ingest.extract_handler",
    "chunk": "pipeline.lambdas.ingest.chunk_handler",
    "embed": "pipeline.lambdas.ingest.embed_handler",
    "index": "pipeline.lambdas.ingest.index_handler",
    "summarize": "pipeline.lambdas.ingest.summarize_handler",
    "notify": "pipeline.lambdas.ingest.notify_handler",
    "record_failure": "pipeline.lambdas.ingest.record_failure_handler",
    "delete": "pipeline.lambdas.ingest.delete_handler",
}
