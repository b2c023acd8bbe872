"""The `VectorCache` on AWS: a DynamoDB table (on-demand), one item per vector.

Partition key `key` = `<model>#<text key>`, so a model change finds nothing of the old model; its items
are never read again and DynamoDB's TTL (`expires_at`) deletes them. The TTL is also the bound: an item
lives `ttl_days` after its last use. A hit rewrites the item only once less than half of that time
is left, so reading a document's unchanged vectors does not cost a write each.

Items are ~1.6 KB (384 float32), read 100 per BatchGetItem and written 25 per BatchWriteItem. Keys left
unprocessed under throttling are asked again a few times; what is still missing is embedded instead
(the caching embedder treats a missing vector as a miss).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.adapters.aws.errors import aws_call

_GET_BATCH = 100  # BatchGetItem's limit
_ATTEMPTS = 4


class DynamoVectorCache:
    def __init__(self, table: Any, ttl_days: float = 30) -> None:
        self.table = table
        self.ttl_seconds = int(ttl_days * 86400)

    def get_many(self, model: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        # the table resource's client takes and returns plain Python values (boto3 converts them)
        client, name = self.table.meta.client, self.table.name
        found: dict[str, np.ndarray] = {}
        stale: dict[str, np.ndarray] = {}
        now = int(time.time())
        for start in range(0, len(keys), _GET_BATCH):
            request = {name: {"Keys": [{"key": f"{model}#{k}"} for k in keys[start:start + _GET_BATCH]],
                              "ProjectionExpression": "#k, vector, expires_at",
                              "ExpressionAttributeNames": {"#k": "key"}}}
            for attempt in range(_ATTEMPTS):
                with aws_call("DynamoDB read cached vectors"):
                    answer = client.batch_get_item(RequestItems=request)
                for item in answer["Responses"].get(name, []):
                    key = item["key"].removeprefix(f"{model}#")
                    found[key] = np.frombuffer(item["vector"].value, dtype="<f4")
                    if int(item["expires_at"]) - now < self.ttl_seconds // 2:
                        stale[key] = found[key]
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05 * 2 ** attempt)
        if stale:
            self.put_many(model, stale)
        return found

    def put_many(self, model: str, vectors: dict[str, np.ndarray]) -> None:
        expires = int(time.time()) + self.ttl_seconds
        with aws_call("DynamoDB write cached vectors"), self.table.batch_writer(overwrite_by_pkeys=["key"]) as batch:
            for key, vector in vectors.items():
                batch.put_item(Item={"key": f"{model}#{key}", "vector": np.asarray(vector, dtype="<f4").tobytes(),
                                     "expires_at": expires})
