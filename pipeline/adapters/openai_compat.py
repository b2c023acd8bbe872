"""An `LLM` behind any OpenAI-compatible chat-completions URL: vLLM, Ollama, llama.cpp's server, LM Studio,
or a hosted API. Standard library only (urllib): one POST, and for streaming the server-sent events
(`data: {...}` lines, ending with `data: [DONE]`) read line by line as they arrive.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from typing import Any

from pipeline.errors import PipelineError, TransientError


class LLMRequestRejected(PipelineError):
    """The endpoint refused the request (bad model name, key, or body): retrying will not help."""


class OpenAICompatibleLLM:
    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 120.0,
                 max_tokens: int = 1024, temperature: float = 0.2) -> None:
        """`base_url` as the servers document it, e.g. http://127.0.0.1:11434/v1 (…/chat/completions is added)."""
        base = base_url.rstrip("/")
        self.url = base if base.endswith("/chat/completions") else f"{base}/chat/completions"
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.temperature = temperature

    def complete(self, system: str, prompt: str) -> str:
        with self._post(self._body(system, prompt, stream=False)) as response:
            payload = json.loads(response.read())
        try:
            return payload["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise TransientError(f"LLM at {self.url} answered without choices[0].message: "
                                 f"{str(payload)[:200]}") from None

    def stream(self, system: str, prompt: str) -> Iterator[str]:
        with self._post(self._body(system, prompt, stream=True)) as response:
            yield from stream_deltas(response)

    def _body(self, system: str, prompt: str, stream: bool) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": prompt}],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stream": stream,
        }

    def _post(self, body: dict[str, Any]):
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream, application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, json.dumps(body, ensure_ascii=False).encode(), headers)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)  # noqa: S310 (a configured URL)
        except urllib.error.HTTPError as error:
            detail = error.read()[:300].decode(errors="replace")
            reason = f"LLM at {self.url} answered HTTP {error.code}: {detail}"
            if error.code == 429 or error.code >= 500:
                raise TransientError(reason) from None
            raise LLMRequestRejected(reason) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            raise TransientError(f"LLM at {self.url} unreachable: {getattr(error, 'reason', error)}") from None


def stream_deltas(lines: Iterable[bytes]) -> Iterator[str]:
    """The content deltas of an OpenAI-style event stream; an `error` event becomes a reason."""
    for raw in lines:
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue  # blank separators, `: keep-alive` comments, `event:` names
        data = line[5:].strip()
        if data == b"[DONE]":
            return
        event = json.loads(data)
        if "error" in event:
            message = event["error"].get("message") if isinstance(event["error"], dict) else event["error"]
            raise TransientError(f"LLM stream interrupted: {message}")
        for choice in event.get("choices") or []:
            text = (choice.get("delta") or {}).get("content")
            if text:
                yield text
