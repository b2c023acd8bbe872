"""The chat API on AWS: an HTTP API (documents, sessions, history, one-shot answers) and a WebSocket
API that streams answers, both behind a Cognito user pool.

The user id is always the token's `sub` claim (a lower-case UUID, which is also the user's upload
prefix `uploads/<sub>/`), never anything in the request body:
- HTTP API: API Gateway's JWT authorizer has verified the token; the claims arrive in
  `requestContext.authorizer.jwt.claims`.
- WebSocket API: browsers cannot set headers on a WebSocket, so the `$connect` route has a Lambda
  authorizer (`authorize`) that verifies the token from the `token` query parameter against the pool's
  keys and hands `user_id` to every later message as `requestContext.authorizer.user_id`.

Why a WebSocket: the Python Lambda runtime cannot stream an HTTP response body, and a WebSocket lets
the function push each piece of the answer (`post_to_connection`) as the LLM writes it.

One question is one `chat.service.ChatService.respond`, as in `hanrag serve`: history of the session →
summary request or standalone query → the user's own index → answer (extractive when the LLM
fails) → both turns saved in the DynamoDB history table. Each turn has a time budget (`chat.deadline`),
and every failure reaches the client as JSON or an error frame (`chat.failures`), never as a bare
Lambda error.

`account_handler` serves the routes that write a user's data (`chat.account`: pre-signed uploads,
deletes, offboarding) from a function of its own, so the chat functions' roles stay read-only there.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from chat import account
from chat.deadline import Deadline, TimedEmbedder, TimedIndex, TimedLLM
from chat.failures import BadRequest, Failure, Unauthorized, failure_of
from chat.retrieve import Retriever
from chat.service import ChatService, ChatTurn
from pipeline.definition import Env
from pipeline.errors import InvalidName
from pipeline.lambdas.wiring import components
from pipeline.names import validate_session_id, validate_user_id

logger = Logger(service="hanrag-chat")
metrics = Metrics(namespace="hanrag", service="chat")
tracer = Tracer(service="hanrag-chat")

# API Gateway ends an HTTP request at 29 s (a cold start's init counts too): the answer must be
# written by then, with a margin for the response itself.
HTTP_BUDGET_SECONDS = 25.0
# kept back from a turn's budget when the LLM is called: the extractive answer and the history writes
FALLBACK_SECONDS = 3.0
# at most this long for the follow-up rewrite, so the answer still has time
REWRITE_SECONDS = 6.0
# a WebSocket turn stops this long before the function's own timeout, so its error frame still goes out
WEBSOCKET_MARGIN_SECONDS = 3.0


class _Verified:
    """The user API Gateway's authorizer verified, and the JSON body, as both kinds of request give them."""

    user_id: str | None
    body: str | None

    def user(self) -> str:
        if not self.user_id:
            raise Unauthorized("no verified token")
        return validate_user_id(self.user_id)

    def json(self) -> dict:
        try:
            body = json.loads(self.body or "{}")
        except ValueError as error:
            raise BadRequest(f"the request body is not JSON: {error}") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        return body


@dataclass(frozen=True)
class HttpRequest(_Verified):
    """What the routes read of an API Gateway HTTP API event (payload format 2.0): read once here, so
    no route indexes the raw event."""

    route: str
    user_id: str | None  # the JWT authorizer's verified `sub`; None when the event carries no claims
    path: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None

    @classmethod
    def from_event(cls, event: dict) -> HttpRequest:
        claims = ((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt", {}).get("claims") or {}
        return cls(route=event.get("routeKey", ""), user_id=claims.get("sub"),
                   path=event.get("pathParameters") or {}, query=event.get("queryStringParameters") or {},
                   body=event.get("body"))


@dataclass(frozen=True)
class WebSocketMessage(_Verified):
    """What the chat reads of an API Gateway WebSocket event: the route, where to answer, the user the
    `$connect` authorizer verified, and the message."""

    route: str
    connection_id: str
    endpoint: str  # the management API that posts back to this connection
    user_id: str | None
    body: str | None

    @classmethod
    def from_event(cls, event: dict) -> WebSocketMessage:
        context = event.get("requestContext") or {}
        return cls(route=context.get("routeKey", ""), connection_id=context.get("connectionId", ""),
                   endpoint=f"https://{context.get('domainName', '')}/{context.get('stage', '')}",
                   user_id=(context.get("authorizer") or {}).get("user_id"), body=event.get("body"))


def remaining_seconds(context: Any) -> float | None:
    """What the Lambda runtime still allows this invocation (None outside Lambda)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining() / 1000 if callable(remaining) else None


# ---------------------------------------------------------------------------- one question

def chat_service(deadline: Deadline, whole: bool = False) -> ChatService:
    """The same `ChatService` as `hanrag serve`, over this container's adapters, each remote call held to
    `deadline`: the same limits, errors, summary requests and LLM fallback. `whole`: the caller shows
    nothing before the final answer (HTTP), so even a late LLM can be replaced by the extractive answer."""
    c = components()
    llm = None if c.llm is None else TimedLLM(c.llm, deadline, reserve=FALLBACK_SECONDS,
                                              complete_limit=REWRITE_SECONDS, whole=whole)
    retriever = Retriever(TimedEmbedder(c.embedder, deadline), TimedIndex(c.index, deadline),
                          c.settings.pipeline.search)
    return ChatService(retriever, c.history, c.registry, llm)


def ask(user_id: str, body: dict, deadline: Deadline, whole: bool = False) -> Iterator[dict]:
    """The answer to a request's `question`, in its `session_id` (a new session without one), as
    messages: `{"type": "token"}` pieces as it is written, then one `{"type": "final"}`."""
    session_id = validate_session_id(body.get("session_id") or uuid.uuid4().hex)
    started = time.perf_counter()
    for event in chat_service(deadline, whole).respond(user_id, session_id, str(body.get("question", ""))):
        if isinstance(event, ChatTurn):
            yield {"type": "final", "session_id": session_id, **event.to_dict()}
        else:
            yield {"type": "token", "text": event}
    metrics.add_metric(name="ChatLatency", unit=MetricUnit.Seconds, value=round(time.perf_counter() - started, 3))


# ---------------------------------------------------------------------------- HTTP API

def _response(status: int, body: Any, headers: dict[str, str] | None = None) -> dict:
    return {"statusCode": status, "headers": {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
            "body": json.dumps(body, ensure_ascii=False)}


def _failed(failure: Failure) -> dict:
    retry = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
    return _response(failure.status, failure.body(), retry)


def _routes(request: HttpRequest, user_id: str, deadline: Deadline) -> dict | None:
    c = components()
    route, params = request.route, request.path
    if route == "GET /documents":
        return _response(200, list(c.registry.documents(user_id)))
    if route == "GET /sessions":
        return _response(200, c.history.sessions(user_id))
    if route == "GET /sessions/{session_id}":
        return _response(200, c.history.turns(user_id, validate_session_id(params.get("session_id", ""))))
    if route == "DELETE /sessions/{session_id}":
        removed = c.history.delete_session(user_id, validate_session_id(params.get("session_id", "")))
        return _response(200, {"deleted": removed})
    if route == "POST /ask":
        messages = ask(user_id, request.json(), deadline, whole=True)
        final = [m for m in messages if m["type"] == "final"][0]  # every message: the turns are saved after it
        return _response(200, final)
    return None


def _account_routes(request: HttpRequest, user_id: str, deadline: Deadline) -> dict | None:
    """The routes that write a user's data, served by their own function (its role may write uploads,
    the registry and the index; the chat function's may not)."""
    c = components()
    route = request.route
    s3, bucket = account.presigning_client(c.settings.region), c.settings.bucket
    if route == "POST /uploads":
        body = request.json()
        grant = account.grant_upload(s3, bucket, user_id, str(body.get("name") or ""), body.get("size"),
                                     body.get("content_type"), c.settings.pipeline.max_file_bytes)
        return _response(200, grant.to_dict())
    if route == "DELETE /uploads":
        name = request.query.get("name") or ""
        return _response(202, account.delete_upload(s3, bucket, user_id, name))
    if route == "DELETE /me":
        if request.json().get("confirm") is not True:
            raise BadRequest('send {"confirm": true}: this deletes every file, index entry, run and chat of yours')
        tables = {"documents": c.table(c.settings.documents_table), "runs": c.table(c.settings.runs_table),
                  "history": c.table(c.settings.history_table),
                  "idempotency": c.table(c.settings.idempotency_table) if c.settings.idempotency_table else None,
                  "ocr_cache": c.table(c.settings.ocr_cache_table) if c.settings.ocr_cache_table else None}
        removed = account.offboard(user_id, c.client("s3"), bucket, c.index, tables)
        logger.info("user offboarded", extra={"removed": removed})
        return _response(200, {"user_id": user_id, "removed": removed})
    return None


def _serve(event: dict, context, routes: Callable[[HttpRequest, str, Deadline], dict | None]) -> dict:
    """Every answer is JSON, failures too (status, code, reason, message), within API Gateway's 29 s;
    a route that `routes` does not serve (it answers None) is a 404."""
    remaining = remaining_seconds(context)
    budget = HTTP_BUDGET_SECONDS if remaining is None else min(HTTP_BUDGET_SECONDS, remaining - 1.0)
    try:
        request = HttpRequest.from_event(event)
        answer = routes(request, request.user(), Deadline(budget))
    except Exception as error:
        return _failed(failure_of(error))
    return answer or _failed(Failure(404, "no_route", f"no route {request.route!r}", "없는 주소입니다."))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def http_handler(event: dict, context) -> dict:
    return _serve(event, context, _routes)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def account_handler(event: dict, context) -> dict:
    """POST /uploads (a pre-signed PUT URL), DELETE /uploads?name=… and DELETE /me (offboarding)."""
    return _serve(event, context, _account_routes)


# ---------------------------------------------------------------------------- WebSocket API

@cache
def _connections(endpoint: str):
    import boto3

    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint,
                        region_name=components().settings.region)


class ClientGone(Exception):
    """The WebSocket closed while its answer was being written: nobody is left to tell."""


def websocket_sender(message: WebSocketMessage) -> Callable[[dict], None]:
    """post_to_connection back to the caller's connection, one JSON message per call."""
    client = _connections(message.endpoint)
    connection_id = message.connection_id

    def send(message: dict) -> None:
        try:
            client.post_to_connection(ConnectionId=connection_id,
                                      Data=json.dumps(message, ensure_ascii=False).encode())
        except client.exceptions.GoneException as error:
            raise ClientGone(connection_id) from error

    return send


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def websocket_handler(event: dict, context) -> dict:
    message = WebSocketMessage.from_event(event)
    if message.route in ("$connect", "$disconnect"):  # the authorizer has already run on $connect
        return {"statusCode": 200}
    remaining = remaining_seconds(context)
    deadline = None if remaining is None else Deadline(remaining - WEBSOCKET_MARGIN_SECONDS)
    return handle_message(event, websocket_sender(message), deadline)


def handle_message(event: dict, send: Callable[[dict], None], deadline: Deadline | None = None) -> dict:
    """Any message is a question, `{"action": "ask", "question": "…", "session_id": "…"}`: answered
    with `{"type": "token"}` messages as the answer is written, then one `{"type": "final"}`; or, when
    anything fails (before or after the first token), one `{"type": "error"}` frame with the status,
    reason and message an HTTP client would get."""
    deadline = deadline or Deadline(HTTP_BUDGET_SECONDS * 4)
    try:
        message = WebSocketMessage.from_event(event)
        for frame in ask(message.user(), message.json(), deadline):
            send(frame)
    except ClientGone:
        logger.info("the connection closed before the answer was sent")
        return {"statusCode": 410}
    except Exception as error:
        failure = failure_of(error)
        try:
            send(failure.frame())
        except ClientGone:
            logger.info("the connection closed before the error was sent", extra={"reason": failure.reason})
        return {"statusCode": failure.status}
    return {"statusCode": 200}


# ---------------------------------------------------------------------------- WebSocket authorizer

def verify_token(token: str, *, issuer: str, client_id: str, signing_key: Callable[[str], Any]) -> dict:
    """Claims of a Cognito ID or access token, after checking signature, expiry, issuer and client."""
    import jwt

    try:
        key = signing_key(token)
        claims = jwt.decode(token, key=key, algorithms=["RS256"], issuer=issuer,
                            options={"verify_aud": False, "require": ["exp", "iss", "sub", "token_use"]})
    except jwt.PyJWTError as error:
        raise Unauthorized(f"token rejected: {error}") from error
    audience = claims.get("aud") if claims["token_use"] == "id" else claims.get("client_id")
    if audience != client_id or claims["token_use"] not in ("id", "access"):
        raise Unauthorized("token is not for this app client")
    return claims


@cache
def cognito_signing_key(issuer: str) -> Callable[[str], Any]:
    """The key a token of the pool was signed with; the pool's key set is fetched once per container."""
    import jwt

    client = jwt.PyJWKClient(f"{issuer}/.well-known/jwks.json", cache_keys=True)
    return lambda token: client.get_signing_key_from_jwt(token).key


def authorize(event: dict, issuer: str, client_id: str, signing_key: Callable[[str], Any]) -> dict:
    """The IAM policy API Gateway wants from a REQUEST authorizer: allow this connection, with the
    verified user id in the context; anything else is denied."""
    token = (event.get("queryStringParameters") or {}).get("token", "")
    try:
        if not token:
            raise Unauthorized("no token: connect with ?token=<Cognito ID token>")
        claims = verify_token(token, issuer=issuer, client_id=client_id, signing_key=signing_key)
        user_id = validate_user_id(claims["sub"])
    except (Unauthorized, InvalidName) as error:
        logger.info("connection refused", extra={"reason": str(error)})
        return _policy("anonymous", "Deny", event["methodArn"], {})
    return _policy(user_id, "Allow", event["methodArn"], {"user_id": user_id})


def _policy(principal: str, effect: str, resource: str, context: dict) -> dict:
    return {
        "principalId": principal,
        "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource},
        ]},
        "context": context,
    }


@logger.inject_lambda_context(clear_state=True)
def authorizer_handler(event: dict, context) -> dict:
    issuer, client_id = os.environ[Env.COGNITO_ISSUER], os.environ[Env.COGNITO_CLIENT_ID]
    return authorize(event, issuer, client_id, cognito_signing_key(issuer))
