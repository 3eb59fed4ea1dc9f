"""Crash safety: ``kill -9`` at random points of an ingest, many times; the index must survive.

    python -m bench.crash [--kills 20] [--n 300] [--jobs 2] [--batch-size 16] [--seed 1]

Each round gives every document of a synthetic corpus a new version (and adds a few new
documents), starts an ingest (the same ``ingest()`` as ``communiques ingest``, with small
batches so that there are many commits to interrupt, and ``--jobs`` spaCy worker processes),
and kills it with SIGKILL after a random delay: while Python starts, spaCy loads, documents
are analysed, or a batch is written and committed. Then it checks that

1. the index opens, its arrays load and it answers a query;
2. every document is in its old state or its new one (by content hash), none missing, none
   twice;
3. no worker process of the killed ingest is alive one second after the kill;
4. the write and ingest locks are free (or, if stale, cleared by the next writer);
5. a re-run (``communiques ingest``) completes and leaves every document in its new state.

It prints one row per kill and a summary line; any failed check makes the exit status 1.
The fast version of the same rounds runs in CI (tests/test_reliability.py, 3 kills).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.table import print_table

ROOT = Path(__file__).resolve().parents[1]


# --- the corpus and what the index should hold --------------------------------------------------


def write_version(corpus: Path, base: list[Path], version: int, new_docs: int) -> dict[str, str]:
    """Version ``version`` of every base document (plus ``new_docs`` new ones); returns the
    expected content hash of each id."""
    from indexer.document import content_hash, read_source

    expected = {}
    for path in base:
        text = path.read_text(encoding="utf-8")
        target = corpus / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        body = text.rstrip("\n") + f"\n\nRévision {version} de ce document ({path.stem}).\n"
        target.write_text(body, encoding="utf-8")
    for k in range(new_docs):
        source = base[k % len(base)]
        target = corpus / "actualites" / f"nouveau-r{version:03d}-{k:03d}.md"
        text = source.read_text(encoding="utf-8").rstrip("\n")
        target.write_text(text + f"\n\nNouveau document {k} de la révision {version}.\n",
                          encoding="utf-8")
    for path in sorted(corpus.rglob("*.md")):
        expected[path.stem] = content_hash(read_source(path))
    return expected


def index_state(index: Path) -> tuple[dict[str, str], list[str]]:
    """``id → hash`` of the index, and what is wrong with it (it does not open, a document is
    there twice, the arrays do not load, a query fails)."""
    from whoosh import query as wq

    from indexer.schema import open_index
    from indexer.search import SearchIndex

    problems: list[str] = []
    try:
        ix = open_index(index)
        with ix.searcher() as s:
            stored = list(s.all_stored_fields())
            s.search(wq.Term("collection", "actualites"), limit=5)
        engine = SearchIndex(ix, preload=False).engine()
    except Exception as exc:  # noqa: BLE001 - any failure to open is the finding
        return {}, [f"index does not open: {type(exc).__name__}: {exc}"]
    ids = [f["id"] for f in stored]
    if len(ids) != len(set(ids)):
        problems.append(f"{len(ids) - len(set(ids))} document(s) indexed twice")
    if engine.doc_count != len(set(ids)):
        problems.append(f"arrays hold {engine.doc_count} documents, stored fields {len(set(ids))}")
    return {f["id"]: f.get("hash", "") for f in stored}, problems


def check_states(state: dict[str, str], old: dict[str, str], new: dict[str, str]) -> tuple[int, list[str]]:
    """How many changed documents are already in their new state, and the documents in
    neither state."""
    problems = []
    for doc_id, h in state.items():
        if doc_id not in new:
            problems.append(f"{doc_id}: indexed but not in the corpus")
        elif h not in (old.get(doc_id), new[doc_id]):
            problems.append(f"{doc_id}: in neither its old nor its new state")
    for doc_id in old:
        if doc_id not in state:
            problems.append(f"{doc_id}: lost (was indexed before the kill)")
    changed = {i for i, h in new.items() if old.get(i) != h}
    return sum(1 for i in changed if state.get(i) == new[i]), problems


# --- processes ---------------------------------------------------------------------------------


def _children(pid: int) -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("PPid:") and int(line.split()[1]) == pid:
                out.add(int(entry))
                break
    return out


class ChildWatcher(threading.Thread):
    """Collects the worker processes of ``pid`` (and theirs) while it runs."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.seen: set[int] = set()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            frontier = {self.pid} | self.seen
            for p in list(frontier):
                self.seen |= _children(p)
            self._done.wait(0.05)

    def stop(self) -> None:
        self._done.set()
        self.join()


def survivors(pids: set[int], wait: float = 1.0) -> list[int]:
    """The pids still alive (zombies count as dead) after up to ``wait`` seconds."""
    from indexer.locking import pid_alive

    deadline = time.monotonic() + wait
    alive = [p for p in pids if pid_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if pid_alive(p)]
    return alive


def child_command(index: Path, corpus: Path, jobs: int, batch_size: int,
                  cluster: str | None = None) -> list[str]:
    return [sys.executable, "-m", "bench.crash", "--child", str(index), str(corpus),
            "--jobs", str(jobs), "--batch-size", str(batch_size),
            *(["--cluster", cluster] if cluster else [])]


def run_child(index: Path, corpus: Path, jobs: int, batch_size: int,
              cluster: str | None = None) -> int:
    """The ingest that gets killed: ``ingest()`` as the CLI calls it, with small batches
    (on a Dask cluster with ``cluster``: ``local:N`` or a scheduler's address)."""
    from indexer.ingest import IngestError, ingest
    from indexer.schema import open_index

    ix = open_index(index, create=True)
    try:
        report = ingest(ix, [corpus], n_process=jobs, batch_size=batch_size, progress=False,
                        cluster=cluster)
    except IngestError as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict()))
    return 1 if report.rejected else 0


def rerun(index: Path, corpus: Path) -> tuple[int, float, str]:
    """The real command, to completion."""
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "service.cli", "ingest", str(corpus), "--index", str(index),
         "--quiet", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    return proc.returncode, time.monotonic() - t0, proc.stderr.strip()[-500:]


# --- rounds ------------------------------------------------------------------------------------


@dataclass
class Round:
    kill_at: float
    after_commit: bool = False
    killed: bool = True
    new_state: int = 0
    total: int = 0
    workers: int = 0
    survivors: int = 0
    locks: str = ""
    rerun_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def setup(work: Path, n: int, body_chars: int, seed: int) -> tuple[Path, Path, list[Path]]:
    from bench.synth import generate

    base = generate(work / "base", n, seed=seed, body_chars=body_chars)
    return work / "corpus", work / "index", base


def generation(index: Path) -> int:
    """The index's latest committed generation (its newest table of contents)."""
    gens = [int(p.name[6:-4]) for p in index.glob("_MAIN_*.toc") if p.name[6:-4].isdigit()]
    return max(gens, default=-1)


def wait_for_commit(index: Path, since: int, proc: subprocess.Popen, timeout: float) -> bool:
    """Wait until the ingest ``proc`` commits past generation ``since``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if generation(index) > since:
            return True
        time.sleep(0.005)
    return False


def timed_full_ingest(index: Path, corpus: Path, jobs: int, batch_size: int) -> tuple[float, float]:
    """How long a whole ingest takes, and when its first commit comes."""
    from indexer.schema import open_index

    open_index(index, create=True)  # the empty index's own generation is not a commit
    t0 = time.monotonic()
    gen = generation(index)
    proc = subprocess.Popen(child_command(index, corpus, jobs, batch_size), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = time.monotonic() - t0 if wait_for_commit(index, gen, proc, 900) else 0.0
    _, err = proc.communicate(timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"initial ingest failed: {err.decode()[-2000:]}")
    return time.monotonic() - t0, first


def crash_round(index: Path, corpus: Path, base: list[Path], version: int, kill_at: float,
                jobs: int, batch_size: int, new_docs: int = 5, after_commit: bool = False,
                until: Callable[[subprocess.Popen, ChildWatcher], object] | None = None) -> Round:
    """One kill: new versions, an ingest killed after ``kill_at`` s (counted from its first
    commit with ``after_commit``, or from the moment ``until(proc, watcher)`` returns: an
    event such as "its workers started" or "its second commit"), the checks, a re-run."""
    from indexer.locking import INGEST_LOCK, WRITE_LOCK, lock_status

    old, problems = index_state(index)
    rnd = Round(kill_at=round(kill_at, 2), after_commit=after_commit, problems=list(problems))
    new = write_version(corpus, base, version, new_docs)
    # stderr to a file, not a pipe: a surviving worker would hold a pipe open forever.
    log = index.parent / "child-stderr.txt"
    with open(log, "wb") as err_file:
        proc = subprocess.Popen(child_command(index, corpus, jobs, batch_size), cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=err_file)
    watcher = ChildWatcher(proc.pid)
    watcher.start()
    if after_commit:
        wait_for_commit(index, generation(index), proc, 900)
    if until is not None:
        until(proc, watcher)
    time.sleep(kill_at)
    finished = proc.poll() is not None
    rnd.killed = not finished
    if not finished:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    watcher.stop()
    err = log.read_text(encoding="utf-8", errors="replace")
    if finished and proc.returncode != 0:
        rnd.problems.append(f"ingest failed before the kill: {err[-300:]}")
    rnd.workers = len(watcher.seen)
    alive = survivors(watcher.seen)
    rnd.survivors = len(alive)
    if alive:
        rnd.problems.append(f"worker processes alive after the kill: {alive}")
        for pid in alive:  # ours: do not leave them running
            os.kill(pid, signal.SIGKILL)
    rnd.locks = "/".join(
        lock_status(index / name).state for name in (WRITE_LOCK, INGEST_LOCK)
    )
    state, problems = index_state(index)
    rnd.problems += problems
    rnd.new_state, problems = check_states(state, old, new)
    rnd.total = sum(1 for i, h in new.items() if old.get(i) != h)
    rnd.problems += problems[:5]
    code, rnd.rerun_s, err = rerun(index, corpus)
    if code != 0:
        rnd.problems.append(f"re-run exited {code}: {err}")
    state, problems = index_state(index)
    rnd.problems += problems
    stale = [i for i, h in new.items() if state.get(i) != h]
    if stale:
        rnd.problems.append(f"after the re-run, {len(stale)} document(s) not in their new state")
    return rnd


def run(kills: int, n: int, jobs: int, batch_size: int, body_chars: int, seed: int,
        work: Path, show: bool = True) -> list[Round]:
    rng = random.Random(seed)
    corpus, index, base = setup(work, n, body_chars, seed)
    write_version(corpus, base, 0, 0)
    full, first = timed_full_ingest(index, corpus, jobs, batch_size)
    commits = max(0.2, full - first)
    if show:
        print(f"{n} documents, full ingest {full:.1f} s, first commit at {first:.1f} s (jobs "
              f"{jobs}, batches of {batch_size}); odd kills at random within [0.3 s, "
              f"{full * 0.95:.1f} s], even ones within {commits * 0.9:.1f} s of the first commit",
              flush=True)
    rounds = []
    for k in range(1, kills + 1):
        after = k % 2 == 0
        delay = rng.uniform(0.0, commits * 0.9) if after else rng.uniform(0.3, full * 0.95)
        rnd = crash_round(index, corpus, base, k, delay, jobs, batch_size, after_commit=after)
        rounds.append(rnd)
        if show:
            status = "ok" if rnd.ok else "FAIL: " + "; ".join(rnd.problems)
            what = "killed" if rnd.killed else "finished before"
            when = "after the first commit" if after else "after the start"
            print(f"kill {k:>2} {rnd.kill_at:>5.2f} s {when} ({what}): "
                  f"{rnd.new_state}/{rnd.total} changed docs new, "
                  f"workers {rnd.workers} (alive after: {rnd.survivors}), locks {rnd.locks}, "
                  f"re-run {rnd.rerun_s:.1f} s: {status}", flush=True)
    return rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("INDEX", "CORPUS"), help=argparse.SUPPRESS)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--body-chars", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cluster", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.exit(run_child(Path(args.child[0]), Path(args.child[1]), args.jobs, args.batch_size,
                           args.cluster))
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="communiques-crash-") as tmp:
        rounds = run(args.kills, args.n, args.jobs, args.batch_size, args.body_chars, args.seed,
                     Path(tmp))
    print()
    print_table(
        ["kill", "at (s)", "changed docs in new state", "workers", "alive after", "locks after",
         "re-run (s)", "result"],
        [[i, (f"+{r.kill_at} after 1st commit" if r.after_commit else f"{r.kill_at}")
          + ("" if r.killed else " (done)"), f"{r.new_state}/{r.total}", r.workers, r.survivors, r.locks,
          f"{r.rerun_s:.1f}", "ok" if r.ok else "FAIL"] for i, r in enumerate(rounds, 1)],
    )
    survived = sum(r.ok for r in rounds if r.killed)
    killed = sum(r.killed for r in rounds)
    print(f"\nkills survived: {survived}/{killed} (rounds ok: {sum(r.ok for r in rounds)}/"
          f"{len(rounds)}); worker processes left: "
          f"{sum(r.survivors for r in rounds)}; total {time.monotonic() - t0:.0f} s")
    sys.exit(0 if all(r.ok for r in rounds) else 1)


if __name__ == "__main__":
    main()
