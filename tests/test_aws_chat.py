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
from pipeline.options import SearchOptions

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
                            index=OnlyKimsIndex(), llm=None, registry=SimpleNamespace(documents=lambda user: []),
                            settings=SimpleNamespace(pipeline=SimpleNamespace(search=SearchOptions())))
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
    assert len(sent) == 1 and sent[0]["type"] == "error" and sent[0]["status"] == 401
    assert sent[0]["reason"] == "no verified token" and "로그인" in sent[0]["message"]


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


# ---------------------------------------------------------------------------- failures reach the client
# The real adapters (Bedrock, SageMaker, OpenSearch) over stubbed clients that fail the way the services
# do, run through the real handler: the client gets an error frame or JSON it can show, never a bare
# Lambda error, and HTTP never outlives API Gateway's 29 s.

CLAIMS = {"requestContext": {"authorizer": {"jwt": {"claims": {"sub": KIM}}}}}
QUESTION = "지방은행이 시중은행으로 전환하려면?"


def post_ask(question: str = QUESTION, session_id: str = "s9", remaining_ms: int = 29_000) -> tuple[int, dict, dict]:
    context = SimpleNamespace(**vars(CONTEXT), get_remaining_time_in_millis=lambda: remaining_ms)
    answer = handler.http_handler({**CLAIMS, "routeKey": "POST /ask", "body": json.dumps(
        {"question": question, "session_id": session_id}, ensure_ascii=False)}, context)
    return answer["statusCode"], answer["headers"], json.loads(answer["body"])


def ws_ask(question: str = QUESTION, session_id: str = "s9") -> tuple[dict, list[dict]]:
    sent: list[dict] = []
    status = handler.handle_message(ws_event({"question": question, "session_id": session_id}), sent.append)
    return status, sent


def stubbed(service: str):
    import boto3
    from botocore.stub import Stubber

    client = boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    stubber.activate()
    return client, stubber


def test_bedrock_throttling_costs_the_prose_not_the_answer_on_http(chat):
    from pipeline.adapters.aws.llm import BedrockLLM

    client, stubber = stubbed("bedrock-runtime")
    stubber.add_client_error("converse", "ThrottlingException", "Too many requests, please wait", 429)
    chat.llm = BedrockLLM(client)
    status, _, body = post_ask()
    assert status == 200
    assert "인가" in body["answer"] and body["citations"][0]["page"] == 3  # the extractive answer
    assert any("LLM failed" in w and "Throttling" in w for w in body["warnings"])
    stubber.assert_no_pending_responses()  # the LLM was really asked


class InterruptedStream:
    """ConverseStream that writes a few words, then Bedrock throttles the rest of the stream."""

    def converse_stream(self, **request):
        return {"stream": [{"contentBlockDelta": {"delta": {"text": "지방은행은 "}}},
                           {"throttlingException": {"message": "Too many tokens, please wait"}}]}


def test_a_stream_throttled_after_its_first_words_ends_in_an_error_frame(chat):
    from pipeline.adapters.aws.llm import BedrockLLM

    chat.llm = BedrockLLM(InterruptedStream())
    status, sent = ws_ask()
    assert [m["type"] for m in sent] == ["token", "error"] and sent[0]["text"] == "지방은행은 "
    error = sent[-1]
    assert status == {"statusCode": 503} and error["status"] == 503 and error["code"] == "unavailable"
    assert "Too many tokens" in error["reason"] and "잠시 후 다시" in error["message"] and error["retry_after"] > 0
    assert chat.history.turns(KIM, "s9") == []  # a broken answer is not kept


class FailingOpenSearch:
    """An OpenSearch client whose cluster answers the alias lookup, then 503s the search."""

    def __init__(self):
        self.transport = SimpleNamespace(perform_request=self.perform_request)

    def perform_request(self, method, url, params=None, body=None):
        return {"hanrag-kim.e5.4": {"aliases": {}}}

    def msearch(self, body):
        from opensearchpy.exceptions import TransportError

        raise TransportError(503, "cluster_block_exception", {"error": "no master"})


def test_an_opensearch_5xx_is_a_503_json_and_an_error_frame(chat):
    from pipeline.adapters.opensearch import OpenSearchIndex

    chat.index = OpenSearchIndex(FailingOpenSearch(), dim=4, model="e5")
    status, headers, body = post_ask()
    assert status == 503 and headers["Retry-After"] == "10"
    assert body["code"] == "unavailable" and "HTTP 503" in body["reason"] and body["detail"] == body["reason"]
    assert "검색" in body["message"]
    ws_status, sent = ws_ask()
    assert ws_status == {"statusCode": 503} and sent == [{"type": "error", **body}]


def test_an_embedding_endpoint_still_starting_is_a_503_not_a_lambda_error(chat):
    from pipeline.adapters.aws.embedders import SageMakerEmbedder

    client, stubber = stubbed("sagemaker-runtime")
    for _ in range(2):
        stubber.add_client_error("invoke_endpoint", "ModelNotReadyException",
                                 "Model is not ready: the endpoint is starting", 429)
    chat.embedder = SageMakerEmbedder(client, "hanrag-embed", dim=4)
    status, _, body = post_ask()
    assert status == 503 and "hanrag-embed" in body["reason"] and "not ready" in body["reason"]
    ws_status, sent = ws_ask()
    assert ws_status == {"statusCode": 503} and sent[-1]["code"] == "unavailable"


class SlowEmbedder(ZeroEmbedder):
    def embed_query(self, text):
        time.sleep(3)
        return super().embed_query(text)


def test_http_gives_up_with_a_504_inside_its_budget(chat):
    chat.embedder = SlowEmbedder()
    started = time.monotonic()
    status, headers, body = post_ask(remaining_ms=2_000)  # the function has 2 s left: 1 s of budget
    took = time.monotonic() - started
    assert status == 504 and body["code"] == "timeout" and "embedding model" in body["reason"]
    assert "제한 시간" in body["message"] and headers["Retry-After"] == "5"
    assert took < 2.0  # answered before the function (and API Gateway) would have cut it off


def test_the_http_budget_never_exceeds_api_gateways_29_seconds(chat, monkeypatch):
    budgets: list[float] = []
    real = handler.Deadline

    def recorded(seconds):
        budgets.append(seconds)
        return real(seconds)

    monkeypatch.setattr(handler, "Deadline", recorded)
    post_ask(remaining_ms=900_000)  # even a function configured with a long timeout
    assert budgets and budgets[0] < 29


class SlowLLM:
    def complete(self, system, prompt):
        time.sleep(4)
        return "늦은 답"

    def stream(self, system, prompt):
        yield self.complete(system, prompt)


def test_an_llm_too_slow_for_the_budget_is_replaced_by_the_extractive_answer(chat):
    chat.llm = SlowLLM()
    started = time.monotonic()
    status, _, body = post_ask(remaining_ms=5_000)  # 4 s of budget, 3 s kept for the fallback
    assert time.monotonic() - started < 4.0
    assert status == 200 and "인가" in body["answer"] and "늦은 답" not in body["answer"]
    assert any("did not answer within" in w for w in body["warnings"])
    assert [t["role"] for t in chat.history.turns(KIM, "s9")] == ["user", "assistant"]


class BrokenIndex:
    def hybrid_search(self, user_id, query, vector, k=10):
        raise KeyError("_source")  # a bug, or an answer of a shape nobody expected


def test_an_unexpected_error_is_a_500_that_shows_no_internals(chat):
    chat.index = BrokenIndex()
    status, _, body = post_ask()
    assert status == 500 and body == {"status": 500, "code": "internal", "reason": "internal error (KeyError)",
                                      "detail": "internal error (KeyError)", "message": body["message"]}
    ws_status, sent = ws_ask()
    assert ws_status == {"statusCode": 500} and sent[-1]["reason"] == "internal error (KeyError)"


def test_bad_requests_are_400_json_with_a_reason(chat):
    answer = handler.http_handler({**CLAIMS, "routeKey": "POST /ask", "body": "{not json"}, CONTEXT)
    assert answer["statusCode"] == 400 and "not JSON" in json.loads(answer["body"])["reason"]
    status, _, body = post_ask(question="   ")
    assert status == 400 and body["reason"] == "메시지가 비어 있습니다 (the message is empty)"


def test_a_closed_connection_ends_the_turn_quietly(chat):
    def gone(message):
        raise handler.ClientGone("c-1")

    assert handler.handle_message(ws_event({"question": QUESTION, "session_id": "s9"}), gone) == {"statusCode": 410}
