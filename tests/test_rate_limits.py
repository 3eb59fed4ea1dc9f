"""Rate limits and metrics hold across the workers of one ``serve``, whatever the headers say.

Each test talks HTTP to ``communiques serve --workers 2``: one limit is shared by both workers
(a storage both use), ``X-Forwarded-For`` is believed only from proxies the operator named, and
``/metrics`` gives the service's counts whichever worker answers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from service.limits import Rate, SQLiteStorage, route_class
from tests.conftest import ROOT, LiveServer, start_server

EXPORT = {"q": "zzzqqq", "format": "jsonl", "fields": "id"}
"""A cheap export (no match): what is measured is the limiter, not the export."""


def _client(source: str = "127.0.0.1") -> httpx.Client:
    """A client on a new connection (any worker may answer) from a loopback ``source`` address:
    each test its own address, so each starts with a fresh allowance."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=30)


def _exports(base: str, n: int, forwarded: list[str | None],
             source: str = "127.0.0.1") -> list[tuple[str | None, int]]:
    """``n`` exports from 8 threads, the i-th with ``X-Forwarded-For: forwarded[i % len]``."""

    def one(i: int) -> tuple[str | None, int]:
        xff = forwarded[i % len(forwarded)]
        headers = {"X-Forwarded-For": xff} if xff else {}
        with _client(source) as client:
            return xff, client.get(base + "/api/export", params=EXPORT, headers=headers).status_code

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


@pytest.fixture(scope="module")
def untrusting(sample_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[LiveServer, Path]]:
    """The default: no proxy named, so forwarded headers are ignored. Its temporary folder is
    its own, to see what ``serve`` leaves there."""
    tmp = tmp_path_factory.mktemp("serve-tmp")
    server = start_server(sample_index, {"COMMUNIQUES_RATE_EXPORT": "60/60", "TMPDIR": str(tmp)},
                          workers=2)
    yield server, tmp
    server.stop()


@pytest.fixture(scope="module")
def untrusting_server(untrusting: tuple[LiveServer, Path]) -> str:
    return untrusting[0].url


@pytest.fixture(scope="module")
def proxied_server(sample_index: Path) -> Iterator[str]:
    """Behind a proxy on loopback that the operator named: the forwarded client is the key."""
    server = start_server(sample_index, {"COMMUNIQUES_RATE_EXPORT": "60/60",
                                         "COMMUNIQUES_TRUSTED_PROXIES": "127.0.0.1"}, workers=2)
    yield server.url
    server.stop()


def test_rotating_forwarded_for_does_not_bypass_the_limit(untrusting_server: str) -> None:
    rotating = [f"203.0.113.{i % 250 + 1}" for i in range(200)]
    results = _exports(untrusting_server, 200, rotating, source="127.0.0.2")
    codes = Counter(code for _, code in results)
    assert set(codes) <= {200, 429}, codes
    assert codes[200] == 60, codes  # one limit over both workers, headers ignored


def test_trusted_proxy_makes_the_forwarded_client_the_key(proxied_server: str) -> None:
    clients = ["198.51.100.7", "198.51.100.8"]
    results = _exports(proxied_server, 200, clients)  # from 127.0.0.1, the proxy
    passed = Counter(xff for xff, code in results if code == 200)
    assert passed == {c: 60 for c in clients}, passed
    # the proxy itself, without a forwarded header, is one more client with its own allowance
    assert _exports(proxied_server, 1, [None])[0][1] == 200
    # an address that is not the proxy cannot choose its identity
    spoofed = _exports(proxied_server, 100, [f"192.0.2.{i}" for i in range(1, 101)],
                       source="127.0.0.3")
    assert Counter(code for _, code in spoofed)[200] == 60


def test_refusal_says_when_to_retry(untrusting_server: str) -> None:
    with _client("127.0.0.4") as client:
        for _ in range(61):
            r = client.get(untrusting_server + "/api/export", params=EXPORT)
    assert r.status_code == 429
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert "export" in r.json()["detail"] and "60 per 60 s" in r.json()["detail"]


def _count(metrics: str, route: str, status: str = "200") -> float:
    pattern = (r'^communiques_requests_total\{[^}]*method="GET"[^}]*route="' + re.escape(route)
               + r'"[^}]*status="' + status + r'"[^}]*\} (\S+)$')
    found = re.findall(pattern, metrics, flags=re.MULTILINE)
    return sum(float(v) for v in found)


def test_metrics_count_every_worker(untrusting_server: str) -> None:
    base = untrusting_server
    before = _count(httpx.get(base + "/metrics").text, "/api/stats")

    def stats(_: int) -> int:
        with _client() as client:
            return client.get(base + "/api/stats").status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(stats, range(40))) == {200}
    # whichever worker answers /metrics, it reports the 40 requests, not its own share of them
    seen = set()
    for _ in range(10):
        with _client() as client:
            text = client.get(base + "/metrics").text
        seen.add(_count(text, "/api/stats") - before)
        assert "communiques_request_seconds_bucket" in text
        assert re.search(r'^communiques_request_seconds_count\{[^}]*route="/api/stats"', text,
                         flags=re.MULTILINE)
    assert seen == {40.0}, seen


# --- the pieces, without a server -----------------------------------------------------------


def test_sqlite_storage_moving_window(tmp_path: Path) -> None:
    """Entries expire one by one (no burst at a window edge), and two storages over one file
    (two workers) share the count."""
    from limits import RateLimitItemPerSecond
    from limits.strategies import MovingWindowRateLimiter

    now = [1000.0]
    a = SQLiteStorage(f"sqlite:///{tmp_path / 'l.sqlite'}", clock=lambda: now[0])
    b = SQLiteStorage(f"sqlite:///{tmp_path / 'l.sqlite'}", clock=lambda: now[0])
    item = RateLimitItemPerSecond(3, 10)
    la, lb = MovingWindowRateLimiter(a), MovingWindowRateLimiter(b)
    assert la.hit(item, "export", "x") and lb.hit(item, "export", "x")
    now[0] += 5
    assert la.hit(item, "export", "x")
    assert not lb.hit(item, "export", "x")
    assert lb.hit(item, "export", "other")  # per client
    now[0] += 5.5  # the first two have left the window, the third has not
    assert la.hit(item, "export", "x") and lb.hit(item, "export", "x")
    assert not la.hit(item, "export", "x")
    stats = la.get_window_stats(item, "export", "x")
    assert stats.remaining == 0 and stats.reset_time == pytest.approx(1015.0)
    a.reset()
    assert la.hit(item, "export", "x")


def test_sqlite_storage_scheme_is_registered(tmp_path: Path) -> None:
    from limits.storage import storage_from_string

    storage = storage_from_string(f"sqlite:///{tmp_path / 'x.sqlite'}")
    assert isinstance(storage, SQLiteStorage) and storage.check()


def test_rate_settings() -> None:
    assert Rate.parse("30/60") == Rate(30, 60.0)
    assert Rate.parse("5/s") == Rate(5, 1.0)
    assert Rate.parse("10/min") == Rate(10, 60.0)
    assert Rate.parse("off") is None and Rate.parse("0") is None
    with pytest.raises(ValueError, match="beaucoup"):
        Rate.parse("beaucoup")
    assert route_class("GET", "/api/export") == "export"
    assert route_class("POST", "/api/tags/suggest") == "suggest"
    assert route_class("GET", "/api/documents/x/tags/suggest") == "suggest"
    assert route_class("DELETE", "/api/documents/x") == "write"
    assert route_class("POST", "/editeur") == "editor"
    assert route_class("GET", "/editeur") is None
    assert route_class("GET", "/api/search") is None


def test_a_failing_storage_lets_requests_through(tmp_path: Path) -> None:
    """The limits protect the service; a storage that fails (disk full, file removed) must not
    turn every limited request into a 500."""
    import sqlite3

    from service.limits import RateLimitMiddleware

    async def app(scope: object, receive: object, send: object) -> None:
        pass

    middleware = RateLimitMiddleware(app, {"export": Rate(1, 60)},
                                     storage=f"sqlite:///{tmp_path / 'l.sqlite'}")
    assert middleware._wait("export", "a") == 0 and middleware._wait("export", "a") > 0

    def broken(*_: object, **__: object) -> bool:
        raise sqlite3.OperationalError("disk I/O error")

    middleware.limiter.hit = broken  # type: ignore[method-assign, union-attr]
    assert middleware._wait("export", "a") == 0


def test_serve_names_a_malformed_rate(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--index", str(tmp_path / "ix")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "COMMUNIQUES_RATE_EXPORT": "beaucoup"},
    )
    assert done.returncode == 2, done.stderr
    assert "COMMUNIQUES_RATE_EXPORT" in done.stderr and "beaucoup" in done.stderr


def test_serve_cleans_its_shared_folder_up(untrusting: tuple[LiveServer, Path]) -> None:
    """The limiter's file and the metrics folder live in a folder ``serve`` makes and removes
    (last in this file: it stops the server)."""

    server, tmp = untrusting
    made = [p.name for p in tmp.iterdir()]
    assert [n for n in made if n.startswith("communiques-serve-")], made
    server.stop()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.listdir(tmp):
        time.sleep(0.2)
    assert os.listdir(tmp) == []
