"""One contract for every `Registry` (the SQLite file, DynamoDB under moto): the current version only
moves forward in the order of the file's S3 events (`sequencer`), a later delete wins over an ingest
still running, and a document is listed with its run's status from the first step on."""

from __future__ import annotations

import pytest
from test_aws_adapters import tables  # noqa: F401  (the moto tables fixture)

from pipeline.models import DocumentRef, RunRecord

V1 = DocumentRef("kim", "보도자료.pdf", "1" * 64)
V2 = DocumentRef("kim", "보도자료.pdf", "2" * 64)
EARLY, LATER, LATEST = "0A".ljust(32, "0"), "0B".ljust(32, "0"), "0C".ljust(32, "0")


@pytest.fixture(params=["sqlite", "dynamodb"])
def registry(request, tmp_path):
    if request.param == "sqlite":
        from pipeline.adapters.local.database import Database
        from pipeline.adapters.local.registry import SqliteRegistry

        return SqliteRegistry(Database(tmp_path / "registry.db"))
    from pipeline.adapters.aws.dynamodb import DynamoRegistry

    made = request.getfixturevalue("tables")
    return DynamoRegistry(made["documents"], made["runs"])


def save(registry, ref: DocumentRef, sequencer: str) -> bool:
    return registry.save_document(ref, pages=1, chunks=3, summary=f"{ref.version[0]}판 요약", title="보도자료",
                                  sequencer=sequencer)


def outcome(ref: DocumentRef, status: str, reason: str | None = None) -> RunRecord:
    return RunRecord(f"run-{ref.version[0]}", ref.user_id, ref.source, ref.document_id, ref.version, status,
                     100.0, reason=reason)


def test_an_older_upload_finishing_last_never_becomes_current(registry):
    assert save(registry, V2, LATER) is True
    assert save(registry, V1, EARLY) is False
    assert registry.record_run_outcome(outcome(V1, "succeeded"), EARLY) is False
    assert registry.current_version("kim", V1.source) == V2.version
    assert registry.superseded("kim", V1.source, EARLY) and not registry.superseded("kim", V1.source, LATER)
    assert save(registry, V2, LATER) is True  # the same step retried


def test_a_delete_during_the_first_ingest_wins_and_a_late_delete_changes_nothing(registry):
    assert registry.record_status(V1, "processing", "run-1", EARLY) is True
    assert registry.mark_deleted("kim", V1.source, LATER) is None  # nothing was current yet ...
    assert registry.superseded("kim", V1.source, EARLY)  # ... but the delete is remembered
    assert save(registry, V1, EARLY) is False and registry.record_run_outcome(outcome(V1, "failed"), EARLY) is False
    assert registry.current_version("kim", V1.source) is None and list(registry.documents("kim")) == []

    assert registry.record_status(V2, "processing", "run-2", LATEST) is True  # uploaded again afterwards
    assert save(registry, V2, LATEST) is True
    assert registry.mark_deleted("kim", V2.source, LATER) is None  # the earlier delete, delivered late
    assert registry.current_version("kim", V2.source) == V2.version


def test_an_unchanged_upload_is_confirmed_only_while_its_version_is_current(registry):
    assert save(registry, V1, EARLY) is True
    registry.record_status(V2, "processing", "run-2", LATER)  # another content, uploaded between the two
    assert registry.confirm_current(V1, LATEST) is True  # the same content uploaded again
    assert [d["last_status"] for d in registry.documents("kim")] == ["succeeded"]
    assert save(registry, V2, LATER) is False  # an upload from before it cannot take its place
    assert registry.confirm_current(V2, "0D".ljust(32, "0")) is False
    assert registry.current_version("kim", V1.source) == V1.version


def test_documents_show_each_run_from_queued_to_its_outcome(registry):
    other = DocumentRef("kim", "잠긴 문서.pdf", "3" * 64)
    registry.record_status(V1, "queued", "run-1")
    registry.record_status(other, "queued", "run-3")
    assert {d["source"]: (d["last_status"], d["version"] or None) for d in registry.documents("kim")} == {
        V1.source: ("queued", None), other.source: ("queued", None)}
    registry.record_status(V1, "processing", "run-1")
    registry.record_status(other, "processing", "run-3")
    assert {d["last_status"] for d in registry.documents("kim")} == {"processing"}
    save(registry, V1, "")
    registry.record_run_outcome(outcome(V1, "succeeded"))
    registry.record_run_outcome(outcome(other, "failed", "encrypted PDF: a password is required"))
    shown = {d["source"]: d for d in registry.documents("kim")}
    assert (shown[V1.source]["last_status"], shown[V1.source]["version"]) == ("succeeded", V1.version)
    assert shown[other.source]["last_status"] == "failed" and "password" in shown[other.source]["last_reason"]
    assert list(registry.documents("lee")) == []
    registry.mark_deleted("kim", V1.source)
    assert [d["source"] for d in registry.documents("kim")] == [other.source]
    registry.record_status(V2, "processing", "run-2")  # uploaded again after its delete: no version yet
    again = next(d for d in registry.documents("kim") if d["source"] == V2.source)
    assert (again["last_status"], again["version"], again["chunks"], again["summary"]) == ("processing", "", 0, "")
