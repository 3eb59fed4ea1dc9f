"""Reliability: kill -9 during ingests, stale and live locks, concurrent ingests, load while
ingesting. Fast versions of ``python -m bench.crash`` and ``python -m bench.load_while_ingest``
(``make reliability`` runs the long ones)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import crash
from bench import load_while_ingest as lwi
from indexer.ingest import IngestError, ingest, open_writer
from indexer.locking import (
    INGEST_LOCK,
    WRITE_LOCK,
    FileLock,
    LockBusy,
    lock_status,
    pid_alive,
    write_lock,
)
from indexer.schema import open_index
from tests.conftest import GOOD, ROOT


def _corpus(folder: Path, prefix: str, n: int) -> Path:
    out = folder / "communiques"
    out.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        (out / f"{prefix}-{k:03d}.md").write_text(
            GOOD.format(title=f"Communiqué {prefix} {k}", body=f"Texte {prefix} numéro {k}."),
            encoding="utf-8",
        )
    return folder


def _cli(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, **kw)


# --- kill -9 -------------------------------------------------------------------------------------


def _workers_started(proc: subprocess.Popen, watcher: crash.ChildWatcher) -> None:
    """Until the ingest's spaCy worker processes exist (it is analysing)."""
    deadline = time.monotonic() + 120
    while len(watcher.seen) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)


def _commits(index: Path, n: int):  # noqa: ANN202 - a crash_round ``until``
    """Until the ingest has committed ``n`` times (counted from now)."""
    since = crash.generation(index)

    def until(proc: subprocess.Popen, watcher: crash.ChildWatcher) -> None:
        crash.wait_for_commit(index, since + n - 1, proc, 300)

    return until


def test_kill_9_at_chosen_points_of_an_ingest(tmp_path: Path) -> None:
    """Each kill: index opens, every document old or new, no worker left, locks free, re-run
    completes (bench/crash.py does the same 20 times, at random times). The kills come at
    events of the ingest, not at times: while its workers analyse the first batch, right after
    its first commit, and right after its third."""
    corpus, index, base = crash.setup(tmp_path, n=60, body_chars=400, seed=3)
    crash.write_version(corpus, base, 0, 0)
    code, _, err = crash.rerun(index, corpus)
    assert code == 0, err
    batch = 6
    # each event made just before its round: commits are counted from there
    plan = [("workers started", lambda: _workers_started),
            ("first commit", lambda: _commits(index, 1)),
            ("third commit", lambda: _commits(index, 3))]
    for k, (when, event) in enumerate(plan, 1):
        rnd = crash.crash_round(index, corpus, base, k, 0.0, jobs=2, batch_size=batch,
                                until=event())
        assert rnd.killed, f"kill {k} ({when}): the ingest ended first"
        assert rnd.ok, f"kill {k} ({when}): {rnd.problems}"
        assert rnd.survivors == 0
        assert rnd.locks == "free/free"
        if when != "workers started":  # killed between commits: some batches are in
            assert batch <= rnd.new_state < rnd.total, (when, rnd.new_state, rnd.total)


def test_no_worker_outlives_a_killed_ingest(tmp_path: Path) -> None:
    """nlp.pipe workers (n_process=2) die with their parent, even by SIGKILL."""
    corpus, index, base = crash.setup(tmp_path, n=150, body_chars=600, seed=4)
    crash.write_version(corpus, base, 0, 0)
    proc = subprocess.Popen(crash.child_command(index, corpus, jobs=2, batch_size=4), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    watcher = crash.ChildWatcher(proc.pid)
    watcher.start()
    deadline = time.monotonic() + 60
    while len(watcher.seen) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, "the ingest ended before its workers were seen"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    watcher.stop()
    assert len(watcher.seen) >= 2
    alive = crash.survivors(watcher.seen, wait=2.0)
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert alive == []


# --- locks -----------------------------------------------------------------------------------------

HOLD_WRITER = """
import sys, time
from pathlib import Path
from indexer.ingest import open_writer
from indexer.schema import open_index
w = open_writer(open_index(Path(sys.argv[1])))
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
w.cancel()
"""

ORPHAN_LOCK = """
import os, sys, time
from pathlib import Path
from indexer.schema import open_index
# A plain Whoosh writer (no protection) whose forked child outlives it holding the lock's
# descriptor: the situation a killed ingest would leave if its workers kept its files.
w = open_index(Path(sys.argv[1])).writer()
child = os.fork()
if child == 0:
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # let the test read its parent's output to the end
        os.dup2(devnull, fd)
    time.sleep(60)
    os._exit(0)
print(child, flush=True)
os._exit(0)
"""


def _fresh_index(tmp_path: Path) -> Path:
    src = _corpus(tmp_path / "src", "base", 3)
    index = tmp_path / "index"
    report = ingest(open_index(index, create=True), [src], progress=False)
    assert len(report.added) == 3
    return index


def test_a_live_writer_is_never_cleared(tmp_path: Path) -> None:
    index = _fresh_index(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_WRITER, str(index), "30"], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        status = lock_status(index / WRITE_LOCK)
        assert status.state == "held" and status.owner_pid == holder.pid
        ix = open_index(index)
        with pytest.raises(IngestError) as exc:
            open_writer(ix, timeout=0.3)
        assert "locked by another writer" in str(exc.value)
        assert f"pid {holder.pid}" in str(exc.value)  # the message names the holder
        assert lock_status(index / WRITE_LOCK).state == "held"
        assert pid_alive(holder.pid)
    finally:
        holder.kill()
        holder.wait()
    assert lock_status(index / WRITE_LOCK).state == "free"


def test_a_stale_lock_is_detected_and_cleared(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    index = _fresh_index(tmp_path)
    out = subprocess.run([sys.executable, "-c", ORPHAN_LOCK, str(index)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    orphan = int(out.stdout.strip())
    try:
        status = lock_status(index / WRITE_LOCK)
        assert status.state == "stale", status
        assert "stale" in status.describe()
        src = _corpus(tmp_path / "more", "apres", 2)
        with caplog.at_level("WARNING", logger="communiques.ingest"):
            report = ingest(open_index(index), [src], progress=False)
        assert len(report.added) == 2
        assert "cleared a stale write lock" in caplog.text
        assert pid_alive(orphan)  # cleared without touching the process
        assert lock_status(index / WRITE_LOCK).state == "free"
    finally:
        os.kill(orphan, signal.SIGKILL)
    with open_index(index).searcher() as s:
        assert s.doc_count() == 5


def test_lock_left_by_a_dead_process_is_free(tmp_path: Path) -> None:
    """A killed writer's lock file (with its owner record) stays behind: it means nothing."""
    index = _fresh_index(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_WRITER, str(index), "30"], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (index / WRITE_LOCK).read_text()  # the record of the dead owner is still there
    assert lock_status(index / WRITE_LOCK).state == "free"
    writer = open_writer(open_index(index))
    writer.cancel()


def test_file_lock_unit(tmp_path: Path) -> None:
    lock = write_lock(tmp_path).acquire()
    assert lock.locked and lock_status(tmp_path / WRITE_LOCK).state == "held"
    with pytest.raises(LockBusy):
        FileLock(tmp_path / WRITE_LOCK).acquire(timeout=0.1)
    lock.release()
    assert lock_status(tmp_path / WRITE_LOCK).state == "free"
    with FileLock(tmp_path / WRITE_LOCK).acquire():
        pass
    assert lock_status(tmp_path / "absent").state == "free"


# --- concurrent ingests ------------------------------------------------------------------------------


def test_two_concurrent_ingests_one_fails_clearly(tmp_path: Path) -> None:
    index = _fresh_index(tmp_path)
    a = _corpus(tmp_path / "a", "lot-a", 25)
    b = _corpus(tmp_path / "b", "lot-b", 25)
    procs = [subprocess.Popen([sys.executable, "-m", "service.cli", "ingest", str(src), "--index",
                               str(index), "--json", "--quiet"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for src in (a, b)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes in ([0, 0], [0, 2]), outs
    for p, (_, err) in zip(procs, outs, strict=True):
        if p.returncode == 2:
            assert "another ingest is running on this index" in err
            assert "pid" in err
    # whatever happened, nothing is corrupt and a re-run completes everything
    for src in (a, b):
        assert _cli("ingest", str(src), "--index", str(index), "--quiet").returncode == 0
    assert lock_status(index / INGEST_LOCK).state == "free"
    with open_index(index).searcher() as s:
        ids = [f["id"] for f in s.all_stored_fields()]
    assert len(ids) == len(set(ids)) == 53


def test_in_process_second_ingest_is_refused(tmp_path: Path) -> None:
    index = _fresh_index(tmp_path)
    ix = open_index(index)
    lock = FileLock(index / INGEST_LOCK).acquire()
    try:
        with pytest.raises(IngestError, match="another ingest is running"):
            ingest(ix, [_corpus(tmp_path / "x", "x", 1)], progress=False)
    finally:
        lock.release()


# --- load while ingesting ------------------------------------------------------------------------------


@pytest.mark.slow
def test_load_while_ingesting(tmp_path: Path, sample_index: Path) -> None:
    """Requests from another process while three lots are ingested, two of them at once: 0
    errors, consistent answers, every lot's documents visible through the service after its
    commit. A short run at a light rate; ``make reliability`` runs 2 minutes at 50/s and
    bench/RESULTS.md gives its figures (new documents visible within about 3 s)."""
    work = tmp_path / "work"
    work.mkdir()
    figures = lwi.run(seconds=12, rate=20, lot_size=20, work=work, index=sample_index,
                      show=False)
    assert figures["requests"] > 0
    assert figures["errors"] == 0, figures["error_samples"]
    assert figures["inconsistent"] == 0, figures["inconsistent_samples"]
    assert figures["duplicates"] == 0
    assert figures["documents"] == figures["documents_expected"]
    assert figures["final_marker"] == figures["expected_new"] > 0
    # each commit seen through the service; the bound only tells "seen" from "never seen"
    delays = figures["visible_after_s"]
    assert delays and max(delays) < 60, delays
    pair = [r for r in figures["ingests"] if r["lots"] == 2]
    assert pair and all(sorted(r["codes"]) in ([0, 0], [0, 2]) for r in pair)
    shutil.rmtree(work, ignore_errors=True)


def test_locking_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from indexer.locking import main

    index = _fresh_index(tmp_path)
    assert main(["status", str(index)]) == 0
    assert "free" in capsys.readouterr().out
    with write_lock(index) as held:
        assert held.locked
    lock = write_lock(index).acquire()
    try:
        assert main(["status", str(index)]) == 1
        assert f"held by pid {os.getpid()}" in capsys.readouterr().out
        assert main(["clear", str(index)]) == 1  # a live holder is never cleared
    finally:
        lock.release()
    assert main(["clear", str(index)]) == 0
    assert main(["bogus"]) == 2
