"""The ingestion pipeline as data: stage order, retry and failure policy, handler names, state fields.

Both runners read this module: the local runner (`pipeline.runner`) calls the steps in this order
with these retries, and the AWS state machine (`infra/stack.py`) is built from the same list, so
the two cannot drift. Whatever used to be decided by a stage's name in code (which stage fans out,
which failure only warns) is a field here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FailurePolicy = Literal["fail", "warn"]

# Besides our own TransientError (`retryable = True`), failures of the network or the OS are worth
# another attempt.
RETRYABLE: tuple[type[BaseException], ...] = (TimeoutError, ConnectionError)

# Warnings ride in the Step Functions state (256 KiB limit) and in every run record: both runners
# keep the first ones.
MAX_WARNINGS = 20


@dataclass(frozen=True)
class RetryPolicy:
    """Retry with exponential backoff, the same fields a Step Functions `Retry` takes."""

    max_attempts: int = 1  # total attempts, including the first
    interval_seconds: float = 1.0
    backoff_rate: float = 2.0
    max_delay_seconds: float = 30.0

    def delays(self) -> list[float]:
        """Seconds to wait before each retry (one entry per retry)."""
        return [
            min(self.interval_seconds * self.backoff_rate**i, self.max_delay_seconds)
            for i in range(self.max_attempts - 1)
        ]


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    retry: RetryPolicy = RetryPolicy()
    timeout_seconds: int = 900
    # "fail": the run fails with the reason (the previous version stays current); "warn": the stage
    # falls back after its last attempt and the run goes on with a warning.
    on_failure: FailurePolicy = "fail"
    fans_out: bool = False  # one call per item of the state's `batches` (a Step Functions Map)

    @property
    def handler(self) -> str:
        """The Lambda handler that runs this stage (the function's image command)."""
        return f"{INGEST_MODULE}.{self.name}_handler"


NO_RETRY = RetryPolicy(max_attempts=1)
# Stages that call a model, an endpoint or a webhook can hit throttling or a cold start.
REMOTE_RETRY = RetryPolicy(max_attempts=4, interval_seconds=2.0, backoff_rate=2.0)

STAGES: tuple[Stage, ...] = (
    Stage("extract", "file → ordered text blocks and tables per page", NO_RETRY, timeout_seconds=900),
    Stage("chunk", "text → token-sized chunks on Korean sentence boundaries", NO_RETRY, 300),
    Stage("embed", "chunks → vectors (passage prefix)", REMOTE_RETRY, 900, fans_out=True),
    Stage("index", "replace the document's chunks in the user's index", REMOTE_RETRY, 300),
    # the new version is searchable by now: a failing LLM costs the summary its prose, not the run
    Stage("summarize", "a short summary in the document's language", REMOTE_RETRY, 300, on_failure="warn"),
    Stage("notify", "store and announce the run record", REMOTE_RETRY, 60, on_failure="warn"),
)

STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)

# Errors that end a run without failing it, by the ending each one reaches: another execution is
# doing this work right now (Powertools idempotency: the same event delivered twice), or a newer
# upload or a delete of the file came after the event this run started from. Neither is a failure
# to record, announce or alarm on; on AWS each is a Catch to its own Succeed state, before the
# catch-all that records failures.
QUIET_ENDINGS: dict[str, str] = {
    "IdempotencyAlreadyInProgressError": "AlreadyRunning",
    "Superseded": "Superseded",
}

# On AWS every task also retries Lambda's own service errors (throttling of the invoke, a Lambda
# hiccup), whatever the stage's policy: the function may not even have run.
LAMBDA_SERVICE_RETRY = RetryPolicy(max_attempts=6, interval_seconds=2.0, backoff_rate=2.0, max_delay_seconds=30.0)

# The vector sizes each supported Bedrock embedding model can produce (the first is its default):
# Titan Text Embeddings v2 takes 256, 512 or 1024; Cohere Embed Multilingual v3 always returns 1024.
BEDROCK_EMBED_DIMENSIONS: dict[str, tuple[int, ...]] = {
    "amazon.titan-embed-text-v2:0": (1024, 512, 256),
    "cohere.embed-multilingual-v3": (1024,),
}

INGEST_MODULE = "pipeline.lambdas.ingest"
RECORD_FAILURE_HANDLER = f"{INGEST_MODULE}.record_failure_handler"
DELETE_HANDLER = f"{INGEST_MODULE}.delete_handler"
CHAT_HTTP_HANDLER = "chat.handler.http_handler"
CHAT_WEBSOCKET_HANDLER = "chat.handler.websocket_handler"
CHAT_AUTHORIZER_HANDLER = "chat.handler.authorizer_handler"
CHAT_ACCOUNT_HANDLER = "chat.handler.account_handler"  # uploads, deletes, offboarding
SEARCH_SETUP_HANDLER = "pipeline.lambdas.search_setup.on_event"
START_HANDLER = "pipeline.lambdas.start.start_handler"  # upload queue → one execution per upload


class StateField:
    """Top-level keys of the ingestion state (`pipeline.models.IngestState.to_dict`), which the state
    machine's JSON paths name."""

    UPLOAD = "upload"
    REF = "ref"
    RUN = "run"
    ARTIFACTS = "artifacts"
    SKIPPED = "skipped"
    BATCHES = "batches"  # the fan-out stage's items
    BATCH = "batch"  # one item, as the fan-out stage receives it
    EMBEDDED = "embedded"  # the fan-out stage's results
    ERROR = "error"
    FAILED_STAGE = "failed_stage"
    FAILURE = "failure"


class Env:
    """Environment variable names, spelled once: `infra/stack.py` sets them, `pipeline.config` and
    `pipeline.lambdas.wiring` read them."""

    BUCKET = "HANRAG_BUCKET"
    DOCUMENTS_TABLE = "HANRAG_DOCUMENTS_TABLE"
    RUNS_TABLE = "HANRAG_RUNS_TABLE"
    HISTORY_TABLE = "HANRAG_HISTORY_TABLE"
    IDEMPOTENCY_TABLE = "HANRAG_IDEMPOTENCY_TABLE"
    TOPIC_ARN = "HANRAG_TOPIC_ARN"
    EMBEDDER = "HANRAG_EMBEDDER"
    EMBED_ENDPOINT = "HANRAG_EMBED_ENDPOINT"
    EMBED_DIM = "HANRAG_EMBED_DIM"
    BEDROCK_EMBED_MODEL = "HANRAG_BEDROCK_EMBED_MODEL"
    EMBED_BATCH_CHUNKS = "HANRAG_EMBED_BATCH_CHUNKS"
    VECTOR_CACHE_TABLE = "HANRAG_VECTOR_CACHE_TABLE"
    OCR_CACHE_TABLE = "HANRAG_OCR_CACHE_TABLE"
    INDEX = "HANRAG_INDEX"
    OPENSEARCH_ENDPOINT = "HANRAG_OPENSEARCH_ENDPOINT"
    INDEX_REPLICAS = "HANRAG_INDEX_REPLICAS"
    LLM = "HANRAG_LLM"
    LLM_MODEL = "HANRAG_LLM_MODEL"
    LLM_ENDPOINT = "HANRAG_LLM_ENDPOINT"
    COGNITO_ISSUER = "HANRAG_COGNITO_ISSUER"
    COGNITO_CLIENT_ID = "HANRAG_COGNITO_CLIENT_ID"
    STATE_MACHINE_ARN = "HANRAG_STATE_MACHINE_ARN"
    UPLOAD_QUEUE_URL = "HANRAG_UPLOAD_QUEUE_URL"
    MAX_DOCUMENTS_IN_FLIGHT = "HANRAG_MAX_DOCUMENTS_IN_FLIGHT"


def stage(name: str) -> Stage:
    for s in STAGES:
        if s.name == name:
            return s
    raise KeyError(name)
