"""The hanrag stack: uploads → EventBridge → Step Functions (one Lambda per stage) → OpenSearch,
and a chat API behind Cognito. Constructs only; the logic lives in `pipeline/` and `chat/`.

The state machine is built from `pipeline.definition.STAGES`: the stage order, each stage's retry
policy, timeout, handler, which stage fans out and the state's field names come from there, so the
local runner and the cloud cannot drift. This module imports nothing else of the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
import aws_cdk.aws_apigatewayv2 as apigw
import aws_cdk.aws_apigatewayv2_authorizers as authorizers
import aws_cdk.aws_apigatewayv2_integrations as integrations
import aws_cdk.aws_cloudfront as cloudfront
import aws_cdk.aws_cloudfront_origins as origins
import aws_cdk.aws_cloudwatch as cloudwatch
import aws_cdk.aws_cloudwatch_actions as cw_actions
import aws_cdk.aws_cognito as cognito
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_ec2 as ec2
import aws_cdk.aws_ecr_assets as ecr_assets
import aws_cdk.aws_events as events
import aws_cdk.aws_events_targets as targets
import aws_cdk.aws_iam as iam
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_lambda_destinations as destinations
import aws_cdk.aws_lambda_event_sources as event_sources
import aws_cdk.aws_logs as logs
import aws_cdk.aws_opensearchservice as opensearch
import aws_cdk.aws_s3 as s3
import aws_cdk.aws_s3_deployment as s3_deployment
import aws_cdk.aws_sagemaker as sagemaker
import aws_cdk.aws_sns as sns
import aws_cdk.aws_sqs as sqs
import aws_cdk.aws_stepfunctions as sfn
import aws_cdk.aws_stepfunctions_tasks as tasks
import aws_cdk.custom_resources as cr
from constructs import Construct

from pipeline.definition import (
    BEDROCK_EMBED_DIMENSIONS,
    CHAT_ACCOUNT_HANDLER,
    CHAT_AUTHORIZER_HANDLER,
    CHAT_HTTP_HANDLER,
    CHAT_WEBSOCKET_HANDLER,
    DELETE_HANDLER,
    LAMBDA_SERVICE_RETRY,
    QUIET_ENDINGS,
    RECORD_FAILURE_HANDLER,
    SEARCH_SETUP_HANDLER,
    STAGES,
    START_HANDLER,
    Env,
    RetryPolicy,
    Stage,
    StateField,
)

ROOT = Path(__file__).resolve().parent.parent
UPLOAD_PREFIX = "uploads/"
ARTIFACT_PREFIX = "artifacts/"
# Errors the state machine retries with the stage's policy (ours), and Lambda's own service errors,
# which every task retries with LAMBDA_SERVICE_RETRY, whatever its stage's policy.
TRANSIENT_ERRORS = ["TransientError"]
LAMBDA_SERVICE_ERRORS = ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                         "Lambda.TooManyRequestsException"]
# Embed calls one document's Map runs at a time.
EMBED_MAP_CONCURRENCY = 4
# Memory (MB) per stage, for a 300-page PDF: extraction holds the PDF, its pages and its tables.
MEMORY = {"extract": 3008, "chunk": 2048, "embed": 1024, "index": 1024, "summarize": 2048, "notify": 256}
IMAGE_EXCLUDES = [".git", ".venv", "node_modules", "cdk.out", "tests", "bench", "samples", "scripts", ".hanrag",
                  "build", "dist", "**/__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache"]
# The Hugging Face TEI CPU container for the embedding endpoint (only when no endpoint name is given):
# published per region, each from its own account. From the SageMaker Python SDK's
# src/sagemaker/image_uri_config/huggingface-tei-cpu.json (TEI 1.7.0, tag `<tag_prefix>-cpu-py310-ubuntu22.04`);
# the air-gapped ISO regions it also lists are left out.
TEI_REPOSITORY = "tei-cpu"
TEI_TAG = "2.0.1-tei1.7.0-cpu-py310-ubuntu22.04"
TEI_ACCOUNTS = {
    "af-south-1": "510948584623", "ap-east-1": "651117190479", "ap-northeast-1": "354813040037",
    "ap-northeast-2": "366743142698", "ap-northeast-3": "867004704886", "ap-south-1": "720646828776",
    "ap-south-2": "628508329040", "ap-southeast-1": "121021644041", "ap-southeast-2": "783357654285",
    "ap-southeast-3": "951798379941", "ap-southeast-4": "106583098589", "ca-central-1": "341280168497",
    "ca-west-1": "190319476487", "cn-north-1": "450853457545", "cn-northwest-1": "451049120500",
    "eu-central-1": "492215442770", "eu-central-2": "680994064768", "eu-north-1": "662702820516",
    "eu-south-1": "978288397137", "eu-south-2": "104374241257", "eu-west-1": "141502667606",
    "eu-west-2": "764974769150", "eu-west-3": "659782779980", "il-central-1": "898809789911",
    "me-central-1": "272398656194", "me-south-1": "801668240914", "sa-east-1": "737474898029",
    "us-east-1": "683313688378", "us-east-2": "257758044811", "us-gov-east-1": "237065988967",
    "us-gov-west-1": "414596584902", "us-west-1": "746614075791", "us-west-2": "246618743249",
}
TEI_REGION_MESSAGE = ("No Hugging Face TEI CPU image is published in this region (see TEI_ACCOUNTS in "
                      "infra/stack.py): deploy in a region that has one, or pass EmbeddingEndpointName.")


@dataclass(frozen=True)
class SearchSize:
    """One size of the OpenSearch domain; `cdk deploy -c searchSize=<name>` picks one of SEARCH_SIZES."""

    data_nodes: int
    instance: str
    memory_gib: int  # the instance's memory: the JVM heap gets half, up to 32 GiB
    volume_gib: int  # gp3, per data node
    replicas: int  # of each user's index (the index stage creates it with this many)
    zones: int = 1  # > 1: zone awareness, the data nodes (and each shard's copies) spread over that many zones
    masters: int = 0  # dedicated master nodes
    master_instance: str = ""

    @property
    def heap_gib(self) -> float:
        return min(self.memory_gib / 2, 32)

    @property
    def shards(self) -> int:
        """Shards the data nodes hold comfortably: about 25 per GiB of heap (AWS's sizing guidance)."""
        return int(SHARDS_PER_HEAP_GIB * self.heap_gib * self.data_nodes)

    @property
    def shards_per_user(self) -> int:
        """Each user is one index: primaries × (1 + replicas) shards."""
        return PRIMARIES_PER_USER * (1 + self.replicas)

    @property
    def users(self) -> int:
        """Users the domain holds with a fifth of its shards left for system indices and for re-embedding
        (a user has a second index while `hanrag reembed` runs)."""
        return int(self.shards * (1 - SHARD_HEADROOM)) // self.shards_per_user


SHARDS_PER_HEAP_GIB = 25
SHARD_HEADROOM = 0.2
PRIMARIES_PER_USER = 1  # pipeline/adapters/opensearch.py: index_body(shards=1)
SEARCH_SIZES: dict[str, SearchSize] = {
    # a person or a team: no replica (one node could never place one), no zone awareness
    "single": SearchSize(1, "t3.medium.search", memory_gib=4, volume_gib=20, replicas=0),
    # two zones, each holding a copy of every shard: a zone can fail without losing search or data
    "production": SearchSize(2, "r6g.large.search", memory_gib=16, volume_gib=100, replicas=1, zones=2),
    # three zones and three dedicated masters: cluster management survives a zone and never competes with search
    "production-masters": SearchSize(3, "r6g.large.search", memory_gib=16, volume_gib=100, replicas=1, zones=3,
                                     masters=3, master_instance="m6g.large.search"),
}
DEFAULT_SEARCH_SIZE = "single"


def _ack(construct: Construct, rule: str, reason: str) -> None:
    cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=f"AwsSolutions-{rule}", reason=reason))


def _ack_findings(construct: Construct, rule: str, findings: dict[str, str]) -> None:
    """Acknowledge granular findings (`AwsSolutions-IAM5[Resource::…]`), each with its own reason."""
    cdk.Validations.of(construct).acknowledge(*[
        cdk.Acknowledgment(id=f"AwsSolutions-{rule}[{finding}]", reason=reason) for finding, reason in findings.items()
    ])


def sfn_retry(policy: RetryPolicy, errors: list[str] = TRANSIENT_ERRORS) -> dict:
    """`add_retry` arguments; `RetryPolicy.max_attempts` counts the first try, Step Functions counts retries."""
    return {
        "errors": errors, "max_attempts": policy.max_attempts - 1,
        "interval": cdk.Duration.seconds(int(policy.interval_seconds)), "backoff_rate": policy.backoff_rate,
        "max_delay": cdk.Duration.seconds(int(policy.max_delay_seconds)),
    }


def lambda_service_retry(task: tasks.LambdaInvoke) -> tasks.LambdaInvoke:
    """Every task retries Lambda's own service errors (throttled invoke, service hiccups), whatever its stage's
    policy: each retrier counts its own attempts, so a stage without retries still gets these."""
    task.add_retry(**sfn_retry(LAMBDA_SERVICE_RETRY, LAMBDA_SERVICE_ERRORS), jitter_strategy=sfn.JitterType.FULL)
    return task


class HanragStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        # the access-log bucket admits S3's log delivery by bucket policy, not by the legacy
        # `LogDeliveryWrite` ACL (cfn-lint W3045); set here, before any child, so every app gets it
        self.node.set_context("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy", True)
        self._parameters()
        self._storage()
        self._notifications()
        self._embedding_endpoint()
        self._search_domain()
        self._functions()
        self._state_machine()
        self._triggers()
        self._chat_api()
        self._site()
        self._search_setup()  # after every function that reaches the domain exists
        self._monitoring()
        self._stack_acknowledgments()

    # ------------------------------------------------------------------ parameters

    def _parameters(self) -> None:
        self.email = cdk.CfnParameter(
            self, "NotificationEmail", type="String", default="",
            description="E-mail address for run messages and alarms (empty: no subscription)")
        self.embed_endpoint_name = cdk.CfnParameter(
            self, "EmbeddingEndpointName", type="String", default="",
            description="An existing SageMaker embedding endpoint; empty: deploy a serverless TEI endpoint")
        self.embed_model = cdk.CfnParameter(
            self, "EmbeddingModelId", type="String", default="intfloat/multilingual-e5-small",
            description="Hugging Face model the deployed TEI endpoint serves")
        self.embed_dim = cdk.CfnParameter(
            self, "EmbeddingDimension", type="Number", default=384, description="Vector size of the model")
        self.embedder_kind = cdk.CfnParameter(
            self, "Embedder", type="String", default="sagemaker", allowed_values=["sagemaker", "bedrock"],
            description="sagemaker (the endpoint above) or bedrock (Titan v2 / Cohere multilingual)")
        self.bedrock_embed_model = cdk.CfnParameter(
            self, "BedrockEmbeddingModelId", type="String", default="amazon.titan-embed-text-v2:0",
            allowed_values=list(BEDROCK_EMBED_DIMENSIONS), description="Bedrock embedding model when Embedder=bedrock")
        # a dimension the Bedrock model cannot produce fails at deploy, before any resource is touched
        for model, sizes in BEDROCK_EMBED_DIMENSIONS.items():
            cdk.CfnRule(
                self, f"BedrockDimension{''.join(c for c in model.split(':')[0].title() if c.isalnum())}",
                rule_condition=cdk.Fn.condition_and(
                    cdk.Fn.condition_equals(self.embedder_kind.value_as_string, "bedrock"),
                    cdk.Fn.condition_equals(self.bedrock_embed_model.value_as_string, model)),
                assertions=[cdk.CfnRuleAssertion(
                    assert_=cdk.Fn.condition_contains([str(n) for n in sizes], self.embed_dim.value_as_string),
                    assert_description=f"{model} produces {' or '.join(map(str, sizes))}-dimensional vectors: set "
                                       f"EmbeddingDimension to {'one of them' if len(sizes) > 1 else sizes[0]}.")])
        self.llm_kind = cdk.CfnParameter(
            self, "Llm", type="String", default="bedrock", allowed_values=["bedrock", "none"],
            description="bedrock: summaries and answers by an LLM; none: extractive")
        self.llm_model = cdk.CfnParameter(
            self, "LlmModelId", type="String", default="global.anthropic.claude-haiku-4-5-20251001-v1:0",
            description="Bedrock model or inference profile id (Converse API)")
        # the embedding endpoint is the narrow part: every embed call of every document goes to it
        self.embed_concurrency = cdk.CfnParameter(
            self, "EmbeddingConcurrency", type="Number", default=5, min_value=1, max_value=200,
            description="Concurrent calls the embedding endpoint takes (a serverless endpoint's MaxConcurrency; "
                        "5 by default): the embed function's reserved concurrency, and the deployed endpoint's")
        self.max_in_flight = cdk.CfnParameter(
            self, "MaxDocumentsInFlight", type="Number", default=2, min_value=1, max_value=1000,
            description="Ingest executions running at once; more uploads wait in the queue (each document "
                        f"embeds up to {EMBED_MAP_CONCURRENCY} batches at a time)")
        self.deploy_endpoint = cdk.CfnCondition(
            self, "DeployEmbeddingEndpoint", expression=cdk.Fn.condition_equals(self.embed_endpoint_name, ""))
        self._tei_image()

    def _tei_image(self) -> None:
        """The region's TEI image and the account it is pulled from, from one mapping."""
        if not cdk.Token.is_unresolved(self.region) and self.region not in TEI_ACCOUNTS:
            raise ValueError(f"{TEI_REGION_MESSAGE} Region: {self.region}.")
        images = cdk.CfnMapping(self, "TeiImages", mapping={
            region: {"Account": account, "Repository": TEI_REPOSITORY, "Tag": TEI_TAG}
            for region, account in TEI_ACCOUNTS.items()})
        self._tei_account = images.find_in_map(self.region, "Account")
        repository, tag = images.find_in_map(self.region, "Repository"), images.find_in_map(self.region, "Tag")
        self.tei_image_uri = f"{self._tei_account}.dkr.ecr.{self.region}.{self.url_suffix}/{repository}:{tag}"
        # Environment-agnostic synth knows the region only at deploy; there a region the mapping lacks
        # fails at Fn::FindInMap before any resource is made. No Rule checks it: CloudFormation's rule
        # functions are documented for parameters, and a rule it refuses would break every deploy.

    # ------------------------------------------------------------------ storage

    def _storage(self) -> None:
        # Kept by `cdk destroy`, with its policy: S3 delivers access logs late (minutes to hours), so the
        # logs of the uploads bucket's own emptying arrive after any emptying of this one, and deleting
        # it would fail on the objects that came in between (aws-cdk #21776). Its objects expire after
        # 90 days; infra/README.md says how to remove it by hand.
        self.access_logs = s3.Bucket(
            self, "AccessLogs", block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True,
            encryption=s3.BucketEncryption.S3_MANAGED, removal_policy=cdk.RemovalPolicy.RETAIN,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(id="expire", expiration=cdk.Duration.days(90))])
        _ack(self.access_logs, "S1", "This is the access-log bucket itself; logging it into itself would loop.")
        self.bucket = s3.Bucket(
            self, "Uploads", event_bridge_enabled=True, block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True, encryption=s3.BucketEncryption.S3_MANAGED, versioned=True,
            server_access_logs_bucket=self.access_logs, server_access_logs_prefix="uploads/",
            removal_policy=cdk.RemovalPolicy.DESTROY, auto_delete_objects=True,
            lifecycle_rules=[
                s3.LifecycleRule(id="artifacts", prefix=ARTIFACT_PREFIX, expiration=cdk.Duration.days(14)),
                s3.LifecycleRule(id="old-versions", noncurrent_version_expiration=cdk.Duration.days(30)),
                s3.LifecycleRule(id="multipart", abort_incomplete_multipart_upload_after=cdk.Duration.days(7)),
            ])
        # the statement admitting S3's log delivery stays with the bucket, for the late logs of a teardown
        self.access_logs.policy.apply_removal_policy(cdk.RemovalPolicy.RETAIN)  # type: ignore[union-attr]
        cdk.CfnOutput(self, "AccessLogsBucket", value=self.access_logs.bucket_name,
                      description="Kept after `cdk destroy` (objects expire after 90 days): remove it by hand")

        def table(name: str, sort_key: str, ttl: str | None = None, partition: str = "user_id") -> dynamodb.Table:
            return dynamodb.Table(
                self, name, partition_key=dynamodb.Attribute(name=partition, type=dynamodb.AttributeType.STRING),
                sort_key=dynamodb.Attribute(name=sort_key, type=dynamodb.AttributeType.STRING) if sort_key else None,
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST, time_to_live_attribute=ttl,
                encryption=dynamodb.TableEncryption.AWS_MANAGED, removal_policy=cdk.RemovalPolicy.DESTROY,
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True))

        self.documents = table("Documents", "source", ttl="expires_at")  # deleted documents' records expire
        self.runs = table("Runs", "run_key")
        self.history = table("ChatHistory", "turn_key", ttl="expires_at")
        self.idempotency = table("Idempotency", "", ttl="expiration", partition="id")
        # passage vectors by model and text (pipeline/adapters/aws/vector_cache.py): an edited document
        # embeds only its changed chunks; items expire 30 days after their last use
        self.vector_cache = table("VectorCache", "", ttl="expires_at", partition="key")
        # what OCR read from pictures and scans, per user (pipeline/adapters/aws/ocr_cache.py): a re-ingested
        # document reads only changed images again; offboarding erases the user's partition
        self.ocr_cache = table("OcrCache", "key", ttl="expires_at")

    def _notifications(self) -> None:
        self.topic = sns.Topic(self, "RunTopic", display_name="hanrag runs", enforce_ssl=True)
        email = cdk.CfnCondition(self, "HasEmail", expression=cdk.Fn.condition_not(
            cdk.Fn.condition_equals(self.email, "")))
        subscription = sns.Subscription(self, "EmailSubscription", topic=self.topic,
                                        endpoint=self.email.value_as_string, protocol=sns.SubscriptionProtocol.EMAIL)
        subscription.node.default_child.cfn_options.condition = email  # type: ignore[union-attr]
        self.dead_letters = sqs.Queue(self, "DeadLetters", enforce_ssl=True,
                                      encryption=sqs.QueueEncryption.SQS_MANAGED,
                                      retention_period=cdk.Duration.days(14))
        _ack(self.dead_letters, "SQS3", "This queue is the dead-letter queue of the EventBridge targets.")

    # ------------------------------------------------------------------ models and search

    def _embedding_endpoint(self) -> None:
        """A serverless TEI endpoint (no idle cost) unless an existing endpoint name is given."""
        role = iam.Role(self, "EmbeddingModelRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
        role.add_to_policy(iam.PolicyStatement(
            actions=["ecr:GetAuthorizationToken"], resources=["*"]))
        role.add_to_policy(iam.PolicyStatement(
            actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            resources=[f"arn:{self.partition}:ecr:{self.region}:{self._tei_account}:repository/{TEI_REPOSITORY}"]))
        role.add_to_policy(iam.PolicyStatement(
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:/aws/sagemaker/*"]))
        _ack_findings(role, "IAM5", {
            "Resource::*": "ecr:GetAuthorizationToken has no resource scope.",
            "Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/*":
                "SageMaker endpoints write their logs under /aws/sagemaker/."})
        model = sagemaker.CfnModel(
            self, "EmbeddingModel", execution_role_arn=role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=self.tei_image_uri,
                environment={"HF_MODEL_ID": self.embed_model.value_as_string, "MAX_BATCH_TOKENS": "16384"}))
        config = sagemaker.CfnEndpointConfig(
            self, "EmbeddingEndpointConfig",
            production_variants=[sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                model_name=model.attr_model_name, variant_name="e5",
                serverless_config=sagemaker.CfnEndpointConfig.ServerlessConfigProperty(
                    memory_size_in_mb=4096, max_concurrency=self.embed_concurrency.value_as_number))])
        _ack(config, "SM2", "Serverless inference endpoints cannot take a customer KMS key; data is encrypted at "
                            "rest by SageMaker with an AWS owned key.")
        endpoint = sagemaker.CfnEndpoint(self, "EmbeddingEndpoint",
                                         endpoint_config_name=config.attr_endpoint_config_name)
        for resource in (role.node.default_child, model, config, endpoint):
            resource.cfn_options.condition = self.deploy_endpoint  # type: ignore[union-attr]
        for child in role.node.find_all():
            if isinstance(child, cdk.CfnResource):
                child.cfn_options.condition = self.deploy_endpoint
        self.embed_endpoint = cdk.Token.as_string(cdk.Fn.condition_if(
            self.deploy_endpoint.logical_id, endpoint.attr_endpoint_name, self.embed_endpoint_name.value_as_string))

    def _search_domain(self) -> None:
        self.search_logs = logs.LogGroup(self, "SearchLogs", retention=logs.RetentionDays.ONE_MONTH,
                                         removal_policy=cdk.RemovalPolicy.DESTROY)
        self.search_admin = iam.Role(self, "SearchSetupRole",
                                     assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        name = self.node.try_get_context("searchSize") or DEFAULT_SEARCH_SIZE
        if name not in SEARCH_SIZES:
            raise ValueError(f"searchSize {name!r} is not one of {', '.join(SEARCH_SIZES)} (infra/README.md, Sizing)")
        self.search_size = size = SEARCH_SIZES[name]
        self.domain = opensearch.Domain(
            self, "Search", version=opensearch.EngineVersion.OPENSEARCH_3_5,
            capacity=opensearch.CapacityConfig(
                data_nodes=size.data_nodes, data_node_instance_type=size.instance,
                master_nodes=size.masters or None, master_node_instance_type=size.master_instance or None,
                multi_az_with_standby_enabled=False),
            zone_awareness=opensearch.ZoneAwarenessConfig(enabled=True, availability_zone_count=size.zones)
            if size.zones > 1 else None,
            ebs=opensearch.EbsOptions(volume_size=size.volume_gib, volume_type=ec2.EbsDeviceVolumeType.GP3),
            encryption_at_rest=opensearch.EncryptionAtRestOptions(enabled=True),
            node_to_node_encryption=True, enforce_https=True,
            tls_security_policy=opensearch.TLSSecurityPolicy.TLS_1_2,
            fine_grained_access_control=opensearch.AdvancedSecurityOptions(master_user_arn=self.search_admin.role_arn),
            logging=opensearch.LoggingOptions(
                slow_search_log_enabled=True, slow_search_log_group=self.search_logs,
                app_log_enabled=True, app_log_group=self.search_logs,
                slow_index_log_enabled=True, slow_index_log_group=self.search_logs),
            removal_policy=cdk.RemovalPolicy.DESTROY)
        _ack(self.domain, "OS1", "No VPC: a VPC would need NAT or endpoints for the Lambdas (~$32/month idle); "
                                 "access is SigV4-signed IAM plus fine-grained access control over HTTPS.")
        _ack(self.domain, "OS3", "No IP allowlist: Lambda has no fixed addresses. The domain has no resource-based "
                                 "access policy, so a request must be SigV4-signed by an IAM principal of this "
                                 "account whose own policy allows es:ESHttp* on this domain, and fine-grained "
                                 "access control then admits only the roles SearchSetup maps (master: the setup "
                                 "role).")
        if not size.masters:
            _ack(self.domain, "OS4", f"searchSize={name}: {size.data_nodes} data node(s), no dedicated masters, which "
                                     "would cost more than the data nodes at this size; searchSize=production-masters "
                                     "adds three.")
        if size.zones < 2:
            _ack(self.domain, "OS7", f"searchSize={name}: one node, so no zone awareness; snapshots are automatic and "
                                     "documents can be re-ingested from the versioned uploads bucket; "
                                     "searchSize=production spreads two nodes over two zones.")
        _ack(self.domain, "OS5", "cdk-nag flags a domain without an access policy. Unsigned and anonymous "
                                 "requests are refused: no resource-based policy grants anyone, FGAC's anonymous "
                                 "authentication is off and its internal user database disabled, so only SigV4-"
                                 "signed IAM principals allowed by their own policy get in.")

    # ------------------------------------------------------------------ functions

    def _function(self, name: str, handler: str, memory: int, timeout: int, env: dict[str, str]) -> lambda_.Function:
        log_group = logs.LogGroup(self, f"{name}Logs", retention=logs.RetentionDays.ONE_MONTH,
                                  removal_policy=cdk.RemovalPolicy.DESTROY)
        function = lambda_.DockerImageFunction(
            self, name, code=lambda_.DockerImageCode.from_image_asset(
                str(ROOT), file="infra/lambda.Dockerfile", cmd=[handler], exclude=IMAGE_EXCLUDES,
                platform=ecr_assets.Platform.LINUX_AMD64),
            memory_size=memory, timeout=cdk.Duration.seconds(timeout), tracing=lambda_.Tracing.ACTIVE,
            environment=env, log_group=log_group, architecture=lambda_.Architecture.X86_64)
        return function

    def _functions(self) -> None:
        env = {
            Env.BUCKET: self.bucket.bucket_name,
            Env.DOCUMENTS_TABLE: self.documents.table_name,
            Env.RUNS_TABLE: self.runs.table_name,
            Env.HISTORY_TABLE: self.history.table_name,
            Env.IDEMPOTENCY_TABLE: self.idempotency.table_name,
            Env.TOPIC_ARN: self.topic.topic_arn,
            Env.EMBEDDER: self.embedder_kind.value_as_string,
            Env.EMBED_ENDPOINT: self.embed_endpoint,
            Env.EMBED_DIM: self.embed_dim.value_as_string,
            Env.BEDROCK_EMBED_MODEL: self.bedrock_embed_model.value_as_string,
            Env.INDEX: "opensearch",
            Env.OPENSEARCH_ENDPOINT: self.domain.domain_endpoint,
            Env.INDEX_REPLICAS: str(self.search_size.replicas),  # one data node could never place a replica
            Env.LLM: self.llm_kind.value_as_string,
            Env.LLM_MODEL: self.llm_model.value_as_string,
            "POWERTOOLS_METRICS_NAMESPACE": "hanrag",
        }
        self.function_env = env
        self.stage_functions: dict[str, lambda_.Function] = {}
        for stage in STAGES:
            self.stage_functions[stage.name] = self._function(
                f"{stage.name.capitalize()}Function", stage.handler, MEMORY[stage.name],
                stage.timeout_seconds, env)
        # a global limit on embed calls, whatever the number of documents: a throttled invoke is
        # Lambda.TooManyRequestsException, which every task retries (LAMBDA_SERVICE_RETRY)
        embed = self.stage_functions["embed"].node.default_child
        embed.reserved_concurrent_executions = self.embed_concurrency.value_as_number  # type: ignore[union-attr]
        self.record_failure = self._function("RecordFailureFunction", RECORD_FAILURE_HANDLER, 256, 60, env)
        self.delete_function = self._function("DeleteFunction", DELETE_HANDLER, 1024, 120, env)
        # EventBridge invokes it asynchronously: Lambda retries a failed delete (a transient OpenSearch error)
        # and then records the event in a queue, which an alarm watches, instead of dropping it
        self.delete_failures = sqs.Queue(self, "DeleteFailures", enforce_ssl=True,
                                         encryption=sqs.QueueEncryption.SQS_MANAGED,
                                         retention_period=cdk.Duration.days(14))
        _ack(self.delete_failures, "SQS3", "This queue is the on-failure destination of the delete function: "
                                           "it is the dead-letter queue.")
        self.delete_function.configure_async_invoke(
            retry_attempts=2, max_event_age=cdk.Duration.hours(6),
            on_failure=destinations.SqsDestination(self.delete_failures))
        f = self.stage_functions
        # least privilege: each function gets exactly the S3 calls its step makes (pipeline/steps.py)
        # extract reads the upload's version; delete and the failure recorder only ask whether a key
        # still exists (HeadObject; with ListBucket a missing key answers 404 instead of 403)
        for function in (f["extract"], self.delete_function, self.record_failure):
            self._grant_objects(function, UPLOAD_PREFIX, "s3:GetObject", "s3:GetObjectVersion")
            function.add_to_role_policy(iam.PolicyStatement(actions=["s3:ListBucket"],
                                                            resources=[self.bucket.bucket_arn]))
        self._grant_objects(f["extract"], ARTIFACT_PREFIX, "s3:PutObject")  # extracted.json
        for name in ("chunk", "embed"):  # extracted.json → chunks.json; chunks.json → vectors/*.npy
            self._grant_objects(f[name], ARTIFACT_PREFIX, "s3:GetObject", "s3:PutObject")
        for name in ("index", "summarize"):
            self._grant_objects(f[name], ARTIFACT_PREFIX, "s3:GetObject")
        self._grant_objects(self.delete_function, ARTIFACT_PREFIX, "s3:DeleteObject")  # list, then delete
        self.documents.grant_read_data(f["extract"])
        self.documents.grant_read_write_data(f["summarize"])
        for function in (f["notify"], self.record_failure, self.delete_function):
            self.documents.grant_read_write_data(function)
        for function in (f["notify"], self.record_failure):
            self.runs.grant_read_write_data(function)
            self.topic.grant_publish(function)
        for function in [*f.values()]:
            self.idempotency.grant_read_write_data(function)
        # OpenSearch: writers are mapped to the FGAC role that may write hanrag-* indices, readers to the
        # read-only one (pipeline/lambdas/search_setup.py); SearchSetup maps them after `_chat_api`
        self.search_writers: list[lambda_.Function] = []
        self.search_readers: list[lambda_.Function] = []
        for function in (f["index"], self.delete_function):
            self._search_writer(function)
        self._grant_embedding(f["embed"])
        f["embed"].add_environment(Env.VECTOR_CACHE_TABLE, self.vector_cache.table_name)
        self.vector_cache.grant(f["embed"], "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem")
        f["extract"].add_environment(Env.OCR_CACHE_TABLE, self.ocr_cache.table_name)
        self.ocr_cache.grant(f["extract"], "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
        self._grant_llm(f["summarize"])
        for function in [*f.values(), self.record_failure, self.delete_function]:
            self._ack_function(function)

    def _grant_objects(self, function: lambda_.Function, prefix: str, *actions: str) -> None:
        function.add_to_role_policy(iam.PolicyStatement(actions=list(actions),
                                                        resources=[self.bucket.arn_for_objects(f"{prefix}*")]))

    def _search_writer(self, function: lambda_.Function) -> None:
        """May create, write and delete `hanrag-*` indices (FGAC role `hanrag_pipeline`)."""
        self.search_writers.append(function)
        self.domain.grant_read_write(function)

    def _search_reader(self, function: lambda_.Function) -> None:
        """May only search and read `hanrag-*` (FGAC role `hanrag_reader`); IAM adds no PUT, PATCH or
        DELETE (a search is a POST: `_msearch`, `_mget`)."""
        self.search_readers.append(function)
        function.add_to_role_policy(iam.PolicyStatement(
            actions=["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost"],
            resources=[self.domain.domain_arn, f"{self.domain.domain_arn}/*"]))

    def _grant_embedding(self, function: lambda_.Function) -> None:
        function.add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:InvokeEndpoint"],
            resources=[f"arn:{self.partition}:sagemaker:{self.region}:{self.account}:endpoint/*"]))
        function.add_to_role_policy(iam.PolicyStatement(
            actions=["bedrock:InvokeModel"],
            resources=[f"arn:{self.partition}:bedrock:{self.region}::foundation-model/"
                       f"{self.bedrock_embed_model.value_as_string}"]))

    def _grant_llm(self, function: lambda_.Function) -> None:
        """The configured model only: `LlmModelId` is a model id (invoked in this region) or an inference
        profile id, whose models (in whichever regions the profile routes to, `bedrock:::` for a global
        profile) may be invoked only through that profile."""
        actions = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
        model = self.llm_model.value_as_string
        profile = f"arn:{self.partition}:bedrock:{self.region}:{self.account}:inference-profile/{model}"
        function.add_to_role_policy(iam.PolicyStatement(actions=actions, resources=[
            profile, f"arn:{self.partition}:bedrock:{self.region}::foundation-model/{model}"]))
        function.add_to_role_policy(iam.PolicyStatement(
            actions=actions, resources=[f"arn:{self.partition}:bedrock:*::foundation-model/*"],
            conditions={"StringEquals": {"bedrock:InferenceProfileArn": profile}}))

    def _logical(self, construct: Construct) -> str:
        return self.resolve(construct.node.default_child.logical_id)  # type: ignore[union-attr]

    def _ack_function(self, function: lambda_.Function) -> None:
        """The wildcard findings a function's role may have, each with the reason it is as narrow as it gets."""
        bucket, domain = self._logical(self.bucket), self._logical(self.domain)
        objects = "CDK's bucket grant: object-level actions on one prefix of the uploads bucket only."
        findings = {
            "Resource::*": "X-Ray PutTraceSegments/PutTelemetryRecords have no resource scope (active tracing).",
            "Action::s3:GetObject*": objects, "Action::s3:GetBucket*": objects, "Action::s3:List*": objects,
            "Action::s3:DeleteObject*": objects, "Action::s3:Abort*": objects,
            f"Resource::<{bucket}.Arn>/artifacts/*": "Artifacts of every user's documents live under artifacts/.",
            f"Resource::<{bucket}.Arn>/uploads/*": "The extract stage reads any user's upload under uploads/.",
            f"Resource::<{domain}.Arn>/*": "HTTP paths of the hanrag domain only; FGAC limits them to hanrag-*.",
            "Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:endpoint/*":
                "The embedding endpoint is a deploy parameter (an existing endpoint or the stack's own).",
            "Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/*":
                "Only through the configured inference profile (condition bedrock:InferenceProfileArn), which "
                "routes to its model in regions it picks (a global profile: any).",
        }
        if hasattr(self, "ws_api"):
            findings[f"Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:"
                     f"<{self._logical(self.ws_api)}>/prod/*/@connections/*"] = \
                "post_to_connection to any connection of this API's stage: connections are per question."
        _ack_findings(function, "IAM4", {
            "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole":
                "The basic execution role only lets the function write its own logs."})
        _ack_findings(function, "IAM5", findings)
        _ack(function, "L1", "Container image functions pin their runtime in the image (Lambda Python 3.12).")

    def _ack_invoke(self, construct: Construct, functions: list[lambda_.Function]) -> None:
        _ack_findings(construct, "IAM5", {
            f"Resource::<{self._logical(f)}.Arn>:*": "Invoking the function's versions and aliases (ARN:*)."
            for f in functions})

    # ------------------------------------------------------------------ the state machine

    def _task(self, stage: Stage, **kwargs) -> tasks.LambdaInvoke:
        task = tasks.LambdaInvoke(
            self, stage.name.capitalize(), lambda_function=self.stage_functions[stage.name],
            payload_response_only=True, retry_on_service_exceptions=False,
            payload=sfn.TaskInput.from_object({"state.$": "$", "attempt.$": "$$.State.RetryCount"}),
            task_timeout=sfn.Timeout.duration(cdk.Duration.seconds(stage.timeout_seconds + 30)), **kwargs)
        if stage.retry.max_attempts > 1:
            task.add_retry(**sfn_retry(stage.retry))
        return lambda_service_retry(task)

    def _state_machine(self) -> None:
        record_failure = tasks.LambdaInvoke(
            self, "RecordFailure", lambda_function=self.record_failure, payload_response_only=True,
            retry_on_service_exceptions=False,
            result_path=f"$.{StateField.FAILURE}")
        record_failure.add_retry(errors=TRANSIENT_ERRORS, max_attempts=3, interval=cdk.Duration.seconds(2),
                                 backoff_rate=2.0)
        lambda_service_retry(record_failure)
        failed = sfn.Fail(self, "DocumentFailed", error="DocumentFailed",
                          cause_path=f"$.{StateField.FAILURE}.reason")
        record_failure.next(failed)

        quiet = {error: sfn.Succeed(self, ending) for error, ending in QUIET_ENDINGS.items()}

        def catch(state: sfn.TaskStateBase | sfn.Map, stage: str) -> None:
            """Quiet endings first (already running, superseded), then every other error is a failure."""
            for error, ending in quiet.items():
                state.add_catch(ending, errors=[error], result_path=f"$.{StateField.ERROR}")
            mark = sfn.Pass(self, f"FailedAt{stage.capitalize()}", result=sfn.Result.from_string(stage),
                            result_path=f"$.{StateField.FAILED_STAGE}")
            mark.next(record_failure)
            state.add_catch(mark, errors=["States.ALL"], result_path=f"$.{StateField.ERROR}")

        steps: list[sfn.IChainable] = []
        for stage in STAGES:
            if stage.fans_out:
                f = StateField
                fan_out = sfn.Map(
                    self, f"{stage.name.capitalize()}Batches", items_path=f"$.{f.BATCHES}",
                    max_concurrency=EMBED_MAP_CONCURRENCY,
                    result_path=f"$.{f.EMBEDDED}",
                    item_selector={f"{f.UPLOAD}.$": f"$.{f.UPLOAD}", f"{f.REF}.$": f"$.{f.REF}",
                                   f"{f.ARTIFACTS}.$": f"$.{f.ARTIFACTS}", f"{f.BATCH}.$": "$$.Map.Item.Value"})
                fan_out.item_processor(self._task(stage))
                catch(fan_out, stage.name)
                steps.append(fan_out)
            else:
                task = self._task(stage)
                catch(task, stage.name)
                steps.append(task)

        unchanged = sfn.Succeed(self, "Unchanged", comment="same content as the current version")
        after_extract = sfn.Choice(self, "ChangedSinceLastIngest") \
            .when(sfn.Condition.boolean_equals(f"$.{StateField.SKIPPED}", True), unchanged)
        rest = sfn.Chain.start(steps[1])
        for step in steps[2:]:
            rest = rest.next(step)
        rest = rest.next(sfn.Succeed(self, "Ingested"))
        definition = sfn.Chain.start(steps[0]).next(after_extract.otherwise(rest))

        self.machine_logs = logs.LogGroup(self, "StateMachineLogs", retention=logs.RetentionDays.ONE_MONTH,
                                          removal_policy=cdk.RemovalPolicy.DESTROY)
        self.machine = sfn.StateMachine(
            self, "Ingest", definition_body=sfn.DefinitionBody.from_chainable(definition),
            state_machine_type=sfn.StateMachineType.STANDARD, timeout=cdk.Duration.hours(2), tracing_enabled=True,
            logs=sfn.LogOptions(destination=self.machine_logs, level=sfn.LogLevel.ALL, include_execution_data=False))
        self._ack_invoke(self.machine, [*self.stage_functions.values(), self.record_failure])
        _ack_findings(self.machine, "IAM5", {"Resource::*": "X-Ray and CloudWatch log delivery have no resource "
                                                            "scope."})

    def _triggers(self) -> None:
        """Uploads are buffered: EventBridge puts each `Object Created` event in a queue, and the start
        function (pipeline/lambdas/start.py) starts at most `MaxDocumentsInFlight` executions, each named
        after its S3 change so a duplicate event starts nothing."""
        self.upload_dead_letters = sqs.Queue(self, "UploadEventsDeadLetters", enforce_ssl=True,
                                             encryption=sqs.QueueEncryption.SQS_MANAGED,
                                             retention_period=cdk.Duration.days(14))
        _ack(self.upload_dead_letters, "SQS3", "This queue is the dead-letter queue of the upload queue.")
        start_timeout = cdk.Duration.seconds(60)
        self.upload_events = sqs.Queue(
            self, "UploadEvents", enforce_ssl=True, encryption=sqs.QueueEncryption.SQS_MANAGED,
            retention_period=cdk.Duration.days(14),
            visibility_timeout=cdk.Duration.seconds(6 * start_timeout.to_seconds()),  # Lambda's advice for SQS
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=5, queue=self.upload_dead_letters))
        created = events.Rule(self, "ObjectCreated", event_pattern=events.EventPattern(
            source=["aws.s3"], detail_type=["Object Created"],
            detail={"bucket": {"name": [self.bucket.bucket_name]}, "object": {"key": [{"prefix": UPLOAD_PREFIX}]}}))
        created.add_target(targets.SqsQueue(self.upload_events, dead_letter_queue=self.dead_letters,
                                            retry_attempts=4, max_event_age=cdk.Duration.hours(2)))
        self.starter = self._function("StartFunction", START_HANDLER, 256, int(start_timeout.to_seconds()), {
            Env.STATE_MACHINE_ARN: self.machine.state_machine_arn,
            Env.UPLOAD_QUEUE_URL: self.upload_events.queue_url,
            Env.MAX_DOCUMENTS_IN_FLIGHT: self.max_in_flight.value_as_string,
            "POWERTOOLS_METRICS_NAMESPACE": "hanrag",
        })
        # two pollers at most (SQS's minimum), a few events each: the running-count check stays close
        self.starter.add_event_source(event_sources.SqsEventSource(
            self.upload_events, batch_size=5, max_concurrency=2, report_batch_item_failures=True))
        self.machine.grant_start_execution(self.starter)
        self.starter.add_to_role_policy(iam.PolicyStatement(actions=["states:ListExecutions"],
                                                            resources=[self.machine.state_machine_arn]))
        self.upload_events.grant_send_messages(self.starter)  # a deferred upload goes back with a delay
        self._ack_function(self.starter)
        # a person's delete only: lifecycle expiry of old versions must not take the current one out
        deleted = events.Rule(self, "ObjectDeleted", event_pattern=events.EventPattern(
            source=["aws.s3"], detail_type=["Object Deleted"],
            detail={"bucket": {"name": [self.bucket.bucket_name]}, "object": {"key": [{"prefix": UPLOAD_PREFIX}]},
                    "reason": ["DeleteObject"]}))
        deleted.add_target(targets.LambdaFunction(self.delete_function, dead_letter_queue=self.dead_letters,
                                                  retry_attempts=4, max_event_age=cdk.Duration.hours(2)))

    # ------------------------------------------------------------------ OpenSearch security setup

    def _search_setup(self) -> None:
        """Map the functions' roles into OpenSearch (FGAC) and put the hybrid search pipeline."""
        setup = lambda_.DockerImageFunction(
            self, "SearchSetupFunction", role=self.search_admin,
            code=lambda_.DockerImageCode.from_image_asset(
                str(ROOT), file="infra/lambda.Dockerfile", cmd=[SEARCH_SETUP_HANDLER],
                exclude=IMAGE_EXCLUDES, platform=ecr_assets.Platform.LINUX_AMD64),
            timeout=cdk.Duration.minutes(2), memory_size=512, tracing=lambda_.Tracing.ACTIVE,
            log_group=logs.LogGroup(self, "SearchSetupLogs", retention=logs.RetentionDays.ONE_MONTH,
                                    removal_policy=cdk.RemovalPolicy.DESTROY))
        self.search_admin.add_managed_policy(
            iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSLambdaBasicExecutionRole"))
        self._ack_function(setup)
        self._ack_function(self.search_admin)
        self.domain.grant_read_write(self.search_admin)
        provider = cr.Provider(self, "SearchSetupProvider", on_event_handler=setup,
                               log_group=logs.LogGroup(self, "SearchSetupProviderLogs",
                                                       retention=logs.RetentionDays.ONE_MONTH,
                                                       removal_policy=cdk.RemovalPolicy.DESTROY))
        self._ack_function(provider)
        self._ack_invoke(provider, [setup])
        self.search_setup = cdk.CustomResource(self, "SearchSetup", service_token=provider.service_token, properties={
            "Endpoint": self.domain.domain_endpoint,
            "RoleArns": [f.role.role_arn for f in self.search_writers],  # type: ignore[union-attr]
            "ReaderRoleArns": [f.role.role_arn for f in self.search_readers],  # type: ignore[union-attr]
        })

    # ------------------------------------------------------------------ chat

    def _chat_api(self) -> None:
        self.users = cognito.UserPool(
            self, "Users", self_sign_up_enabled=False, sign_in_aliases=cognito.SignInAliases(email=True),
            password_policy=cognito.PasswordPolicy(min_length=12, require_digits=True, require_lowercase=True,
                                                   require_uppercase=True, require_symbols=True),
            mfa=cognito.Mfa.OPTIONAL, mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY, feature_plan=cognito.FeaturePlan.ESSENTIALS,
            removal_policy=cdk.RemovalPolicy.DESTROY)
        _ack(self.users, "COG2", "MFA is optional (TOTP) so a team can adopt it per user; required MFA blocks "
                                 "first sign-in for users an administrator creates.")
        _ack(self.users, "COG8", "The Plus feature plan costs per active user; sign-up is closed.")
        _ack(self.users, "COG3", "Threat protection needs the Plus feature plan (per-user cost); sign-up is "
                                 "closed and only administrators create users.")
        self.client = self.users.add_client(
            "Web", auth_flows=cognito.AuthFlow(user_srp=True, user_password=True), generate_secret=False,
            id_token_validity=cdk.Duration.hours(1), access_token_validity=cdk.Duration.hours(1))
        issuer = f"https://cognito-idp.{self.region}.amazonaws.com/{self.users.user_pool_id}"

        chat_env = {**self.function_env, Env.COGNITO_ISSUER: issuer,
                    Env.COGNITO_CLIENT_ID: self.client.user_pool_client_id}
        self.chat_http = self._function("ChatHttpFunction", CHAT_HTTP_HANDLER, 2048, 29, chat_env)
        self.chat_ws = self._function("ChatWebSocketFunction", CHAT_WEBSOCKET_HANDLER, 2048, 120, chat_env)
        self.authorizer_fn = self._function("ChatAuthorizerFunction", CHAT_AUTHORIZER_HANDLER, 512, 10, chat_env)
        for function in (self.chat_http, self.chat_ws, self.authorizer_fn):
            self._ack_function(function)
        for function in (self.chat_http, self.chat_ws):
            self.history.grant_read_write_data(function)
            self.documents.grant_read_data(function)
            self._grant_embedding(function)
            self._grant_llm(function)
            self._search_reader(function)  # chat only searches: the read-only FGAC role
        self._chat_account(chat_env)

        api_logs = logs.LogGroup(self, "ApiAccessLogs", retention=logs.RetentionDays.ONE_MONTH,
                                 removal_policy=cdk.RemovalPolicy.DESTROY)
        jwt = authorizers.HttpJwtAuthorizer("Cognito", issuer, jwt_audience=[self.client.user_pool_client_id])
        # CORS admits the web page's origin only; `_site` sets it, once the distribution exists
        self.http_api = apigw.HttpApi(self, "ChatHttpApi", default_authorizer=jwt)
        self._chat_provisioned_concurrency()
        integration = integrations.HttpLambdaIntegration("Chat", self.chat_http_target)
        for method, path in ((apigw.HttpMethod.GET, "/documents"), (apigw.HttpMethod.GET, "/sessions"),
                             (apigw.HttpMethod.GET, "/sessions/{session_id}"),
                             (apigw.HttpMethod.DELETE, "/sessions/{session_id}"), (apigw.HttpMethod.POST, "/ask")):
            self.http_api.add_routes(path=path, methods=[method], integration=integration)
        account = integrations.HttpLambdaIntegration("Account", self.chat_account)
        for method, path in ((apigw.HttpMethod.POST, "/uploads"), (apigw.HttpMethod.DELETE, "/uploads"),
                             (apigw.HttpMethod.DELETE, "/me")):
            self.http_api.add_routes(path=path, methods=[method], integration=account)
        self._access_logs(self.http_api.default_stage, api_logs)  # type: ignore[arg-type]

        self.ws_api = apigw.WebSocketApi(
            self, "ChatWebSocketApi",
            connect_route_options=apigw.WebSocketRouteOptions(
                integration=integrations.WebSocketLambdaIntegration("Connect", self.chat_ws_target),
                authorizer=authorizers.WebSocketLambdaAuthorizer(
                    "Token", self.authorizer_fn, identity_source=["route.request.querystring.token"])),
            disconnect_route_options=apigw.WebSocketRouteOptions(
                integration=integrations.WebSocketLambdaIntegration("Disconnect", self.chat_ws_target)),
            default_route_options=apigw.WebSocketRouteOptions(
                integration=integrations.WebSocketLambdaIntegration("Ask", self.chat_ws_target)))
        self.ws_stage = apigw.WebSocketStage(self, "ChatWebSocketStage", web_socket_api=self.ws_api,
                                             stage_name="prod", auto_deploy=True)
        self.ws_stage.grant_management_api_access(self.chat_ws)
        self._ack_function(self.chat_ws)  # again, now that the API's connections ARN exists
        self._access_logs(self.ws_stage, api_logs)
        for route in self.ws_api.node.find_all():
            if isinstance(route, apigw.CfnRoute) and route.route_key != "$connect":
                _ack(route, "APIG4", "Only $connect can carry an authorizer on a WebSocket API; later messages "
                                     "ride the connection it authorized.")
        cdk.CfnOutput(self, "HttpApiUrl", value=self.http_api.api_endpoint)
        cdk.CfnOutput(self, "WebSocketUrl", value=self.ws_stage.url)
        cdk.CfnOutput(self, "UserPoolId", value=self.users.user_pool_id)
        cdk.CfnOutput(self, "UserPoolClientId", value=self.client.user_pool_client_id)
        cdk.CfnOutput(self, "UploadsBucket", value=self.bucket.bucket_name)

    def _chat_account(self, env: dict[str, str]) -> None:
        """The routes that write a user's data (pre-signed uploads, deletes, offboarding) run in their own
        function, so the chat functions' roles stay read-only for uploads and the registry."""
        self.chat_account = self._function("ChatAccountFunction", CHAT_ACCOUNT_HANDLER, 1024, 29, env)
        # a pre-signed PUT acts with this role: it may put under uploads/, the handler names the key; HeadObject
        # before a delete; offboarding lists and deletes every version under uploads/<sub>/ and artifacts/<sub>/
        self._grant_objects(self.chat_account, UPLOAD_PREFIX, "s3:PutObject", "s3:GetObject", "s3:DeleteObject",
                            "s3:DeleteObjectVersion")
        self._grant_objects(self.chat_account, ARTIFACT_PREFIX, "s3:DeleteObject", "s3:DeleteObjectVersion")
        self.chat_account.add_to_role_policy(iam.PolicyStatement(
            actions=["s3:ListBucket", "s3:ListBucketVersions"], resources=[self.bucket.bucket_arn]))
        for table in (self.documents, self.runs, self.history, self.idempotency, self.ocr_cache):
            table.grant_read_write_data(self.chat_account)
        self.chat_account.add_environment(Env.OCR_CACHE_TABLE, self.ocr_cache.table_name)  # offboarding erases it
        self._search_writer(self.chat_account)  # offboarding drops the user's indices
        # browsers PUT to the pre-signed URL from the web page's origin; the signature is the authorization
        self.bucket.add_cors_rule(allowed_methods=[s3.HttpMethods.PUT], allowed_origins=["*"],
                                  allowed_headers=["content-type"], max_age=3000)
        self._ack_function(self.chat_account)
        bucket = self._logical(self.bucket)
        _ack_findings(self.chat_account, "IAM5", {
            f"Resource::<{bucket}.Arn>/uploads/*": "Pre-signed PUTs and deletes of uploads/<sub>/ keys; the "
                                                   "handler builds each key from the caller's verified sub.",
            f"Resource::<{bucket}.Arn>/artifacts/*": "Offboarding deletes artifacts/<sub>/ of the caller only.",
        })

    def _chat_provisioned_concurrency(self) -> None:
        """`ChatProvisionedConcurrency` > 0 keeps that many environments of each chat function initialized, so
        no answer waits for a cold start (the image loads Kiwi and the adapters: seconds of API Gateway's 29).
        Provisioned concurrency needs a published version behind an alias; both exist only when asked for,
        and the APIs invoke the alias then, the function itself otherwise (no idle cost at 0)."""
        self.chat_warm = cdk.CfnParameter(
            self, "ChatProvisionedConcurrency", type="Number", default=0, min_value=0,
            description="Initialized environments kept for each chat function (HTTP and WebSocket), billed while "
                        "deployed; 0: none, answers may wait for a cold start")
        warm = cdk.CfnCondition(self, "ChatProvisioned", expression=cdk.Fn.condition_not(
            cdk.Fn.condition_equals(self.chat_warm.value_as_string, "0")))
        for name, function in (("ChatHttp", self.chat_http), ("ChatWebSocket", self.chat_ws)):
            version = function.current_version  # its logical id follows the code: a new image, a new version
            version.apply_removal_policy(cdk.RemovalPolicy.DESTROY)
            alias = lambda_.Alias(self, f"{name}Live", alias_name="live", version=version,
                                  provisioned_concurrent_executions=self.chat_warm.value_as_number)
            for resource in (version, alias):
                resource.node.default_child.cfn_options.condition = warm  # type: ignore[union-attr]
            arn = cdk.Fn.condition_if(warm.logical_id, alias.function_arn, function.function_arn).to_string()
            target = lambda_.Function.from_function_attributes(self, f"{name}Target", function_arn=arn,
                                                               same_environment=True)
            setattr(self, "chat_http_target" if name == "ChatHttp" else "chat_ws_target", target)

    def _access_logs(self, stage: apigw.IStage, group: logs.LogGroup) -> None:
        cfn = stage.node.default_child
        cfn.access_log_settings = apigw.CfnStage.AccessLogSettingsProperty(  # type: ignore[union-attr]
            destination_arn=group.log_group_arn,
            format='{"requestId":"$context.requestId","ip":"$context.identity.sourceIp",'
                   '"route":"$context.routeKey","status":"$context.status","user":"$context.authorizer.claims.sub"}')

    # ------------------------------------------------------------------ the web page

    def _site(self) -> None:
        """The page of `hanrag serve` (chat/static) from a private bucket through CloudFront (origin access
        control), with Cognito's hosted login (authorization code + PKCE). A deploy-time `/config.json` tells
        the page where the APIs and the login are; `hanrag serve` has no such file, so the same page knows
        which home it runs in."""
        self.site_bucket = s3.Bucket(
            self, "Site", block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True,
            encryption=s3.BucketEncryption.S3_MANAGED, object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs, server_access_logs_prefix="site/",
            removal_policy=cdk.RemovalPolicy.DESTROY, auto_delete_objects=True)
        # unique per stack and account: the last part of the stack's id, a UUID CloudFormation gives it
        prefix = cdk.Fn.join("-", ["hanrag", cdk.Fn.select(2, cdk.Fn.split("/", self.stack_id))])
        self.login_domain = self.users.add_domain(
            "Login", cognito_domain=cognito.CognitoDomainOptions(domain_prefix=prefix))
        login = self.login_domain.base_url()
        ws_origin = f"wss://{self.ws_api.api_id}.execute-api.{self.region}.{self.url_suffix}"
        uploads = self.bucket.bucket_name
        # The HTTP API's own origin cannot be named here: its CORS names the distribution, which holds this
        # policy (a cycle), so the page may reach any HTTP API of the region. The WebSocket API, the login
        # and the uploads bucket (pre-signed PUTs, global and regional names) are exact.
        connect = ["'self'", f"https://*.execute-api.{self.region}.{self.url_suffix}", ws_origin, login,
                   f"https://{uploads}.s3.{self.url_suffix}", f"https://{uploads}.s3.{self.region}.{self.url_suffix}"]
        csp = "; ".join([
            "default-src 'none'", "script-src 'self'", "style-src 'self'", "font-src 'self'", "img-src 'self'",
            f"connect-src {' '.join(connect)}", "form-action 'self'", "base-uri 'none'", "frame-ancestors 'none'"])
        headers = cloudfront.ResponseHeadersPolicy(
            self, "SiteHeaders", security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=csp, override=True),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=cdk.Duration.days(365), include_subdomains=True, override=True),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.NO_REFERRER, override=True)))
        self.distribution = cloudfront.Distribution(
            self, "SiteDistribution", default_root_object="index.html", comment="hanrag chat page",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.site_bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED, response_headers_policy=headers),
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3, price_class=cloudfront.PriceClass.PRICE_CLASS_ALL)
        self.web_url = f"https://{self.distribution.distribution_domain_name}"
        _ack(self.distribution, "CFR1", "No geo restriction: the page is for the stack's users wherever they are; "
                                        "only users an administrator created can sign in.")
        _ack(self.distribution, "CFR2", "No WAF web ACL (a fixed monthly cost): the distribution serves static "
                                        "files only; every API call is checked by Cognito tokens at API Gateway.")
        _ack(self.distribution, "CFR3", "CloudFront standard logs need an ACL-enabled bucket; the log bucket "
                                        "enforces bucket-owner ownership (ACLs off). The site bucket's own S3 "
                                        "access logs and the APIs' access logs record every request that matters.")
        _ack(self.distribution, "CFR4", "The default *.cloudfront.net certificate: CloudFront fixes its minimum "
                                        "protocol (TLSv1) whatever the policy asks; a custom domain with its own "
                                        "certificate would allow TLSv1.2_2021.")

        # the page's origin, now known: Cognito redirects back to it, the HTTP API admits it (CORS)
        client = self.client.node.default_child
        client.allowed_o_auth_flows = ["code"]  # type: ignore[union-attr]  # no implicit flow: code + PKCE
        client.allowed_o_auth_scopes = ["openid", "email", "profile"]  # type: ignore[union-attr]
        client.callback_ur_ls = [f"{self.web_url}/"]  # type: ignore[union-attr]
        client.logout_ur_ls = [f"{self.web_url}/"]  # type: ignore[union-attr]
        api = self.http_api.node.default_child
        api.cors_configuration = apigw.CfnApi.CorsProperty(  # type: ignore[union-attr]
            allow_origins=[self.web_url], allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["authorization", "content-type"], max_age=3600)

        config = {"mode": "aws", "region": self.region, "http_api": self.http_api.api_endpoint,
                  "websocket": self.ws_stage.url, "login": login, "client_id": self.client.user_pool_client_id}
        static = str(ROOT / "chat" / "static")
        # index.html and config.json at the root, the page's files under static/ (as `hanrag serve` has them)
        s3_deployment.BucketDeployment(
            self, "SitePage", destination_bucket=self.site_bucket, prune=False,
            sources=[s3_deployment.Source.data("index.html", (ROOT / "chat/static/index.html").read_text()),
                     s3_deployment.Source.json_data("config.json", config)],
            distribution=self.distribution, distribution_paths=["/", "/index.html", "/config.json"])
        s3_deployment.BucketDeployment(
            self, "SiteFiles", destination_bucket=self.site_bucket, destination_key_prefix="static/",
            sources=[s3_deployment.Source.asset(static)],
            distribution=self.distribution, distribution_paths=["/static/*"])
        self._ack_site_deployment()
        cdk.CfnOutput(self, "WebUrl", value=f"{self.web_url}/",
                      description="The chat page: sign in with a user of the UserPoolId pool")
        cdk.CfnOutput(self, "LoginDomain", value=login)

    def _ack_site_deployment(self) -> None:
        """The findings on CDK's BucketDeployment function (one per stack, shared by both deployments)."""
        site = self._logical(self.site_bucket)
        copy = "CDK's BucketDeployment grant: it syncs the page's files into the site bucket and reads its assets."
        for child in self.node.children:
            if child.node.id.startswith("Custom::CDKBucketDeployment"):
                _ack_findings(child, "IAM4", {
                    "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole":
                        "CDK-generated helper: the basic execution role only writes its own logs."})
                _ack_findings(child, "IAM5", {
                    "Action::s3:GetObject*": copy, "Action::s3:GetBucket*": copy, "Action::s3:List*": copy,
                    "Action::s3:DeleteObject*": copy, "Action::s3:Abort*": copy,
                    f"Resource::<{site}.Arn>/*": "Every object of the site bucket, which holds only the page.",
                    "Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*":
                        "The CDK bootstrap asset bucket, where the page's files are staged for the copy.",
                    "Resource::*": "cloudfront:CreateInvalidation and GetInvalidation, granted by CDK on every "
                                   "distribution; they only clear cached copies of the page."})
                _ack(child, "L1", "CDK-generated helper pins its own runtime (the BucketDeployment handler).")

    # ------------------------------------------------------------------ monitoring

    def _monitoring(self) -> None:
        alarm_action = cw_actions.SnsAction(self.topic)
        period = cdk.Duration.minutes(5)
        failed = self.machine.metric_failed(period=period)
        dlq = self.dead_letters.metric_approximate_number_of_messages_visible(period=period)
        failed_deletes = self.delete_failures.metric_approximate_number_of_messages_visible(period=period)
        failed_starts = self.upload_dead_letters.metric_approximate_number_of_messages_visible(period=period)
        for name, metric in (("ExecutionsFailed", failed), ("DeadLetters", dlq), ("FailedDeletes", failed_deletes),
                             ("UploadDeadLetters", failed_starts)):
            alarm = cloudwatch.Alarm(self, f"{name}Alarm", metric=metric, threshold=1, evaluation_periods=1,
                                     comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                                     treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING)
            alarm.add_alarm_action(alarm_action)

        def custom(name: str, service: str, stat: str = "Sum", **dimensions: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(namespace="hanrag", metric_name=name, statistic=stat, period=period,
                                     dimensions_map={"service": service, **dimensions})

        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"hanrag-{self.stack_name}")
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Runs", left=[
                self.machine.metric_started(period=period), self.machine.metric_succeeded(period=period), failed]),
            cloudwatch.GraphWidget(title="Seconds per stage (p90)", left=[
                custom("StageSeconds", "ingest", "p90", stage=s.name) for s in STAGES]),
            cloudwatch.GraphWidget(title="Chunks indexed", left=[custom("ChunksIndexed", "ingest", stage="index")]),
            cloudwatch.GraphWidget(title="Dead letters", left=[dlq, failed_deletes, failed_starts]),
            cloudwatch.GraphWidget(title="Uploads waiting", left=[
                self.upload_events.metric_approximate_number_of_messages_visible(period=period),
                self.upload_events.metric_approximate_number_of_messages_not_visible(period=period)],
                right=[self.upload_events.metric_approximate_age_of_oldest_message(period=period)]),
            cloudwatch.GraphWidget(title="Chat latency (s)", left=[custom("ChatLatency", "chat", "p50"),
                                                                   custom("ChatLatency", "chat", "p90")]),
        )

    def _stack_acknowledgments(self) -> None:
        """Findings on helper functions CDK itself generates (S3 auto-delete and EventBridge notifications,
        the OpenSearch log-group policy)."""
        helpers = ("Custom::S3AutoDeleteObjectsCustomResourceProvider", "BucketNotificationsHandler",
                   "AWS679f53fac002430cb0da5b7982bd2287", "ESLogGroupPolicy")
        for child in self.node.children:
            if any(name in child.node.id for name in helpers):
                _ack_findings(child, "IAM4", {
                    "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole":
                        "CDK-generated helper: the basic execution role only writes its own logs."})
                _ack_findings(child, "IAM5", {"Resource::*": "CDK-generated helper: the CloudWatch Logs resource "
                                                             "policy and bucket notification APIs have no resource "
                                                             "scope."})
                _ack(child, "L1", "CDK-generated helper pins its own runtime.")
        for child in self.domain.node.children:
            if "ESLogGroupPolicy" in child.node.id:
                _ack_findings(child, "IAM5", {"Resource::*": "CDK-generated: logs:PutResourcePolicy has no "
                                                             "resource scope."})
