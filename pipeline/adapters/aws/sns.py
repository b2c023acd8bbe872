"""The SNS `Notifier`: one message per finished run, readable in an e-mail and parseable by a program.

The subject says what happened in one line; the body starts with the same facts a person wants
(status, counts, timings, the reason or the summary) and ends with the run record as JSON.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.adapters.aws.errors import aws_call
from pipeline.models import RunRecord

SUBJECT_LIMIT = 99  # SNS: fewer than 100 characters, no line breaks


def message_subject(record: RunRecord) -> str:
    status = {"succeeded": "ingested", "failed": "FAILED", "skipped": "unchanged"}.get(record.status, record.status)
    subject = f"hanrag {status}: {record.source}"
    subject = " ".join(subject.split())
    return subject if len(subject) <= SUBJECT_LIMIT else subject[: SUBJECT_LIMIT - 1] + "…"


def message_body(record: RunRecord) -> str:
    lines = [
        f"file: {record.source} (user {record.user_id})",
        f"status: {record.status}",
        f"pages: {record.pages}, chunks: {record.chunks}",
        "seconds per stage: " + ", ".join(f"{k} {v}" for k, v in record.durations.items()),
    ]
    if record.reason:
        lines.append(f"reason: {record.reason}" + (f" (stage {record.failed_stage})" if record.failed_stage else ""))
    if record.warnings:
        lines.append("warnings: " + "; ".join(record.warnings[:10]))
    if record.summary:
        lines += ["", "summary:", record.summary]
    payload = {**record.to_dict(), "durations": record.durations}
    lines += ["", json.dumps(payload, ensure_ascii=False)]
    return "\n".join(lines)


class SnsNotifier:
    def __init__(self, client: Any, topic_arn: str) -> None:
        self.client = client
        self.topic_arn = topic_arn

    def notify(self, record: RunRecord) -> None:
        with aws_call(f"SNS publish to {self.topic_arn}"):
            self.client.publish(
                TopicArn=self.topic_arn, Subject=message_subject(record), Message=message_body(record),
                MessageAttributes={
                    "status": {"DataType": "String", "StringValue": record.status},
                    "user_id": {"DataType": "String", "StringValue": record.user_id or "-"},
                },
            )
