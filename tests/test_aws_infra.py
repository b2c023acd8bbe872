"""The CDK stack, synthesized once per session: every resource the deployment needs, with the
properties a reviewer would check, and cdk-nag's AwsSolutions checks passing (a finding that is
neither fixed nor acknowledged with a reason fails the synth, and so this module)."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest

from pipeline.definition import QUIET_ENDINGS, STAGES

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
ROOT = Path(__file__).resolve().parent.parent


@cache
def synthesized(search_size: str | None = None) -> tuple[dict, Path, dict[str, str]]:
    """(template as a dict, cloud assembly folder, every acknowledged rule → its reason), for the default
    domain size or `-c searchSize=<search_size>`. Synthesis runs the cdk-nag validation plugin."""
    import aws_cdk as cdk

    from infra.app import build_app

    outdir = Path(tempfile.mkdtemp(prefix="hanrag-cdk-"))
    atexit.register(shutil.rmtree, outdir, True)
    app, stack = build_app(str(outdir), {"searchSize": search_size} if search_size else None)
    app.synth()  # raises ValidationFailed on any unacknowledged cdk-nag finding
    acknowledged: dict[str, str] = {}
    for construct in stack.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                acknowledged.update({f"{construct.node.path} {rule}": why for rule, why in entry.data.items()})
    return json.loads((outdir / f"{stack.stack_name}.template.json").read_text()), outdir, acknowledged


@pytest.fixture(scope="module")
def template():
    from aws_cdk.assertions import Template

    return Template.from_json(synthesized()[0])


def resources(kind: str) -> dict[str, dict]:
    return {k: v for k, v in synthesized()[0]["Resources"].items() if v["Type"] == kind}


def test_cdk_nag_passes_and_every_acknowledgment_has_a_reason():
    _, outdir, acknowledged = synthesized()
    # synthesized() got here, so the AwsSolutions plugin found nothing unacknowledged (it raises otherwise)
    reports = json.loads((outdir / "validation-report.json").read_text())["pluginReports"]
    assert [r["pluginName"] for r in reports if r["conclusion"] != "success"] == []
    ours = {rule: why for rule, why in acknowledged.items() if "AwsSolutions" in rule}
    assert len(ours) > 50
    short = {rule: why for rule, why in ours.items() if len(why) < 30}
    assert short == {}


def test_uploads_bucket_is_private_encrypted_versioned_with_eventbridge_and_lifecycle(template):
    from aws_cdk.assertions import Match

    template.has_resource_properties("AWS::S3::Bucket", {
        "VersioningConfiguration": {"Status": "Enabled"},
        "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                           "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
        "BucketEncryption": Match.object_like({}),
        "LifecycleConfiguration": {"Rules": Match.array_with([
            Match.object_like({"Prefix": "artifacts/", "ExpirationInDays": 14, "Status": "Enabled"})])},
    })
    template.has_resource_properties("Custom::S3BucketNotifications", {
        "NotificationConfiguration": {"EventBridgeConfiguration": {}}})
    policies = json.dumps(resources("AWS::S3::BucketPolicy"))
    assert '"aws:SecureTransport": "false"' in policies  # TLS only
    uploads = next(v for k, v in resources("AWS::S3::Bucket").items() if k.startswith("Uploads"))
    assert uploads["DeletionPolicy"] == "Delete"  # emptied by CDK's auto-delete, then deleted


def test_eventbridge_rules_start_the_state_machine_and_the_delete_path():
    rules = {r["Properties"]["EventPattern"]["detail-type"][0]: r["Properties"]
             for r in resources("AWS::Events::Rule").values()}
    assert set(rules) == {"Object Created", "Object Deleted"}
    created, deleted = rules["Object Created"], rules["Object Deleted"]
    assert created["EventPattern"]["detail"]["object"]["key"] == [{"prefix": "uploads/"}]
    assert deleted["EventPattern"]["detail"]["reason"] == ["DeleteObject"]  # not lifecycle expiry
    queue = next(k for k in resources("AWS::SQS::Queue") if k.startswith("UploadEvents") and "Dead" not in k)
    assert created["Targets"][0]["Arn"] == {"Fn::GetAtt": [queue, "Arn"]}  # buffered, see below
    assert "DeadLetterConfig" in created["Targets"][0] and "DeadLetterConfig" in deleted["Targets"][0]
    delete_function = deleted["Targets"][0]["Arn"]["Fn::GetAtt"][0]
    assert resources("AWS::Lambda::Function")[delete_function]["Properties"]["ImageConfig"]["Command"] == [
        "pipeline.lambdas.ingest.delete_handler"]


def state_machine_definition() -> dict:
    """The definition with each function ARN replaced by `<logical id>` (it is an Fn::Join)."""
    machine = next(iter(resources("AWS::StepFunctions::StateMachine").values()))
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else f"<{p['Fn::GetAtt'][0]}>" for p in parts))


def test_state_machine_follows_pipeline_definition_order_retries_and_catch():
    machine = next(iter(resources("AWS::StepFunctions::StateMachine").values()))
    assert machine["Properties"]["StateMachineType"] == "STANDARD"
    states = state_machine_definition()["States"]
    order, name = [], state_machine_definition()["StartAt"]
    while name:
        order.append(name)
        state = states[name]
        name = state.get("Default") if state["Type"] == "Choice" else state.get("Next")
    assert order == ["Extract", "ChangedSinceLastIngest", "Chunk", "EmbedBatches", "Index", "Summarize",
                     "Notify", "Ingested"]
    embed = states["EmbedBatches"]["ItemProcessor"]["States"]["Embed"]
    for stage in STAGES:
        state = embed if stage.name == "embed" else states[stage.name.capitalize()]
        ours = [r for r in state.get("Retry", []) if "TransientError" in r["ErrorEquals"]]
        if stage.retry.max_attempts > 1:
            assert ours[0]["ErrorEquals"] == ["TransientError"]
            assert ours[0]["MaxAttempts"] == stage.retry.max_attempts - 1
            assert ours[0]["IntervalSeconds"] == stage.retry.interval_seconds
            assert ours[0]["BackoffRate"] == stage.retry.backoff_rate
        else:
            assert ours == []
        holder = states["EmbedBatches"] if stage.name == "embed" else state
        *quiet, failure = holder["Catch"]  # States.ALL must come last
        assert failure == {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error",
                           "Next": f"FailedAt{stage.name.capitalize()}"}
        assert {c["ErrorEquals"][0]: c["Next"] for c in quiet} == QUIET_ENDINGS
        assert all(states[ending]["Type"] == "Succeed" for ending in QUIET_ENDINGS.values())
        assert states[f"FailedAt{stage.name.capitalize()}"]["Next"] == "RecordFailure"
    assert states["EmbedBatches"]["Type"] == "Map" and states["EmbedBatches"]["ItemsPath"] == "$.batches"
    assert states["RecordFailure"]["Next"] == "DocumentFailed"


LAMBDA_SERVICE_ERRORS = {"Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                         "Lambda.TooManyRequestsException"}


def test_every_task_retries_lambda_service_errors_even_extract_and_chunk():
    from pipeline.definition import LAMBDA_SERVICE_RETRY

    states = state_machine_definition()["States"]
    tasks = {name: state for name, state in states.items() if state["Type"] == "Task"}
    tasks["Embed"] = states["EmbedBatches"]["ItemProcessor"]["States"]["Embed"]
    assert {"Extract", "Chunk", "Embed", "Index", "Summarize", "Notify", "RecordFailure"} <= set(tasks)
    for name, task in tasks.items():
        service = [r for r in task.get("Retry", []) if LAMBDA_SERVICE_ERRORS & set(r["ErrorEquals"])]
        assert len(service) == 1, name  # one retrier, not CDK's default beside ours
        assert set(service[0]["ErrorEquals"]) == LAMBDA_SERVICE_ERRORS, name
        assert service[0]["MaxAttempts"] == LAMBDA_SERVICE_RETRY.max_attempts - 1 >= 3, name
        assert service[0]["JitterStrategy"] == "FULL", name


class Intrinsics:
    """Just enough of CloudFormation to resolve a value of the template for given parameters and region."""

    def __init__(self, template: dict, region: str, **parameters: str) -> None:
        self.template, self.region = template, region
        self.values = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}
        self.values.update(parameters, **{"AWS::Region": region, "AWS::Partition": "aws",
                                          "AWS::URLSuffix": "amazonaws.com", "AWS::AccountId": "123456789012"})

    def __call__(self, value):
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self(v) for k, v in value.items()}
        (fn, arg), = value.items()
        if fn == "Ref":
            return self.values[arg]
        if fn == "Fn::FindInMap":
            name, key, attribute = self(arg)
            return self.template["Mappings"][name][key][attribute]
        if fn == "Fn::Join":
            return self(arg[0]).join(str(self(v)) for v in arg[1])
        if fn == "Fn::Equals":
            return str(self(arg[0])) == str(self(arg[1]))
        if fn == "Fn::And":
            return all(self(v) for v in arg)
        if fn == "Fn::Not":
            return not self(arg[0])
        if fn == "Fn::Contains":
            return str(self(arg[1])) in [str(v) for v in self(arg[0])]
        if fn == "Condition":
            return self(self.template["Conditions"][arg])
        if fn == "Fn::If":
            return self(arg[1] if self({"Condition": arg[0]}) else arg[2])
        return {k: self(v) for k, v in value.items()}

    def rules_failing(self) -> list[str]:
        """The description of each assertion of each applicable rule that fails."""
        failing = []
        for rule in self.template.get("Rules", {}).values():
            if "RuleCondition" in rule and not self(rule["RuleCondition"]):
                continue
            failing += [a["AssertDescription"] for a in rule["Assertions"] if not self(a["Assert"])]
        return failing


@pytest.mark.parametrize(("region", "account"), [("us-east-1", "683313688378"), ("ap-northeast-2", "366743142698"),
                                                 ("eu-central-1", "492215442770"), ("cn-north-1", "450853457545")])
def test_the_tei_image_and_its_pull_permission_come_from_the_regions_account(region, account):
    template = synthesized()[0]
    cfn = Intrinsics(template, region)
    model = next(iter(resources("AWS::SageMaker::Model").values()))["Properties"]
    assert cfn(model["PrimaryContainer"]["Image"]) == (
        f"{account}.dkr.ecr.{region}.amazonaws.com/tei-cpu:2.0.1-tei1.7.0-cpu-py310-ubuntu22.04")
    role = next(k for k, v in resources("AWS::IAM::Role").items() if "sagemaker.amazonaws.com" in json.dumps(v))
    pulls = [st for pol in resources("AWS::IAM::Policy").values() if {"Ref": role} in pol["Properties"]["Roles"]
             for st in pol["Properties"]["PolicyDocument"]["Statement"] if "ecr:BatchGetImage" in st["Action"]]
    assert [cfn(st["Resource"]) for st in pulls] == [f"arn:aws:ecr:{region}:{account}:repository/tei-cpu"]
    assert "763104351884" not in json.dumps(template)  # the general DLC account publishes no TEI image
    assert cfn.rules_failing() == []


def test_a_region_without_a_tei_image_is_refused_at_synth_when_known():
    import aws_cdk as cdk

    from infra.stack import HanragStack

    template = synthesized()[0]
    assert set(template["Mappings"]["TeiImages"]) >= {"us-east-1", "ap-northeast-2", "us-west-2", "eu-west-1"}
    with pytest.raises(ValueError, match="No Hugging Face TEI CPU image .* Region: us-iso-east-1"):
        HanragStack(cdk.App(), "Elsewhere", env=cdk.Environment(region="us-iso-east-1"))


@pytest.mark.parametrize(("model", "dim", "ok"), [
    ("amazon.titan-embed-text-v2:0", "1024", True), ("amazon.titan-embed-text-v2:0", "512", True),
    ("amazon.titan-embed-text-v2:0", "256", True), ("amazon.titan-embed-text-v2:0", "384", False),
    ("cohere.embed-multilingual-v3", "1024", True), ("cohere.embed-multilingual-v3", "384", False),
    ("cohere.embed-multilingual-v3", "512", False)])
def test_bedrock_with_a_dimension_the_model_cannot_produce_is_refused_at_deploy(model, dim, ok):
    template = synthesized()[0]
    assert template["Parameters"]["BedrockEmbeddingModelId"]["AllowedValues"] == [
        "amazon.titan-embed-text-v2:0", "cohere.embed-multilingual-v3"]
    failing = Intrinsics(template, "ap-northeast-2", Embedder="bedrock", BedrockEmbeddingModelId=model,
                         EmbeddingDimension=dim).rules_failing()
    assert failing == [] if ok else len(failing) == 1 and model in failing[0] and "EmbeddingDimension" in failing[0]
    # the SageMaker default (e5-small, 384) is not held to Bedrock's sizes
    assert Intrinsics(template, "ap-northeast-2", BedrockEmbeddingModelId=model,
                      EmbeddingDimension="384").rules_failing() == []


def test_a_failed_delete_is_retried_then_kept_in_an_encrypted_queue_with_an_alarm(template):
    functions = resources("AWS::Lambda::Function")
    handler = ["pipeline.lambdas.ingest.delete_handler"]
    delete = next(k for k, f in functions.items() if f["Properties"].get("ImageConfig", {}).get("Command") == handler)
    configs = [c["Properties"] for c in resources("AWS::Lambda::EventInvokeConfig").values()]
    assert len(configs) == 1 and configs[0]["FunctionName"] == {"Ref": delete}
    assert configs[0]["MaximumRetryAttempts"] == 2
    queue = configs[0]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    props = resources("AWS::SQS::Queue")[queue]["Properties"]
    assert props["SqsManagedSseEnabled"] is True and props["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert queue.startswith("DeleteFailures")
    dimension = {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}
    alarm = next(a["Properties"] for a in resources("AWS::CloudWatch::Alarm").values()
                 if dimension in a["Properties"]["Dimensions"])
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible" and alarm["Threshold"] == 1
    assert alarm["AlarmActions"]
    # the function may send to its queue (the destination is called with the function's role)
    sends = [st for pol in resources("AWS::IAM::Policy").values()
             for st in pol["Properties"]["PolicyDocument"]["Statement"]
             if st["Resource"] == {"Fn::GetAtt": [queue, "Arn"]} and "sqs:SendMessage" in st["Action"]]
    assert sends


def function_running(handler: str) -> tuple[str, dict]:
    return next((k, f["Properties"]) for k, f in resources("AWS::Lambda::Function").items()
                if f["Properties"].get("ImageConfig", {}).get("Command") == [handler])


def test_uploads_wait_in_an_encrypted_queue_with_a_watched_dead_letter_queue():
    from pipeline.definition import START_HANDLER

    queues = resources("AWS::SQS::Queue")
    queue = next(k for k in queues if k.startswith("UploadEvents") and "Dead" not in k)
    props = queues[queue]["Properties"]
    dlq = props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert props["SqsManagedSseEnabled"] is True and queues[dlq]["Properties"]["SqsManagedSseEnabled"] is True
    assert props["RedrivePolicy"]["maxReceiveCount"] == 5
    starter, function = function_running(START_HANDLER)
    assert props["VisibilityTimeout"] >= 6 * function["Timeout"]  # Lambda's advice for an SQS source
    alarm = next(a["Properties"] for a in resources("AWS::CloudWatch::Alarm").values()
                 if {"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}} in a["Properties"]["Dimensions"])
    assert alarm["Threshold"] == 1 and alarm["AlarmActions"]
    # EventBridge may send to the queue (its policy), the start function reads it with a bound
    policy = json.dumps([p for p in resources("AWS::SQS::QueuePolicy").values()
                         if {"Ref": queue} in p["Properties"]["Queues"]])
    assert "events.amazonaws.com" in policy and "aws:SourceArn" in policy
    mapping = next(iter(resources("AWS::Lambda::EventSourceMapping").values()))["Properties"]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [queue, "Arn"]} and mapping["FunctionName"] == {"Ref": starter}
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 2}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]  # one bad event fails alone
    machine = next(iter(resources("AWS::StepFunctions::StateMachine")))
    variables = function["Environment"]["Variables"]
    assert variables["HANRAG_STATE_MACHINE_ARN"] == {"Ref": machine}
    assert variables["HANRAG_UPLOAD_QUEUE_URL"] == {"Ref": queue}
    assert variables["HANRAG_MAX_DOCUMENTS_IN_FLIGHT"] == {"Ref": "MaxDocumentsInFlight"}
    allowed = {(a, json.dumps(st["Resource"])) for st in statements_of(START_HANDLER) for a in listed(st["Action"])}
    assert {("states:StartExecution", json.dumps({"Ref": machine})),
            ("states:ListExecutions", json.dumps({"Ref": machine}))} <= allowed
    assert ("sqs:SendMessage", json.dumps({"Fn::GetAtt": [queue, "Arn"]})) in allowed  # a deferred upload


def test_the_embedding_endpoint_sees_at_most_its_concurrency_whatever_the_number_of_documents():
    template = synthesized()[0]
    parameters = template["Parameters"]
    assert parameters["EmbeddingConcurrency"]["Default"] == 5  # a serverless endpoint's default
    assert parameters["MaxDocumentsInFlight"]["Default"] == 2
    # the one limit that holds whatever runs: the embed function's reserved concurrency
    _, embed = function_running("pipeline.lambdas.ingest.embed_handler")
    assert embed["ReservedConcurrentExecutions"] == {"Ref": "EmbeddingConcurrency"}
    config = next(iter(resources("AWS::SageMaker::EndpointConfig").values()))["Properties"]
    assert config["ProductionVariants"][0]["ServerlessConfig"]["MaxConcurrency"] == {"Ref": "EmbeddingConcurrency"}
    # more embed calls than that are throttled invokes, which the Map's task retries
    embed_task = state_machine_definition()["States"]["EmbedBatches"]
    assert embed_task["MaxConcurrency"] == 4
    retriers = embed_task["ItemProcessor"]["States"]["Embed"]["Retry"]
    assert any("Lambda.TooManyRequestsException" in r["ErrorEquals"] for r in retriers)


def test_lambdas_are_python_312_images_sized_for_a_300_page_pdf():
    functions = {f["Properties"]["ImageConfig"]["Command"][0].rsplit(".", 1)[-1]: f["Properties"]
                 for f in resources("AWS::Lambda::Function").values() if "ImageConfig" in f["Properties"]}
    extract = functions["extract_handler"]
    assert extract["MemorySize"] >= 3008 and extract["Timeout"] == 900
    assert extract["TracingConfig"] == {"Mode": "Active"}
    assert extract["Environment"]["Variables"]["HANRAG_INDEX"] == "opensearch"
    assert {"chunk_handler", "embed_handler", "index_handler", "summarize_handler", "notify_handler",
            "record_failure_handler", "delete_handler", "http_handler", "websocket_handler",
            "authorizer_handler", "on_event"} <= set(functions)
    dockerfile = (ROOT / "infra/lambda.Dockerfile").read_text()
    assert "python:3.12" in dockerfile and 'ENTRYPOINT ["python", "-m", "awslambdaric"]' in dockerfile
    # a scanned PDF is read on AWS as locally: Tesseract with Korean data, OCR left at its default (on)
    assert "tesseract-ocr-kor" in dockerfile and "HANRAG_OCR" not in dockerfile


def statements_of(handler: str) -> list[dict]:
    """Every IAM statement of the role of the function whose image runs `handler`."""
    role = next(f["Properties"]["Role"]["Fn::GetAtt"][0] for f in resources("AWS::Lambda::Function").values()
                if f["Properties"].get("ImageConfig", {}).get("Command") == [handler])
    return [statement for policy in resources("AWS::IAM::Policy").values()
            if {"Ref": role} in policy["Properties"]["Roles"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]]


def listed(value) -> list:
    return value if isinstance(value, list) else [value]


def actions_of(handler: str) -> set[str]:
    return {action for statement in statements_of(handler) for action in listed(statement["Action"])}


def s3_access(handler: str) -> dict[str, set[str]]:
    """Where in the uploads bucket (`bucket` itself, or an object prefix such as `uploads/*`) → S3 actions."""
    bucket = next(iter(k for k in resources("AWS::S3::Bucket") if k.startswith("Uploads")))
    access: dict[str, set[str]] = {}
    for statement in statements_of(handler):
        for resource in listed(statement["Resource"]):
            if resource == {"Fn::GetAtt": [bucket, "Arn"]}:
                where = "bucket"
            elif isinstance(resource, dict) and resource.get("Fn::Join", [None, [None]])[1][0] == {
                    "Fn::GetAtt": [bucket, "Arn"]}:
                where = "".join(resource["Fn::Join"][1][1:]).removeprefix("/")
            else:
                continue
            access.setdefault(where, set()).update(listed(statement["Action"]))
    return access


INGEST = "pipeline.lambdas.ingest"


def test_each_stage_gets_exactly_the_s3_calls_its_step_makes():
    upload_reader = {"uploads/*": {"s3:GetObject", "s3:GetObjectVersion"}, "bucket": {"s3:ListBucket"}}
    assert s3_access(f"{INGEST}.extract_handler") == {**upload_reader, "artifacts/*": {"s3:PutObject"}}
    for stage in ("chunk", "embed"):
        assert s3_access(f"{INGEST}.{stage}_handler") == {"artifacts/*": {"s3:GetObject", "s3:PutObject"}}, stage
    for stage in ("index", "summarize"):
        assert s3_access(f"{INGEST}.{stage}_handler") == {"artifacts/*": {"s3:GetObject"}}, stage
    assert s3_access(f"{INGEST}.notify_handler") == {}
    assert s3_access(f"{INGEST}.delete_handler") == {**upload_reader, "artifacts/*": {"s3:DeleteObject"}}
    assert s3_access(f"{INGEST}.record_failure_handler") == upload_reader
    for handler in ("chat.handler.http_handler", "chat.handler.websocket_handler", "chat.handler.authorizer_handler"):
        assert not any(a.startswith("s3:") and a != "s3:PutObject" for a in actions_of(handler)), handler


def test_the_llm_may_be_invoked_only_as_the_configured_model_or_through_its_inference_profile():
    template = synthesized()[0]
    for model, region in (("global.anthropic.claude-haiku-4-5-20251001-v1:0", "ap-northeast-2"),
                          ("anthropic.claude-3-haiku-20240307-v1:0", "us-east-1")):
        cfn = Intrinsics(template, region, LlmModelId=model)
        for handler in (f"{INGEST}.summarize_handler", "chat.handler.http_handler", "chat.handler.websocket_handler"):
            llm = [st for st in statements_of(handler)
                   if "bedrock:InvokeModelWithResponseStream" in listed(st["Action"])]
            granted = {(r, json.dumps(cfn(st.get("Condition")))) for st in llm for r in cfn(listed(st["Resource"]))}
            profile = f"arn:aws:bedrock:{region}:123456789012:inference-profile/{model}"
            assert granted == {
                (profile, "null"), (f"arn:aws:bedrock:{region}::foundation-model/{model}", "null"),
                # a cross-region profile's model, in whichever region it routes to, but only through the profile
                ("arn:aws:bedrock:*::foundation-model/*",
                 json.dumps({"StringEquals": {"bedrock:InferenceProfileArn": profile}}))}, handler
        embedding = [r for st in statements_of(f"{INGEST}.embed_handler")
                     if listed(st["Action"]) == ["bedrock:InvokeModel"] for r in cfn(listed(st["Resource"]))]
        assert embedding == [f"arn:aws:bedrock:{region}::foundation-model/amazon.titan-embed-text-v2:0"]
    assert "inference-profile/*" not in json.dumps(resources("AWS::IAM::Policy"))


def test_chat_functions_search_with_a_read_only_role_and_the_pipeline_writes():
    from pipeline.lambdas.search_setup import reader_role_body, role_body

    setup = next(iter(resources("AWS::CloudFormation::CustomResource").values()))["Properties"]
    role_of = {f["Properties"]["ImageConfig"]["Command"][0].rsplit(".", 1)[-1]: f["Properties"]["Role"]
               for f in resources("AWS::Lambda::Function").values() if "ImageConfig" in f["Properties"]}
    # the account function writes too: offboarding deletes the user's indices
    assert setup["RoleArns"] == [role_of["index_handler"], role_of["delete_handler"], role_of["account_handler"]]
    assert setup["ReaderRoleArns"] == [role_of["http_handler"], role_of["websocket_handler"]]
    for handler in ("chat.handler.http_handler", "chat.handler.websocket_handler"):
        assert {a for a in actions_of(handler) if a.startswith("es:")} == {"es:ESHttpGet", "es:ESHttpHead",
                                                                         "es:ESHttpPost"}, handler
    assert {"es:ESHttpPut", "es:ESHttpDelete"} <= actions_of(f"{INGEST}.index_handler")
    reader = reader_role_body()
    assert [p["index_patterns"] for p in reader["index_permissions"]] == [["hanrag-*"]]
    granted = set(reader["index_permissions"][0]["allowed_actions"]) | set(reader["cluster_permissions"])
    writes = {"crud", "write", "create_index", "delete_index", "manage_aliases", "manage", "indices_all",
              "indices:data/write/bulk", "cluster_composite_ops", "cluster_all"}
    assert granted & writes == set() and "read" in granted
    assert {"crud", "delete_index"} <= set(role_body()["index_permissions"][0]["allowed_actions"])


def test_search_setup_maps_writers_and_readers_and_a_role_that_moved_loses_its_writes():
    from pipeline.lambdas import search_setup

    sent: list[tuple[str, str, dict]] = []
    client = SimpleNamespace(transport=SimpleNamespace(perform_request=lambda m, u, body: sent.append((m, u, body))))
    event = {"RequestType": "Update", "ResourceProperties": {
        "Endpoint": "search.example", "RoleArns": ["arn:index", "arn:delete"], "ReaderRoleArns": ["arn:chat"]}}
    with mock.patch.object(search_setup, "opensearch_client", lambda *a, **k: client), \
            mock.patch.dict(os.environ, {"AWS_REGION": "us-east-1"}):
        search_setup.on_event(event, None)
    mappings = {url.rsplit("/", 1)[-1]: body["backend_roles"] for method, url, body in sent if "rolesmapping" in url}
    assert mappings == {"hanrag_pipeline": ["arn:delete", "arn:index"], "hanrag_reader": ["arn:chat"]}
    assert all(method == "PUT" for method, _, _ in sent)  # PUT replaces a mapping: no stale member is kept


def test_each_function_role_is_least_privilege():
    extract, notify = actions_of("pipeline.lambdas.ingest.extract_handler"), actions_of(
        "pipeline.lambdas.ingest.notify_handler")
    assert "sns:Publish" in notify and "sns:Publish" not in extract
    assert not any(a.startswith("es:") for a in extract)
    assert any(a.startswith("es:ESHttp") for a in actions_of("pipeline.lambdas.ingest.index_handler"))
    assert "bedrock:InvokeModel" in actions_of("pipeline.lambdas.ingest.summarize_handler")
    assert "sagemaker:InvokeEndpoint" in actions_of("pipeline.lambdas.ingest.embed_handler")
    assert not any(a.startswith("s3:Put") for a in actions_of("pipeline.lambdas.ingest.index_handler"))
    assert "s3:GetObject" in actions_of("pipeline.lambdas.ingest.delete_handler")  # does the file still exist?
    assert not any(a.startswith("s3:") for a in actions_of("pipeline.lambdas.ingest.notify_handler"))


def test_opensearch_domain_is_encrypted_with_fine_grained_access_and_https(template):
    template.has_resource_properties("AWS::OpenSearchService::Domain", {
        "EncryptionAtRestOptions": {"Enabled": True},
        "NodeToNodeEncryptionOptions": {"Enabled": True},
        "DomainEndpointOptions": {"EnforceHTTPS": True, "TLSSecurityPolicy": "Policy-Min-TLS-1-2-2019-07"},
        "AdvancedSecurityOptions": {"Enabled": True, "InternalUserDatabaseEnabled": False,
                                    "MasterUserOptions": {"MasterUserARN": {"Fn::GetAtt": [
                                        next(k for k in resources("AWS::IAM::Role") if k.startswith("SearchSetupRole")),
                                        "Arn"]}}},
    })
    setup = next(iter(resources("AWS::CloudFormation::CustomResource").values()))
    # writers: index, delete and the chat account function (offboarding drops indices); readers: the chat
    assert len(setup["Properties"]["RoleArns"]) == 3 and len(setup["Properties"]["ReaderRoleArns"]) == 2


def test_the_domain_acknowledgments_state_what_the_template_holds():
    """OS3/OS5 say: no resource-based access policy, no anonymous access, no internal users, and only
    the stack's roles are allowed es:ESHttp* by their own policies."""
    _, _, acknowledged = synthesized()
    reasons = {rule.rsplit("-", 1)[-1]: why for rule, why in acknowledged.items() if rule.startswith("Hanrag/Search ")}
    assert "no resource-based access policy" in reasons["OS3"] and "no resource-based policy" in reasons["OS5"]
    domain = next(iter(resources("AWS::OpenSearchService::Domain").values()))["Properties"]
    assert "AccessPolicies" not in domain
    assert not resources("Custom::OpenSearchAccessPolicy")  # CDK's way of adding one later
    assert domain["AdvancedSecurityOptions"].get("AnonymousAuthEnabled") in (None, False)
    assert domain["AdvancedSecurityOptions"]["InternalUserDatabaseEnabled"] is False
    roles = {r["Fn::GetAtt"][0] for key in ("RoleArns", "ReaderRoleArns")
             for r in next(iter(resources("AWS::CloudFormation::CustomResource").values()))["Properties"][key]}
    master = domain["AdvancedSecurityOptions"]["MasterUserOptions"]["MasterUserARN"]["Fn::GetAtt"][0]
    with_es = {role["Ref"] for policy in resources("AWS::IAM::Policy").values()
               if any(a.startswith("es:ESHttp") for st in policy["Properties"]["PolicyDocument"]["Statement"]
                      for a in listed(st["Action"]))
               for role in policy["Properties"]["Roles"]}
    assert with_es == roles | {master}


def test_tables_sns_embedding_endpoint_and_chat_apis(template):
    tables = {t["Properties"]["KeySchema"][0]["AttributeName"] + "/" + (
        t["Properties"]["KeySchema"][1]["AttributeName"] if len(t["Properties"]["KeySchema"]) > 1 else "")
        for t in resources("AWS::DynamoDB::Table").values()}
    assert tables == {"user_id/source", "user_id/run_key", "user_id/turn_key", "id/", "key/", "user_id/key"}
    for table in resources("AWS::DynamoDB::Table").values():
        assert table["Properties"]["BillingMode"] == "PAY_PER_REQUEST"
        assert table["DeletionPolicy"] == "Delete"
    template.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email"})
    template.has_resource_properties("AWS::SageMaker::EndpointConfig", {"ProductionVariants": [
        {"ModelName": {"Fn::GetAtt": [next(iter(resources("AWS::SageMaker::Model"))), "ModelName"]},
         "VariantName": "e5", "ServerlessConfig": {"MaxConcurrency": {"Ref": "EmbeddingConcurrency"},
                                                   "MemorySizeInMB": 4096}}]})
    template.has_resource_properties("AWS::Cognito::UserPool", {
        "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": True}})
    apis = {a["Properties"]["ProtocolType"] for a in resources("AWS::ApiGatewayV2::Api").values()}
    assert apis == {"HTTP", "WEBSOCKET"}
    authorizers = {a["Properties"]["AuthorizerType"] for a in resources("AWS::ApiGatewayV2::Authorizer").values()}
    assert authorizers == {"JWT", "REQUEST"}
    routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in resources("AWS::ApiGatewayV2::Route").values()}
    assert routes["$connect"]["AuthorizationType"] == "CUSTOM"
    assert routes["POST /ask"]["AuthorizationType"] == "JWT"
    for stage in resources("AWS::ApiGatewayV2::Stage").values():
        assert "AccessLogSettings" in stage["Properties"]


def test_dashboard_and_alarms_watch_runs_stages_dead_letters_and_chat():
    dashboard = json.dumps(next(iter(resources("AWS::CloudWatch::Dashboard").values()))["Properties"])
    for metric in ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "StageSeconds", "ChunksIndexed",
                   "ApproximateNumberOfMessagesVisible", "ChatLatency"):
        assert metric in dashboard, metric
    alarms = sorted(a["Properties"]["MetricName"] for a in resources("AWS::CloudWatch::Alarm").values())
    assert alarms == ["ApproximateNumberOfMessagesVisible"] * 3 + ["ExecutionsFailed"]  # three dead-letter queues
    for alarm in resources("AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"]


def test_destroy_keeps_only_the_access_log_bucket_which_empties_itself():
    template = synthesized()[0]
    kept = {k: v["Type"] for k, v in template["Resources"].items()
            if v.get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate", "Snapshot")}
    assert sorted(kept.values()) == ["AWS::S3::Bucket", "AWS::S3::BucketPolicy"]
    logs = next(k for k, kind in kept.items() if kind == "AWS::S3::Bucket")
    assert logs.startswith("AccessLogs")
    policy = next(template["Resources"][k] for k, kind in kept.items() if kind == "AWS::S3::BucketPolicy")
    assert policy["Properties"]["Bucket"] == {"Ref": logs}
    bucket = template["Resources"][logs]
    assert bucket["UpdateReplacePolicy"] == "Retain"
    assert bucket["Properties"]["LifecycleConfiguration"]["Rules"] == [
        {"ExpirationInDays": 90, "Id": "expire", "Status": "Enabled"}]  # what is left behind empties itself
    # no auto-delete of the log bucket (it would race the late log deliveries); the uploads and site buckets'
    emptied = sorted(c["Properties"]["BucketName"]["Ref"] for c in resources("Custom::S3AutoDeleteObjects").values())
    assert emptied == sorted(k for k in resources("AWS::S3::Bucket") if k.startswith(("Uploads", "Site")))
    assert len(emptied) == 2
    # S3 delivers the logs under the bucket policy (no legacy ACL), from the uploads bucket only
    assert "AccessControl" not in bucket["Properties"]
    delivery = next(st for st in policy["Properties"]["PolicyDocument"]["Statement"]
                    if st.get("Principal") == {"Service": "logging.s3.amazonaws.com"})
    assert delivery["Action"] == "s3:PutObject" and "aws:SourceArn" in json.dumps(delivery["Condition"])
    assert template["Outputs"]["AccessLogsBucket"]["Value"] == {"Ref": logs}
    readme = (ROOT / "infra/README.md").read_text()
    assert "AccessLogsBucket" in readme


# cfn-lint findings left alone, each for a reason that makes it no defect of the template
CFN_LINT_IGNORED = {
    "W3005": "CDK makes a function depend on its role and on the role's default policy (so it never runs before "
             "its permissions exist); the role entry repeats what its GetAtt already orders, harmless, and CDK "
             "writes both",
}
CFN_LINT_REGIONS = ["us-east-1", "ap-northeast-2"]  # the two regions infra/README.md walks through


def cfn_lint(template: Path, ignore: list[str]) -> list[str]:
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(template, ManualArgs(regions=CFN_LINT_REGIONS, ignore_checks=ignore))
    return [f"{m.rule.id} {'/'.join(map(str, m.path))}: {m.message}" for m in matches]


def test_cfn_lint_finds_nothing_in_the_synthesized_template():
    _, outdir, _ = synthesized()
    assert cfn_lint(outdir / "Hanrag.template.json", list(CFN_LINT_IGNORED)) == []


def test_the_cfn_lint_ignore_hides_only_the_redundant_role_dependencies(tmp_path):
    template, outdir, _ = synthesized()
    findings = cfn_lint(outdir / "Hanrag.template.json", [])
    assert findings and all(f.startswith("W3005 Resources/") and "Role" in f and "GetAtt" in f for f in findings)
    # and the linter does look: a broken copy of the template is reported
    broken = json.loads(json.dumps(template))
    function = next(k for k, v in broken["Resources"].items() if v["Type"] == "AWS::Lambda::Function")
    broken["Resources"][function]["Properties"]["MemorySize"] = 64
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    assert any(f"Resources/{function}/Properties/MemorySize" in f
               for f in cfn_lint(tmp_path / "broken.json", list(CFN_LINT_IGNORED)))


def test_npx_cdk_synth_with_the_pinned_cli(tmp_path):
    if not (ROOT / "node_modules/.bin/cdk").exists() or shutil.which("node") is None:  # fails, never skips
        pytest.fail("the pinned CDK CLI is missing: `make dev` installs it (Node 20+ and `npm ci`)", pytrace=False)
    result = subprocess.run(
        [str(ROOT / "node_modules/.bin/cdk"), "synth", "--quiet", "--output", str(tmp_path), "--no-notices",
         "--no-version-reporting", "--app", f"{ROOT / '.venv/bin/python'} -m infra.app"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "CDK_DISABLE_CLI_TELEMETRY": "true"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "Hanrag.template.json").exists()


@pytest.mark.parametrize("name", ["single", "production", "production-masters"])
def test_each_search_size_is_the_domain_it_describes_and_passes_cdk_nag_and_cfn_lint(name):
    from infra.stack import DEFAULT_SEARCH_SIZE, SEARCH_SIZES

    size = SEARCH_SIZES[name]
    template, outdir, acknowledged = synthesized(None if name == DEFAULT_SEARCH_SIZE else name)  # nag passed
    domain = next(v for v in template["Resources"].values() if v["Type"] == "AWS::OpenSearchService::Domain")
    cluster, ebs = domain["Properties"]["ClusterConfig"], domain["Properties"]["EBSOptions"]
    assert (cluster["InstanceCount"], cluster["InstanceType"]) == (size.data_nodes, size.instance)
    assert (ebs["VolumeSize"], ebs["VolumeType"]) == (size.volume_gib, "gp3")
    assert cluster.get("ZoneAwarenessEnabled", False) is (size.zones > 1)
    zones = cluster.get("ZoneAwarenessConfig", {}).get("AvailabilityZoneCount")
    assert zones == (size.zones if size.zones > 1 else None)
    assert cluster.get("DedicatedMasterEnabled", False) is (size.masters > 0)
    assert cluster.get("DedicatedMasterCount") == (size.masters or None)
    assert cluster.get("DedicatedMasterType") == (size.master_instance or None)
    # every user index gets replicas the nodes can place, and with zones a copy survives a zone
    replicas = {f["Properties"]["Environment"]["Variables"].get("HANRAG_INDEX_REPLICAS")
                for f in template["Resources"].values() if f["Type"] == "AWS::Lambda::Function"
                and "HANRAG_OPENSEARCH_ENDPOINT" in f["Properties"].get("Environment", {}).get("Variables", {})}
    assert replicas == {str(size.replicas)}
    assert size.replicas < size.data_nodes and (size.zones == 1 or size.replicas >= 1)
    if name != "single":
        assert size.data_nodes >= 2 and size.data_nodes % size.zones == 0
    # the acknowledgments that excuse a missing master or zone exist only where they are true
    rules = {rule.rsplit("-", 1)[-1] for rule in acknowledged if rule.startswith("Hanrag/Search ")}
    assert ("OS4" in rules) is (size.masters == 0) and ("OS7" in rules) is (size.zones < 2)
    assert cfn_lint(outdir / "Hanrag.template.json", list(CFN_LINT_IGNORED)) == []


def test_users_per_size_follow_the_shard_per_heap_guidance_and_the_readme_says_so():
    from infra.stack import SEARCH_SIZES
    from pipeline.adapters.opensearch import index_body

    # a user's index has one primary shard (the index stage creates it so)
    assert index_body(384, "e5")["settings"]["index"]["number_of_shards"] == 1
    single, production, masters = (SEARCH_SIZES[n] for n in ("single", "production", "production-masters"))
    # heap = half of memory: t3.medium 4 GiB → 2 GiB → 50 shards; r6g.large 16 GiB → 8 GiB → 200 per node
    assert (single.shards, production.shards, masters.shards) == (50, 400, 600)
    # a fifth kept free; shards per user = 1 × (1 + replicas)
    assert (single.users, production.users, masters.users) == (40, 160, 240)
    readme = (ROOT / "infra/README.md").read_text()
    for name, size in SEARCH_SIZES.items():
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}`"))
        assert f"| {size.users} |" in row and size.instance in row, row


def test_an_unknown_search_size_is_refused_with_the_choices():
    import aws_cdk as cdk

    from infra.stack import HanragStack

    with pytest.raises(ValueError, match="searchSize 'huge' is not one of single, production, production-masters"):
        HanragStack(cdk.App(context={"searchSize": "huge"}), "Huge")


def test_chat_provisioned_concurrency_is_a_parameter_with_an_alias_only_when_asked_for():
    template = synthesized()[0]
    parameter = template["Parameters"]["ChatProvisionedConcurrency"]
    assert parameter["Type"] == "Number" and parameter["Default"] == 0 and parameter["MinValue"] == 0
    assert template["Conditions"]["ChatProvisioned"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ChatProvisionedConcurrency"}, "0"]}]}
    functions = {f["Properties"]["ImageConfig"]["Command"][0].rsplit(".", 1)[-1]: lid
                 for lid, f in resources("AWS::Lambda::Function").items() if "ImageConfig" in f["Properties"]}
    aliases = resources("AWS::Lambda::Alias")
    versions = resources("AWS::Lambda::Version")
    for handler in ("http_handler", "websocket_handler"):
        function = functions[handler]
        alias_id, alias = next((k, a) for k, a in aliases.items()
                               if a["Properties"]["FunctionName"] == {"Ref": function})
        assert alias["Condition"] == "ChatProvisioned"
        assert alias["Properties"]["ProvisionedConcurrencyConfig"] == {
            "ProvisionedConcurrentExecutions": {"Ref": "ChatProvisionedConcurrency"}}
        version_id = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
        assert versions[version_id]["Condition"] == "ChatProvisioned"
        # the APIs invoke the alias when it exists, the function otherwise, and may invoke whichever it is
        target = {"Fn::If": ["ChatProvisioned", {"Ref": alias_id}, {"Fn::GetAtt": [function, "Arn"]}]}
        integrations = resources("AWS::ApiGatewayV2::Integration").values()
        uris = [json.dumps(i["Properties"]["IntegrationUri"]) for i in integrations
                if function in json.dumps(i["Properties"]["IntegrationUri"])]
        assert uris and all(json.dumps(target) in uri for uri in uris)
        permissions = [p["Properties"]["FunctionName"] for p in resources("AWS::Lambda::Permission").values()
                       if function in json.dumps(p["Properties"]["FunctionName"])]
        assert permissions and all(name == target for name in permissions)
    # nothing else is conditional on it: the authorizer and the pipeline have no alias
    assert len(aliases) == 2


def test_uploads_deletes_and_offboarding_have_their_own_function_and_routes():
    functions = {f["Properties"]["ImageConfig"]["Command"][0].rsplit(".", 1)[-1]: (lid, f["Properties"])
                 for lid, f in resources("AWS::Lambda::Function").items() if "ImageConfig" in f["Properties"]}
    account, props = functions["account_handler"]
    assert props["Timeout"] <= 29  # API Gateway's limit
    integrations = {lid: i["Properties"] for lid, i in resources("AWS::ApiGatewayV2::Integration").items()}
    routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in resources("AWS::ApiGatewayV2::Route").values()}
    for key in ("POST /uploads", "DELETE /uploads", "DELETE /me"):
        assert routes[key]["AuthorizationType"] == "JWT", key
        integration = routes[key]["Target"]["Fn::Join"][1][1]["Ref"]
        assert integrations[integration]["IntegrationUri"] == {"Fn::GetAtt": [account, "Arn"]}, key

    def actions(function_id: str) -> set[str]:
        role = resources("AWS::Lambda::Function")[function_id]["Properties"]["Role"]["Fn::GetAtt"][0]
        found: set[str] = set()
        for policy in resources("AWS::IAM::Policy").values():
            if {"Ref": role} in policy["Properties"]["Roles"]:
                for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                    found.update([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
        return found

    mine = actions(account)
    assert {"s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:ListBucketVersions",
            "dynamodb:BatchWriteItem", "dynamodb:Query", "dynamodb:Scan"} <= mine
    chat = actions(functions["http_handler"][0])  # the chat function itself writes no upload, registry or run
    assert not any(a.startswith(("s3:Put", "s3:Delete")) for a in chat)
    # a browser PUTs to the pre-signed URL from the page's origin
    bucket = next(b["Properties"] for b in resources("AWS::S3::Bucket").values()
                  if b["Properties"].get("VersioningConfiguration"))
    assert bucket["CorsConfiguration"]["CorsRules"] == [
        {"AllowedHeaders": ["content-type"], "AllowedMethods": ["PUT"], "AllowedOrigins": ["*"], "MaxAge": 3000}]


def table_access(name: str):
    """Each function's (logical id, handler, the actions its role may take on table `name`, its environment)."""
    for key, function in resources("AWS::Lambda::Function").items():
        handler = function["Properties"].get("ImageConfig", {}).get("Command", [""])[0]
        reaches = {action for statement in statements_of(handler) if any(
            name in json.dumps(resource) for resource in listed(statement["Resource"]))
            for action in listed(statement["Action"])} if handler else set()
        yield key, handler, reaches, function["Properties"].get("Environment", {}).get("Variables", {})


def test_only_the_embed_function_reads_and_writes_the_vector_cache_which_expires_unused_vectors():
    from pipeline.definition import Env

    [(name, table)] = [(k, t) for k, t in resources("AWS::DynamoDB::Table").items() if k.startswith("VectorCache")]
    assert table["Properties"]["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["Properties"]["BillingMode"] == "PAY_PER_REQUEST"
    for key, handler, reaches, variables in table_access(name):
        if handler == f"{INGEST}.embed_handler":
            assert reaches == {"dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"}
            assert variables[Env.VECTOR_CACHE_TABLE] == {"Ref": name}
        else:
            assert not reaches and Env.VECTOR_CACHE_TABLE not in variables, key


def test_the_extract_function_keeps_ocr_readings_per_user_and_only_offboarding_erases_them():
    from pipeline.definition import Env

    [(name, table)] = [(k, t) for k, t in resources("AWS::DynamoDB::Table").items() if k.startswith("OcrCache")]
    props = table["Properties"]
    assert [(k["AttributeName"], k["KeyType"]) for k in props["KeySchema"]] == [("user_id", "HASH"), ("key", "RANGE")]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    for key, handler, reaches, variables in table_access(name):
        if handler == f"{INGEST}.extract_handler":
            assert reaches == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}
            assert variables[Env.OCR_CACHE_TABLE] == {"Ref": name}
        elif handler.endswith(".account_handler"):  # offboarding: query the user's partition, delete it
            assert {"dynamodb:Query", "dynamodb:BatchWriteItem"} <= reaches
            assert variables[Env.OCR_CACHE_TABLE] == {"Ref": name}
        else:
            assert not reaches and Env.OCR_CACHE_TABLE not in variables, key
