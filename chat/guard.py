"""What stands between the network and `hanrag serve`'s endpoints, checked before any of them runs.

- Host allow-list: a DNS-rebinding page reaches the server under its own name (`attacker.example`
  resolving to 127.0.0.1); only loopback names and the configured ones are served.
- Origin check on every state-changing request: a page on another site — or on another port of
  localhost, which SameSite counts as the same site — cannot post with the user's cookie. A request
  without Origin and without `Sec-Fetch-Site` comes from a script or curl (browsers send one of them
  on every POST and DELETE), which has no cookie of the user's to abuse, so it passes.
- Request size: the body is counted as it arrives; past the limit the request is refused with 413
  at once, whatever the Content-Length said.
- Security headers on every response (CSP without any third-party source, no framing, nosniff,
  no referrer — the one-time login link carries a token in its URL).

A plain ASGI middleware, so streamed responses (Server-Sent Events) pass through untouched.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}

Scope = dict
Message = dict
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def host_name(host_header: str) -> str:
    """`Host: [::1]:8000` → `::1`, `Host: Example.org:80` → `example.org`."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class RequestGuard:
    """ASGI middleware: Host allow-list, Origin check, body limits and security headers."""

    def __init__(self, app, allowed_hosts: Iterable[str], body_limit: Callable[[str], int]) -> None:
        self.app = app
        self.allowed_hosts = LOOPBACK_NAMES | {h.strip().lower() for h in allowed_hosts if h.strip()}
        self.body_limit = body_limit  # request path → the most bytes its body may hold

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        send = _with_security_headers(send, private=scope["path"].startswith("/api/"))
        host = headers.get("host", "")
        if host_name(host) not in self.allowed_hosts:
            await _refuse(send, 400, f"이 서버는 {host_name(host) or '(없음)'} 이름으로 열 수 없습니다 "
                                     f"(Host {host!r} is not allowed; add it to HANRAG_ALLOWED_HOSTS)")
            return
        if scope["method"] not in SAFE_METHODS and (reason := cross_origin_reason(headers)):
            await _refuse(send, 403, reason)
            return
        limit = self.body_limit(scope["path"])
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _refuse(send, 413, too_large(limit))
            return
        await _BoundedBody(self.app, limit).run(scope, receive, send)


def cross_origin_reason(headers: dict[str, str]) -> str | None:
    """Why a state-changing request is refused as cross-origin, or None when it is the server's own."""
    origin = headers.get("origin")
    host = headers.get("host", "").lower()
    if origin is not None:
        parts = urlsplit(origin)
        if origin == "null" or parts.scheme not in ("http", "https") or parts.netloc.lower() != host:
            return (f"다른 사이트({origin})에서 보낸 요청은 받지 않습니다 "
                    f"(cross-origin request refused: Origin {origin!r} is not this server)")
        return None
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site not in (None, "same-origin", "none"):
        return (f"다른 사이트에서 보낸 요청은 받지 않습니다 "
                f"(cross-origin request refused: Sec-Fetch-Site {fetch_site!r})")
    return None


def too_large(limit: int) -> str:
    return (f"요청이 너무 큽니다: 한도는 {limit / 2**20:.0f} MB입니다 "
            f"(request body over {limit / 2**20:.0f} MB; HANRAG_MAX_FILE_MB and HANRAG_MAX_UPLOAD_MB raise it)")


def _with_security_headers(send: Send, private: bool) -> Send:
    """`private`: an API answer holds the user's documents; no cache keeps a copy."""
    wanted = {**SECURITY_HEADERS, "cache-control": "no-store"} if private else SECURITY_HEADERS

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            extra = [(k.encode(), v.encode()) for k, v in wanted.items() if k.encode() not in present]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}, ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class _BoundedBody:
    """Counts the body as the app reads it. Past the limit the app is told the client went away, and
    the client gets 413 instead of whatever the app would have answered."""

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.received = 0
        self.exceeded = False
        self.started = False

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counting_receive() -> Message:
            if self.exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
                if self.received > self.limit:
                    self.exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if self.exceeded and not self.started:
                return  # the 413 below answers instead
            if message["type"] == "http.response.start":
                self.started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not self.exceeded:
                raise
        if self.exceeded and not self.started:
            await _refuse(send, 413, too_large(self.limit))


class LoginThrottle:
    """Failed logins slow an attacker down: a second's pause after each failure, and after
    `max_failures` failures for one user (or 4× as many from one address) within `window` seconds,
    no password is even checked until the oldest failure leaves the window."""

    def __init__(self, max_failures: int = 5, window: float = 900.0, pause: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self.pause = pause
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait_seconds(self, user: str, address: str) -> float:
        """0 when a login may be tried now, else the seconds until it may."""
        now = self.clock()
        with self._lock:
            waits = [self._wait(f"user:{user}", self.max_failures, now),
                     self._wait(f"addr:{address}", 4 * self.max_failures, now)]
        return max(waits)

    def failed(self, user: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            for key in (f"user:{user}", f"addr:{address}"):
                self._failures.setdefault(key, deque()).append(now)
        if self.pause:
            time.sleep(self.pause)

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._failures.pop(f"user:{user}", None)

    def _wait(self, key: str, allowed: int, now: float) -> float:
        times = self._failures.get(key)
        if not times:
            return 0.0
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) < allowed:
            return 0.0
        return times[0] + self.window - now
