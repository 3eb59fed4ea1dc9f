"""Concurrent writes: PUT and DELETE through the API while reading, with a CLI ingest into the
same index, against ``communiques serve --workers 2``.

    python -m bench.concurrent_writes [--seconds 60] [--index DIR] [--ingest-docs 60]

Two writer threads (one PUTs documents, new ones and new versions of its own; one DELETEs
documents the first has written), four reader threads (search, document, similar, export,
``/health``, in turn) and, meanwhile, ``communiques ingest`` of new documents, lot after lot,
into the same index. Checked at the end, in the index itself: every acknowledged write is
there (the last acknowledged version of each document kept, no deleted document, every
ingested document). Targets: 0 responses 5xx, search p95 <= 100 ms, no request over 1 s.
The short version (10 s) runs in the test suite: tests/test_concurrent_writes.py.
``SOAK_LOG=INFO`` lets the service log each request with its time inside the service (to set
against the client's).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.table import percentile, print_table

ROOT = Path(__file__).resolve().parents[1]
KEY = "soak-key"
WORDS = ["numérique", "cloud", "données", "accessibilité", "état", "agents", "identité",
         "services publics", "intelligence artificielle", "api", "cybersécurité"]
DOC = """---
title: {title}
date: 2022-05-0{day} 10:00:00 +02:00
tags:
- Soak
---

{title}. Un communiqué sur le numérique et les données, version {version}.
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(index: Path, env: dict[str, str], workers: int = 2
                  ) -> tuple[subprocess.Popen, str]:
    """``communiques serve --workers N``, once every worker has finished loading (/health 200:
    spaCy and the longest posting lists)."""
    import httpx

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--index", str(index), "--host",
         "127.0.0.1", "--port", str(port), "--workers", str(workers), "--log-level", "warning"],
        cwd=ROOT, env={**os.environ,
                       "COMMUNIQUES_LOG_LEVEL": os.environ.get("SOAK_LOG", "WARNING"), **env},
    )
    deadline = time.monotonic() + 120
    full = 0
    while time.monotonic() < deadline and full < 4 * workers:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited with {proc.returncode}")
        try:
            ready = httpx.get(url + "/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            ready = False
        full = full + 1 if ready else 0
        if not ready:
            time.sleep(0.2)
    if full < 4 * workers:
        proc.kill()
        raise RuntimeError("service did not start within 120 s")
    for _ in range(4 * workers):
        httpx.get(url + "/api/search", params={"q": "numérique"}, timeout=60)
    return proc, url


class Soak:
    """The threads and what they saw."""

    def __init__(self, url: str, ids: list[str], seconds: float) -> None:
        self.url = url
        self.ids = ids
        self.deadline = time.monotonic() + seconds
        self.records: list[tuple[str, int, float]] = []  # kind, status, ms
        self.errors: list[str] = []
        self.kept: dict[str, str] = {}  # id → title of its last acknowledged PUT
        self.deleted: set[str] = set()
        self.to_delete: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.hold = True
        """Kept running past the deadline until the first ingest is done (they overlap)."""

    def running(self) -> bool:
        return not self.stop.is_set() and (self.hold or time.monotonic() < self.deadline)

    def call(self, client: Any, kind: str, method: str, path: str, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            r = client.request(method, path, **kw)
            if kind == "export":
                r.read()
        except Exception as exc:  # noqa: BLE001 - every failure counts
            ms = (time.perf_counter() - t0) * 1000
            with self.lock:
                self.records.append((kind, 0, ms))
                self.errors.append(f"{kind} {path}: {type(exc).__name__}: {exc}")
            return None
        ms = (time.perf_counter() - t0) * 1000
        with self.lock:
            self.records.append((kind, r.status_code, ms))
            if r.status_code != 200:  # reads of existing ids, writes: all must succeed
                self.errors.append(f"{kind} {path}: {r.status_code} {r.text[:200]}")
        return r

    def putter(self) -> None:
        import httpx

        rng = random.Random(1)
        headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "text/markdown"}
        n = 0
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while self.running():
                mine = [i for i in self.kept if i not in self.to_delete]
                if mine and rng.random() < 0.3:
                    doc_id = rng.choice(mine)  # a new version of one of its own
                else:
                    doc_id, n = f"soak-{n:05d}", n + 1
                version = rng.randrange(10**6)
                title = f"Essai {doc_id} version {version}"
                body = DOC.format(title=title, day=1 + version % 9, version=version)
                coll = rng.choice(["communiques", "actualites"])
                r = self.call(client, "put", "PUT", f"/api/documents/{doc_id}",
                              params={"collection": coll}, content=body.encode(),
                              headers=headers)
                if r is not None and r.status_code == 200:
                    with self.lock:
                        self.kept[doc_id] = title
                        if rng.random() < 0.4:
                            self.to_delete.append(doc_id)

    def deleter(self) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {KEY}"}
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while self.running():
                with self.lock:
                    doc_id = next((i for i in self.to_delete if i not in self.deleted), None)
                if doc_id is None:
                    time.sleep(0.05)
                    continue
                r = self.call(client, "delete", "DELETE", f"/api/documents/{doc_id}",
                              headers=headers)
                if r is not None and r.status_code == 200:
                    with self.lock:
                        self.deleted.add(doc_id)
                        self.kept.pop(doc_id, None)
                elif r is not None:
                    with self.lock:  # never retried: counted in the errors above
                        self.deleted.add(doc_id)

    def reader(self, seed: int) -> None:
        import httpx

        rng = random.Random(seed)
        kinds = ["search", "search", "document", "similar", "export", "health"]
        # Archivists' reads: the pool of ids holds drafts, which a key shows.
        with httpx.Client(base_url=self.url, timeout=30,
                          headers={"Authorization": f"Bearer {KEY}"}) as client:
            i = seed
            while self.running():
                kind = kinds[i % len(kinds)]
                i += 1
                doc_id = rng.choice(self.ids)
                if kind == "search":
                    self.call(client, kind, "GET", "/api/search",
                              params={"q": rng.choice(WORDS), "size": 10})
                elif kind == "document":
                    self.call(client, kind, "GET", f"/api/documents/{doc_id}")
                elif kind == "similar":
                    self.call(client, kind, "GET", f"/api/documents/{doc_id}/similar")
                elif kind == "export":
                    self.call(client, kind, "GET", "/api/export",
                              params={"q": rng.choice(WORDS), "format": "jsonl",
                                      "fields": "id,title,date"})
                else:
                    self.call(client, kind, "GET", "/health")


def _lot(folder: Path, n: int, seed: int) -> Path:
    """``n`` new documents in ``folder/lot<seed>/soakingest/``."""
    from bench.synth import generate

    tmp = folder / f"gen-{seed}"
    paths = generate(tmp, n, seed=500 + seed, body_chars=600)
    out = folder / f"lot{seed}" / "soakingest"
    out.mkdir(parents=True, exist_ok=True)
    for k, path in enumerate(paths):
        (out / f"ingest{seed}-{k:04d}.md").write_text(path.read_text(encoding="utf-8"),
                                                      encoding="utf-8")
    shutil.rmtree(tmp)
    return out.parent


def run(seconds: float, workdir: Path, base_index: Path, ingest_docs: int = 60,
        show: bool = False) -> dict[str, Any]:
    """The soak; returns its figures (``errors`` and ``writes_missing`` empty when all held)."""
    from indexer.ingest import find_files
    from indexer.schema import open_index
    from indexer.snapshot import open_searcher

    say = print if show else (lambda *a, **k: None)
    index = workdir / "index"
    shutil.copytree(base_index, index)
    with open_searcher(open_index(index)) as s:
        ids = [f["id"] for f in s.all_stored_fields()]
    env = {"COMMUNIQUES_API_KEY": KEY, "COMMUNIQUES_DOCUMENTS": str(workdir / "documents"),
           "COMMUNIQUES_RATE_WRITE": "off", "COMMUNIQUES_RATE_EXPORT": "off",
           "COMMUNIQUES_FEEDBACK": str(workdir / "feedback.jsonl")}
    service, url = start_service(index, env)
    soak = Soak(url, ids, seconds)
    threads = [threading.Thread(target=soak.putter), threading.Thread(target=soak.deleter)]
    threads += [threading.Thread(target=soak.reader, args=(k,)) for k in range(4)]
    ingests: list[dict[str, Any]] = []
    ingested: list[str] = []
    t0 = time.monotonic()
    try:
        for t in threads:
            t.start()
        time.sleep(min(2.0, seconds / 5))
        lot = 0
        # Lots one after the other while the soak runs (one at least: the soak waits for it).
        while lot == 0 or soak.running():
            lot += 1
            src = _lot(workdir / "ingest", ingest_docs, lot)
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "service.cli", "ingest", str(src), "--index", str(index),
                 "--quiet", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=900)
            try:
                report = json.loads(done.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                report = {"added": 0, "error": done.stderr[-500:]}
            ingests.append({"exit": done.returncode, "added": report.get("added", 0),
                            "seconds": round(time.monotonic() - started, 1),
                            "stderr": done.stderr[-300:]})
            ingested += [p.stem for p in find_files([src])]
            soak.hold = False
            say(f"ingest {lot}: exit {done.returncode}, added {report.get('added')}, "
                f"{ingests[-1]['seconds']} s", flush=True)
            if done.returncode != 0:
                say(f"  its last words: {done.stderr[-800:]}", flush=True)
    finally:
        soak.hold = False
        for t in threads:
            t.join(timeout=120)
        soak.stop.set()
        service.terminate()
        try:
            service.wait(timeout=15)
        except subprocess.TimeoutExpired:
            service.kill()
    elapsed = time.monotonic() - t0

    # Every acknowledged write, in the index itself.
    with open_searcher(open_index(index)) as s:
        stored = {f["id"]: f for f in s.all_stored_fields()}
    missing = [f"{i}: last acknowledged version not found"
               for i, title in soak.kept.items() if stored.get(i, {}).get("title") != title]
    missing += [f"{i}: deleted, still there" for i in soak.deleted
                if i in stored and i not in soak.kept]
    missing += [f"{i}: ingested, not found" for i in ingested if i not in stored]
    by_kind: dict[str, list[float]] = defaultdict(list)
    for kind, _, ms in soak.records:
        by_kind[kind].append(ms)
    every = [ms for _, _, ms in soak.records]
    search = by_kind.get("search", [])
    acknowledged = sum(1 for k, st, _ in soak.records if k in ("put", "delete") and st == 200)
    return {
        "seconds": round(elapsed, 1),
        "requests": len(soak.records),
        "5xx": sum(1 for _, st, _ in soak.records if st >= 500),
        "failed": sum(1 for _, st, _ in soak.records if st == 0),
        "errors": soak.errors,
        "writes_acknowledged": acknowledged,
        "writes_checked": len(soak.kept) + len(soak.deleted) + len(ingested),
        "writes_missing": missing,
        "ingests": ingests,
        "ingest_exit": max((i["exit"] for i in ingests), default=None),
        "ingest_added": sum(i["added"] for i in ingests),
        "search_p95_ms": round(percentile(search, 95), 1) if search else None,
        "p95_ms": round(percentile(every, 95), 1) if every else None,
        "max_ms": round(max(every), 1) if every else None,
        "by_kind": {k: {"n": len(v), "p50_ms": round(percentile(v, 50), 1),
                        "p95_ms": round(percentile(v, 95), 1), "max_ms": round(max(v), 1)}
                    for k, v in sorted(by_kind.items())},
    }


def report(f: dict[str, Any]) -> None:
    print_table(
        ["run", "requests", "5xx", "failed", "writes acknowledged", "writes found",
         "search p95 (ms)", "max (ms)", "ingests (docs added)"],
        [[f"{f['seconds']:g} s", f["requests"], f["5xx"], f["failed"], f["writes_acknowledged"],
          f"{f['writes_checked'] - len(f['writes_missing'])}/{f['writes_checked']}",
          f["search_p95_ms"], f["max_ms"],
          f"{len(f['ingests'])} ({f['ingest_added']})"]],
    )
    print()
    print_table(["kind", "requests", "p50 (ms)", "p95 (ms)", "max (ms)"],
                [[k, v["n"], v["p50_ms"], v["p95_ms"], v["max_ms"]]
                 for k, v in f["by_kind"].items()])
    for sample in f["errors"][:10] + f["writes_missing"][:10]:
        print("  !", sample)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--ingest-docs", type=int, default=60, help="documents per ingest")
    parser.add_argument("--index", type=Path, default=None,
                        help="an index to copy (default: one of the sample corpus)")
    parser.add_argument("--search-p95-ms", type=float, default=100)
    parser.add_argument("--max-ms", type=float, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="communiques-writes-") as tmp:
        work = Path(tmp)
        base = args.index
        if base is None:
            base = work / "base"
            subprocess.run([sys.executable, "-m", "service.cli", "ingest", str(ROOT / "corpus"),
                            "--index", str(base), "--quiet"], cwd=ROOT, check=True, timeout=900)
        run_dir = work / "run"
        run_dir.mkdir()
        figures = run(args.seconds, run_dir, base, args.ingest_docs, show=True)
    print()
    report(figures)
    good = (figures["5xx"] == 0 and figures["failed"] == 0 and not figures["errors"]
            and not figures["writes_missing"]
            and (figures["search_p95_ms"] or 0) <= args.search_p95_ms
            and (figures["max_ms"] or 0) <= args.max_ms)
    print("\nresult:", "ok" if good else "FAILED")
    sys.exit(0 if good else 1)


if __name__ == "__main__":
    main()
