"""The upload queue's consumer: one ingest execution per uploaded object version, within a bound.

S3 → EventBridge → SQS → this function → Step Functions. Two guarantees:

- **Idempotent.** The execution's name comes from the S3 change itself (bucket, key, version id and
  sequencer), so a second delivery of the same change (EventBridge and SQS both deliver at least
  once) cannot start a second execution: Step Functions answers with the running one, or with
  `ExecutionAlreadyExists` once it has ended, which is counted as a duplicate, not an error.
- **Bounded.** At most `HANRAG_MAX_DOCUMENTS_IN_FLIGHT` executions run at once: each one fans out up
  to 4 embedding calls and the endpoint serves only a few at a time (a serverless endpoint: 5). An
  upload that finds no room goes back to the queue with a delay instead of starting; it is not a
  failure and does not count towards the dead-letter queue's receive limit.

A body that is not an S3 event, or a start that keeps failing, is reported as a failed item: SQS
retries it and then moves it to the dead-letter queue, which an alarm watches.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from pipeline.definition import Env

logger = Logger(service="hanrag-start")
metrics = Metrics(namespace="hanrag", service="start")

UPLOAD_PREFIX = "uploads/"
# Step Functions execution names: at most 80 characters of letters, digits, '-' and '_'.
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
RETRY_DELAY_SECONDS = (60, 120)  # a deferred upload is offered again after a random delay in this range


@dataclass(frozen=True)
class StartSettings:
    state_machine_arn: str
    queue_url: str
    max_in_flight: int = 2
    region: str = "us-east-1"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> StartSettings:
        missing = [name for name in (Env.STATE_MACHINE_ARN, Env.UPLOAD_QUEUE_URL) if not env.get(name)]
        if missing:
            raise ValueError(f"{', '.join(missing)} not set")
        limit = int(env.get(Env.MAX_DOCUMENTS_IN_FLIGHT, "2"))
        if limit < 1:
            raise ValueError(f"{Env.MAX_DOCUMENTS_IN_FLIGHT} must be at least 1, not {limit}")
        return cls(env[Env.STATE_MACHINE_ARN], env[Env.UPLOAD_QUEUE_URL], limit,
                   env.get("AWS_REGION", env.get("AWS_DEFAULT_REGION", "us-east-1")))


def execution_name(event: dict) -> str:
    """`<user>-<32 hex>`: the same S3 change always gets the same name, another change another one; the
    user id in front lets an operator find a user's executions in the console."""
    from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel

    parsed = S3EventNotificationEventBridgeModel.model_validate(event)
    s3_object = parsed.detail.object
    identity = [parsed.detail.bucket.name, s3_object.key, s3_object.version_id or "", s3_object.sequencer or ""]
    digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:32]
    user = unquote_plus(s3_object.key).removeprefix(UPLOAD_PREFIX).partition("/")[0]
    return f"{_UNSAFE.sub('_', user)[:40] or 'upload'}-{digest}"


class Starter:
    """Handles one batch of queue records; the room left is read once per batch and counted down."""

    def __init__(self, settings: StartSettings, stepfunctions: Any, sqs: Any) -> None:
        self.settings, self.stepfunctions, self.sqs = settings, stepfunctions, sqs
        self._room: int | None = None

    def room(self) -> int:
        if self._room is None:
            running = self.stepfunctions.list_executions(
                stateMachineArn=self.settings.state_machine_arn, statusFilter="RUNNING",
                maxResults=min(self.settings.max_in_flight, 1000))["executions"]
            self._room = self.settings.max_in_flight - len(running)
        return self._room

    def start(self, record: SQSRecord) -> str:
        from botocore.exceptions import ClientError

        name = execution_name(json.loads(record.body))  # not an S3 event: raises, the item fails
        if self.room() <= 0:
            delay = random.randint(*RETRY_DELAY_SECONDS)
            self.sqs.send_message(QueueUrl=self.settings.queue_url, MessageBody=record.body, DelaySeconds=delay)
            metrics.add_metric(name="UploadsDeferred", unit=MetricUnit.Count, value=1)
            logger.info("no room: offered again later", extra={"execution": name, "delay_seconds": delay})
            return "deferred"
        try:
            # the body as it came: a second delivery of the same event is the same input, which a
            # running execution of that name answers as itself
            self.stepfunctions.start_execution(stateMachineArn=self.settings.state_machine_arn, name=name,
                                               input=record.body)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise
            metrics.add_metric(name="DuplicateUploadEvents", unit=MetricUnit.Count, value=1)
            logger.info("already started for this upload", extra={"execution": name})
            return "duplicate"
        self._room -= 1  # type: ignore[operator]
        metrics.add_metric(name="ExecutionsStartedFromQueue", unit=MetricUnit.Count, value=1)
        return "started"


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def start_handler(event: dict, context) -> dict:
    import boto3

    settings = StartSettings.from_env()
    starter = Starter(settings, boto3.client("stepfunctions", region_name=settings.region),
                      boto3.client("sqs", region_name=settings.region))
    return process_partial_response(event=event, record_handler=starter.start,
                                    processor=BatchProcessor(event_type=EventType.SQS), context=context)
