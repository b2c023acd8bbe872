"""Validation of the names that come from outside: user ids, chat session ids and source paths.

A user id becomes part of an index name on AWS (`hanrag-<user>`) and a folder name in a watched
inbox, so it is held to a small alphabet. A source is a relative path as the user named the file.
"""

from __future__ import annotations

import re
import unicodedata

from pipeline.errors import InvalidName

_USER_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_SOURCE_LENGTH = 512


def validate_user_id(user_id: str) -> str:
    if not isinstance(user_id, str) or not _USER_ID.fullmatch(user_id):  # fullmatch: no trailing newline
        raise InvalidName(
            f"invalid user id {user_id!r}: use 1–63 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return user_id


def validate_session_id(session_id: str) -> str:
    if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id):
        raise InvalidName(f"invalid session id {session_id!r}: use 1–64 letters, digits, '-' or '_'")
    return session_id


def validate_source(source: str) -> str:
    """A normalized relative path; no traversal, no control characters, bounded length."""
    source = unicodedata.normalize("NFC", source).replace("\\", "/")
    parts = [p for p in source.split("/") if p not in ("", ".")]
    if not parts:
        raise InvalidName("invalid source name: it is empty")
    if any(p == ".." for p in parts):
        raise InvalidName(f"invalid source name {source!r}: '..' is not allowed")
    if any(unicodedata.category(ch).startswith("C") for ch in source):
        raise InvalidName(f"invalid source name {source!r}: it contains control characters")
    cleaned = "/".join(parts)
    if len(cleaned) > MAX_SOURCE_LENGTH:
        raise InvalidName(f"invalid source name: longer than {MAX_SOURCE_LENGTH} characters")
    return cleaned
