"""AWS adapters as data: SageMaker/Bedrock bodies, SNS messages, error translation, and the DynamoDB
tables under moto. The OpenSearch index is tested against a real node (tests/test_index_contract.py)."""

from __future__ import annotations

import json
import os
import time
from unittest import mock

import numpy as np
import pytest
from botocore.exceptions import ClientError

from pipeline.adapters.aws.embedders import BedrockEmbedder, SageMakerEmbedder, cohere_request, titan_request
from pipeline.adapters.aws.errors import aws_call
from pipeline.adapters.aws.llm import BedrockLLM, SageMakerLLM, converse_request, tgi_stream_text
from pipeline.adapters.aws.sns import message_body, message_subject
from pipeline.errors import DimensionMismatch, InvalidName, TransientError
from pipeline.models import Chunk, DocumentRef, RunRecord, StageTiming

REF = DocumentRef("kim", "보도자료.pdf", "a" * 64)


def chunk(i: int, version: str = "a" * 64) -> Chunk:
    return Chunk(chunk_id=f"doc-{i}", document_id=REF.document_id, version=version, source=REF.source,
                 title="지방은행 전환", page_start=i + 1, page_end=i + 1, heading="인가 절차", kind="text",
                 text=f"시중은행 전환 인가 절차 {i}", tokens=10)


# ---------------------------------------------------------------------------- embedders and LLMs

class Body:
    def __init__(self, payload) -> None:
        self._data = json.dumps(payload).encode()

    def read(self) -> bytes:
        return self._data


def test_sagemaker_embedder_sends_e5_prefixes_in_batches_and_normalizes():
    sent: list[dict] = []

    def invoke_endpoint(**request):
        body = json.loads(request["Body"])
        sent.append(body)
        return {"Body": Body([[3.0, 4.0]] * len(body["inputs"]))}

    client = mock.Mock(invoke_endpoint=mock.Mock(side_effect=invoke_endpoint))
    embedder = SageMakerEmbedder(client, "e5-endpoint", dim=2, batch_size=2)
    vectors = embedder.embed_passages(["가", "나", "다"])
    assert [b["inputs"] for b in sent] == [["passage: 가", "passage: 나"], ["passage: 다"]]
    assert np.allclose(vectors, [[0.6, 0.8]] * 3)
    embedder.embed_query("질문")
    assert sent[-1]["inputs"] == ["query: 질문"]


def test_a_malformed_answer_is_transient_but_a_wrong_vector_size_is_permanent_with_a_reason():
    client = mock.Mock(invoke_endpoint=mock.Mock(return_value={"Body": Body([1.0, 2.0])}))
    with pytest.raises(TransientError, match="expected"):
        SageMakerEmbedder(client, "e5", dim=2).embed_passages(["가"])
    client = mock.Mock(invoke_endpoint=mock.Mock(return_value={"Body": Body([[1.0, 2.0, 3.0]])}))
    with pytest.raises(DimensionMismatch, match="returns 3-dimensional vectors .* is 2") as caught:
        SageMakerEmbedder(client, "e5", dim=2).embed_passages(["가"])
    assert not caught.value.retryable and not isinstance(caught.value, TransientError)
    titan = mock.Mock(invoke_model=mock.Mock(return_value={"body": Body({"embedding": [1.0] * 512})}))
    with pytest.raises(DimensionMismatch, match="returns 512-dimensional"):
        BedrockEmbedder(titan, "amazon.titan-embed-text-v2:0", dim=1024).embed_query("질문")


def test_bedrock_refuses_a_dimension_the_model_cannot_produce():
    client = mock.Mock()
    for model, dim in (("amazon.titan-embed-text-v2:0", 384), ("amazon.titan-embed-text-v2:0", 768),
                       ("cohere.embed-multilingual-v3", 384), ("cohere.embed-multilingual-v3", 512)):
        with pytest.raises(DimensionMismatch, match=f"not {dim}"):
            BedrockEmbedder(client, model, dim=dim)
    for model, dim in (("amazon.titan-embed-text-v2:0", 256), ("amazon.titan-embed-text-v2:0", 512),
                       ("amazon.titan-embed-text-v2:0", 1024), ("cohere.embed-multilingual-v3", 1024)):
        assert BedrockEmbedder(client, model, dim=dim).dim == dim
    assert BedrockEmbedder(client, "cohere.embed-multilingual-v3").dim == 1024


def test_bedrock_embedding_bodies():
    assert titan_request("문장", 1024) == {"inputText": "문장", "dimensions": 1024, "normalize": True}
    assert cohere_request(["문장"], "search_query") == {"texts": ["문장"], "input_type": "search_query",
                                                          "truncate": "END"}
    client = mock.Mock(invoke_model=mock.Mock(return_value={"body": Body({"embeddings": [[1.0] + [0.0] * 1023]})}))
    BedrockEmbedder(client, "cohere.embed-multilingual-v3", dim=1024).embed_query("질문")
    assert json.loads(client.invoke_model.call_args.kwargs["body"])["input_type"] == "search_query"
    with pytest.raises(ValueError, match="unsupported"):
        BedrockEmbedder(client, "amazon.titan-embed-text-v1")


def test_bedrock_llm_converse_and_stream():
    request = converse_request("m", "시스템", "질문", 100, 0.2)
    assert request["system"] == [{"text": "시스템"}]
    assert request["messages"] == [{"role": "user", "content": [{"text": "질문"}]}]
    client = mock.Mock()
    client.converse.return_value = {"output": {"message": {"content": [{"text": "답변입니다."}]}}}
    client.converse_stream.return_value = {"stream": [
        {"messageStart": {"role": "assistant"}}, {"contentBlockDelta": {"delta": {"text": "답"}}},
        {"contentBlockDelta": {"delta": {"text": "변"}}}, {"messageStop": {}}]}
    llm = BedrockLLM(client)
    assert llm.complete("s", "p") == "답변입니다."
    assert "".join(llm.stream("s", "p")) == "답변"
    assert client.converse.call_args.kwargs["modelId"].startswith("global.anthropic.claude")
    client.converse_stream.return_value = {"stream": [{"throttlingException": {"message": "slow down"}}]}
    with pytest.raises(TransientError, match="slow down"):
        list(llm.stream("s", "p"))


def test_sagemaker_llm_reads_jumpstart_answers_and_tgi_streams_split_anywhere():
    client = mock.Mock(invoke_endpoint=mock.Mock(return_value={"Body": Body([{"generated_text": "요약"}])}))
    assert SageMakerLLM(client, "llm").complete("s", "p") == "요약"
    assert json.loads(client.invoke_endpoint.call_args.kwargs["Body"])["parameters"]["max_new_tokens"] == 1024
    events = 'data:{"token":{"text":"안녕"}}\n\ndata:{"token":{"text":"하세요","special":false}}\n\n'.encode()
    parts = [events[:7], events[7:30], events[30:]]
    assert "".join(tgi_stream_text(parts)) == "안녕하세요"


def test_throttling_becomes_transient_and_access_denied_does_not():
    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
                             "ResponseMetadata": {"HTTPStatusCode": 400}}, "InvokeEndpoint")
    with pytest.raises(TransientError, match="worth retrying"), aws_call("SageMaker endpoint e5"):
        raise throttled
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"},
                          "ResponseMetadata": {"HTTPStatusCode": 403}}, "InvokeEndpoint")
    with pytest.raises(ClientError), aws_call("SageMaker endpoint e5"):
        raise denied


# ---------------------------------------------------------------------------- SNS

def test_sns_message_says_what_happened_and_why():
    record = RunRecord("r1", "kim", "보고서/" + "긴 이름" * 40 + ".pdf", "d", "v", "failed", 0.0,
                       stages=[StageTiming("extract", 1.25)], reason="encrypted PDF: a password is required",
                       failed_stage="extract")
    subject = message_subject(record)
    assert subject.startswith("hanrag FAILED: 보고서/") and len(subject) < 100 and "\n" not in subject
    body = message_body(record)
    assert "reason: encrypted PDF: a password is required (stage extract)" in body
    assert "extract 1.25" in body
    assert json.loads(body.splitlines()[-1])["run_id"] == "r1"


# ---------------------------------------------------------------------------- DynamoDB (moto)

@pytest.fixture
def tables():
    import boto3
    from moto import mock_aws

    env = {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1"}
    with mock.patch.dict(os.environ, env), mock_aws():
        resource = boto3.resource("dynamodb", region_name="us-east-1")
        made = {}
        for name, sort_key in (("documents", "source"), ("runs", "run_key"), ("history", "turn_key")):
            made[name] = resource.create_table(
                TableName=name, BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"},
                           {"AttributeName": sort_key, "KeyType": "RANGE"}],
                AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"},
                                      {"AttributeName": sort_key, "AttributeType": "S"}])
        yield made


def test_registry_versions_deletion_and_runs(tables):
    from pipeline.adapters.aws.dynamodb import DynamoRegistry

    registry = DynamoRegistry(tables["documents"], tables["runs"])
    assert registry.current_version("kim", REF.source) is None
    registry.save_document(REF, pages=7, chunks=15, summary="요약", title="제목")
    assert registry.current_version("kim", REF.source) == REF.version
    assert registry.current_version("lee", REF.source) is None
    assert [d["source"] for d in registry.documents("kim")] == [REF.source]
    for i, status in enumerate(("succeeded", "failed")):
        registry.save_run(RunRecord(f"r{i}", "kim", REF.source, REF.document_id, REF.version, status, 100.0 + i))
    assert [r.run_id for r in registry.recent_runs(5, "kim")] == ["r1", "r0"]
    assert registry.recent_runs(5, "lee") == []
    assert registry.mark_deleted("kim", REF.source) == REF.document_id
    assert registry.mark_deleted("kim", REF.source) is None
    assert registry.current_version("kim", REF.source) is None


def test_chat_history_is_per_user_and_session(tables):
    from pipeline.adapters.aws.dynamodb import ChatHistoryTable

    history = ChatHistoryTable(tables["history"])
    history.append("kim", "s1", "user", "질문", now=1.0)
    history.append("kim", "s1", "assistant", "답변 [1]", [{"source": "a.pdf", "page": 2}], now=2.0)
    history.append("kim", "s2", "user", "다른 세션", now=3.0)
    assert [t["text"] for t in history.turns("kim", "s1")] == ["질문", "답변 [1]"]
    assert history.turns("kim", "s1")[1]["citations"] == [{"source": "a.pdf", "page": 2}]
    assert history.turns("lee", "s1") == []
    assert history.sessions("kim") == ["s2", "s1"]
    assert history.delete_session("kim", "s1") == 2 and history.turns("kim", "s1") == []


def test_s3_blob_store_round_trip_and_prefix_delete():
    import boto3
    from moto import mock_aws

    from pipeline.adapters.aws.s3 import S3BlobStore

    env = {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1"}
    with mock.patch.dict(os.environ, env), mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="hanrag-test")
        store = S3BlobStore(s3, "hanrag-test")
        assert store.put("kim/doc/v1/chunks.json", b"[]") == "s3://hanrag-test/artifacts/kim/doc/v1/chunks.json"
        assert store.get("kim/doc/v1/chunks.json") == b"[]"
        store.put("kim/doc/v2/chunks.json", b"[]")
        store.put("kim/doc-other/v9/chunks.json", b"[]")  # another document whose id starts the same
        assert store.children("kim/doc") == ["v1", "v2"] and store.children("kim/nobody") == []
        store.delete_prefix("kim/doc/")
        store.delete_prefix("kim/doc-other/")
        assert "Contents" not in s3.list_objects_v2(Bucket="hanrag-test", Prefix="artifacts/")
        with pytest.raises(InvalidName):
            store.get("../secrets")


def test_search_setup_maps_the_function_roles_to_a_role_limited_to_user_indices():
    from pipeline.lambdas.search_setup import role_body, role_mapping_body

    role = role_body()
    assert [p["index_patterns"] for p in role["index_permissions"]] == [["hanrag-*"]]
    actions = role["index_permissions"][0]["allowed_actions"]
    assert {"crud", "create_index", "manage_aliases", "delete_index"} <= set(actions)  # what reembed needs
    assert role_mapping_body(["arn:b", "arn:a", "arn:b"]) == {"backend_roles": ["arn:a", "arn:b"]}


def test_lambda_settings_refuse_unknown_choices_with_a_reason():
    from pipeline.lambdas.wiring import AwsSettings

    settings = AwsSettings.from_env({"HANRAG_BUCKET": "b", "HANRAG_EMBEDDER": "local", "HANRAG_INDEX": "sqlite"})
    assert (settings.embedder, settings.index, settings.llm) == ("local", "sqlite", "none")
    with pytest.raises(ValueError, match="HANRAG_EMBEDDER must be one of sagemaker, bedrock, local"):
        AwsSettings.from_env({"HANRAG_BUCKET": "b", "HANRAG_EMBEDDER": "openai"})
    with pytest.raises(ValueError, match="HANRAG_BUCKET is not set"):
        AwsSettings.from_env({})


def test_failure_reasons_read_like_the_local_runners():
    from pipeline.lambdas.ingest import failure_reason, parse_upload_key

    def caught(kind: str, message: str) -> dict:  # what a Catch puts in $.error for a Lambda exception
        return {"Error": kind, "Cause": json.dumps({"errorType": kind, "errorMessage": message})}

    reason = "encrypted PDF: a password is required"
    assert failure_reason(caught("EncryptedDocument", reason)) == reason
    assert failure_reason(caught("KeyError", "'x'")) == "internal error (KeyError): 'x'"
    assert failure_reason({"Error": "States.Timeout", "Cause": ""}).startswith("the timeout limit")
    assert parse_upload_key("uploads/kim/보고서/2024.pdf") == ("kim", "보고서/2024.pdf")
    for bad in ("artifacts/kim/x.pdf", "uploads/../x.pdf", "uploads/Kim/x.pdf", "uploads/kim/"):
        with pytest.raises(InvalidName):
            parse_upload_key(bad)


# ---------------------------------------------------------------------------- the vector cache (moto)

@pytest.fixture
def vector_table():
    import boto3
    from moto import mock_aws

    env = {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1"}
    with mock.patch.dict(os.environ, env), mock_aws():
        yield boto3.resource("dynamodb", region_name="us-east-1").create_table(
            TableName="vectors", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}])


class CountingEmbedder:
    def __init__(self, real, name: str | None = None) -> None:
        self.real, self.passages, self.dim, self.name = real, [], real.dim, name or real.name

    def embed_passages(self, texts):
        self.passages += list(texts)
        return self.real.embed_passages(texts)

    def embed_query(self, text):
        return self.real.embed_query(text)


def test_the_dynamodb_vector_cache_reuses_per_model_and_user_and_expires_unused_items(vector_table, embedder):
    from pipeline.adapters.aws.vector_cache import DynamoVectorCache
    from pipeline.adapters.cached_embedder import CachingEmbedder, reuse_within

    texts = [f"제{n}조 핀테크 혁신펀드의 투자 대상은 금융위원회가 정한다." for n in range(1, 131)]  # > one BatchGetItem
    model = CountingEmbedder(embedder)
    caching = CachingEmbedder(model, DynamoVectorCache(vector_table, ttl_days=30))
    with reuse_within("kim"):
        first = caching.embed_passages(texts)
    with reuse_within("kim") as reuse:
        again = caching.embed_passages(texts)
    assert len(model.passages) == 130 and reuse.reused == 130 and np.array_equal(first, again)
    with reuse_within("lee") as other:
        caching.embed_passages(texts[:2])
    assert other.reused == 0, "another user's vectors are not reused"

    item = vector_table.scan()["Items"][0]
    assert item["key"].startswith(f"{caching.model}#") and len(item["vector"].value) == 4 * embedder.dim
    assert 29 * 86400 < int(item["expires_at"]) - time.time() <= 30 * 86400  # DynamoDB's TTL attribute

    renamed = CountingEmbedder(embedder, name="multilingual-e5-small v2")
    with reuse_within("kim") as changed:
        CachingEmbedder(renamed, DynamoVectorCache(vector_table)).embed_passages(texts[:3])
    assert changed.reused == 0 and renamed.passages == texts[:3], "a model change reuses nothing"


def test_a_hit_refreshes_an_item_only_when_half_its_time_is_gone(vector_table, embedder):
    from pipeline.adapters.aws.vector_cache import DynamoVectorCache

    cache = DynamoVectorCache(vector_table, ttl_days=30)
    vector = embedder.embed_passages(["결로대책"])[0]
    cache.put_many("m", {"fresh": vector, "old": vector})
    vector_table.update_item(Key={"key": "m#old"}, UpdateExpression="SET expires_at = :t",
                             ExpressionAttributeValues={":t": int(time.time()) + 86400})
    before = {i["key"]: int(i["expires_at"]) for i in vector_table.scan()["Items"]}
    assert set(cache.get_many("m", ["fresh", "old", "missing"])) == {"fresh", "old"}
    after = {i["key"]: int(i["expires_at"]) for i in vector_table.scan()["Items"]}
    assert after["m#fresh"] == before["m#fresh"] and after["m#old"] > before["m#old"] + 20 * 86400


def test_the_embed_function_embeds_through_its_table_when_the_stack_names_one(vector_table):
    from pipeline.lambdas import wiring

    env = {"HANRAG_BUCKET": "b", "HANRAG_EMBEDDER": "local", "HANRAG_VECTOR_CACHE_TABLE": "vectors"}
    with mock.patch.dict(os.environ, env):
        wiring.reset()
        try:
            embedder = wiring.components().embedder
            embedder.embed_passages(["핀테크 혁신펀드 1호 펀드 투자실적"])
        finally:
            wiring.reset()
    assert vector_table.scan()["Count"] == 1
