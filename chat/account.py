"""A user's own files on AWS without AWS credentials, and leaving for good.

- Upload: the API hands out a pre-signed PUT URL for `uploads/<sub>/<name>`; the browser (or curl) puts
  the file there and the ordinary pipeline takes over (S3 event → queue → state machine). The key is
  built here from the verified `sub` and a validated name, so no URL can name another user's prefix.
  A pre-signed PUT cannot carry a size range (only a POST policy can), so the declared size and
  content type are signed into it: S3 refuses a PUT whose `Content-Length` or `Content-Type` differs,
  and a declared size over the file limit gets no URL at all.
- Delete: removes the object (a delete marker in the versioned bucket); the pipeline's delete path
  then takes the document out of the index, the registry and the artifacts, as for `aws s3 rm`.
- Offboarding: every version of every upload, the user's indices, registry items, run records, chat
  history, artifacts and the stages' idempotency records, in that order (nothing left to re-ingest
  first, then nothing searchable).
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from chat.failures import BadRequest, NotFound
from pipeline.adapters.aws.erase import erase_containing, erase_partition, erase_prefix
from pipeline.errors import LimitExceeded
from pipeline.names import validate_source, validate_user_id

UPLOAD_PREFIX = "uploads/"
ARTIFACT_PREFIX = "artifacts/"
PRESIGNED_SECONDS = 900  # long enough for a 200 MB upload on a slow line, short enough to leak little
_MIME_TYPES = mimetypes.MimeTypes()  # Python's own table: the same guess here and in the Lambda image
_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
# served as a web page if anyone ever hosted the object; nothing the pipeline reads needs them
_REFUSED_TYPES = frozenset({"text/html", "application/xhtml+xml", "image/svg+xml", "text/javascript",
                            "application/javascript"})


def upload_key(user_id: str, name: str) -> str:
    """`uploads/<user>/<name>`: the only key a user's request can name."""
    return f"{UPLOAD_PREFIX}{validate_user_id(user_id)}/{file_name(name)}"


def file_name(name: str) -> str:
    """A validated source path (`pipeline.names`), and not only blanks in any part of it."""
    source = validate_source(name)
    if any(not part.strip() for part in source.split("/")):
        raise BadRequest(f"invalid file name {name!r}: a name (or folder) of blanks only")
    return source


@dataclass(frozen=True)
class UploadGrant:
    url: str
    key: str
    source: str
    headers: dict[str, str]
    expires_in: int

    def to_dict(self) -> dict:
        return {"method": "PUT", "url": self.url, "key": self.key, "source": self.source,
                "headers": self.headers, "expires_in": self.expires_in}


def content_type_for(name: str, declared: str | None) -> str:
    content_type = (declared or _MIME_TYPES.guess_type(name)[0] or "application/octet-stream").strip().lower()
    content_type = content_type.split(";")[0].strip()
    if not _CONTENT_TYPE.fullmatch(content_type):
        raise BadRequest(f"invalid content type {declared!r}")
    if content_type in _REFUSED_TYPES:
        raise BadRequest(f"content type {content_type} is not accepted for uploads; send the file as "
                         "application/octet-stream (the pipeline reads the format from the bytes)")
    return content_type


def grant_upload(client: Any, bucket: str, user_id: str, name: str, size: Any, content_type: str | None,
                 max_bytes: int) -> UploadGrant:
    """A pre-signed PUT for one file of exactly `size` bytes."""
    source = file_name(name)
    key = upload_key(user_id, source)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise BadRequest("size must be the file's length in bytes (a positive integer)")
    if size > max_bytes:
        raise LimitExceeded(f"file too large: {size / 2**20:,.1f} MB; the limit is {max_bytes / 2**20:.0f} MB")
    kind = content_type_for(name, content_type)
    url = client.generate_presigned_url("put_object", ExpiresIn=PRESIGNED_SECONDS, Params={
        "Bucket": bucket, "Key": key, "ContentLength": size, "ContentType": kind})
    return UploadGrant(url, key, source, {"Content-Type": kind}, PRESIGNED_SECONDS)


def delete_upload(client: Any, bucket: str, user_id: str, name: str) -> dict:
    """Delete the user's file; the index, registry and artifacts follow through the pipeline's delete path."""
    from botocore.exceptions import ClientError

    source = file_name(name)
    key = upload_key(user_id, source)
    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            raise NotFound(f"no file {name!r} in your uploads") from None
        raise
    client.delete_object(Bucket=bucket, Key=key)
    return {"source": source, "key": key, "deleted": True,
            "index": "the pipeline removes its chunks within seconds"}


def offboard(user_id: str, client: Any, bucket: str, index: Any, tables: dict[str, Any]) -> dict[str, int]:
    """Everything of one user, gone; returns what was removed. `tables`: "documents", "runs", "history" and
    (when the pipeline keeps them) "idempotency" and "ocr_cache"."""
    user_id = validate_user_id(user_id)
    removed = {"uploads": erase_prefix(client, bucket, f"{UPLOAD_PREFIX}{user_id}/")}
    removed["chunks"] = index.delete_user(user_id)
    removed["documents"] = erase_partition(tables["documents"], user_id, "source")
    removed["runs"] = erase_partition(tables["runs"], user_id, "run_key")
    removed["history"] = erase_partition(tables["history"], user_id, "turn_key")
    removed["artifacts"] = erase_prefix(client, bucket, f"{ARTIFACT_PREFIX}{user_id}/")
    if tables.get("ocr_cache") is not None:  # what OCR read from the user's pictures
        removed["ocr_readings"] = erase_partition(tables["ocr_cache"], user_id, "key")
    if tables.get("idempotency") is not None:  # the stages' stored results name the user's upload keys
        removed["idempotency_records"] = erase_containing(tables["idempotency"], "data", [
            f"{UPLOAD_PREFIX}{user_id}/", f'"{user_id}/', f'"user_id": "{user_id}"'])  # upload, artifact, ref
    return removed


@cache
def presigning_client(region: str) -> Any:
    """SigV4 and the bucket's regional, virtual-hosted address: a URL a browser can PUT to directly."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", region_name=region,
                        config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}))
