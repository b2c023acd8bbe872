"""Remote `LLM`s: Bedrock (Converse / ConverseStream; Claude by default) or a SageMaker endpoint
speaking the JumpStart / TGI JSON (`{"inputs", "parameters"}` → `[{"generated_text"}]`).

Request bodies and the parsing of answers and stream events are pure functions, tested as data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from pipeline.adapters.aws.errors import aws_call
from pipeline.errors import TransientError

DEFAULT_BEDROCK_MODEL = "global.anthropic.claude-haiku-4-5-20251001-v1:0"


def converse_request(model_id: str, system: str, prompt: str, max_tokens: int, temperature: float) -> dict:
    return {
        "modelId": model_id,
        "system": [{"text": system}],
        "messages": [{"role": "user", "content": [{"text": prompt}]}],
        "inferenceConfig": {"maxTokens": max_tokens, "temperature": temperature},
    }


def converse_text(response: dict) -> str:
    blocks = response.get("output", {}).get("message", {}).get("content", [])
    return "".join(block.get("text", "") for block in blocks)


def converse_stream_text(events: Iterable[dict]) -> Iterator[str]:
    """The text deltas of a ConverseStream event stream; an error event becomes a reason."""
    for event in events:
        if "contentBlockDelta" in event:
            text = event["contentBlockDelta"].get("delta", {}).get("text")
            if text:
                yield text
        for error in ("throttlingException", "serviceUnavailableException", "internalServerException",
                      "modelStreamErrorException"):
            if error in event:
                raise TransientError(f"Bedrock stream interrupted: {event[error].get('message', error)}")
        if "validationException" in event:
            raise ValueError(f"Bedrock rejected the request: {event['validationException'].get('message')}")


class BedrockLLM:
    def __init__(self, client: Any, model_id: str = DEFAULT_BEDROCK_MODEL, max_tokens: int = 1024,
                 temperature: float = 0.2) -> None:
        self.client = client
        self.model_id = model_id
        self.max_tokens = max_tokens
        self.temperature = temperature

    def complete(self, system: str, prompt: str) -> str:
        request = converse_request(self.model_id, system, prompt, self.max_tokens, self.temperature)
        with aws_call(f"Bedrock Converse {self.model_id}"):
            return converse_text(self.client.converse(**request))

    def stream(self, system: str, prompt: str) -> Iterator[str]:
        request = converse_request(self.model_id, system, prompt, self.max_tokens, self.temperature)
        with aws_call(f"Bedrock ConverseStream {self.model_id}"):
            response = self.client.converse_stream(**request)
            yield from converse_stream_text(response["stream"])


def jumpstart_request(system: str, prompt: str, max_new_tokens: int, temperature: float,
                      stream: bool = False) -> dict:
    body = {
        "inputs": f"{system}\n\n{prompt}",
        "parameters": {"max_new_tokens": max_new_tokens, "temperature": temperature, "return_full_text": False},
    }
    if stream:
        body["stream"] = True
    return body


def jumpstart_text(payload: Any) -> str:
    if isinstance(payload, list) and payload:
        payload = payload[0]
    if isinstance(payload, dict) and "generated_text" in payload:
        return payload["generated_text"]
    raise TransientError(f"LLM endpoint answered without generated_text: {str(payload)[:200]}")


def tgi_stream_text(parts: Iterable[bytes]) -> Iterator[str]:
    """TGI streams server-sent events (`data:{"token":{"text":…}}`) split at arbitrary byte offsets."""
    buffer = b""
    for part in parts:
        buffer += part
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            event = json.loads(line[5:])
            token = event.get("token", {})
            if token.get("text") and not token.get("special"):
                yield token["text"]


class SageMakerLLM:
    def __init__(self, client: Any, endpoint_name: str, max_new_tokens: int = 1024,
                 temperature: float = 0.2) -> None:
        self.client = client
        self.endpoint_name = endpoint_name
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature

    def complete(self, system: str, prompt: str) -> str:
        body = jumpstart_request(system, prompt, self.max_new_tokens, self.temperature)
        with aws_call(f"SageMaker LLM endpoint {self.endpoint_name}"):
            answer = self.client.invoke_endpoint(
                EndpointName=self.endpoint_name, ContentType="application/json",
                Body=json.dumps(body, ensure_ascii=False).encode(),
            )
        return jumpstart_text(json.loads(answer["Body"].read()))

    def stream(self, system: str, prompt: str) -> Iterator[str]:
        body = jumpstart_request(system, prompt, self.max_new_tokens, self.temperature, stream=True)
        with aws_call(f"SageMaker LLM stream {self.endpoint_name}"):
            answer = self.client.invoke_endpoint_with_response_stream(
                EndpointName=self.endpoint_name, ContentType="application/json",
                Body=json.dumps(body, ensure_ascii=False).encode(),
            )
            parts = (event["PayloadPart"]["Bytes"] for event in answer["Body"] if "PayloadPart" in event)
            yield from tgi_stream_text(parts)
