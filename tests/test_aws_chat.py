"""The chat Lambda: the user is whoever the verified token says (never the request body), answers
stream as WebSocket messages and both turns land in that user's history."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import jwt
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from chat import handler
from pipeline.adapters.local.database import Database
from pipeline.adapters.local.history import SqliteHistory
from pipeline.models import SearchHit

# Powertools warns when an invocation adds no metric (skips, failures, reads); that is expected here
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")

ISSUER = "https://cognito-idp.ap-northeast-2.amazonaws.com/ap-northeast-2_Example"
CLIENT = "web-client-id"
KIM = "3f1c2a9e-0d4b-4c1e-9a77-5b2f1e0c9d11"  # a Cognito `sub`
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
CONTEXT = SimpleNamespace(function_name="chat", memory_limit_in_mb=512, aws_request_id="req-1",
                          invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:chat")


def token(**claims) -> str:
    base = {"sub": KIM, "iss": ISSUER, "aud": CLIENT, "token_use": "id", "exp": int(time.time()) + 600}
    return jwt.encode({**base, **claims}, KEY, algorithm="RS256")


def authorize(token_value: str | None) -> dict:
    event = {"methodArn": "arn:aws:execute-api:us-east-1:1:api/prod/$connect",
             "queryStringParameters": {"token": token_value} if token_value else None}
    return handler.authorize(event, ISSUER, CLIENT, lambda _: KEY.public_key())


def test_authorizer_allows_a_valid_token_and_passes_its_subject_on():
    policy = authorize(token())
    assert policy["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert policy["context"] == {"user_id": KIM}


@pytest.mark.parametrize("bad", [
    None, "not-a-jwt", token(exp=int(time.time()) - 10), token(aud="another-app"), token(iss="https://evil"),
    token(token_use="refresh"),
    jwt.encode({"sub": KIM, "iss": ISSUER, "aud": CLIENT, "token_use": "id", "exp": int(time.time()) + 60},
               rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256"),
])
def test_authorizer_denies_missing_expired_foreign_or_forged_tokens(bad):
    policy = authorize(bad)
    assert policy["policyDocument"]["Statement"][0]["Effect"] == "Deny" and policy["context"] == {}


class OnlyKimsIndex:
    """A SearchIndex holding one chunk of Kim's; any other user has nothing."""

    def hybrid_search(self, user_id, query, vector, k=10):
        if user_id != KIM:
            return []
        return [SearchHit("c1", "d1", "보도자료.pdf", "지방은행", 3, 3, "인가 절차", "text",
                          "지방은행이 시중은행으로 전환하려면 금융위원회의 인가를 받아야 합니다.", 0.9)]


class ZeroEmbedder:
    dim, name = 4, "zero"

    def embed_query(self, text):
        return np.zeros(4, dtype=np.float32)


@pytest.fixture
def chat(tmp_path, monkeypatch):
    parts = SimpleNamespace(history=SqliteHistory(Database(tmp_path / "chat.db")), embedder=ZeroEmbedder(),
                            index=OnlyKimsIndex(), llm=None, registry=SimpleNamespace(documents=lambda user: []))
    monkeypatch.setattr(handler, "components", lambda: parts)
    return parts


def ws_event(body: dict, user_id: str | None = KIM) -> dict:
    authorizer = {"user_id": user_id} if user_id else {}
    return {"requestContext": {"routeKey": "$default", "connectionId": "c-1", "domainName": "x", "stage": "prod",
                               "authorizer": authorizer}, "body": json.dumps(body, ensure_ascii=False)}


def test_websocket_streams_tokens_then_the_cited_answer_and_keeps_history(chat):
    sent: list[dict] = []
    body = {"action": "ask", "question": "지방은행이 시중은행으로 전환하려면?", "session_id": "s1",
            "user_id": "someone-else"}  # ignored: the user is the token's
    assert handler.handle_message(ws_event(body), sent.append) == {"statusCode": 200}
    tokens = [m["text"] for m in sent if m["type"] == "token"]
    final = sent[-1]
    assert final["type"] == "final" and final["session_id"] == "s1"
    assert "".join(tokens) == final["answer"] and "인가" in final["answer"]
    assert final["citations"][0]["source"] == "보도자료.pdf" and final["citations"][0]["page"] == 3
    turns = chat.history.turns(KIM, "s1")
    assert [t["role"] for t in turns] == ["user", "assistant"] and turns[1]["citations"][0]["page"] == 3
    assert chat.history.sessions("someone-else") == []


def test_websocket_without_a_verified_user_is_refused(chat):
    sent: list[dict] = []
    assert handler.handle_message(ws_event({"question": "질문"}, user_id=None), sent.append) == {"statusCode": 401}
    assert sent == [{"type": "error", "error": "no verified token"}]


def test_http_api_uses_the_jwt_claims_and_answers(chat):
    claims = {"requestContext": {"authorizer": {"jwt": {"claims": {"sub": KIM}}}}}
    asked = handler.http_handler({**claims, "routeKey": "POST /ask",
                                  "body": json.dumps({"question": "시중은행 전환 인가", "session_id": "s2"})}, CONTEXT)
    assert asked["statusCode"] == 200
    answer = json.loads(asked["body"])
    assert answer["citations"][0]["source"] == "보도자료.pdf" and answer["session_id"] == "s2"
    sessions = handler.http_handler({**claims, "routeKey": "GET /sessions"}, CONTEXT)
    assert json.loads(sessions["body"]) == ["s2"]
    refused = handler.http_handler({"routeKey": "GET /sessions", "requestContext": {}}, CONTEXT)
    assert refused["statusCode"] == 401
    bad = handler.http_handler({**claims, "routeKey": "GET /sessions/{session_id}",
                                "pathParameters": {"session_id": "../../x"}}, CONTEXT)
    assert bad["statusCode"] == 400
