"""Request limits: body size (413) and per-client rate limits on expensive routes (429).

Both are plain ASGI middlewares, mounted inside the observability middleware so that refused
requests are still counted, logged and given the security headers.

* **Body size**: a declared ``Content-Length`` over the limit is refused before a byte of the
  body is read; a chunked body is counted as it arrives and refused as soon as it passes the
  limit. ``COMMUNIQUES_MAX_BODY_BYTES`` (default 1,000,000).
* **Rate limits**: a moving window per client address and per class of route — ``export``
  (``/api/export``), ``suggest`` (``/api/tags/suggest``, ``/api/documents/{id}/tags/suggest``),
  ``write`` (any PUT, POST, PATCH or DELETE under ``/api/``, and the sign-in form, whether or
  not it carries the key, so that guessing a key is slowed down too) and ``editor`` (the
  editor's form, ``POST /editeur``). ``COMMUNIQUES_RATE_EXPORT`` / ``_SUGGEST`` / ``_WRITE`` /
  ``_EDITOR`` = ``N/S`` (N requests in any S seconds) or ``off``. Counted by the ``limits``
  library in a storage shared by every worker of a ``serve`` (:class:`SQLiteStorage`, or any
  ``limits`` URI in ``COMMUNIQUES_RATE_STORAGE``), so one limit holds whichever worker answers.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.errors import ConfigurationError
from limits.storage import MovingWindowSupport, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger("communiques")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_RATES = {"export": "60/60", "suggest": "600/60", "write": "600/60", "editor": "60/60"}
"""Generous on purpose (a person never comes near them; a script hammering the service
does); tighten them per deployment through the environment."""
WRITE_METHODS = frozenset({"PUT", "POST", "PATCH", "DELETE"})


async def send_json(send: Send, status: int, body: dict[str, Any],
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps(body, ensure_ascii=False).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            *(headers or []),
        ],
    })
    await send({"type": "http.response.body", "body": payload})


# --- body size --------------------------------------------------------------------------------


class _TooLarge(Exception):
    pass


class BodySizeLimitMiddleware:
    """413 for a request body over ``max_bytes``, without reading (or buffering) it whole."""

    def __init__(self, app: ASGIApp, max_bytes: int = 1_000_000) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        detail = {"detail": f"request body too large (limit {self.max_bytes:,} bytes)"}
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.max_bytes
            except ValueError:
                await send_json(send, 400, {"detail": "invalid Content-Length"})
                return
            if too_large:
                await send_json(send, 413, detail)
                return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started:
                await send_json(send, 413, detail)


# --- rate limits ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    """``capacity`` requests in any ``period`` seconds (a moving window)."""

    capacity: int
    period: float

    @classmethod
    def parse(cls, text: str | None) -> Rate | None:
        """``"30/60"`` (30 per 60 s), ``"30/min"``, ``"5/s"``; ``off``, ``0`` or empty: none."""
        text = (text or "").strip().lower()
        if text in ("", "off", "0", "none", "false"):
            return None
        m = re.fullmatch(r"(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(s|sec|m|min|h)?", text)
        if not m:
            raise ValueError(f"rate {text!r}: expected N/SECONDS (e.g. 30/60) or off")
        unit = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}.get(m.group(3) or "s", 1)
        period = float(m.group(2) or 1) * unit
        capacity = int(m.group(1))
        if capacity == 0:
            return None
        if period < 1:
            raise ValueError(f"rate {text!r}: the period must be at least 1 second")
        return cls(capacity, period)

    def item(self) -> RateLimitItem:
        """The same rate as a :mod:`limits` item (whole seconds)."""
        return RateLimitItemPerSecond(self.capacity, max(1, round(self.period)))


class SQLiteStorage(Storage, MovingWindowSupport):
    """A :mod:`limits` storage in one SQLite file, shared by the processes that open it.

    ``communiques serve`` makes the file in a private folder for its workers, so that one limit
    holds across all of them (an in-memory storage would give each worker its own allowance).
    Registered as the ``sqlite://`` scheme: ``sqlite:///path/to/file`` (an absolute path).
    Every decision is one short ``BEGIN IMMEDIATE`` transaction, so two workers never both
    take the last place of a window. Moving window: each hit is a row that leaves the window
    ``expiry`` seconds after it was made, so no burst across a window edge passes twice the
    limit. Fixed-window counters are kept too, for the other strategies.
    """

    STORAGE_SCHEME = ["sqlite"]
    PRUNE_EVERY = 500
    """Expired rows of every key are deleted once every this many hits: the file stays small."""

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False,
                 clock: Callable[[], float] = time.time, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        path = urllib.parse.urlparse(uri or "").path
        if not path:
            raise ConfigurationError(f"rate-limit storage {uri!r}: expected sqlite:///PATH")
        self.path = path
        self.clock = clock
        self._lock = threading.Lock()
        self._hits = 0
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None,
                                   check_same_thread=False)
        with self._lock:
            self._db.execute("PRAGMA busy_timeout = 10000")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = OFF")  # counts, not records: speed first
            with self._transaction():
                self._db.execute("CREATE TABLE IF NOT EXISTS hits ("
                                 "key TEXT NOT NULL, at REAL NOT NULL, expires REAL NOT NULL)")
                self._db.execute("CREATE INDEX IF NOT EXISTS hits_key ON hits (key, expires)")
                self._db.execute("CREATE TABLE IF NOT EXISTS counters ("
                                 "key TEXT PRIMARY KEY, value INTEGER NOT NULL, "
                                 "expires REAL NOT NULL)")

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return sqlite3.Error

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (``IMMEDIATE``): decisions are serialised."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # moving window

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        with self._lock, self._transaction() as db:
            now = self.clock()
            self._hits += 1
            if self._hits % self.PRUNE_EVERY == 0:
                db.execute("DELETE FROM hits WHERE expires <= ?", (now,))
            else:
                db.execute("DELETE FROM hits WHERE key = ? AND expires <= ?", (key, now))
            (taken,) = db.execute("SELECT COUNT(*) FROM hits WHERE key = ?", (key,)).fetchone()
            if taken + amount > limit:
                return False
            db.executemany("INSERT INTO hits (key, at, expires) VALUES (?, ?, ?)",
                           [(key, now, now + expiry)] * amount)
            return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        with self._lock:
            now = self.clock()
            oldest, count = self._db.execute(
                "SELECT MIN(at), COUNT(*) FROM hits WHERE key = ? AND expires > ?", (key, now),
            ).fetchone()
        return (oldest if count else now), int(count)

    # fixed window

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        with self._lock, self._transaction() as db:
            now = self.clock()
            db.execute("DELETE FROM counters WHERE key = ? AND expires <= ?", (key, now))
            db.execute("INSERT INTO counters (key, value, expires) VALUES (?, ?, ?) "
                       "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
                       (key, amount, now + expiry))
            (value,) = db.execute("SELECT value FROM counters WHERE key = ?", (key,)).fetchone()
            return int(value)

    def get(self, key: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE key = ? AND expires > ?",
                                   (key, self.clock())).fetchone()
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        with self._lock:
            row = self._db.execute("SELECT expires FROM counters WHERE key = ? AND expires > ?",
                                   (key, self.clock())).fetchone()
        return float(row[0]) if row else self.clock()

    # housekeeping

    def check(self) -> bool:
        try:
            with self._lock:
                self._db.execute("SELECT 1 FROM hits LIMIT 1").fetchall()
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        with self._lock, self._transaction() as db:
            n = db.execute("DELETE FROM hits").rowcount + db.execute(
                "DELETE FROM counters").rowcount
        return int(n)

    def clear(self, key: str) -> None:
        with self._lock, self._transaction() as db:
            db.execute("DELETE FROM hits WHERE key = ?", (key,))
            db.execute("DELETE FROM counters WHERE key = ?", (key,))


def route_class(method: str, path: str) -> str | None:
    """Which rate-limited class a request belongs to, if any."""
    if path == "/api/export" or path.startswith("/api/export/"):
        return "export"
    if path.startswith("/api/tags/suggest") or (path.startswith("/api/") and path.endswith(
            "/tags/suggest")):
        return "suggest"
    if path.startswith("/v1/projects/") and (path.endswith("/suggest")
                                             or path.endswith("/suggest-batch")):
        return "suggest"  # the Annif-compatible API: the same work as /api/tags/suggest
    if method in WRITE_METHODS and (path.startswith(("/api/", "/v1/"))
                                    or path == "/connexion"):
        return "write"  # the sign-in page takes keys: guessing them is slowed down as well
    if method == "POST" and path == "/editeur":
        return "editor"
    return None


class RateLimitMiddleware:
    """429 with ``Retry-After`` when a client exceeds its class's rate.

    The client is the connection's address: a forwarded address counts only when
    ``ProxyHeadersMiddleware`` (mounted outside this one for the proxies the operator named)
    put it there. The count lives in ``storage`` (a :mod:`limits` URI; ``sqlite://`` for the
    workers of one ``serve``), decided by the moving-window strategy, in a worker thread so that
    a busy storage never holds the event loop up.
    """

    def __init__(self, app: ASGIApp, rates: dict[str, Rate | None],
                 storage: str = "memory://") -> None:
        self.app = app
        self.rates = {name: rate for name, rate in rates.items() if rate}
        self.items = {name: rate.item() for name, rate in self.rates.items()}
        self.limiter = (MovingWindowRateLimiter(storage_from_string(storage))
                        if self.rates else None)

    def _wait(self, name: str, client: str) -> float:
        """0 when the request may go ahead (and is counted), else the seconds to wait. A
        storage that fails lets the request through, logged: the limits protect the service,
        they must not take it down."""
        assert self.limiter is not None
        item = self.items[name]
        try:
            if self.limiter.hit(item, name, client):
                return 0.0
            reset = self.limiter.get_window_stats(item, name, client).reset_time
        except Exception as exc:  # the storage's own errors vary with its kind
            log.warning("rate-limit storage failed; request let through",
                        extra={"fields": {"class": name, "error": repr(exc)[:200]}})
            return 0.0
        return max(1.0, reset - time.time())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.limiter is not None:
            name = route_class(scope.get("method", "GET"), scope.get("path", ""))
            if name in self.rates:
                client = scope.get("client") or ("unknown", 0)
                wait = await anyio.to_thread.run_sync(self._wait, name, str(client[0]))
                if wait > 0:
                    seconds = max(1, math.ceil(wait))
                    rate = self.rates[name]
                    await send_json(
                        send, 429,
                        {"detail": f"too many requests: {name} is limited to {rate.capacity} "
                                   f"per {rate.period:g} s; retry in {seconds} s"},
                        [(b"retry-after", str(seconds).encode())],
                    )
                    return
        await self.app(scope, receive, send)
