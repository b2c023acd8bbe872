"""The `OcrCache` on AWS: a DynamoDB table (on-demand), one item per image read.

Partition key `user_id` (the owner), sort key `key` = `<engine>#<image key>`: offboarding erases a user's
partition like the other per-user tables, and a new Tesseract finds nothing of the old one (those items
are never read again, and DynamoDB's TTL, `expires_at`, deletes them). The TTL is also the bound: an
item lives `ttl_days` after its last use; a hit rewrites the expiry only once less than half of that
time is left. What OCR read from one image is a few KB; a reading too large for one item (a long
multi-page TIFF) is not kept.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pipeline.adapters.aws.errors import aws_call

MAX_ITEM_BYTES = 350_000  # DynamoDB's item limit is 400 KB, keys and attribute names included


class DynamoOcrCache:
    def __init__(self, table: Any, ttl_days: float = 30) -> None:
        self.table = table
        self.ttl_seconds = int(ttl_days * 86400)

    def get(self, engine: str, owner: str, key: str) -> list[tuple[str, float]] | None:
        with aws_call("DynamoDB read an OCR reading"):
            item = self.table.get_item(Key={"user_id": owner, "key": f"{engine}#{key}"}).get("Item")
        if item is None:
            return None
        now = int(time.time())
        if int(item["expires_at"]) - now < self.ttl_seconds // 2:
            with aws_call("DynamoDB extend an OCR reading"):
                self.table.update_item(Key={"user_id": owner, "key": f"{engine}#{key}"},
                                       UpdateExpression="SET expires_at = :e",
                                       ExpressionAttributeValues={":e": now + self.ttl_seconds})
        return [(text, float(confidence)) for text, confidence in json.loads(item["pages"])]

    def put(self, engine: str, owner: str, key: str, pages: list[tuple[str, float]]) -> None:
        text = json.dumps([[text, confidence] for text, confidence in pages], ensure_ascii=False)
        if len(text.encode()) > MAX_ITEM_BYTES:
            return
        with aws_call("DynamoDB write an OCR reading"):
            self.table.put_item(Item={"user_id": owner, "key": f"{engine}#{key}", "pages": text,
                                      "expires_at": int(time.time()) + self.ttl_seconds})
