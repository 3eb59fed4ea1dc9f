"""A bigger index, measured: one index grown 10,000 → 100,000 → 300,000 documents through the
Dask path, with search latency, start-up and memory per worker at each size.

    python -m bench.scale_growth [--sizes 10000,100000,300000] [--workers 2] [--workdir DIR]
                                 [--path cluster|local]

Each step generates the next documents (``bench/synth.py``, ~2,500 characters of body each,
numbered on from the previous step) and ingests them into the same index with
``ingest_on_cluster`` on a ``LocalCluster`` of W single-threaded workers, as ``communiques
ingest --cluster local:W`` does, but with the light analysis on the workers (spaCy's tokenizer
and the project's words, no lemmatiser: lemmatising 300,000 documents would take about two
hours on this machine and measure nothing more downstream). A worker plugin of the project's
name installs it before the project's own, which then has nothing to load. With ``--path
local``, the same documents go through ``ingest()`` in this process (light analysis, commits
of 10,000 documents), as ``communiques ingest`` does without a cluster: on 2 cores it is the
faster of the two (the cluster's worth is in more machines), the index the same.

After each step: the ingest's documents/s, the index's size on disk, then
- in this process, the search box's workload (``bench.bench_search.workload``: words,
  prefixes, typos and filters drawn from the titles of 3,000 documents of the index) timed
  inside ``SearchIndex.search``, after the longest posting lists are read ahead;
- ``communiques serve`` on the index (one worker process, as each of ``--workers N`` is):
  seconds to its first answer, the same requests over HTTP, autocomplete, and the worker's
  resident memory after them (and, in brackets, its own: without the pages of the index's
  mapped files, which the kernel can drop and the workers of one machine share).
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.bench_search import http_run, time_ours, workload
from bench.synth import generate
from bench.table import percentile, print_table

ROOT = Path(__file__).resolve().parents[1]

try:
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPlugin
except ImportError:  # the cluster extra is not installed
    _WorkerPlugin = object  # type: ignore[assignment,misc]


class LightAnalysis(_WorkerPlugin):  # type: ignore[misc,valid-type]
    """The light analysis on each worker, under the project's plugin name (idempotent: the
    project's spaCy loader, registered after it, is then skipped)."""

    idempotent = True

    def __init__(self) -> None:
        from indexer.cluster import PLUGIN_NAME

        self.name = PLUGIN_NAME

    async def setup(self, worker: object) -> None:  # noqa: ARG002 - the plugin protocol
        from bench.synth import _light_pipeline
        from indexer import analysis

        analysis._pipeline._nlp = _light_pipeline()


def ingest_step(index: Path, part: Path, workers: int) -> tuple[int, float, dict]:
    """Ingest ``part`` into ``index`` on a new LocalCluster; (documents added, seconds, the
    cluster's figures)."""
    from distributed import Client

    from indexer.cluster import ingest_on_cluster, local_cluster
    from indexer.schema import open_index

    ix = open_index(index, create=True)
    with local_cluster(workers) as cluster, Client(cluster) as client:
        client.register_plugin(LightAnalysis())
        started = time.perf_counter()
        report = ingest_on_cluster(ix, [part], client, progress=False)
        seconds = time.perf_counter() - started
    if report.rejected:
        raise ValueError(f"{len(report.rejected)} file(s) rejected: {report.rejected[:3]}")
    return len(report.added), seconds, getattr(report, "cluster", {}) or {}


def ingest_local(index: Path, part: Path) -> tuple[int, float, dict]:
    """Ingest ``part`` into ``index`` here, light analysis; as :func:`ingest_step`."""
    from bench.synth import build_light_index

    started = time.perf_counter()
    added = build_light_index(part, index, commit_every=10_000)
    return added, time.perf_counter() - started, {}


def _documents(index: Path) -> int:
    from indexer.schema import open_index

    try:
        return open_index(index).doc_count()
    except Exception:  # noqa: BLE001 - no index yet
        return 0


def disk_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def sample_docs(parts: list[Path], n: int, seed: int = 5) -> list:
    from indexer.document import parse_file
    from indexer.ingest import find_files

    files = [f for part in parts for f in find_files([part])]
    rng = random.Random(seed)
    return [parse_file(f) for f in rng.sample(files, min(n, len(files)))]


def in_process(index: Path, reqs: list[dict]) -> list[float]:
    from indexer.schema import open_index
    from indexer.search import SearchIndex

    si = SearchIndex(open_index(index))
    si.warm(wait_for_model=False)
    si.engine().preloaded.wait()
    time_ours(si, reqs[:20])  # first touch, as a served index gets from its first visitors
    return time_ours(si, reqs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,300000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--body-chars", type=int, default=2500)
    parser.add_argument("--path", choices=("cluster", "local"), default="cluster")
    parser.add_argument("--reuse", action="store_true",
                        help="with --workdir: an index already holding a size is not rebuilt: "
                             "grown on from, or measured again when it is the last size")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the corpus and index here (default: a temporary folder)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="communiques-growth-"))
    work.mkdir(parents=True, exist_ok=True)
    index = work / "index"
    rows = []
    parts: list[Path] = []
    have = 0
    try:
        for step, size in enumerate(sizes):
            part = work / f"part{step}"
            parts.append(part)
            if args.reuse and _documents(index) >= size:
                if size != sizes[-1]:  # grown on from, not measured again
                    have = size
                    continue
                rate = "– (built before)"  # measured again only
            else:
                if part.exists():
                    shutil.rmtree(part)
                started = time.perf_counter()
                generate(part, size - have, seed=100 + step, body_chars=args.body_chars,
                         first=have)
                generated = time.perf_counter() - started
                if args.path == "cluster":
                    added, seconds, figures = ingest_step(index, part, args.workers)
                else:
                    added, seconds, figures = ingest_local(index, part)
                rate = f"{added / seconds:.0f} ({args.path})"
                print(f"{size:,}: generated in {generated:.0f} s, ingested {added:,} in "
                      f"{seconds:.0f} s ({added / seconds:.0f} docs/s) {figures}", flush=True)
            have = size
            indexed = sorted(work.glob("part*")) if args.reuse else parts
            reqs = workload(sample_docs(indexed, 3000), args.queries)
            inside = in_process(index, reqs)
            served = http_run(index, reqs)
            rows.append([
                f"{size:,}", rate, f"{disk_mb(index):,.0f}",
                " / ".join(f"{percentile(inside, q):.1f}" for q in (50, 95, 99)),
                " / ".join(f"{percentile(served['http'], q):.1f}" for q in (50, 95, 99)),
                f"{percentile(served['auto'], 95):.1f}",
                f"{served['startup']:.1f}",
                f"{served['rss']:.0f} ({served['rss_anon']:.0f} own)",
            ])
            print_table(["documents", "ingest docs/s (light)", "index MB",
                         "search p50/p95/p99 in process (ms)", "over HTTP p50/p95/p99 (ms)",
                         "autocomplete p95 HTTP (ms)", "start-up to first answer (s)",
                         "RSS per worker (MB)"], rows)
            print(flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
        subprocess.run(["sync"], check=False)


if __name__ == "__main__":
    main()
