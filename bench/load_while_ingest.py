"""Concurrency: ingests while the service answers a steady load from another process.

    python -m bench.load_while_ingest [--seconds 120] [--rate 50] [--lot 60] [--index DIR]

Starts the real service over an index of the sample corpus (a copy of ``--index`` when
given), and a load generator in a separate process sending ``--rate`` requests per second at
fixed times (open loop: a slow answer does not slow the load down): searches, filtered
searches whose answer must never change, a search for the word the new documents carry,
autocompletes, documents and ``/health``. Meanwhile, ingests run one after the other with
``communiques ingest``, each adding ``--lot`` new documents, and every other time two ingests
are started at once: one must wait or fail clearly, and its re-run completes.

Checked: every request answered 200 (errors: 0); results consistent (the unchanged part of the
index always gives the same totals, counts never go backwards, each response agrees with
itself); the new documents visible within seconds of each commit; the index whole at the end.
The fast version (20 s) runs in CI: tests/test_reliability.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.table import percentile, print_table

READ_KEY = "load-while-ingest-read-key"

ROOT = Path(__file__).resolve().parents[1]
MARKER = "zorglubienne"
WORDS = ["numérique", "cloud", "données", "accessibilité", "état", "agents", "identité",
         "france", "services publics", "intelligence artificielle", "cybersécurité", "api"]
STABLE = [("cloud", "communiques"), ("numérique", "actualites"), ("", "evenements"),
          ("données", "communiques")]
"""Filtered searches over collections the ingests never touch: their totals must not move."""
PREFIXES = ["numéri", "acces", "clo", "donn", "cyber"]


# --- the load generator (its own process) ------------------------------------------------------


def _consistent(data: dict[str, Any], size: int) -> str | None:
    """What is wrong with one search response, if anything."""
    total, hits = data["total"], data["hits"]
    if len(hits) != min(size, total):
        return f"{len(hits)} hits for total {total}"
    years = sum(f["count"] for f in data["facets"]["year"])
    if years != total:
        return f"year facets sum to {years}, total {total}"
    return None


async def _load(base: str, rate: float, seconds: float, ids: list[str], seed: int,
                stop: Path | None = None) -> dict:
    import httpx

    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    errors: list[str] = []
    tasks = []
    # Idle connections are dropped by the client before the server drops them (uvicorn: 5 s),
    # so that no request is ever sent on a connection the server is closing.
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=2.0)
    # An archivist's load: the documents read include drafts, which only a key shows.
    async with httpx.AsyncClient(base_url=base, timeout=10, limits=limits,
                                 headers={"Authorization": f"Bearer {READ_KEY}"}) as client:

        async def one(kind: str, path: str, params: dict[str, Any], extra: Any) -> None:
            sent = time.time()
            t0 = time.perf_counter()
            rec: dict[str, Any] = {"kind": kind, "sent": sent}
            try:
                r = await client.get(path, params=params)
                rec["ms"] = (time.perf_counter() - t0) * 1000
                rec["recv"] = time.time()
                rec["status"] = r.status_code
                if r.status_code != 200:
                    errors.append(f"{kind} {path} {params}: {r.status_code} {r.text[:200]}")
                else:
                    data = r.json()
                    if path == "/api/search":
                        problem = _consistent(data, params.get("size", 10))
                        if problem:
                            rec["inconsistent"] = problem
                        rec["total"] = data["total"]
                        rec["key"] = extra
                    elif path == "/health":
                        rec["total"] = data["documents"]
            except Exception as exc:  # noqa: BLE001 - every failure counts as an error
                rec["status"] = 0
                rec["recv"] = time.time()
                rec["ms"] = (time.perf_counter() - t0) * 1000
                errors.append(f"{kind} {path} {params}: {type(exc).__name__}: {exc}")
            records.append(rec)

        start = time.monotonic()
        i = -1
        while True:
            i += 1
            elapsed = i / rate
            if elapsed >= seconds or (stop is not None and i % 10 == 0 and stop.exists()):
                break
            delay = start + elapsed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            x = rng.random()
            if x < 0.3:
                q = rng.choice(WORDS)
                args = ("search", "/api/search", {"q": q, "size": rng.choice([10, 20])}, None)
            elif x < 0.5:
                q, coll = rng.choice(STABLE)
                args = ("stable", "/api/search", {"q": q, "collection": coll, "size": 10},
                        f"{q}|{coll}")
            elif x < 0.7:
                args = ("marker", "/api/search", {"q": MARKER, "size": 5}, MARKER)
            elif x < 0.8:
                args = ("autocomplete", "/api/autocomplete", {"q": rng.choice(PREFIXES)}, None)
            elif x < 0.9:
                args = ("health", "/health", {}, None)
            else:
                args = ("document", f"/api/documents/{rng.choice(ids)}", {}, None)
            tasks.append(asyncio.create_task(one(*args)))
        await asyncio.gather(*tasks)
    return {"records": records, "errors": errors}


def load_main(base: str, rate: float, seconds: float, ids_file: Path, out: Path) -> None:
    """Runs until ``<out>.stop`` exists (or ``seconds`` pass), then writes its records."""
    ids = json.loads(ids_file.read_text())
    stop = out.with_suffix(".stop")
    result = asyncio.run(_load(base, rate, seconds, ids, seed=1, stop=stop))
    out.write_text(json.dumps(result))


# --- analysis of what the load saw ---------------------------------------------------------------


def _never_backwards(records: list[dict[str, Any]]) -> int:
    """Responses that show fewer documents than a response received before they were sent."""
    done = sorted((r["recv"], r["total"]) for r in records)
    bad = 0
    best, k = -1, 0
    for r in sorted(records, key=lambda r: r["sent"]):
        while k < len(done) and done[k][0] < r["sent"]:
            best = max(best, done[k][1])
            k += 1
        if r["total"] < best:
            bad += 1
    return bad


def analyse(result: dict[str, Any], commits: list[tuple[float, int]]) -> dict[str, Any]:
    """Errors, inconsistencies and visibility delays from the load's records; ``commits`` are
    (commit time, marker documents expected from then on)."""
    records = result["records"]
    ok = [r for r in records if r.get("status") == 200]
    inconsistent = [r["inconsistent"] for r in ok if "inconsistent" in r]
    stable: dict[str, set[int]] = {}
    for r in ok:
        if r["kind"] == "stable":
            stable.setdefault(r["key"], set()).add(r["total"])
    moved = {k: sorted(v) for k, v in stable.items() if len(v) > 1}
    marker = [r for r in ok if r["kind"] == "marker"]
    health = [r for r in ok if r["kind"] == "health"]
    backwards = _never_backwards(marker) + _never_backwards(health)
    delays = []
    for t_commit, expected in commits:
        seen = [r["recv"] for r in marker if r["total"] >= expected and r["recv"] >= t_commit]
        seen_before = [r for r in marker if r["total"] >= expected and r["recv"] < t_commit]
        if seen:
            delays.append(max(0.0, min(seen) - t_commit))
        elif seen_before:
            delays.append(0.0)
        else:
            delays.append(float("inf"))
    ms = [r["ms"] for r in ok]
    return {
        "requests": len(records),
        "ok": len(ok),
        "errors": len(records) - len(ok),
        "error_samples": result["errors"][:10],
        "inconsistent": len(inconsistent) + sum(len(v) - 1 for v in moved.values()) + backwards,
        "inconsistent_samples": inconsistent[:5] + [f"{k}: totals {v}" for k, v in moved.items()],
        "backwards": backwards,
        "visible_after_s": delays,
        "p50_ms": round(percentile(ms, 50), 1) if ms else None,
        "p99_ms": round(percentile(ms, 99), 1) if ms else None,
        "max_ms": round(max(ms), 1) if ms else None,
        "final_marker": marker[-1]["total"] if marker else None,
    }


# --- the orchestration -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(index: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    import httpx

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    full_env = {**os.environ, "COMMUNIQUES_INDEX": str(index), "COMMUNIQUES_LOG_LEVEL": "WARNING",
                "COMMUNIQUES_READ_KEY": READ_KEY,
                **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=full_env,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)  # 503 while loading
    else:
        proc.kill()
        raise RuntimeError("service did not start within 90 s")
    # Warm: spaCy loads in the background after start-up (the service answers meanwhile with
    # the light analysis); the load starts once the full analysis is there.
    while time.monotonic() < deadline:
        if httpx.get(url + "/health", timeout=5).json().get("analysis", "full") == "full":
            break
        time.sleep(0.2)
    httpx.get(url + "/api/search", params={"q": "numérique"}, timeout=60)
    return proc, url


def write_lot(folder: Path, lot: int, n: int) -> Path:
    """``n`` new documents (collection ``lot``) that all carry the marker word."""
    from bench.synth import generate

    tmp = folder / f"gen-{lot}"
    paths = generate(tmp, n, seed=100 + lot, body_chars=600)
    out = folder / f"lot{lot}" / "lot"
    out.mkdir(parents=True, exist_ok=True)
    for k, path in enumerate(paths):
        text = path.read_text(encoding="utf-8").rstrip("\n")
        (out / f"lot{lot}-{k:04d}.md").write_text(
            text + f"\n\nCe communiqué {MARKER} appartient au lot {lot}.\n", encoding="utf-8"
        )
    shutil.rmtree(tmp)
    return out.parent


def _ingest_cmd(src: Path, index: Path) -> list[str]:
    return [sys.executable, "-m", "service.cli", "ingest", str(src), "--index", str(index),
            "--quiet", "--json"]


def _last_commit(index: Path) -> float:
    tocs = list(index.glob("_MAIN_*.toc"))
    return max(p.stat().st_mtime for p in tocs) if tocs else 0.0


def run(seconds: float, rate: float, lot_size: int, work: Path, index: Path | None = None,
        show: bool = True) -> dict[str, Any]:
    """Load + ingests; returns the figures (see :func:`analyse`) plus the ingests' outcomes."""
    from indexer.document import parse_file
    from indexer.ingest import find_files
    from indexer.schema import open_index

    say = print if show else (lambda *a, **k: None)
    target = work / "index"
    if index is not None:
        shutil.copytree(index, target)
    else:
        subprocess.run(_ingest_cmd(ROOT / "corpus", target), cwd=ROOT, check=True,
                       capture_output=True, timeout=600)
    base_docs = open_index(target).doc_count()
    ids = [parse_file(p).id for p in find_files([ROOT / "corpus"])]
    (work / "ids.json").write_text(json.dumps(ids))
    service, url = start_service(target)
    out = work / "load.json"
    loader = subprocess.Popen(
        [sys.executable, "-m", "bench.load_while_ingest", "--load", url, "--rate", str(rate),
         "--seconds", str(seconds + 900), "--ids", str(work / "ids.json"), "--out", str(out)],
        cwd=ROOT,
    )
    t_start = time.monotonic()
    commits: list[tuple[float, int]] = []
    ingests: list[dict[str, Any]] = []
    expected = 0
    lot = 0
    try:
        time.sleep(2.0)
        # New ingests while there is time left (two rounds at least: one alone, one pair).
        while time.monotonic() - t_start < seconds - 10 or lot < 2:
            lot += 1
            pair = lot % 2 == 0
            sources = [write_lot(work / "new", lot, lot_size)]
            if pair:
                lot += 1
                sources.append(write_lot(work / "new", lot, lot_size))
            t0 = time.monotonic()
            procs = [subprocess.Popen(_ingest_cmd(s, target), cwd=ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for s in sources]
            outs = [p.communicate(timeout=600) for p in procs]
            codes = [p.returncode for p in procs]
            row = {"lots": len(sources), "codes": codes,
                   "refused": [e.strip().splitlines()[-1] if e.strip() else ""
                               for (_, e), c in zip(outs, codes, strict=True) if c != 0]}
            for code in codes:
                if code == 0:
                    expected += lot_size
                    commits.append((_last_commit(target), expected))
            for src, code in zip(sources, codes, strict=True):
                if code != 0:  # the one that had to wait or failed clearly: run it again
                    again = subprocess.run(_ingest_cmd(src, target), cwd=ROOT,
                                           capture_output=True, text=True, timeout=600)
                    row["rerun"] = again.returncode
                    if again.returncode == 0:
                        expected += lot_size
                        commits.append((_last_commit(target), expected))
            row["seconds"] = round(time.monotonic() - t0, 1)
            ingests.append(row)
            say(f"ingest of {len(sources)} lot(s) at the same time: exit codes {codes}"
                + (f", re-run {row.get('rerun')}" if "rerun" in row else "")
                + (f" — {row['refused'][0]}" if row["refused"] else ""), flush=True)
        time.sleep(4.0)  # the last commit seen through the load, then the load stops
        out.with_suffix(".stop").touch()
        loader.wait(timeout=120)
    finally:
        if loader.poll() is None:
            loader.kill()
        service.terminate()
        try:
            service.wait(timeout=10)
        except subprocess.TimeoutExpired:
            service.kill()
    figures = analyse(json.loads(out.read_text()), commits)
    final = open_index(target)
    with final.searcher() as s:
        stored_ids = [f["id"] for f in s.all_stored_fields()]
    figures.update(
        seconds=round(time.monotonic() - t_start), rate=rate, ingests=ingests, expected_new=expected,
        documents=len(stored_ids), documents_expected=base_docs + expected,
        duplicates=len(stored_ids) - len(set(stored_ids)),
    )
    return figures


def report(f: dict[str, Any]) -> None:
    delays = [d for d in f["visible_after_s"]]
    print_table(
        ["load", "requests", "ok", "errors", "inconsistent", "p50 (ms)", "p99 (ms)", "max (ms)"],
        [[f"{f['rate']:g}/s × {f['seconds']:g} s", f["requests"], f["ok"], f["errors"],
          f["inconsistent"], f["p50_ms"], f["p99_ms"], f["max_ms"]]],
    )
    print()
    print_table(
        ["ingests", "concurrent pairs", "refused clearly then re-run ok", "new docs",
         "visible after commit (max s)", "index at the end"],
        [[sum(r["lots"] for r in f["ingests"]),
          sum(1 for r in f["ingests"] if r["lots"] == 2),
          sum(1 for r in f["ingests"] if r.get("rerun") == 0),
          f"{f['final_marker']}/{f['expected_new']}",
          f"{max(delays):.2f}" if delays else "-",
          f"{f['documents']}/{f['documents_expected']} docs, {f['duplicates']} duplicates"]],
    )
    for sample in f["error_samples"] + f["inconsistent_samples"]:
        print("  !", sample)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--ids", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--lot", type=int, default=60, help="new documents per ingest")
    parser.add_argument("--index", type=Path, default=None,
                        help="an index of the sample corpus to copy (default: build one)")
    args = parser.parse_args()
    if args.load:
        load_main(args.load, args.rate, args.seconds, args.ids, args.out)
        return
    with tempfile.TemporaryDirectory(prefix="communiques-load-") as tmp:
        figures = run(args.seconds, args.rate, args.lot, Path(tmp), args.index)
    print()
    report(figures)
    good = (figures["errors"] == 0 and figures["inconsistent"] == 0
            and figures["documents"] == figures["documents_expected"]
            and figures["duplicates"] == 0 and figures["final_marker"] == figures["expected_new"])
    sys.exit(0 if good else 1)


if __name__ == "__main__":
    main()
