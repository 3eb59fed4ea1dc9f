"""Rate limits against a determined client: forged ``X-Forwarded-For``, two workers, bursts.

    python -m bench.rate_limit_attempt [--seconds 150] [--index DIR]

Starts ``communiques serve --workers 2`` over an index of the sample corpus with exports
limited to 60 per 60 s, and tries to get more through. Each attempt comes from its own
loopback address (127.0.0.x), so each starts with a fresh allowance:

1. 200 exports, a new ``X-Forwarded-For`` each time (no proxy named: must be ignored);
2. 200 exports without the header, on new connections (both workers answer);
3. with ``COMMUNIQUES_TRUSTED_PROXIES=127.0.0.1``: 200 exports through the "proxy" for 2
   forwarded clients (each its own allowance), and 200 from an address that is not the proxy
   with rotating headers (ignored);
4. ``--seconds`` of an open-loop stream (4 per second, rotating headers) with bursts of 80 at
   30 s, then just before and just after the 60 s mark that follows: in no 60 s window may
   more than 60 pass (a fixed window would let two bursts through around its edge).

The short versions run with the tests (tests/test_rate_limits.py).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.table import print_table

ROOT = Path(__file__).resolve().parents[1]
EXPORT = {"q": "zzzqqq", "format": "jsonl", "fields": "id"}
LIMIT = 60


def _get(base: str, source: str, xff: str | None) -> tuple[float, float, int]:
    """One export on a new connection from ``source``: (sent, answered, status)."""
    transport = httpx.HTTPTransport(local_address=source)
    headers = {"X-Forwarded-For": xff} if xff else {}
    with httpx.Client(transport=transport, timeout=30) as client:
        sent = time.monotonic()
        status = client.get(base + "/api/export", params=EXPORT, headers=headers).status_code
        return sent, time.monotonic(), status


def _many(base: str, source: str, forwarded: list[str | None], n: int) -> list[tuple[str | None, int]]:
    with ThreadPoolExecutor(8) as pool:
        futures = [(forwarded[i % len(forwarded)],
                    pool.submit(_get, base, source, forwarded[i % len(forwarded)]))
                   for i in range(n)]
        return [(xff, f.result()[2]) for xff, f in futures]


def _rotating(n: int) -> list[str | None]:
    return [f"203.0.113.{i % 250 + 1}" for i in range(n)]


def _start(index: Path, env: dict[str, str]):  # noqa: ANN202 (tests' LiveServer)
    from tests.conftest import start_server

    return start_server(index, {"COMMUNIQUES_RATE_EXPORT": f"{LIMIT}/60", **env}, workers=2)


def stream(base: str, source: str, seconds: float) -> list[tuple[float, float, int]]:
    """Open loop: 4 exports a second and three bursts; (sent, answered, status) of each, in
    seconds from the start (the server decided somewhere in between)."""
    results: list[tuple[float, float, int]] = []
    lock = threading.Lock()
    t0 = time.monotonic()
    plan = [i * 0.25 for i in range(int(seconds * 4))]
    plan += [30.0] * 80 + [89.5] * 80 + [90.5] * 80
    plan.sort()
    pool = ThreadPoolExecutor(32)

    def one(i: int) -> None:
        sent, answered, status = _get(base, source, f"198.18.{i // 250}.{i % 250 + 1}")
        with lock:
            results.append((sent - t0, answered - t0, status))

    for i, at in enumerate(plan):
        delay = t0 + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        pool.submit(one, i)
    pool.shutdown(wait=True)
    return sorted(results)


def max_in_window(passes: list[tuple[float, float]], width: float = 60.0) -> int:
    """The most passes whose whole [sent, answered] interval lies in one ``width`` s window:
    passes that were surely decided less than ``width`` s apart (a client cannot see the
    server's decision time, only that it fell between sending and receiving)."""
    return max((sum(1 for s, a in passes if start <= s and a < start + width)
                for start, _ in passes), default=0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=150.0)
    ap.add_argument("--index", type=Path, default=None, help="an index to copy (default: "
                    "the sample corpus, indexed here)")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="rate-attempt-"))
    try:
        index = work / "index"
        if args.index:
            shutil.copytree(args.index, index)
        else:
            from tests.conftest import SAMPLE_CORPUS, build_index

            build_index(index, SAMPLE_CORPUS)
        rows = []
        ok = True
        server = _start(index, {})
        try:
            passed = Counter(c for _, c in _many(server.url, "127.0.0.2", _rotating(200), 200))
            rows.append(["rotating X-Forwarded-For, no proxy named", 200, passed[200],
                         LIMIT, passed[200] <= LIMIT])
            passed = Counter(c for _, c in _many(server.url, "127.0.0.3", [None], 200))
            rows.append(["no header, new connections (2 workers)", 200, passed[200], LIMIT,
                         passed[200] <= LIMIT])
            timeline = stream(server.url, "127.0.0.5", args.seconds)
            passes = [(sent, got) for sent, got, c in timeline if c == 200]
            worst = max_in_window(passes)
            rows.append([f"{args.seconds:g} s stream, 4/s + bursts of 80 at 30, 89.5 and 90.5 s",
                         len(timeline), f"{len(passes)} (most in any 60 s: {worst})",
                         f"{LIMIT} per 60 s", worst <= LIMIT])
            errors = sum(1 for _, _, c in timeline if c not in (200, 429))
            slowest = max(got - sent for sent, got, _ in timeline)
        finally:
            server.stop()
        server = _start(index, {"COMMUNIQUES_TRUSTED_PROXIES": "127.0.0.1"})
        try:
            clients = ["198.51.100.1", "198.51.100.2"]
            by_client = Counter(x for x, c in _many(server.url, "127.0.0.1", clients, 200)
                                if c == 200)
            rows.append(["proxy named, 2 forwarded clients × 100", 200,
                         " / ".join(str(by_client[c]) for c in clients), "60 each",
                         all(by_client[c] <= LIMIT for c in clients)])
            passed = Counter(c for _, c in _many(server.url, "127.0.0.4", _rotating(200), 200))
            rows.append(["proxy named, rotating header from another address", 200, passed[200],
                         LIMIT, passed[200] <= LIMIT])
        finally:
            server.stop()
        ok = all(r[-1] for r in rows) and errors == 0
        print_table(["attempt", "exports", "passed", "limit", "held"],
                    [[*r[:-1], "yes" if r[-1] else "NO"] for r in rows])
        print(f"\nanswers other than 200 or 429: {errors}; slowest answer in the stream: "
              f"{slowest * 1000:.0f} ms")
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
