"""Ingest on a Dask cluster against the local ingest with spaCy processes, same documents.

    python -m bench.cluster_ingest [--n 1200] [--workers 2] [--rounds 2] [--seed 7]

Generates N synthetic documents (``bench/synth.py``: sentences, titles and tags of the
embedded and real corpora recombined, ~2,900 characters each), then, each round, three
ingests of them into a fresh index, each in a fresh process with spaCy already loaded (the
start-up is timed apart, not counted in the throughput):

1. ``--jobs W``: the local ingest, W spaCy processes, the ingesting process writing every
   segment and merge;
2. ``--cluster local:W``: a ``LocalCluster`` of W single-threaded worker processes started
   by the ingesting process, whose scheduler runs in it too (as the command does);
3. the same, the scheduler and workers in another process, reached by address (as with
   ``--cluster tcp://scheduler:8786``): the ingesting process alone.

The fastest run of each kind is kept. For each: seconds, documents/s, the ratio to
``--jobs W``, and how busy the ingesting process was (its CPU time / the ingest's wall
time: what it can still absorb when workers are added). On a machine that other work shares,
wall times vary from run to run more than the paths differ, so the CPU time of every process
at work (the ingesting one, spaCy's processes or the workers, the scheduler) is counted too,
and the documents/s that W free cores would give at that cost is shown beside.

Then the per-core rate (documents per CPU second of a worker, merges included) and a
projection to 10^6 documents on 10 and 50 workers: throughput is the smaller of workers ×
per-core rate and what the ingesting process can publish (1 / its CPU time per document),
with the merges such an ingest makes (simulated with the index's own policy: a document is
rewritten more often in a larger index); the end-of-ingest steps are added apart (the last
consolidation, in up to 5 merges at once, and the acronym mining in the ingesting process).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.table import print_table

ROOT = Path(__file__).resolve().parents[1]
PROJECTED_DOCS = 1_000_000


def _local_cluster(workers: int) -> tuple[object, object]:
    """The cluster ``--cluster local:N`` starts, and a client with spaCy on its workers."""
    from distributed import Client

    from indexer.cluster import PLUGIN_NAME, SpacyLoader, local_cluster

    cluster = local_cluster(workers)
    client = Client(cluster)
    client.register_plugin(SpacyLoader(), name=PLUGIN_NAME)
    return cluster, client


def _helpers_cpu(client: object | None) -> float:
    """CPU seconds used so far by the processes that analyse: the cluster's workers (each
    asked), or this process's finished children (spaCy's processes, reaped at the end of an
    ingest)."""
    if client is None:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime
    return sum(client.run(time.process_time).values())


def child(mode: str, corpus: Path, index: Path, workers: int, scheduler: str | None) -> None:
    """One timed ingest, in this process; prints its figures as JSON."""
    from indexer.ingest import ingest, store_acronyms
    from indexer.schema import open_index

    t0 = time.perf_counter()
    client = cluster = None
    if mode == "jobs":
        from indexer.analysis import _pipeline

        _pipeline.warm()
    elif mode == "local":
        cluster, client = _local_cluster(workers)
    else:
        from distributed import Client

        from indexer.cluster import PLUGIN_NAME, SpacyLoader

        client = Client(scheduler)
        client.register_plugin(SpacyLoader(), name=PLUGIN_NAME)
    start = time.perf_counter() - t0
    ix = open_index(index, create=True)
    helpers0 = _helpers_cpu(client)
    cpu0, t0 = time.process_time(), time.perf_counter()
    report = ingest(ix, [corpus], n_process=workers if mode == "jobs" else 1,
                    progress=False, cluster=client)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    helpers = _helpers_cpu(client) - helpers0
    cpu1 = time.process_time()
    store_acronyms(ix)  # once more, timed alone: the end-of-ingest step in this process
    acronyms = time.process_time() - cpu1
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()
    print(json.dumps({"start": start, "wall": wall, "cpu": cpu, "helpers_cpu": helpers,
                      "docs": len(report.added),
                      "rejected": len(report.rejected), "segments": report.segments,
                      "acronyms": acronyms, "cluster": report.cluster}))


def run_child(mode: str, corpus: Path, index: Path, workers: int,
              scheduler: str | None = None) -> dict:
    cmd = [sys.executable, "-m", "bench.cluster_ingest", "--child", mode, str(corpus),
           str(index), "--workers", str(workers), *(["--scheduler", scheduler] if scheduler
                                                    else [])]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode}: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["wall"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", nargs=3, metavar=("MODE", "CORPUS", "INDEX"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--scheduler", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, corpus, index = args.child
        child(mode, Path(corpus), Path(index), args.workers, args.scheduler)
        return

    from bench.synth import generate

    w = args.workers
    runs: dict[str, list[dict]] = {"jobs": [], "local": [], "remote": []}
    with tempfile.TemporaryDirectory(prefix="communiques-cluster-") as tmp:
        corpus = Path(tmp) / "corpus"
        generate(corpus, args.n, seed=args.seed)
        chars = sum(p.stat().st_size for p in corpus.rglob("*.md")) / args.n
        for k in range(args.rounds):
            for mode in ("jobs", "local", "remote"):
                index = Path(tmp) / f"index-{mode}-{k}"
                if mode != "remote":
                    runs[mode].append(run_child(mode, corpus, index, w))
                    continue
                cluster, client = _local_cluster(w)  # scheduler and workers: this process
                try:
                    cpu0 = time.process_time()
                    result = run_child(mode, corpus, index, w, cluster.scheduler_address)
                    result["scheduler_cpu"] = time.process_time() - cpu0
                    runs[mode].append(result)
                finally:
                    client.close()
                    cluster.close()
            for mode, found in runs.items():
                r = found[-1]
                print(f"round {k + 1} {mode}: {r['wall']:.1f} s, {r['docs'] / r['wall']:.1f} "
                      f"docs/s, ingesting process busy {100 * r['cpu'] / r['wall']:.0f} %",
                      file=sys.stderr, flush=True)
    jobs, local, remote = (_best(runs[m]) for m in ("jobs", "local", "remote"))
    for r in (jobs, local, remote):
        assert r["docs"] == args.n and r["rejected"] == 0, r
    base = args.n / jobs["wall"]

    def total_ms(r: dict) -> float:
        """CPU per document of every process at work: the ingesting one, the analysing ones
        (spaCy's, or the workers), the scheduler when it is apart."""
        return (r["cpu"] + r["helpers_cpu"] + r.get("scheduler_cpu", 0.0)) / args.n * 1000

    def row(name: str, r: dict) -> list[str]:
        rate = args.n / r["wall"]
        ideal = w * 1000 / total_ms(r)
        return [name, f"{r['start']:.1f}", f"{r['wall']:.1f}", f"{rate:.1f}",
                f"{rate / base:.2f}", f"{100 * r['cpu'] / r['wall']:.0f} %",
                f"{r['cpu'] / args.n * 1000:.1f}", f"{total_ms(r):.1f}", f"{ideal:.1f}",
                f"{ideal / (w * 1000 / total_ms(jobs)):.2f}", str(r["segments"])]

    print(f"{args.n} synthetic documents, {chars:,.0f} bytes each; {w} spaCy processes or "
          f"workers; {args.rounds} round(s), the fastest of each kept")
    print_table(
        ["ingest", "start-up (s)", "seconds", "docs/s", "ratio to --jobs",
         "ingesting process busy", "its CPU ms/doc", "all processes' CPU ms/doc",
         f"docs/s on {w} free cores (from CPU)", "ratio (from CPU)", "segments"],
        [row(f"--jobs {w}", jobs), row(f"--cluster local:{w} (scheduler in-process)", local),
         row(f"--cluster tcp://… (scheduler apart, {w} workers)", remote)],
    )
    print()
    for name, r in (("local", local), ("remote", remote)):
        c = r["cluster"]
        merge_ms = c["merge_cpu_s"] / c["merged_docs"] * 1000 if c["merged_docs"] else 0.0
        print(f"{name}: {c['batches']} batches, {c['merges']} merges on the workers "
              f"({c['merged_docs']} documents rewritten, {merge_ms:.1f} ms each), workers' CPU "
              f"{c['worker_cpu_s']:.1f} s ({c['worker_cpu_s'] / args.n * 1000:.1f} ms/doc)"
              + (f"; scheduler process CPU {r['scheduler_cpu']:.1f} s "
                 f"({100 * r['scheduler_cpu'] / r['wall']:.0f} % of the wall time)"
                 if "scheduler_cpu" in r else ""))
    project(args.n, w, remote, local)


class _Size:
    """A segment of the merge policy's simulation: its document count only."""

    def __init__(self, docs: int) -> None:
        self.docs = docs

    def doc_count_all(self) -> int:
        return self.docs


def merge_plan(docs: int, batch: int, workers: int) -> tuple[float, int, int]:
    """The merge policy run on segment sizes alone (:func:`indexer.ingest._choose_small` after
    each batch, :func:`indexer.cluster.consolidation_groups` at the end) for ``docs``
    documents in batches of ``batch``: documents rewritten by merges during the ingest per
    document, documents the end-of-ingest consolidation rewrites, and in how many groups."""
    from indexer.cluster import consolidation_groups
    from indexer.ingest import _choose_small

    segments: list[_Size] = []
    rewritten = 0
    for start in range(0, docs, batch):
        segments.append(_Size(min(batch, docs - start)))
        while chosen := _choose_small(segments):
            segments = [s for s in segments if s not in chosen]
            merged = sum(s.docs for s in chosen)
            rewritten += merged
            segments.append(_Size(merged))
    groups = consolidation_groups(segments, workers)
    return rewritten / docs, sum(s.docs for g in groups for s in g), max(1, len(groups))


def project(n: int, w: int, remote: dict, local: dict) -> None:
    """Per-core rate, and 10^6 documents on 10 and 50 workers (see the module's doc)."""
    c = remote["cluster"]
    merged = c["merged_docs"] or local["cluster"]["merged_docs"]
    merge_cpu = c["merge_cpu_s"] if c["merged_docs"] else local["cluster"]["merge_cpu_s"]
    merge_ms = merge_cpu / merged * 1000 if merged else 0.0
    batch_ms = (c["worker_cpu_s"] - c["merge_cpu_s"]) / n * 1000  # parse, analyse, write
    per_core = n / c["worker_cpu_s"]
    # the ingesting process's CPU per document, its end-of-ingest acronym mining apart
    main_ms = (remote["cpu"] - remote["acronyms"]) / n * 1000
    cap = 1000 / main_ms
    acronyms_ms = remote["acronyms"] / n * 1000
    print()
    print(f"per-core rate: {per_core:.1f} documents per CPU second of a worker, merges "
          f"included ({batch_ms:.1f} ms to parse, analyse and write a document, "
          f"{merge_ms:.1f} ms to rewrite one in a merge); observed {n / remote['wall'] / w:.1f}"
          f" docs/s per worker here ({w} workers and the ingesting process on {w} cores). "
          f"The ingesting process: {main_ms:.2f} ms of CPU per document (it can publish up "
          f"to {cap:,.0f} docs/s), then {acronyms_ms:.2f} ms per document mining acronyms at "
          f"the end.")
    rows = []
    for workers in (10, 50):
        rewrites, final_docs, groups = merge_plan(PROJECTED_DOCS, 256, workers)
        core = 1000 / (batch_ms + rewrites * merge_ms)
        rate = min(workers * core, cap)
        ingest_s = PROJECTED_DOCS / rate
        tail_merge = final_docs * merge_ms / 1000 / groups
        tail_acr = PROJECTED_DOCS * acronyms_ms / 1000
        total = ingest_s + tail_merge + tail_acr
        rows.append([str(workers), f"{rewrites:.1f}", f"{core:.1f}", f"{workers * core:,.0f}",
                     f"{cap:,.0f}", f"{ingest_s / 60:.0f} min",
                     f"{tail_merge / 60:.0f} min ({groups} at once)",
                     f"{tail_acr / 60:.0f} min", f"{total / 60:.0f} min",
                     f"{100 * rate * main_ms / 1000:.0f} %"])
    print(f"\nProjection for {PROJECTED_DOCS:,} documents in batches of 256 (the merges "
          "during the ingest simulated with the index's own policy):")
    print_table(
        ["workers", "rewrites per doc", "per-core docs/s", "workers' docs/s",
         "publishing limit docs/s", "ingest", "last consolidation", "acronym mining",
         "total", "ingesting process busy"],
        rows,
    )


if __name__ == "__main__":
    main()
