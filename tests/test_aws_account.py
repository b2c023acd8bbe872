"""A user's files through the chat API, under moto: a pre-signed PUT for `uploads/<their sub>/…` (and
no other prefix), delete through the same key with the pipeline's delete path behind it, and
offboarding that leaves nothing of one user and everything of another. The uploads run through the
synthesized state machine and the real handlers, as in test_aws_pipeline."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from conftest import BANK, SAMPLES
from test_aws_pipeline import BUCKET, aws_environment, object_created, run, s3_event

from chat import handler

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")

KIM = "3f1c2a9e-0d4b-4c1e-9a77-5b2f1e0c9d11"  # Cognito subs
LEE = "8a0d5e21-7c3b-4f6a-b1d2-0e9f8c7b6a54"
CONTEXT = SimpleNamespace(function_name="account", memory_limit_in_mb=1024, aws_request_id="req-1",
                          invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:account",
                          get_remaining_time_in_millis=lambda: 29_000)
NOTE = ("청년 주거 지원 사업 안내\n\n"
        "만 19세부터 34세까지의 청년은 월세를 최대 12개월 동안 20만 원까지 지원받을 수 있습니다.\n")


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    with aws_environment(tmp_path_factory.mktemp("hanrag-account")) as environment:
        yield environment


def call(user: str | None, route: str, body: dict | None = None, query: dict | None = None, chat: bool = False):
    claims = {"requestContext": {"authorizer": {"jwt": {"claims": {"sub": user}}}}} if user else {"requestContext": {}}
    event = {**claims, "routeKey": route, "queryStringParameters": query,
             "body": None if body is None else json.dumps(body, ensure_ascii=False)}
    answer = (handler.http_handler if chat else handler.account_handler)(event, CONTEXT)
    return answer["statusCode"], json.loads(answer["body"])


def put_through(grant: dict, data: bytes):
    """What a browser does with the grant: PUT the bytes to the URL with the headers it names (moto
    answers the request in-process)."""
    import requests

    return requests.put(grant["url"], data=data, headers=grant["headers"], timeout=10)


def upload(aws, user: str, name: str, data: bytes, content_type: str | None = None) -> dict:
    """Ask for a URL, PUT the file, then run the execution the upload's S3 event starts."""
    status, grant = call(user, "POST /uploads", {"name": name, "size": len(data), "content_type": content_type})
    assert status == 200, grant
    assert put_through(grant, data).status_code == 200
    version = aws.s3.head_object(Bucket=BUCKET, Key=grant["key"])["VersionId"]
    execution = run(aws, object_created(grant["key"], version))
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    return grant


def test_a_presigned_url_puts_the_file_under_the_users_own_prefix_and_it_is_ingested(aws):
    data = (SAMPLES / BANK).read_bytes()
    grant = upload(aws, KIM, BANK, data, "application/pdf")
    assert grant["key"] == f"uploads/{KIM}/{BANK}" and grant["source"] == BANK and grant["method"] == "PUT"
    url = urlsplit(grant["url"])
    assert url.path.endswith(quote(f"/uploads/{KIM}/{BANK}"))
    signed = parse_qs(url.query)
    # the declared length and type are signed: S3 refuses a PUT whose Content-Length or Content-Type differs
    assert signed["X-Amz-SignedHeaders"] == ["content-length;content-type;host"]
    assert signed["X-Amz-Expires"] == ["900"] and grant["headers"] == {"Content-Type": "application/pdf"}
    assert aws.s3.get_object(Bucket=BUCKET, Key=grant["key"])["Body"].read() == data
    status, documents = call(KIM, "GET /documents", chat=True)
    assert status == 200 and [d["source"] for d in documents] == [BANK]
    question = {"question": "지방은행의 시중은행 전환 인가 절차", "session_id": "s1"}
    status, answer = call(KIM, "POST /ask", question, chat=True)
    assert status == 200 and answer["citations"][0]["source"] == BANK


@pytest.mark.parametrize("name", [f"../{LEE}/x.pdf", f"../../uploads/{LEE}/x.pdf", "a/../../b.pdf", "", "   ",
                                  "x\u0000.pdf", "보고서\n.pdf", "a" * 600])
def test_no_name_reaches_outside_the_users_prefix(aws, name):
    status, body = call(KIM, "POST /uploads", {"name": name, "size": 10})
    assert status == 400 and body["code"] == "invalid_request" and body["reason"]


def test_every_granted_key_is_the_callers_whatever_the_body_says(aws):
    for name in ("보고서 1.pdf", "/etc/passwd", "2024/상반기/결과.hwp", f"{LEE}/theirs.pdf", "./a.txt"):
        status, grant = call(KIM, "POST /uploads", {"name": name, "size": 10, "user_id": LEE})
        assert status == 200 and grant["key"].startswith(f"uploads/{KIM}/"), grant
        assert urlsplit(grant["url"]).path.startswith(quote(f"/uploads/{KIM}/")) or \
            urlsplit(grant["url"]).path.startswith(quote(f"/{BUCKET}/uploads/{KIM}/"))
    assert call(None, "POST /uploads", {"name": "a.pdf", "size": 10})[0] == 401


def test_size_and_type_limits(aws):
    limit = aws.components.settings.pipeline.max_file_bytes
    status, body = call(KIM, "POST /uploads", {"name": "big.pdf", "size": limit + 1})
    assert status == 413 and "limit is 200 MB" in body["reason"]
    for size in (0, -5, "12", None, True):
        assert call(KIM, "POST /uploads", {"name": "a.pdf", "size": size})[0] == 400
    status, body = call(KIM, "POST /uploads", {"name": "page.html", "size": 10, "content_type": "text/html"})
    assert status == 400 and "octet-stream" in body["reason"]
    status, grant = call(KIM, "POST /uploads", {"name": "표.hwp", "size": 10})  # no type given, none guessed
    assert status == 200 and grant["headers"] == {"Content-Type": "application/octet-stream"}


def test_delete_removes_the_object_and_the_pipeline_then_removes_its_chunks(aws):
    upload(aws, LEE, "청년주거.txt", NOTE.encode())
    c = aws.components
    question = "청년 월세 지원"
    assert c.index.hybrid_search(LEE, question, c.embedder.embed_query(question), 3)
    status, body = call(KIM, "DELETE /uploads", query={"name": "청년주거.txt"})  # not Kim's file
    assert status == 404
    status, body = call(LEE, "DELETE /uploads", query={"name": "청년주거.txt"})
    assert status == 202 and body["key"] == f"uploads/{LEE}/청년주거.txt"
    versions = aws.s3.list_object_versions(Bucket=BUCKET, Prefix=f"uploads/{LEE}/청년주거.txt")
    assert [m["IsLatest"] for m in versions["DeleteMarkers"]] == [True]  # deleted, as `aws s3 rm` would
    # the S3 event of that delete reaches the pipeline's delete function (the ObjectDeleted rule)
    from pipeline.lambdas.ingest import delete_handler

    result = delete_handler(s3_event("Object Deleted", body["key"], reason="DeleteObject"), CONTEXT)
    assert result["chunks_removed"] >= 1
    assert c.index.hybrid_search(LEE, question, c.embedder.embed_query(question), 3) == []
    assert c.registry.document(LEE, "청년주거.txt")["status"] == "deleted"


def everything_of(aws, user: str) -> dict[str, int]:
    """What the stores still hold that names `user`: objects and versions, items of every table (the
    idempotency table by content), searchable chunks."""
    import boto3

    held: dict[str, int] = {}
    for prefix in ("uploads", "artifacts"):
        listed = aws.s3.list_object_versions(Bucket=BUCKET, Prefix=f"{prefix}/{user}/")
        held[prefix] = len(listed.get("Versions", [])) + len(listed.get("DeleteMarkers", []))
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    for table in dynamodb.list_tables()["TableNames"]:
        items = dynamodb.scan(TableName=table)["Items"]
        held[table] = sum(user in json.dumps(item, ensure_ascii=False) for item in items)
    held["chunks"] = aws.components.index.count(user)
    return held


def test_offboarding_leaves_nothing_of_the_user_and_everything_of_another(aws):
    upload(aws, KIM, "청년주거.txt", NOTE.encode())
    upload(aws, LEE, "주거안내.txt", NOTE.replace("청년", "신혼부부").encode())
    for user in (KIM, LEE):
        assert call(user, "POST /ask", {"question": "월세 지원 기간", "session_id": "s2"}, chat=True)[0] == 200
    lee_before = everything_of(aws, LEE)
    kim_before = everything_of(aws, KIM)
    assert kim_before["uploads"] >= 1 and kim_before["artifacts"] and kim_before["chunks"]
    assert sum(kim_before.values()) > kim_before["uploads"] + kim_before["artifacts"] + kim_before["chunks"]

    status, body = call(KIM, "DELETE /me", {})
    assert status == 400 and "confirm" in body["reason"]  # nothing is removed without the confirmation
    assert everything_of(aws, KIM) == kim_before
    status, body = call(KIM, "DELETE /me", {"confirm": True})
    assert status == 200 and body["user_id"] == KIM
    removed = body["removed"]
    assert removed["uploads"] >= 1 and removed["chunks"] == kim_before["chunks"] and removed["history"] >= 2
    assert removed["documents"] >= 1 and removed["runs"] >= 1 and removed["idempotency_records"] >= 1

    left = everything_of(aws, KIM)
    assert set(left.values()) == {0}, left
    assert everything_of(aws, LEE) == lee_before
    c = aws.components
    assert c.index.hybrid_search(KIM, "월세", c.embedder.embed_query("월세"), 5) == []
    assert c.index.hybrid_search(LEE, "월세", c.embedder.embed_query("월세"), 5)[0].source == "주거안내.txt"
    assert call(KIM, "GET /sessions", chat=True) == (200, [])
    # the pipeline's delete path, run for the deletes offboarding made, fails nothing; it leaves one
    # record of the delete (to order it against a late ingest), which DynamoDB's TTL removes in 7 days
    import boto3

    from pipeline.adapters.aws.dynamodb import TOMBSTONE_SECONDS
    from pipeline.lambdas.ingest import delete_handler

    delete_handler(s3_event("Object Deleted", f"uploads/{KIM}/청년주거.txt", reason="DeleteObject"), CONTEXT)
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(c.settings.documents_table)
    records = table.scan()["Items"]
    tombstones = [r for r in records if r["user_id"] == KIM]
    assert [(r["source"], r["status"]) for r in tombstones] == [("청년주거.txt", "deleted")]
    assert 0 < int(tombstones[0]["expires_at"]) - time.time() <= TOMBSTONE_SECONDS
    assert {k: v for k, v in everything_of(aws, KIM).items() if k != c.settings.documents_table} == dict.fromkeys(
        [k for k in left if k != c.settings.documents_table], 0)
