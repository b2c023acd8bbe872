"""The ingestion state machine's Lambda functions: one per stage, plus delete and the failure recorder.

Each stage's handler is made by one factory from its `pipeline.definition.Stage` and is the edge of
one step of `pipeline.steps` (the same steps `LocalRunner` runs): it turns its event into an
`IngestState` (S3 references, ids, counts, timings — never document text or vectors), runs the step,
and returns the state as the dict the state machine passes on. The state
machine (infra/stack.py, built from `pipeline.definition`) retries `TransientError` with the
definition's backoff, ends quietly on the definition's `QUIET_ENDINGS` (a duplicate event while its
first execution runs; a run overtaken by a later upload or delete of the file, which S3's `sequencer`
orders) and routes anything else to `record_failure`.

Here, and only here: Powertools logging, metrics and idempotency. Every stage is idempotent on
(bucket, key, object version) through DynamoDB: a retried or re-driven execution returns the stored
result instead of redoing the work.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, replace
from functools import partial
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from pipeline import errors, steps
from pipeline.adapters.aws.s3 import S3BlobStore
from pipeline.definition import STAGES, Stage, StateField
from pipeline.lambdas.wiring import components
from pipeline.models import Batch, DocumentRef, IngestState, Upload
from pipeline.names import validate_source, validate_user_id

UPLOAD_PREFIX = "uploads/"

logger = Logger(service="hanrag-ingest")
metrics = Metrics(namespace="hanrag", service="ingest")
tracer = Tracer(service="hanrag-ingest")


# ---------------------------------------------------------------------------- events and keys

def parse_upload_key(key: str) -> tuple[str, str]:
    """`uploads/<user_id>/<path>` → (user id, source). Anything else is refused with a reason."""
    if not key.startswith(UPLOAD_PREFIX):
        raise errors.InvalidName(f"object {key!r} is not under {UPLOAD_PREFIX}<user_id>/")
    user_id, _, source = key[len(UPLOAD_PREFIX):].partition("/")
    return validate_user_id(user_id), validate_source(source)


def upload_from_event(event: dict) -> Upload:
    """The S3 object an EventBridge `Object Created` / `Object Deleted` event names, read through
    Powertools' model of that event: a malformed event is refused with what is wrong in it."""
    from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel
    from pydantic import ValidationError

    try:
        parsed = S3EventNotificationEventBridgeModel.model_validate(event)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:3])
        raise errors.PipelineError(f"not an S3 event from EventBridge ({problems})") from None
    s3_object = parsed.detail.object
    return Upload(bucket=parsed.detail.bucket.name, key=s3_object.key,
                  version_id=s3_object.version_id or "",  # empty when versioning is off
                  etag=s3_object.etag or "", sequencer=event_order(s3_object.sequencer or ""))


SEQUENCER_WIDTH = 32


def event_order(sequencer: str) -> str:
    """S3's `sequencer` as a string that compares like the events it orders. S3 documents it as a
    hexadecimal value of no fixed length, compared after right-padding the shorter one with zeros;
    padding every one to the same width (upper case) lets DynamoDB and SQLite compare plain strings."""
    if len(sequencer) > SEQUENCER_WIDTH or any(c not in "0123456789abcdefABCDEF" for c in sequencer):
        raise errors.PipelineError(f"the S3 event's sequencer {sequencer!r} is not a hexadecimal value of at most "
                                   f"{SEQUENCER_WIDTH} digits")
    return sequencer.upper().ljust(SEQUENCER_WIDTH, "0") if sequencer else ""


def key_spellings(key: str) -> list[str]:
    """An event's key as given, then URL-decoded: S3 notifications encode keys (`보고서 1.pdf` arrives
    as `%EB%B3%B4%EA%B3%A0%EC%84%9C+1.pdf`), and a real key may itself contain `+` or `%`, so the
    spelling that names an actual object (or registered document) wins."""
    return list(dict.fromkeys((key, unquote_plus(key))))


def _missing(error: Exception) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") in (
        "404", "NoSuchKey", "NotFound", "NoSuchVersion")


def _existing_key(upload: Upload, version: bool = False) -> str | None:
    """The spelling of the upload's key that has a current version (or, with `version`, the version
    the event named), or None when the file is gone."""
    s3 = components().client("s3")
    pinned = {"VersionId": upload.version_id} if version and upload.version_id else {}
    for name in key_spellings(upload.key):
        try:
            s3.head_object(Bucket=upload.bucket, Key=name, **pinned)
            return name
        except Exception as error:
            if not _missing(error):
                raise
    return None


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


# ---------------------------------------------------------------------------- one attempt of a stage

def _new_run(upload: Upload, user_id: str, source: str) -> IngestState:
    return IngestState(upload, DocumentRef(user_id, source, ""), uuid.uuid4().hex[:16], time.time())


def _first_state(upload: Upload) -> IngestState:
    """A new run of the upload, under the spelling of its key that names the object (still there)."""
    key = _existing_key(upload, version=True)
    if key is None:
        raise errors.PipelineError(f"the uploaded object s3://{upload.bucket}/{upload.key} is gone")
    return _new_run(replace(upload, key=key), *parse_upload_key(key))


def _timed(state: IngestState, name: str, started: float, attempt: int) -> IngestState:
    """Seconds of the attempt that succeeded, and which attempt it was (Step Functions retried the others)."""
    seconds = round(time.perf_counter() - started, 3)
    metrics.add_dimension(name="stage", value=name)
    metrics.add_metric(name="StageSeconds", unit=MetricUnit.Seconds, value=seconds)
    return state.timed(name, seconds, attempt)


def _fan_out_timing(state: IngestState) -> IngestState:
    """The Map's batches, added up, as the embed stage's time; its attempts are the most any batch needed.
    A metric of its own: this invocation's `stage` dimension is the next stage's."""
    seconds = round(sum(p.seconds for p in state.embedded), 3)
    with single_metric(name="StageSeconds", unit=MetricUnit.Seconds, value=seconds, namespace="hanrag",
                       default_dimensions={"service": "ingest"}) as metric:
        metric.add_dimension(name="stage", value="embed")
    return state.timed("embed", seconds, max((p.attempts for p in state.embedded), default=1))


def _stage_step(stage: Stage, state: dict, started: float, attempt: int) -> dict:
    """The state machine's state → the step under the definition's failure policy → the next state, timed."""
    if StateField.RUN in state:
        ports, current = components().ports(), IngestState.from_dict(state)
    else:  # the first stage: the run starts here, reading the upload (the version the event named)
        upload = Upload(**state[StateField.UPLOAD])
        uploads = S3BlobStore(components().client("s3"), upload.bucket, prefix="", version_id=upload.version_id)
        ports, current = components().ports(uploads), _first_state(upload)
    if current.embedded:  # the fan-out has just ended
        current = _fan_out_timing(current)
    if stage.name == "notify":  # the announcement carries the run's time, this stage's included
        return _ingested(steps.run_step(stage, ports, _timed(current, stage.name, started, attempt), attempt))
    result = steps.run_step(stage, ports, current, attempt)
    if result.skipped:
        logger.info("unchanged since the last ingest", extra={"source": result.ref.source})
        return result.to_dict()
    if stage.name == "index":
        metrics.add_metric(name="ChunksIndexed", unit=MetricUnit.Count, value=result.chunks)
    return _timed(result, stage.name, started, attempt).to_dict()


def _ingested(state: IngestState) -> dict:
    """The execution's output: the run as its record tells it."""
    record = state.record("succeeded")
    metrics.add_metric(name="DocumentsIngested", unit=MetricUnit.Count, value=1)
    return {"status": "succeeded", "run_id": record.run_id, "user_id": record.user_id, "source": record.source,
            "pages": record.pages, "chunks": record.chunks, "embedded": record.embedded, "reused": record.reused,
            "durations": record.durations, "warnings": record.warnings, "summary": record.summary}


def _embed_batch(state: dict, started: float, attempt: int) -> dict:
    """One item of the fan-out: the chunks [start, end) → a .npy artifact; its reference, seconds and attempt."""
    part = steps.embed(components().ports(), DocumentRef(**state[StateField.REF]), Batch(**state[StateField.BATCH]),
                       sequencer=Upload(**state[StateField.UPLOAD]).sequencer)
    return replace(part, seconds=round(time.perf_counter() - started, 3), attempts=attempt).to_dict()


# ---------------------------------------------------------------------------- failures

PIPELINE_ERRORS = {cls.__name__ for cls in vars(errors).values()  # their messages are written for people
                   if isinstance(cls, type) and issubclass(cls, errors.PipelineError)}


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


# ---------------------------------------------------------------------------- Lambda entry points

def _entry(handler):
    """Powertools Logger (with the Lambda context), Tracer and Metrics around a handler."""
    return logger.inject_lambda_context(clear_state=True)(tracer.capture_lambda_handler(metrics.log_metrics(handler)))


def unwrap(event: dict) -> dict:
    """The state a stage gets, with `attempt` counted from 1: the state machine sends `{"state": $,
    "attempt": $$.State.RetryCount}` (a direct invocation is attempt 1), and the first stage's state
    is the EventBridge event itself, read into the upload it names."""
    if "state" in event and "attempt" in event:
        event = {**event["state"], "attempt": int(event["attempt"]) + 1}
    if "detail" in event:
        return {StateField.UPLOAD: asdict(upload_from_event(event)), "attempt": event.get("attempt", 1)}
    return event


def _stage_handler(stage: Stage) -> Callable[[dict, Any], dict]:
    """The Lambda handler of one stage of the definition: its event → one attempt, run once per upload
    (per batch, for the fan-out stage) however often the state machine delivers it."""
    step = _embed_batch if stage.fans_out else partial(_stage_step, stage)

    def run(state: dict) -> dict:
        started, attempt = time.perf_counter(), state.pop("attempt", 1)
        return step(state, started, attempt)

    # Powertools keys each stored result by this function's qualified name: one per stage, as before.
    run.__qualname__ = f"{stage.name}_stage"

    def handler(event: dict, context) -> dict:
        return _idempotent(run, BATCH_KEY if stage.fans_out else UPLOAD_KEY, unwrap(event), context)

    handler.__name__ = handler.__qualname__ = f"{stage.name}_handler"  # X-Ray names the trace after it
    return _entry(handler)


# `extract_handler`, `chunk_handler`, …: the image command `Stage.handler` gives each stage's function.
for _stage in STAGES:
    globals()[_stage.handler.rpartition(".")[2]] = _stage_handler(_stage)


@_entry
def record_failure_handler(state: dict, context) -> dict:
    """Catch path: the registry says why (the previous version stays current), SNS says so too."""
    if StateField.REF not in state:  # failed before extract knew the document: name it from the upload
        upload = Upload(**state[StateField.UPLOAD]) if StateField.UPLOAD in state else upload_from_event(state)
        try:
            names = parse_upload_key(_existing_key(upload) or upload.key)
        except errors.InvalidName:
            names = ("unknown", upload.key)
        state = {**state, **_new_run(upload, *names).to_dict()}
    reason = failure_reason(state.get(StateField.ERROR, {}))
    record = steps.record_failure(components().ports(), IngestState.from_dict(state), reason,
                                  state.get(StateField.FAILED_STAGE))
    metrics.add_metric(name="DocumentsFailed", unit=MetricUnit.Count, value=1)
    logger.info("document failed", extra={"source": record.source, "reason": reason, "stage": record.failed_stage})
    return {"status": "failed", "run_id": record.run_id, "source": record.source, "reason": reason,
            "failed_stage": record.failed_stage}


@_entry
def delete_handler(event: dict, context) -> dict:
    """`Object Deleted`: the document's chunks leave the user's index and its registry entry is marked
    deleted. Deleting a file nobody ingested is not an error. In a versioned bucket an old version
    can be deleted (by a person or by the lifecycle rule) while the file stays: then nothing changes.
    The event's sequencer orders it against the file's uploads: an ingest still running for an earlier
    upload stops, and an upload after the delete stays."""
    c = components()
    upload = upload_from_event(event)
    names = [parse_upload_key(key) for key in key_spellings(upload.key)]
    user_id, source = next((n for n in names if c.registry.current_version(*n)), names[-1])
    if _existing_key(upload):
        logger.info("an old version was deleted; the file is still there", extra={"source": source})
        return {"user_id": user_id, "source": source, "chunks_removed": 0, "was_registered": False,
                "ignored": "the file still exists (an older version was deleted)"}
    removed, known = steps.delete_document(c.ports(), user_id, source, upload.sequencer)
    metrics.add_metric(name="DocumentsDeleted", unit=MetricUnit.Count, value=1 if known else 0)
    return {"user_id": user_id, "source": source, "chunks_removed": removed, "was_registered": known is not None}
