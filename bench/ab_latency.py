"""Search-box latency of two versions of the code on one index, query by query.

    python -m bench.ab_latency --base-code DIR [--n 10000] [--work DIR] [--own-index] [--passes 2]

A synthetic corpus of ``--n`` documents is indexed once (light analysis); two worker
processes, one running this checkout and one running ``--base-code`` (an older checkout,
e.g. ``git worktree add /tmp/base <commit>``), answer the same search-box workload as
``bench.bench_search``, alternating which answers first, then the same autocomplete
requests. Both see the same machine load, so the comparison holds on a busy machine where
absolute figures do not; each also reports the CPU time of its requests (its own process's,
which the other jobs of the machine do not add to). With ``--own-index`` (versions whose
index formats differ), each version indexes the corpus with its own code. With ``--passes 2``,
the workload runs again: the first pass reads the posting lists its words need for the first
time, the second shows the steady state of a worker whose lists are in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.bench_search import workload
from bench.synth import build_light_index, generate
from bench.table import percentile
from indexer.document import parse_file
from indexer.ingest import find_files

ROOT = Path(__file__).resolve().parents[1]
WORKER = """
import json, sys, time
from pathlib import Path
from indexer.schema import open_index
from indexer.search import SearchIndex, SearchRequest
si = SearchIndex(open_index(Path(sys.argv[1])), preload=True)
si.warm()
print("ready", flush=True)
for line in sys.stdin:
    r = json.loads(line)
    t0, c0 = time.perf_counter(), time.process_time()
    if r.get("auto"):
        si.autocomplete(r["auto"])
        notes = []
    else:
        res = si.search(SearchRequest(q=r["q"], tags=r.get("tags", []), year=r.get("year")))
        notes = res.notes
    ms = (time.perf_counter() - t0) * 1000
    cpu = (time.process_time() - c0) * 1000
    print(json.dumps({"ms": ms, "cpu": cpu, "notes": notes}), flush=True)
"""
BUILD = """
import sys
from pathlib import Path
from bench.synth import build_light_index
build_light_index(Path(sys.argv[1]), Path(sys.argv[2]))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-code", type=Path, required=True)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--work", type=Path, help="keep the corpus and index here")
    ap.add_argument("--own-index", action="store_true",
                    help="each version indexes the corpus with its own code")
    ap.add_argument("--passes", type=int, default=1,
                    help="run the workload this many times (a row a pass)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="ab-latency-"))
    src = work / "corpus"
    if not src.exists():
        generate(src, args.n)
    codes = {"base": args.base_code.resolve(), "this": ROOT}
    indexes = {name: work / (f"index-{name}" if args.own_index else "index") for name in codes}
    for name, idx in indexes.items():
        if not idx.exists():
            if args.own_index:
                subprocess.run([sys.executable, "-c", BUILD, str(src), str(idx)], cwd=codes[name],
                               env={**os.environ, "PYTHONPATH": str(codes[name])}, check=True)
            else:
                build_light_index(src, idx)
    reqs = workload([parse_file(p) for p in find_files([src])], args.queries)
    procs = {
        name: subprocess.Popen([sys.executable, "-c", WORKER, str(indexes[name])], cwd=code,
                               env={**os.environ, "PYTHONPATH": str(code)},
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for name, code in codes.items()
    }
    for p in procs.values():
        assert p.stdout.readline().strip() == "ready"

    def ask(name: str, r: dict) -> dict:
        procs[name].stdin.write(json.dumps(r) + "\n")
        procs[name].stdin.flush()
        return json.loads(procs[name].stdout.readline())

    for r in reqs[:20]:  # first touch of posting lists, as bench.bench_search does
        for n in codes:
            ask(n, r)
    autos = [{"auto": r["q"].strip()[: max(3, len(r["q"].strip()) // 2)]} for r in reqs]
    print("| pass | version | search p50/p95/p99 ms | search CPU p50/p95/p99 ms | "
          "autocomplete p50/p95/p99 ms | autocomplete CPU p50/p95/p99 ms |")
    print("|---|---|---|---|---|---|")
    for run in range(1, args.passes + 1):
        times: dict[str, dict[str, list[float]]] = {
            n: {k: [] for k in ("ms", "cpu", "auto ms", "auto cpu")} for n in codes}
        other = 0
        for i, r in enumerate(reqs + autos):
            for n in (list(codes) if i % 2 else list(codes)[::-1]):
                out = ask(n, r)
                prefix = "auto " if "auto" in r else ""
                times[n][prefix + "ms"].append(out["ms"])
                times[n][prefix + "cpu"].append(out["cpu"])
                if n == "this" and any(x.startswith("cherché aussi") for x in out["notes"]):
                    other += 1
        for n, t in times.items():
            cells = [" / ".join(f"{percentile(t[k], q):.1f}" for q in (50, 95, 99))
                     for k in ("ms", "cpu", "auto ms", "auto cpu")]
            print(f"| {run} | {n} | " + " | ".join(cells) + " |", flush=True)
    print(f"queries read another way too (this): {other} of {len(reqs)}")
    for p in procs.values():
        p.stdin.close()
        p.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
