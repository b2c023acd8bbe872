"""Reading a multi-file upload as it streams in, refusing it the moment it breaks a rule.

Starlette's form parser counts a file's size only once the whole body is on disk. This one (the same
parser, with two hooks) refuses a file as soon as it passes the per-file limit and a name as soon
as its part headers arrive, so neither a 300 MB file nor `../bad.txt` is written in full first.
Nothing is ingested until every part has been read and every name has passed.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from pipeline.errors import InvalidName
from pipeline.names import validate_source

MAX_FILES = 100  # in one upload request


class FileTooLarge(MultiPartException):
    def __init__(self, name: str, limit: int) -> None:
        super().__init__(f"파일이 너무 큽니다: {name} (한도 {limit / 2**20:.0f} MB; "
                         f"file too large, set HANRAG_MAX_FILE_MB to raise the limit)")


class BadUpload(MultiPartException):
    """Not a multipart upload of files in the `files` field."""


@dataclass
class UploadedFile:
    source: str
    file: UploadFile


class _BoundedParser(MultiPartParser):
    def __init__(self, request: Request, per_file: int) -> None:
        super().__init__(request.headers, request.stream(), max_files=MAX_FILES, max_fields=10)
        self.per_file = per_file
        self._sizes: dict[int, int] = {}

    def on_headers_finished(self) -> None:
        super().on_headers_finished()
        upload = self._current_part.file
        if upload is not None:
            try:
                upload.filename = validate_source(upload.filename or "")
            except InvalidName:
                self._close_all()
                raise

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        upload = self._current_part.file
        if upload is not None:
            size = self._sizes.get(id(upload), 0) + (end - start)
            self._sizes[id(upload)] = size
            if size > self.per_file:
                self._close_all()
                raise FileTooLarge(upload.filename or "", self.per_file)
        super().on_part_data(data, start, end)

    def _close_all(self) -> None:
        """The spooled temporary files go now, not when the garbage collector finds them."""
        for file in self._files_to_close_on_error:
            file.close()


async def read_upload(request: Request, per_file: int) -> list[UploadedFile]:
    """Every file of the request with its validated source name; the caller closes them."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise BadUpload("multipart/form-data 형식으로 `files` 필드에 파일을 보내세요 "
                        "(send files as multipart/form-data in the field `files`)")
    form = await _BoundedParser(request, per_file).parse()
    files = [UploadedFile(value.filename or "", value) for key, value in form.multi_items()
             if key == "files" and isinstance(value, UploadFile)]
    if not files:
        await form.close()
        raise BadUpload("올린 파일이 없습니다 (no files in the field `files`)")
    return files
