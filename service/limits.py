"""Request limits: body size (413) and per-client rate limits on expensive routes (429).

Both are plain ASGI middlewares, mounted inside the observability middleware so that refused
requests are still counted, logged and given the security headers.

* **Body size**: a declared ``Content-Length`` over the limit is refused before a byte of the
  body is read; a chunked body is counted as it arrives and refused as soon as it passes the
  limit. ``COMMUNIQUES_MAX_BODY_BYTES`` (default 1,000,000).
* **Rate limits**: a token bucket per client address and per class of route — ``export``
  (``/api/export``), ``suggest`` (``/api/tags/suggest``, ``/api/documents/{id}/tags/suggest``)
  and ``write`` (any PUT, POST, PATCH or
  DELETE under ``/api/``, whether or not it carries the key, so that guessing the key is slowed
  down too). ``COMMUNIQUES_RATE_EXPORT`` / ``_SUGGEST`` / ``_WRITE`` = ``N/S`` (N requests per
  S seconds, bursts up to N) or ``off``. The buckets live in each worker's memory.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_RATES = {"export": "60/60", "suggest": "600/60", "write": "600/60"}
"""Generous on purpose (a person never comes near them; a script hammering the service
does); tighten them per deployment through the environment."""
MAX_CLIENTS = 10_000
"""Buckets kept at most (least recently seen dropped first): memory stays bounded."""
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
    """``capacity`` requests at once, refilled at ``capacity / period`` per second."""

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
        return cls(capacity, period)

    @property
    def per_second(self) -> float:
        return self.capacity / self.period


class TokenBuckets:
    """One token bucket per key, in memory, with the least recently used keys dropped."""

    def __init__(self, rate: Rate, max_keys: int = MAX_CLIENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when a request may go ahead (a token is taken), else the seconds to wait."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(self.rate.capacity), now))
            tokens = min(float(self.rate.capacity), tokens + (now - last) * self.rate.per_second)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate.per_second
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return wait


def route_class(method: str, path: str) -> str | None:
    """Which rate-limited class a request belongs to, if any."""
    if path == "/api/export" or path.startswith("/api/export/"):
        return "export"
    if path.startswith("/api/tags/suggest") or (path.startswith("/api/") and path.endswith(
            "/tags/suggest")):
        return "suggest"
    if method in WRITE_METHODS and path.startswith("/api/"):
        return "write"
    return None


class RateLimitMiddleware:
    """429 with ``Retry-After`` when a client exceeds its class's rate."""

    def __init__(self, app: ASGIApp, rates: dict[str, Rate | None]) -> None:
        self.app = app
        self.buckets = {name: TokenBuckets(rate) for name, rate in rates.items() if rate}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.buckets:
            name = route_class(scope.get("method", "GET"), scope.get("path", ""))
            buckets = self.buckets.get(name) if name else None
            if buckets is not None:
                client = scope.get("client") or ("unknown", 0)
                wait = buckets.take(str(client[0]))
                if wait > 0:
                    seconds = max(1, math.ceil(wait))
                    rate = buckets.rate
                    await send_json(
                        send, 429,
                        {"detail": f"too many requests: {name} is limited to {rate.capacity} "
                                   f"per {rate.period:g} s; retry in {seconds} s"},
                        [(b"retry-after", str(seconds).encode())],
                    )
                    return
        await self.app(scope, receive, send)


# --- the refusals, in the OpenAPI description -------------------------------------------------

ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
VALIDATION_ERROR_SCHEMA = {
    "title": "ValidationError",
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "required": ["detail"],
}
_REFUSALS = {
    "400": "a parameter refused; the detail names it",
    "401": "missing or wrong API key",
    "403": "writes are disabled (no API key configured)",
    "404": "no such document",
    "409": "the index is locked by another writer; try again",
    "413": "request body too large",
    "429": "too many requests; see Retry-After",
}


def document_refusals(openapi: dict[str, Any]) -> dict[str, Any]:
    """Add the 4xx answers that middlewares and handlers give to the OpenAPI description, and
    describe the 422 body as the service sends it (``detail`` text, ``errors`` per field)."""
    components = openapi.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    components["HTTPValidationError"] = VALIDATION_ERROR_SCHEMA
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, item in openapi.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            verb = method.upper()
            codes = ["400"]
            if "{" in path:
                codes.append("404")
            limited = route_class(verb, path.replace("{", "").replace("}", ""))
            if limited is not None or "/tags/suggest" in path:
                codes.append("429")
            if verb in WRITE_METHODS:
                codes += ["413"]
                if path.startswith("/api/"):
                    codes += ["401", "403", "409", "429"]
            responses = operation["responses"]
            for code in codes:
                entry = responses.setdefault(code, {"description": _REFUSALS[code]})
                entry.setdefault("content", ref)
                if code == "429":
                    entry.setdefault("headers", {"Retry-After": {
                        "description": "seconds to wait", "schema": {"type": "integer"}}})
    return openapi
