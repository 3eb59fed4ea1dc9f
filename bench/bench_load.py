"""Throughput under concurrency: 16 clients against ``communiques serve --workers 2``.

    python -m bench.bench_load [--n 10000] [--clients 16] [--seconds 30] [--workers 2]

Builds a synthetic index of N documents (light analysis, see bench/synth.py), starts the real
service with N workers sharing that one index, and runs the load generator in a separate
process: an asyncio loop of httpx clients replaying the search-box workload (words, prefixes,
typos, filters) plus autocompletes, for a bounded time. Prints requests/s, latency
percentiles, errors, and each worker's memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.table import percentile, print_table

ROOT = Path(__file__).resolve().parents[1]


async def _client(base: str, reqs: list[dict], until: float, out: list, errors: list,
                  seed: int) -> None:
    import httpx

    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=base, timeout=10) as c:
        while time.monotonic() < until:
            r = rng.choice(reqs)
            if rng.random() < 0.25:
                path, params = "/api/autocomplete", {"q": r["q"].strip()[:6]}
            else:
                params = {"q": r["q"], "tag": r.get("tags", [])}
                if r.get("year"):
                    params["year"] = r["year"]
                path = "/api/search"
            t0 = time.perf_counter()
            try:
                resp = await c.get(path, params=params)
                ok = resp.status_code == 200
            except Exception as exc:  # noqa: BLE001 - every failure counts as an error
                ok = False
                errors.append(repr(exc))
            elapsed = (time.perf_counter() - t0) * 1000
            if ok:
                out.append(elapsed)
            elif len(errors) < 1000:
                errors.append(f"{path} {params}: {resp.status_code}")


def run_load(base: str, reqs_file: Path, clients: int, seconds: float) -> None:
    """Entry point of the load-generator process: prints one JSON line of results."""
    reqs = json.loads(reqs_file.read_text())
    out: list[float] = []
    errors: list[str] = []
    until = time.monotonic() + seconds

    async def main() -> None:
        await asyncio.gather(*(_client(base, reqs, until, out, errors, i) for i in range(clients)))

    t0 = time.perf_counter()
    asyncio.run(main())
    print(json.dumps({"latencies": out, "errors": errors, "seconds": time.perf_counter() - t0}))


def worker_rss(parent: int) -> list[float]:
    """RSS of the server's worker processes (children running the service, not uvicorn's
    supervisor nor multiprocessing's helper)."""
    out = []
    for child in Path("/proc").glob("[0-9]*"):
        try:
            status = (child / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("PPid", "").strip() == str(parent):
            rss = int(fields.get("VmRSS", "0 kB").split()[0]) / 1024
            if rss > 100:
                out.append(rss)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--index", type=Path, default=None, help="reuse an existing index")
    args = parser.parse_args()

    import httpx

    from bench.bench_search import workload
    from bench.net import free_port
    from bench.synth import build_light_index, generate
    from indexer.document import parse_file
    from indexer.ingest import find_files

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        generate(corpus, min(args.n, 3000) if args.index else args.n, seed=5)
        index = args.index or Path(tmp) / "index"
        if args.index is None:
            build_light_index(corpus, index)
        docs = [parse_file(p) for p in find_files([corpus])]
        reqs_file = Path(tmp) / "reqs.json"
        reqs_file.write_text(json.dumps(workload(docs, 500)))
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--index", str(index), "--port",
             str(port), "--workers", str(args.workers), "--log-level", "warning"], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,  # request logs: not measured
        )
        base = f"http://127.0.0.1:{port}"
        try:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 120:
                try:
                    if httpx.get(base + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)  # 503 while loading
            # Every worker warmed up (spaCy loaded, long posting lists read): /health answers
            # from any worker, so ask until 20 answers in a row say so.
            ready = 0
            while ready < 20 and time.monotonic() - t0 < 300:
                health = httpx.get(base + "/health", timeout=5).json()
                full = health.get("analysis") == "full" and health.get("postings") == "ready"
                ready = ready + 1 if full else 0
                time.sleep(0.05)
            load = subprocess.run(
                [sys.executable, "-c",
                 "import sys; from pathlib import Path; from bench.bench_load import run_load; "
                 f"run_load({base!r}, Path({str(reqs_file)!r}), {args.clients}, {args.seconds})"],
                cwd=ROOT, capture_output=True, text=True, timeout=args.seconds + 120,
            )
            rss = worker_rss(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    result = json.loads(load.stdout.strip().splitlines()[-1])
    lat, errors = result["latencies"], result["errors"]
    print(f"{args.n:,} documents, {args.workers} workers, {args.clients} concurrent clients, "
          f"{result['seconds']:.0f} s (75 % search, 25 % autocomplete)")
    print_table(
        ["requests", "requests/s", "p50 ms", "p95 ms", "p99 ms", "errors", "worker RSS MB"],
        [[len(lat), f"{len(lat) / result['seconds']:.0f}", f"{percentile(lat, 50):.1f}",
          f"{percentile(lat, 95):.1f}", f"{percentile(lat, 99):.1f}", len(errors),
          ", ".join(f"{r:.0f}" for r in rss)]],
    )
    for e in errors[:5]:
        print("error:", e)


if __name__ == "__main__":
    main()
