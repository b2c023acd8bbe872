"""Removing every trace of one user from the AWS stores (offboarding): a DynamoDB partition, an S3
prefix with every version of every object under it.

The uploads bucket is versioned, so deleting an object only hides it behind a delete marker; the
bytes stay until the version itself is deleted. Erasing a prefix therefore deletes each version and
each marker, which the ordinary delete path never does.
"""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Key

from pipeline.adapters.aws.errors import aws_call
from pipeline.errors import PipelineError
from pipeline.names import validate_user_id

S3_DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys


def erase_partition(table: Any, user_id: str, sort_key: str) -> int:
    """Delete every item whose partition key `user_id` is this user's; returns how many there were."""
    user_id = validate_user_id(user_id)
    request: dict[str, Any] = {"KeyConditionExpression": Key("user_id").eq(user_id),
                               "ProjectionExpression": "#sort", "ExpressionAttributeNames": {"#sort": sort_key}}
    with aws_call(f"DynamoDB erase {user_id}'s items of {table.name}"):
        return _delete_found(table, table.query, request, lambda item: {"user_id": user_id, sort_key: item[sort_key]})


def _delete_found(table: Any, find: Any, request: dict[str, Any], key_of: Any) -> int:
    """Delete every item `find(**request)` returns, page after page; how many there were."""
    erased = 0
    while True:
        answer = find(**request)
        with table.batch_writer() as batch:
            for item in answer["Items"]:
                batch.delete_item(Key=key_of(item))
        erased += len(answer["Items"])
        if "LastEvaluatedKey" not in answer:
            return erased
        request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def erase_prefix(client: Any, bucket: str, prefix: str) -> int:
    """Delete every version and delete marker under `prefix`; returns the object versions removed."""
    if not prefix.endswith("/") or prefix.startswith("/") or ".." in prefix.split("/"):
        raise PipelineError(f"refusing to erase {prefix!r}: a prefix is a folder, inside the bucket")
    erased = 0
    paginator = client.get_paginator("list_object_versions")
    with aws_call(f"S3 erase s3://{bucket}/{prefix}"):
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            versions = page.get("Versions", [])
            targets = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                       for v in [*versions, *page.get("DeleteMarkers", [])]]
            for start in range(0, len(targets), S3_DELETE_BATCH):
                answer = client.delete_objects(Bucket=bucket, Delete={
                    "Objects": targets[start:start + S3_DELETE_BATCH], "Quiet": True})
                if answer.get("Errors"):
                    first = answer["Errors"][0]
                    raise PipelineError(f"S3 kept {len(answer['Errors'])} object(s) under s3://{bucket}/{prefix}: "
                                        f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}")
            erased += len(versions)
    return erased


def erase_containing(table: Any, attribute: str, needles: list[str], key: str = "id") -> int:
    """Delete the items whose `attribute` contains any of `needles`, found by a Scan: for a table with no
    user key, such as Powertools' idempotency records (each holds a stage's result for 7 days, and results
    name the user's upload and artifact keys)."""
    from functools import reduce

    from boto3.dynamodb.conditions import Attr

    if not needles or any(len(n) < 4 for n in needles):
        raise PipelineError(f"refusing to erase items matching {needles!r}: too broad")
    condition = reduce(lambda a, b: a | b, [Attr(attribute).contains(n) for n in needles])
    request: dict[str, Any] = {"FilterExpression": condition,
                               "ProjectionExpression": "#key", "ExpressionAttributeNames": {"#key": key}}
    with aws_call(f"DynamoDB erase items of {table.name} naming {needles[0]}"):
        return _delete_found(table, table.scan, request, lambda item: {key: item[key]})
