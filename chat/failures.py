"""What a chat client is told when a request fails: an HTTP status, a short code, the specific reason
(English, as `hanrag serve` words its errors) and a sentence for the person (Korean).

The same body is the HTTP API's JSON and, with `"type": "error"`, the WebSocket error frame, so the web
page reads one shape from both. `detail` repeats the reason under the name the page already reads from
`hanrag serve` (FastAPI's `{"detail": …}`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from chat.deadline import AnswerTimeout
from chat.service import InvalidMessage
from pipeline.errors import InvalidName, LimitExceeded, PipelineError, TransientError

log = logging.getLogger(__name__)


class Unauthorized(Exception):
    """No verified identity: the request is refused before anything is read."""


class BadRequest(PipelineError):
    """A request the API cannot read (no JSON body, a missing field, an unsupported file type)."""


class NotFound(PipelineError):
    """The user has nothing by that name."""


@dataclass(frozen=True)
class Failure:
    status: int
    code: str
    reason: str
    message: str
    retry_after: int | None = None

    def body(self) -> dict:
        body = {"status": self.status, "code": self.code, "reason": self.reason, "detail": self.reason,
                "message": self.message}
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        return body

    def frame(self) -> dict:
        return {"type": "error", **self.body()}


def failure_of(error: BaseException) -> Failure:
    """The failure a client sees for `error`; anything unforeseen is logged with its traceback and shown
    only by its type, never its internals."""
    if isinstance(error, Unauthorized):
        return Failure(401, "unauthorized", str(error), "로그인이 필요합니다. 다시 로그인해 주세요.")
    if isinstance(error, AnswerTimeout):
        return Failure(504, "timeout", str(error),
                       "답변이 제한 시간 안에 끝나지 않았습니다. 잠시 후 다시 시도해 주세요.", retry_after=5)
    if isinstance(error, TransientError):
        return Failure(503, "unavailable", str(error),
                       "검색 또는 답변 서비스가 잠시 응답하지 않습니다(과부하이거나 시작하는 중). "
                       "잠시 후 다시 시도해 주세요.", retry_after=10)
    if isinstance(error, LimitExceeded):
        return Failure(413, "too_large", str(error), "허용된 크기를 넘었습니다.")
    if isinstance(error, NotFound):
        return Failure(404, "not_found", str(error), "찾는 항목이 없습니다.")
    if isinstance(error, (InvalidName, InvalidMessage, BadRequest)):
        return Failure(400, "invalid_request", str(error), "요청을 처리할 수 없습니다. 입력을 확인해 주세요.")
    if isinstance(error, PipelineError):  # a dependency refused for a reason retrying cannot fix
        log.warning("chat request failed: %s", error)
        return Failure(502, "dependency_failed", str(error),
                       "검색 또는 답변 서비스가 요청을 거부했습니다. 관리자에게 알려 주세요.")
    log.error("chat request failed unexpectedly", exc_info=error)
    return Failure(500, "internal", f"internal error ({type(error).__name__})",
                   "내부 오류로 처리하지 못했습니다. 잠시 후 다시 시도해 주세요.")
