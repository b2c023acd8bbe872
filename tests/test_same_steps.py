"""One step layer: the same documents through `LocalRunner` and through the synthesized state machine
(executed by moto with the real handlers) end the same way — the same chunks on the same pages, the
same vectors, summaries, warnings and outcomes. Each of these documents once ended differently on AWS:
an encrypted PDF opened by its user's password, a document whose LLM summary fails, and a scanned page
(the Lambda image had OCR turned off)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from conftest import AVIATION, FINTECH, FIXTURES, SAMPLES
from PIL import Image
from test_aws_pipeline import aws_environment, upload_and_run

from pipeline.config import Settings
from pipeline.models import DocumentRef, RunRecord, artifact_prefix
from pipeline.runner import LocalRunner

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")

LOCKED = "r4-aes-user-password.pdf"
SCAN = "scan.pdf"  # made by the fixture: a real photo of Korean and English text, as a page with no text layer
HWPX = "real-8-tables.hwpx"
DOCUMENTS = [  # (user, file, source name)
    ("kim", FIXTURES / AVIATION, AVIATION),  # Korean, with tables
    ("kim", FIXTURES / "hard" / LOCKED, LOCKED),  # opened with kim's password
    ("lee", FIXTURES / "hard" / LOCKED, LOCKED),  # lee has none: fails with the reason
    ("kim", SAMPLES / FINTECH, FINTECH),  # its LLM summary fails
    ("kim", Path(SCAN), SCAN),  # read by OCR
    ("kim", FIXTURES / "hwp" / HWPX, HWPX),  # Hancom's XML format, with tables
]


def scanned_pdf(path: Path) -> Path:
    Image.open(FIXTURES / "english-and-korean.png").convert("RGB").save(path, format="PDF", resolution=150)
    return path


class FlakyLLM:
    """Summarizes with the document's first sentence, except for the fintech release: the endpoint is down."""

    def complete(self, system: str, prompt: str) -> str:
        if "핀테크" in prompt:
            raise RuntimeError("LLM endpoint is down")
        return "요약: " + prompt.removeprefix("<document>\n")[:60]

    def stream(self, system, prompt):
        yield self.complete(system, prompt)


def outcome(record: RunRecord) -> dict:
    """What a user sees of a run."""
    return {"status": record.status, "reason": record.reason, "failed_stage": record.failed_stage,
            "pages": record.pages, "chunks": record.chunks, "summary": record.summary, "warnings": record.warnings}


def artifacts(blobs, record: RunRecord) -> tuple[list[tuple[str, str, int, int]], np.ndarray | None]:
    """(kind, text, first page, last page) of every chunk, and the vectors, as the version's artifacts hold them."""
    if record.status != "succeeded":
        return [], None
    prefix = artifact_prefix(DocumentRef(record.user_id, record.source, record.version))
    chunks = [(c["kind"], c["text"], c["page_start"], c["page_end"])
              for c in json.loads(blobs.get(prefix + "chunks.json"))]
    batches = range(0, len(chunks), 8)  # HANRAG_EMBED_BATCH_CHUNKS of the AWS environment, used by both
    return chunks, np.vstack([np.load(io.BytesIO(blobs.get(f"{prefix}vectors/{start:06d}.npy"))) for start in batches])


@pytest.fixture(scope="module")
def runs(tmp_path_factory, embedder):
    """Every document's run record and artifacts, locally and on AWS, with the same settings."""
    folder = tmp_path_factory.mktemp("same-steps")
    passwords = folder / "passwords.json"
    passwords.write_text(json.dumps({"kim": "asdfzxcv"}))
    extra = {"HANRAG_PDF_PASSWORDS": str(passwords), "HANRAG_OCR": "1"}  # OCR on, as by default
    scan = scanned_pdf(folder / SCAN)
    from pipeline.lambdas import wiring

    with mock.patch.object(wiring.Components, "_build_llm", lambda self: FlakyLLM()), \
            aws_environment(folder / "aws", extra) as aws:
        local_settings = Settings.from_env({**aws.env, "HANRAG_HOME": str(folder / "local"), "HANRAG_LLM": "none"})
        runner = LocalRunner.from_settings(local_settings, embedder=embedder, llm=FlakyLLM())
        local, cloud = [], []
        for user, path, name in DOCUMENTS:
            path = scan if name == SCAN else path
            record = runner.ingest_file(user, Path(path), name)
            local.append((outcome(record), *artifacts(runner.blobs, record)))
            execution = upload_and_run(aws, Path(path), user, name)
            assert execution["status"] in ("SUCCEEDED", "FAILED")
            record = aws.components.registry.recent_runs(1, user)[0]
            cloud.append((outcome(record), *artifacts(aws.components.blobs, record)))
        yield local, cloud


def test_the_same_documents_end_the_same_way_locally_and_on_aws(runs):
    local, cloud = runs
    for (user, _, name), (here, chunks, vectors), (there, aws_chunks, aws_vectors) in zip(
            DOCUMENTS, local, cloud, strict=True):
        assert here == there, (user, name)
        assert chunks == aws_chunks, (user, name)
        if vectors is not None:
            assert np.allclose(vectors, aws_vectors, atol=1e-5), (user, name)


def test_what_each_document_shows_a_user(runs):
    local, _ = runs
    (aviation, chunks, _), (opened, _, _), (refused, _, _), (fintech, _, _), (scan, scan_chunks, _), \
        (hwpx, hwpx_chunks, _) = local
    assert aviation["status"] == "succeeded" and aviation["pages"] == 7
    assert aviation["summary"].startswith("요약: ") and aviation["warnings"] == []
    assert any(kind == "table" and text.startswith("|") for kind, text, _, _ in chunks), "its tables are indexed"
    assert max(last for *_, last in chunks) == 7
    assert opened["status"] == "succeeded" and opened["chunks"] > 0  # kim's password opened it
    assert (refused["status"], refused["failed_stage"]) == ("failed", "extract") and "password" in refused["reason"]
    # the index was already replaced when the LLM failed: the run succeeds with an extractive summary
    assert fintech["status"] == "succeeded" and "핀테크" in fintech["summary"]
    assert fintech["warnings"] == ["LLM summary failed (internal error (RuntimeError): LLM endpoint is down); "
                                   "an extractive summary was stored instead"]
    assert scan["status"] == "succeeded" and scan["warnings"] == [
        "page 1 of 1 has no usable text layer and was read by OCR (recognition errors are possible)"]
    assert any("안녕하세요" in text for _, text, _, _ in scan_chunks)
    assert hwpx["status"] == "succeeded" and hwpx["warnings"] == []
    assert any(kind == "table" for kind, *_ in hwpx_chunks)
