"""The S3 `BlobStore`: artifacts between stages as objects under one prefix of one bucket."""

from __future__ import annotations

from typing import Any

from pipeline.adapters.aws.errors import aws_call
from pipeline.errors import InvalidName


class S3BlobStore:
    """`version_id` pins reads to one object version: an upload is read as the event named it, even
    when the file was replaced since."""

    def __init__(self, client: Any, bucket: str, prefix: str = "artifacts/", version_id: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.version = {"VersionId": version_id} if version_id else {}

    def _key(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise InvalidName(f"artifact key escapes the store: {key!r}")
        return self.prefix + key

    def put(self, key: str, data: bytes) -> str:
        """S3 writes are atomic: a reader sees the whole object or none. Returns the s3:// URI."""
        full = self._key(key)
        with aws_call(f"S3 put s3://{self.bucket}/{full}"):
            self.client.put_object(Bucket=self.bucket, Key=full, Body=data)
        return f"s3://{self.bucket}/{full}"

    def get(self, key: str) -> bytes:
        full = self._key(key)
        with aws_call(f"S3 get s3://{self.bucket}/{full}"):
            return self.client.get_object(Bucket=self.bucket, Key=full, **self.version)["Body"].read()

    def size(self, key: str) -> int:
        full = self._key(key)
        with aws_call(f"S3 head s3://{self.bucket}/{full}"):
            return int(self.client.head_object(Bucket=self.bucket, Key=full, **self.version)["ContentLength"])

    def delete_prefix(self, prefix: str) -> None:
        full = self._key(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        with aws_call(f"S3 delete s3://{self.bucket}/{full}*"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})

    def children(self, prefix: str) -> list[str]:
        full = self._key(prefix.rstrip("/") + "/")
        paginator = self.client.get_paginator("list_objects_v2")
        names: set[str] = set()
        with aws_call(f"S3 list s3://{self.bucket}/{full}"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full, Delimiter="/"):
                names.update(p["Prefix"][len(full):].rstrip("/") for p in page.get("CommonPrefixes", []))
                names.update(item["Key"][len(full):] for item in page.get("Contents", []))
        return sorted(names)
