"""What OCR read, remembered on AWS (issue 15): the extract function keeps its readings in the stack's OCR
table, an edited upload is read again only where its pictures changed, and offboarding erases them.

Moto's DynamoDB, S3 and Step Functions with the synthesized state machine and table, the real handlers and
the real Tesseract (as test_aws_pipeline; there OCR is off, here it is on). The file is the FinTech press
release (`samples/`, a diagram on page 5 read by OCR) and its edit (`240409-page3-edited.pdf`, one number
changed on page 3; tests/fixtures/SOURCES.md). Not verified: the same calls against a real table.
"""

from __future__ import annotations

import time

import pytest
from conftest import FINTECH, FIXTURES, SAMPLES
from test_aws_account import call
from test_aws_pipeline import aws_environment, upload_and_run

from pipeline.stages.extract import ocr

KIM = "3f1c2a9e-0d4b-4c1e-9a77-5b2f1e0c9d11"
LEE = "8a0d5e21-7c3b-4f6a-b1d2-0e9f8c7b6a54"

pytestmark = [pytest.mark.skipif(not ocr.available(), reason=ocr.missing() or ""),
              pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")]


def test_the_extract_function_reads_a_picture_once_per_user_and_offboarding_erases_the_readings(
        tmp_path, monkeypatch):
    runs: list[str] = []
    real = ocr._tesseract
    monkeypatch.setattr(ocr, "_tesseract", lambda image, layout, timeout: runs.append(layout) or real(
        image, layout, timeout))
    with aws_environment(tmp_path, {"HANRAG_OCR": "1"}) as aws:
        import boto3

        name = aws.env["HANRAG_OCR_CACHE_TABLE"]
        table = boto3.resource("dynamodb", region_name="us-east-1").Table(name)
        assert upload_and_run(aws, SAMPLES / FINTECH, KIM, FINTECH)["status"] == "SUCCEEDED"
        assert runs, "the diagram on page 5 is read by OCR"
        items = table.scan()["Items"]
        assert items and {item["user_id"] for item in items} == {KIM}
        assert all(item["key"].startswith(ocr.engine() + "#") for item in items)
        assert all(29 * 86400 < int(item["expires_at"]) - time.time() <= 30 * 86400 for item in items)

        runs.clear()
        assert upload_and_run(aws, FIXTURES / "240409-page3-edited.pdf", KIM, FINTECH)["status"] == "SUCCEEDED"
        assert runs == [], "the edit changed page 3's text, not the picture: nothing is read again"
        c = aws.components
        query = "코스콤 대구은행"
        hits = c.index.hybrid_search(KIM, query, c.embedder.embed_query(query), 3)
        assert hits and hits[0].page_start == 5 and "코스콤" in hits[0].text

        assert upload_and_run(aws, SAMPLES / FINTECH, LEE, FINTECH)["status"] == "SUCCEEDED"
        assert runs, "another user's copy is read for that user"
        lee_items = [item for item in table.scan()["Items"] if item["user_id"] == LEE]
        assert lee_items

        status, body = call(KIM, "DELETE /me", {"confirm": True})
        assert status == 200 and body["removed"]["ocr_readings"] == len(items)
        left = table.scan()["Items"]
        assert {item["user_id"] for item in left} == {LEE} and len(left) == len(lee_items)
