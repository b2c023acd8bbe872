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

import pytest

from pipeline.definition import QUIET_ENDINGS, STAGES

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
ROOT = Path(__file__).resolve().parent.parent


@cache
def synthesized() -> tuple[dict, Path, dict[str, str]]:
    """(template as a dict, cloud assembly folder, every acknowledged rule → its reason).
    Synthesis runs the cdk-nag validation plugin."""
    import aws_cdk as cdk

    from infra.app import build_app

    outdir = Path(tempfile.mkdtemp(prefix="hanrag-cdk-"))
    atexit.register(shutil.rmtree, outdir, True)
    app, stack = build_app(str(outdir))
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
    assert {report["conclusion"] for report in reports} == {"success"}
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
    for bucket in resources("AWS::S3::Bucket").values():
        assert bucket["DeletionPolicy"] == "Delete"


def test_eventbridge_rules_start_the_state_machine_and_the_delete_path():
    rules = {r["Properties"]["EventPattern"]["detail-type"][0]: r["Properties"]
             for r in resources("AWS::Events::Rule").values()}
    assert set(rules) == {"Object Created", "Object Deleted"}
    created, deleted = rules["Object Created"], rules["Object Deleted"]
    assert created["EventPattern"]["detail"]["object"]["key"] == [{"prefix": "uploads/"}]
    assert deleted["EventPattern"]["detail"]["reason"] == ["DeleteObject"]  # not lifecycle expiry
    machine = next(iter(resources("AWS::StepFunctions::StateMachine")))
    assert created["Targets"][0]["Arn"] == {"Ref": machine}
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


def test_each_function_role_is_least_privilege():
    functions = resources("AWS::Lambda::Function")
    policies = resources("AWS::IAM::Policy")

    def actions_of(handler: str) -> set[str]:
        role = next(f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions.values()
                    if f["Properties"].get("ImageConfig", {}).get("Command") == [handler])
        found: set[str] = set()
        for policy in policies.values():
            if {"Ref": role} in policy["Properties"]["Roles"]:
                for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                    found.update([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
        return found

    extract, notify = actions_of("pipeline.lambdas.ingest.extract_handler"), actions_of(
        "pipeline.lambdas.ingest.notify_handler")
    assert "sns:Publish" in notify and "sns:Publish" not in extract
    assert not any(a.startswith("es:") for a in extract)
    assert any(a.startswith("es:ESHttp") for a in actions_of("pipeline.lambdas.ingest.index_handler"))
    assert "bedrock:InvokeModel" in actions_of("pipeline.lambdas.ingest.summarize_handler")
    assert "sagemaker:InvokeEndpoint" in actions_of("pipeline.lambdas.ingest.embed_handler")
    assert not any(a.startswith("s3:Put") for a in actions_of("pipeline.lambdas.ingest.index_handler"))
    assert "s3:GetObject*" in actions_of("pipeline.lambdas.ingest.delete_handler")  # does the file still exist?
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
    assert len(setup["Properties"]["RoleArns"]) == 4  # index, delete, chat HTTP, chat WebSocket


def test_tables_sns_embedding_endpoint_and_chat_apis(template):
    tables = {t["Properties"]["KeySchema"][0]["AttributeName"] + "/" + (
        t["Properties"]["KeySchema"][1]["AttributeName"] if len(t["Properties"]["KeySchema"]) > 1 else "")
        for t in resources("AWS::DynamoDB::Table").values()}
    assert tables == {"user_id/source", "user_id/run_key", "user_id/turn_key", "id/"}
    for table in resources("AWS::DynamoDB::Table").values():
        assert table["Properties"]["BillingMode"] == "PAY_PER_REQUEST"
        assert table["DeletionPolicy"] == "Delete"
    template.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email"})
    template.has_resource_properties("AWS::SageMaker::EndpointConfig", {"ProductionVariants": [
        {"ModelName": {"Fn::GetAtt": [next(iter(resources("AWS::SageMaker::Model"))), "ModelName"]},
         "VariantName": "e5", "ServerlessConfig": {"MaxConcurrency": 5, "MemorySizeInMB": 4096}}]})
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
    assert alarms == ["ApproximateNumberOfMessagesVisible"] * 2 + ["ExecutionsFailed"]  # two dead-letter queues
    for alarm in resources("AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"]


def test_nothing_billing_survives_destroy():
    kept = {k: v["Type"] for k, v in synthesized()[0]["Resources"].items()
            if v.get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate", "Snapshot")}
    assert kept == {}


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
