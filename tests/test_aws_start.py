"""The upload queue's consumer (`pipeline.lambdas.start`) under moto: the same S3 change delivered
twice starts one execution, no more than MaxDocumentsInFlight run at once (the rest wait in the
queue), a body that is not an S3 event fails alone, and an upload that goes through the queue ends
ingested by the synthesized state machine with the real handlers."""

from __future__ import annotations

import json
import os
import time
from types import SimpleNamespace
from unittest import mock

import pytest
from conftest import BANK, SAMPLES
from test_aws_pipeline import ACCOUNT, BUCKET, REGION, aws_environment, object_created

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")

CONTEXT = SimpleNamespace(function_name="StartFunction", memory_limit_in_mb=256, aws_request_id="req-1",
                          invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:StartFunction",
                          get_remaining_time_in_millis=lambda: 60_000)


def sqs_event(*bodies: str) -> dict:
    """What Lambda's SQS event source hands the function (one record per message)."""
    return {"Records": [{
        "messageId": f"m{i}", "receiptHandle": f"r{i}", "body": body, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:UploadEvents", "awsRegion": REGION,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0", "SenderId": ACCOUNT,
                       "ApproximateFirstReceiveTimestamp": "0"}, "messageAttributes": {}}
        for i, body in enumerate(bodies)]}


@pytest.fixture
def queue_and_machine():
    """Moto's SQS and Step Functions; executions of this machine stay RUNNING until stopped."""
    from moto import mock_aws

    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
           "AWS_REGION": REGION, "POWERTOOLS_TRACE_DISABLED": "1", "POWERTOOLS_METRICS_NAMESPACE": "hanrag"}
    with mock.patch.dict(os.environ, env), mock_aws():
        import boto3

        sqs, sfn = boto3.client("sqs", region_name=REGION), boto3.client("stepfunctions", region_name=REGION)
        queue = sqs.create_queue(QueueName="UploadEvents")["QueueUrl"]
        machine = sfn.create_state_machine(
            name="ingest", roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn",
            definition=json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}}),
        )["stateMachineArn"]
        os.environ.update({"HANRAG_STATE_MACHINE_ARN": machine, "HANRAG_UPLOAD_QUEUE_URL": queue,
                           "HANRAG_MAX_DOCUMENTS_IN_FLIGHT": "2"})
        yield SimpleNamespace(sqs=sqs, sfn=sfn, queue=queue, machine=machine)


def start(*events: dict | str) -> dict:
    from pipeline.lambdas.start import start_handler

    bodies = [e if isinstance(e, str) else json.dumps(e, ensure_ascii=False) for e in events]
    return start_handler(sqs_event(*bodies), CONTEXT)


def executions(aws, status: str | None = None) -> list[dict]:
    found = aws.sfn.list_executions(stateMachineArn=aws.machine, **({"statusFilter": status} if status else {}))
    return found["executions"]


def test_the_same_upload_delivered_again_starts_one_execution_named_after_it(queue_and_machine):
    aws = queue_and_machine
    event = object_created("uploads/kim/보고서 1.pdf", "v1")
    again = {**event, "id": "another-eventbridge-id"}  # the same S3 change, delivered as a second event
    assert start(event, event) == {"batchItemFailures": []}
    assert start(event, again) == {"batchItemFailures": []}
    started = executions(aws)
    assert len(started) == 1
    assert started[0]["name"].startswith("kim-") and len(started[0]["name"]) <= 80
    described = aws.sfn.describe_execution(executionArn=started[0]["executionArn"])
    assert json.loads(described["input"]) == event  # the state machine gets the event as EventBridge sent it
    # a new version of the same file is another change: another execution
    assert start(object_created("uploads/kim/보고서 1.pdf", "v2")) == {"batchItemFailures": []}
    assert len({e["name"] for e in executions(aws)}) == 2


def test_no_more_than_the_limit_run_at_once_and_the_rest_wait_in_the_queue(queue_and_machine):
    aws = queue_and_machine
    uploads = [object_created(f"uploads/kim/{n}.pdf", "v1") for n in ("a", "b", "c")]
    with mock.patch("pipeline.lambdas.start.random.randint", return_value=75) as delay:
        assert start(*uploads) == {"batchItemFailures": []}  # waiting is not a failure (no DLQ count)
    assert len(executions(aws, "RUNNING")) == 2
    assert delay.call_args.args == (60, 120)
    waiting = aws.sqs.get_queue_attributes(QueueUrl=aws.queue, AttributeNames=["All"])["Attributes"]
    assert waiting["ApproximateNumberOfMessagesDelayed"] == "1"  # offered again in 75 s
    with mock.patch("pipeline.lambdas.start.random.randint", return_value=0):  # no room yet: back again
        assert start(uploads[2]) == {"batchItemFailures": []}
    assert len(executions(aws)) == 2
    # one document finishes: the waiting upload starts
    aws.sfn.stop_execution(executionArn=executions(aws, "RUNNING")[0]["executionArn"])
    assert start(uploads[2]) == {"batchItemFailures": []}
    assert len(executions(aws, "RUNNING")) == 2 and len(executions(aws)) == 3


def test_a_body_that_is_not_an_s3_event_fails_alone(queue_and_machine):
    aws = queue_and_machine
    result = start("not json", {"detail-type": "Object Created"}, object_created("uploads/kim/a.pdf", "v1"))
    assert result == {"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]}
    assert len(executions(aws)) == 1


def test_the_start_function_refuses_a_missing_setting_with_its_name():
    from pipeline.lambdas.start import StartSettings

    with pytest.raises(ValueError, match="HANRAG_UPLOAD_QUEUE_URL not set"):
        StartSettings.from_env({"HANRAG_STATE_MACHINE_ARN": "arn:sm"})
    with pytest.raises(ValueError, match="HANRAG_MAX_DOCUMENTS_IN_FLIGHT must be at least 1"):
        StartSettings.from_env({"HANRAG_STATE_MACHINE_ARN": "arn:sm", "HANRAG_UPLOAD_QUEUE_URL": "q",
                                "HANRAG_MAX_DOCUMENTS_IN_FLIGHT": "0"})


def test_an_upload_through_the_queue_is_ingested_by_the_synthesized_state_machine(tmp_path):
    with aws_environment(tmp_path) as aws:
        key = f"uploads/kim/{BANK}"
        version = aws.s3.put_object(Bucket=BUCKET, Key=key, Body=(SAMPLES / BANK).read_bytes())["VersionId"]
        queue = aws.sqs.create_queue(QueueName="UploadEvents")["QueueUrl"]
        with mock.patch.dict(os.environ, {"HANRAG_STATE_MACHINE_ARN": aws.machine, "HANRAG_UPLOAD_QUEUE_URL": queue,
                                          "HANRAG_MAX_DOCUMENTS_IN_FLIGHT": "2"}):
            assert start(object_created(key, version)) == {"batchItemFailures": []}
        arn = aws.sfn.list_executions(stateMachineArn=aws.machine)["executions"][0]["executionArn"]
        deadline = time.time() + 240
        while (described := aws.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.time() < deadline, "the execution did not finish in 240 s"
            time.sleep(0.5)
        assert described["status"] == "SUCCEEDED", described.get("cause")
        assert json.loads(described["output"])["source"] == BANK
        assert aws.components.registry.document("kim", BANK)["last_status"] == "succeeded"
