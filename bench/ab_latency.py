"""Search-box latency of two versions of the code on one index, query by query.

    python -m bench.ab_latency --base-code DIR [--n 10000] [--work DIR]

A synthetic corpus of ``--n`` documents is indexed once (light analysis); two worker
processes, one running this checkout and one running ``--base-code`` (an older checkout,
e.g. ``git worktree add /tmp/base <commit>``), answer the same search-box workload as
``bench.bench_search``, alternating which answers first. Both see the same machine load,
so the comparison holds on a busy machine where absolute figures do not.
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
    t0 = time.perf_counter()
    res = si.search(SearchRequest(q=r["q"], tags=r.get("tags", []), year=r.get("year")))
    ms = (time.perf_counter() - t0) * 1000
    print(json.dumps({"ms": ms, "notes": res.notes}), flush=True)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-code", type=Path, required=True)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--work", type=Path, help="keep the corpus and index here")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="ab-latency-"))
    src, idx = work / "corpus", work / "index"
    if not idx.exists():
        generate(src, args.n)
        build_light_index(src, idx)
    reqs = workload([parse_file(p) for p in find_files([src])], args.queries)
    codes = {"base": args.base_code.resolve(), "this": ROOT}
    procs = {
        name: subprocess.Popen([sys.executable, "-c", WORKER, str(idx)], cwd=code,
                               env={**os.environ, "PYTHONPATH": str(code)},
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for name, code in codes.items()
    }
    for p in procs.values():
        assert p.stdout.readline().strip() == "ready"
    times: dict[str, list[float]] = {n: [] for n in codes}
    other = 0
    for i, r in enumerate(reqs):
        for n in (list(codes) if i % 2 else list(codes)[::-1]):
            procs[n].stdin.write(json.dumps(r) + "\n")
            procs[n].stdin.flush()
            out = json.loads(procs[n].stdout.readline())
            times[n].append(out["ms"])
            if n == "this" and any(x.startswith("cherché aussi") for x in out["notes"]):
                other += 1
    for n, t in times.items():
        print(f"{n}: p50/p95/p99 {percentile(t, 50):.1f} / {percentile(t, 95):.1f} / "
              f"{percentile(t, 99):.1f} ms")
    print(f"queries read another way too (this): {other} of {len(reqs)}")
    for p in procs.values():
        p.stdin.close()
        p.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
