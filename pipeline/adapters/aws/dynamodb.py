"""DynamoDB tables: the document registry, the run log and the chat history.

- documents: partition `user_id`, sort `source`. One item per user's file: version (= content hash),
  status (`active` / `deleted`), title, pages, chunks, summary, seconds per stage and the last run's
  status (`queued` / `processing` / `succeeded` / `failed` / `deleted`) and reason. A failed run never
  changes `version`, so the previous version stays current. `sequencer` is S3's order of the latest
  upload or delete applied to the file; every write carries its event's sequencer and is conditional
  on it not being older, so two executions that finish out of order, or a delete that lands while an
  ingest is running, never move the current version backwards.
- runs: partition `user_id`, sort `run_key` (`<started_at>#<run_id>`): the newest runs of a user are one
  Query. The whole `RunRecord` is kept as JSON beside the attributes a console filter needs.
- history: partition `user_id`, sort `turn_key` (`<session_id>#<time>`): one session's turns are one
  Query with `begins_with`, and no query can name another user's partition.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Key

from pipeline.adapters.aws.errors import aws_call
from pipeline.models import DocumentRef, RunRecord


def _plain(value: Any) -> Any:
    """DynamoDB returns numbers as Decimal; callers want int/float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def run_key(record: RunRecord) -> str:
    return f"{record.started_at:017.6f}#{record.run_id}"


# The write's event is the latest recorded for the file, or the same one again (a retried step).
IN_ORDER = "attribute_not_exists(sequencer) OR sequencer <= :sequencer"
# a file with no current version is still listed while its first run waits or runs, or when it failed
WITHOUT_VERSION = ("queued", "processing", "failed")
LISTED_DEFAULTS = {"version": "", "title": "", "pages": 0, "chunks": 0, "summary": "", "stage_seconds": {},
                   "last_status": "", "last_reason": ""}
LISTED = ("source", "document_id", "updated_at", *LISTED_DEFAULTS)
RUN_FIELDS = ("source", "document_id", "updated_at", "stage_seconds", "last_status", "last_reason")


# A deleted document's item outlives the delete only to order it against a late execution of an older
# upload (executions last minutes; idempotency records 7 days): DynamoDB's TTL removes it after that,
# so an offboarded user's last delete records go too.
TOMBSTONE_SECONDS = 7 * 86400


def _now() -> Decimal:
    return Decimal(str(round(time.time(), 3)))


def _ordered(request: dict, sequencer: str, also: str | None = None) -> dict:
    """`request` made conditional on the order of its event (when it has one) and on `also`."""
    conditions = [c for c in (also, f"({IN_ORDER})" if sequencer else None) if c]
    if sequencer:
        request["ExpressionAttributeValues"][":sequencer"] = sequencer
    if conditions:
        request["ConditionExpression"] = " AND ".join(conditions)
    return request


class DynamoRegistry:
    """The `Registry` port over two tables (boto3 `Table` resources)."""

    def __init__(self, documents: Any, runs: Any) -> None:
        self.documents_table = documents
        self.runs_table = runs

    def current_version(self, user_id: str, source: str) -> str | None:
        with aws_call("DynamoDB get document"):
            item = self.documents_table.get_item(
                Key={"user_id": user_id, "source": source}, ConsistentRead=True
            ).get("Item")
        return item["version"] if item and item.get("status") == "active" else None

    def _update(self, what: str, request: dict) -> dict | None:
        """One conditional UpdateItem: its answer, or None when its condition refused it."""
        with aws_call(what):
            try:
                return self.documents_table.update_item(**request)
            except self.documents_table.meta.client.exceptions.ConditionalCheckFailedException:
                return None

    def save_document(self, ref: DocumentRef, *, pages: int, chunks: int, summary: str, title: str,
                      sequencer: str = "") -> bool:
        request = _ordered({
            "Key": {"user_id": ref.user_id, "source": ref.source},
            "UpdateExpression": (
                "SET document_id = :d, version = :v, content_hash = :v, title = :t, pages = :p,"
                " chunks = :c, summary = :s, #status = :active, updated_at = :u"
                + (", sequencer = :sequencer" if sequencer else "") + " REMOVE expires_at"
            ),
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":d": ref.document_id, ":v": ref.version, ":t": title, ":p": pages, ":c": chunks,
                ":s": summary, ":active": "active", ":u": _now(),
            },
        }, sequencer)
        return self._update("DynamoDB update document", request) is not None

    def mark_deleted(self, user_id: str, source: str, sequencer: str = "") -> str | None:
        """Without a sequencer only a current document is marked; with one, the delete is recorded
        whatever the item holds (or creates it), unless a later upload is recorded."""
        request = _ordered({
            "Key": {"user_id": user_id, "source": source},
            "UpdateExpression": (
                "SET document_id = :d, #status = :deleted, chunks = :zero, last_status = :deleted, updated_at = :u,"
                " expires_at = :expires" + (", sequencer = :sequencer" if sequencer else "")
            ),
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":d": DocumentRef(user_id, source, "").document_id, ":deleted": "deleted", ":zero": 0,
                ":u": _now(), ":expires": int(time.time()) + TOMBSTONE_SECONDS,
                **({} if sequencer else {":active": "active"}),
            },
            "ReturnValues": "ALL_OLD",
        }, sequencer, also=None if sequencer else "#status = :active")
        answer = self._update("DynamoDB mark document deleted", request)
        before = (answer or {}).get("Attributes", {})
        return before["document_id"] if before.get("status") == "active" else None

    def confirm_current(self, ref: DocumentRef, sequencer: str) -> bool:
        request = _ordered({
            "Key": {"user_id": ref.user_id, "source": ref.source},
            "UpdateExpression": "SET sequencer = :sequencer, last_status = :succeeded, last_reason = :none",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":v": ref.version, ":active": "active", ":succeeded": "succeeded",
                                          ":none": ""},
        }, sequencer, also="version = :v AND #status = :active")
        return self._update("DynamoDB confirm current version", request) is not None

    def record_status(self, ref: DocumentRef, status: str, run_id: str, sequencer: str = "") -> bool:
        request = _ordered({
            "Key": {"user_id": ref.user_id, "source": ref.source},
            "UpdateExpression": ("SET document_id = :d, last_status = :s, last_run_id = :r, last_reason = :none,"
                                 " updated_at = :u"),
            "ExpressionAttributeValues": {":d": ref.document_id, ":s": status, ":r": run_id, ":none": "",
                                          ":u": _now()},
        }, sequencer)
        return self._update("DynamoDB update document status", request) is not None

    def superseded(self, user_id: str, source: str, sequencer: str) -> bool:
        if not sequencer:
            return False
        with aws_call("DynamoDB get document"):
            item = self.documents_table.get_item(
                Key={"user_id": user_id, "source": source}, ConsistentRead=True, ProjectionExpression="sequencer"
            ).get("Item") or {}
        return item.get("sequencer", "") > sequencer

    def running_runs(self) -> list[RunRecord]:
        """None to close here: on AWS no run belongs to a local process. An execution that dies (a
        Lambda timeout, an out-of-memory kill) ends in the state machine's Catch, which records it."""
        return []

    def record_run_outcome(self, record: RunRecord, sequencer: str = "") -> bool:
        """Put the last run's status, reason and stage timings on the document item, so the registry
        says why a file is not (or no longer) current without reading the run log."""
        request = _ordered({
            "Key": {"user_id": record.user_id, "source": record.source},
            "UpdateExpression": (
                "SET document_id = :d, last_run_id = :r, last_status = :s, last_reason = :why,"
                " last_version = :v, stage_seconds = :t, updated_at = :u"
                " ADD run_count :one"
            ),
            "ExpressionAttributeValues": {
                ":d": record.document_id, ":r": record.run_id, ":s": record.status,
                ":why": record.reason or "", ":v": record.version,
                ":t": {k: Decimal(str(v)) for k, v in record.durations.items()}, ":u": _now(), ":one": 1,
            },
        }, sequencer)
        return self._update("DynamoDB update document run outcome", request) is not None

    def save_run(self, record: RunRecord) -> None:
        with aws_call("DynamoDB put run"):
            self.runs_table.put_item(Item={
                "user_id": record.user_id, "run_key": run_key(record), "run_id": record.run_id,
                "source": record.source, "status": record.status,
                "record": json.dumps(record.to_dict(), ensure_ascii=False),
            })

    def recent_runs(self, limit: int = 20, user_id: str | None = None) -> list[RunRecord]:
        """One user's newest runs is a Query; all users' is a Scan (an operator's view, bounded)."""
        with aws_call("DynamoDB read runs"):
            if user_id is not None:
                items = self.runs_table.query(
                    KeyConditionExpression=Key("user_id").eq(user_id), ScanIndexForward=False, Limit=limit
                )["Items"]
            else:
                items = self.runs_table.scan(Limit=1000)["Items"]
        records = [RunRecord.from_dict(json.loads(item["record"])) for item in items]
        return sorted(records, key=lambda r: r.started_at, reverse=True)[:limit]

    def documents(self, user_id: str) -> Iterator[dict]:
        with aws_call("DynamoDB query documents"):
            items = self.documents_table.query(KeyConditionExpression=Key("user_id").eq(user_id))["Items"]
        for item in items:
            if item.get("status") == "active":
                shown = LISTED
            elif item.get("last_status") in WITHOUT_VERSION:
                # no current version (never ingested, or deleted and uploaded again): its run only, as
                # the SQLite registry lists it
                shown = RUN_FIELDS
            else:
                continue
            yield {**LISTED_DEFAULTS, **{k: _plain(item[k]) for k in shown if k in item}}

    def document(self, user_id: str, source: str) -> dict | None:
        """The whole item, deleted or failed ones included (what the failure path wrote)."""
        with aws_call("DynamoDB get document"):
            item = self.documents_table.get_item(Key={"user_id": user_id, "source": source}).get("Item")
        return _plain(item) if item else None


class ChatHistoryTable:
    """Chat turns per user and session. The user id is always the caller's authenticated identity."""

    def __init__(self, table: Any, ttl_days: int = 90) -> None:
        self.table = table
        self.ttl_seconds = ttl_days * 86400

    def append(self, user_id: str, session_id: str, role: str, text: str,
               citations: list[dict] | None = None, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with aws_call("DynamoDB put chat turn"):
            self.table.put_item(Item={
                "user_id": user_id, "turn_key": f"{session_id}#{now:017.6f}", "session_id": session_id,
                "role": role, "text": text, "citations": json.dumps(citations or [], ensure_ascii=False),
                "created_at": Decimal(str(round(now, 6))), "expires_at": int(now) + self.ttl_seconds,
            })

    def turns(self, user_id: str, session_id: str, limit: int = 50) -> list[dict]:
        """The last `limit` turns of one session, oldest first."""
        with aws_call("DynamoDB query chat history"):
            items = self.table.query(
                KeyConditionExpression=Key("user_id").eq(user_id) & Key("turn_key").begins_with(f"{session_id}#"),
                ScanIndexForward=False, Limit=limit,
            )["Items"]
        return [
            {"role": i["role"], "text": i["text"], "citations": json.loads(i["citations"]),
             "created_at": _plain(i["created_at"])}
            for i in reversed(items)
        ]

    def sessions(self, user_id: str, limit: int = 200) -> list[str]:
        with aws_call("DynamoDB query chat sessions"):
            items = self.table.query(
                KeyConditionExpression=Key("user_id").eq(user_id), ScanIndexForward=False, Limit=limit,
                ProjectionExpression="session_id",
            )["Items"]
        return list(dict.fromkeys(i["session_id"] for i in items))

    def delete_session(self, user_id: str, session_id: str) -> int:
        with aws_call("DynamoDB delete chat session"):
            keys = [
                {"user_id": user_id, "turn_key": item["turn_key"]}
                for page in self._session_pages(user_id, session_id) for item in page
            ]
            with self.table.batch_writer() as batch:
                for key in keys:
                    batch.delete_item(Key=key)
        return len(keys)

    def _session_pages(self, user_id: str, session_id: str) -> Iterator[list[dict]]:
        condition = Key("user_id").eq(user_id) & Key("turn_key").begins_with(f"{session_id}#")
        request: dict[str, Any] = {"KeyConditionExpression": condition, "ProjectionExpression": "turn_key"}
        while True:
            answer = self.table.query(**request)
            yield answer["Items"]
            if "LastEvaluatedKey" not in answer:
                return
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
