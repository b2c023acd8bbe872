"""Accounts and login sessions of `hanrag serve`, in the index's SQLite file.

Passwords are hashed with scrypt from the standard library (`hashlib.scrypt`, OpenSSL): it is
memory-hard like argon2id, and needs no new compiled dependency in the Lambda image or on a fresh
clone. The cost is OWASP's recommended minimum (N=2^17, r=8, p=1: 128 MiB, ~0.3 s per check) and
is stored with each hash, so it can be raised later without breaking older ones.

A session is a random token given to the browser once; only its SHA-256 is stored, with an expiry,
so a copy of the database does not let anyone in. Logging out deletes the row; a new password or
a removed account deletes all of that user's rows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from pipeline.adapters.local.database import Database
from pipeline.errors import PipelineError
from pipeline.names import validate_user_id

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    user_id       TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at    REAL NOT NULL,
    changed_at    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS login_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS login_sessions_by_user ON login_sessions (user_id);
"""

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024  # scrypt hashes any length; this only bounds the request


class AccountError(PipelineError):
    """An account that does not exist or already exists, or a password that is too short."""


@dataclass(frozen=True)
class ScryptCost:
    n: int = 2**17
    r: int = 8
    p: int = 1

    @property
    def maxmem(self) -> int:
        return 129 * self.n * self.r * self.p  # what OpenSSL needs, with a little room


def hash_password(password: str, cost: ScryptCost = ScryptCost()) -> str:
    """`scrypt$N$r$p$salt$key`, base64 without padding."""
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=cost.n, r=cost.r, p=cost.p, maxmem=cost.maxmem, dklen=32)
    return f"scrypt${cost.n}${cost.r}${cost.p}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        cost = ScryptCost(int(n), int(r), int(p))
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    tried = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=cost.n, r=cost.r, p=cost.p,
                           maxmem=cost.maxmem, dklen=32)
    return hmac.compare_digest(tried, _unb64(key))


def check_password_rules(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"비밀번호는 {MIN_PASSWORD_CHARS}자 이상이어야 합니다 "
                           f"(the password needs at least {MIN_PASSWORD_CHARS} characters)")
    if len(password) > MAX_PASSWORD_CHARS:
        raise AccountError(f"비밀번호가 너무 깁니다 (at most {MAX_PASSWORD_CHARS} characters)")
    return password


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SqliteAccounts:
    """User accounts and their login sessions."""

    def __init__(self, db: Database, cost: ScryptCost = ScryptCost()) -> None:
        self.db = db
        self.cost = cost
        self._decoy: str | None = None  # checked for a missing user, so that costs as much as a wrong password
        with self.db.transaction() as c:
            c.execute(SCHEMA)

    # ---------------------------------------------------------------- accounts

    def add(self, user_id: str, password: str) -> None:
        user_id = validate_user_id(user_id)
        hashed = hash_password(check_password_rules(password), self.cost)
        now = time.time()
        with self.db.transaction() as c:
            if list(c.execute("SELECT 1 FROM accounts WHERE user_id = ?", (user_id,))):
                raise AccountError(f"사용자 {user_id}이(가) 이미 있습니다 (the account exists; "
                                   "`hanrag user passwd` changes its password)")
            c.execute("INSERT INTO accounts VALUES (?, ?, ?, ?)", (user_id, hashed, now, now))

    def users(self) -> list[dict]:
        rows = self.db.execute("SELECT a.user_id, a.created_at, a.changed_at, COUNT(s.token_hash) FROM accounts a"
                               " LEFT JOIN login_sessions s ON s.user_id = a.user_id AND s.expires_at > ?"
                               " GROUP BY a.user_id ORDER BY a.user_id", (time.time(),))
        return [{"user": u, "created_at": created, "password_changed_at": changed, "sessions": sessions}
                for u, created, changed, sessions in rows]

    def any(self) -> bool:
        return bool(self.db.execute("SELECT 1 FROM accounts LIMIT 1"))

    def remove(self, user_id: str) -> None:
        """The account and its sessions; the user's documents and history stay (`hanrag delete` removes those)."""
        user_id = validate_user_id(user_id)
        with self.db.transaction() as c:
            c.execute("DELETE FROM accounts WHERE user_id = ?", (user_id,))
            if not c.changes():
                raise AccountError(f"사용자 {user_id}이(가) 없습니다 (no such account)")
            c.execute("DELETE FROM login_sessions WHERE user_id = ?", (user_id,))

    def set_password(self, user_id: str, password: str) -> int:
        """A new password ends every session of the user; the number ended."""
        user_id = validate_user_id(user_id)
        hashed = hash_password(check_password_rules(password), self.cost)
        with self.db.transaction() as c:
            c.execute("UPDATE accounts SET password_hash = ?, changed_at = ? WHERE user_id = ?",
                      (hashed, time.time(), user_id))
            if not c.changes():
                raise AccountError(f"사용자 {user_id}이(가) 없습니다 (no such account)")
            c.execute("DELETE FROM login_sessions WHERE user_id = ?", (user_id,))
            return c.changes()

    def check(self, user_id: str, password: str) -> bool:
        """Whether the password is the user's; as slow for an unknown user as for a wrong password."""
        rows = self.db.execute("SELECT password_hash FROM accounts WHERE user_id = ?", (user_id,))
        if not rows and self._decoy is None:
            self._decoy = hash_password(secrets.token_hex(8), self.cost)
        stored = rows[0][0] if rows else self._decoy
        return verify_password(password[:MAX_PASSWORD_CHARS], stored) and bool(rows)

    # ---------------------------------------------------------------- sessions

    def open_session(self, user_id: str, lifetime_seconds: float) -> str:
        """A new random token for the browser; the database keeps only its hash."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self.db.transaction() as c:
            c.execute("DELETE FROM login_sessions WHERE expires_at <= ?", (now,))
            c.execute("INSERT INTO login_sessions VALUES (?, ?, ?, ?)",
                      (_token_hash(token), validate_user_id(user_id), now, now + lifetime_seconds))
        return token

    def session_user(self, token: str) -> str | None:
        if not token or len(token) > 128:
            return None
        rows = self.db.execute("SELECT user_id FROM login_sessions WHERE token_hash = ? AND expires_at > ?",
                               (_token_hash(token), time.time()))
        return rows[0][0] if rows else None

    def close_session(self, token: str) -> None:
        with self.db.transaction() as c:
            c.execute("DELETE FROM login_sessions WHERE token_hash = ?", (_token_hash(token),))
