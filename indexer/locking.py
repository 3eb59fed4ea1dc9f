"""The index's locks, made crash-safe: the Whoosh write lock, one ingest at a time, and
worker processes that die with the ingest that forked them.

**How Whoosh locks.** whoosh-reloaded's ``FileStorage.lock`` is
``whoosh.util.filelock.FcntlLock``: a writer opens ``<index>/MAIN_WRITELOCK`` and takes an
exclusive ``flock`` on it. The kernel drops a flock when the last descriptor of that open file
is closed, so a writer killed with ``kill -9`` releases its lock by itself; the empty file left
behind is normal and means nothing. A lock can only outlive its writer when another process
still holds a copy of the descriptor: a child forked while the lock was held (a worker of
``nlp.pipe(n_process=…)``, say) that did not die with its parent. ``/proc/locks`` then still
names the dead writer as the lock's owner: that is a **stale** lock.

**What this module adds** (Linux; elsewhere the Whoosh behaviour is kept as it is):

* :class:`FileLock` — the same flock on the same file (so a plain Whoosh writer and ours still
  exclude each other), plus: an owner record written into the lock file while held (pid,
  process start time, command, since) for messages that name the holder; the descriptor closed
  in every forked child, so no worker can keep the lock alive; and stale-lock recovery: when
  ``/proc/locks`` names a dead process as the owner, the lock file is replaced by a fresh,
  already locked one (atomic rename), under a guard lock so that two processes never clear at
  once. A lock whose owner is alive, unknown, or on another host is never touched.
* :func:`write_lock` / :func:`ingest_lock` — the index's write lock (held per commit) and the
  ingest lock (held for a whole ingest, so that a second ingest fails at once, clearly).
* :func:`workers_die_with_parent` — processes forked inside it get ``PR_SET_PDEATHSIG`` =
  SIGKILL: the kernel kills them when the ingest dies, even by ``kill -9``.

``python -m indexer.locking status|clear INDEX`` shows or clears the locks of an index.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

WRITE_LOCK = "MAIN_WRITELOCK"
"""Whoosh's write lock of the default index name (``<indexname>_WRITELOCK``)."""
INGEST_LOCK = ".communiques-ingest.lock"
GUARD = ".communiques-lock.guard"
"""Taken briefly around acquiring and clearing, so that clearing a stale lock never races
with a live process acquiring it. Names starting with a dot are never touched by Whoosh's
clean-up of old index files."""


class LockBusy(Exception):
    """The lock is held by a live process (or one this host cannot see)."""

    def __init__(self, status: LockStatus) -> None:
        self.status = status
        super().__init__(status.describe())


@dataclass
class LockStatus:
    """``state``: ``free``, ``held`` (by a live or unknown process: never cleared) or
    ``stale`` (held only by a descriptor that outlived its dead owner: safe to clear)."""

    path: str
    state: str
    owner_pid: int | None = None
    owner: dict[str, object] = field(default_factory=dict)

    def describe(self) -> str:
        if self.state == "free":
            return f"{self.path}: free"
        who = f"pid {self.owner_pid}" if self.owner_pid else "an unknown process"
        command = self.owner.get("command")
        since = self.owner.get("since")
        details = "".join([f" ({command})" if command else "", f" since {since}" if since else ""])
        if self.state == "stale":
            return f"{self.path}: stale, held after its owner {who}{details} died"
        return f"{self.path}: held by {who}{details}"


# --- processes ---------------------------------------------------------------------------------


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[0]


def pid_alive(pid: int, start: int | None = None) -> bool:
    """Whether ``pid`` is a running process (not a zombie) and, given ``start``, the same one."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    if _state(pid) in ("Z", "X"):
        return False
    if start is not None:
        now = _start_time(pid)
        if now is not None and now != start:
            return False
    return True


def _command() -> str:
    try:
        raw = Path("/proc/self/cmdline").read_bytes()
        args = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
    except OSError:
        args = sys.argv
    return " ".join(args)[:200]


def _flock_owners(path: Path) -> list[int] | None:
    """The pids ``/proc/locks`` gives for flocks on ``path``'s file (the processes that took
    them, alive or not); None when that cannot be known (no /proc, no file)."""
    try:
        st = os.stat(path)
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    owners = []
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 17693 fe:00:2146355 0 EOF"; waiters carry "->" after "1:"
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == where:
            with contextlib.suppress(ValueError):
                owners.append(int(parts[4]))
    return owners


# --- descriptors that must not outlive their process, workers that must die with it ----------

_held_fds: set[int] = set()
_reap_depth = 0
_fork_parent = 0
_PR_SET_PDEATHSIG = 1


def _before_fork() -> None:
    global _fork_parent
    _fork_parent = os.getpid()


def _after_fork_in_child() -> None:
    # A forked child shares the parent's open lock files: closing its copies means the kernel
    # drops the parent's locks when the parent dies, whatever becomes of the child.
    for fd in list(_held_fds):
        with contextlib.suppress(OSError):
            os.close(fd)
    _held_fds.clear()
    if _reap_depth > 0 and sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != _fork_parent:  # the parent died before the line above
            os._exit(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


@contextlib.contextmanager
def workers_die_with_parent() -> Iterator[None]:
    """Processes forked inside this block (``nlp.pipe`` workers) are killed by the kernel as
    soon as this process dies, however it dies. (Linux; the fork start method.)"""
    global _reap_depth
    _reap_depth += 1
    try:
        yield
    finally:
        _reap_depth -= 1


# --- the lock ----------------------------------------------------------------------------------


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _read_owner(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_bytes()[:4096] or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@contextlib.contextmanager
def _guard(folder: Path, timeout: float = 10.0) -> Iterator[None]:
    fd = _open(folder / GUARD)
    _held_fds.add(fd)
    try:
        deadline = time.monotonic() + timeout
        while not _try_flock(fd):
            if time.monotonic() > deadline:
                raise LockBusy(LockStatus(str(folder / GUARD), "held"))
            time.sleep(0.01)
        yield
    finally:
        _held_fds.discard(fd)
        os.close(fd)


def lock_status(path: Path) -> LockStatus:
    """Free, held (by a live or unknown process) or stale (its owner is dead)."""
    path = Path(path)
    if not path.exists():
        return LockStatus(str(path), "free")
    owners = _flock_owners(path)
    if owners is None:  # no /proc: probe (the only way left), and never call anything stale
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            if _try_flock(fd):
                fcntl.flock(fd, fcntl.LOCK_UN)
                return LockStatus(str(path), "free")
        finally:
            os.close(fd)
        return LockStatus(str(path), "held", None, {})
    if not owners:
        return LockStatus(str(path), "free")
    record = _read_owner(path)
    pid = owners[0]
    if record.get("pid") != pid:
        record = {}  # a record left by an earlier owner, or none (a plain Whoosh writer)
    if record.get("host") not in (None, socket.gethostname()):
        return LockStatus(str(path), "held", pid, record)
    start = record.get("start")
    if pid_alive(pid, start if isinstance(start, int) else None):
        return LockStatus(str(path), "held", pid, record)
    return LockStatus(str(path), "stale", pid, record)


class FileLock:
    """An exclusive flock on ``path`` with an owner record, crash-safe (see the module doc).

    Also what Whoosh's ``SegmentWriter`` needs as its ``writelock`` (``release()``), so a
    writer opened with ``_lk=False`` and given this lock releases it on commit or cancel.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.fd: int | None = None
        self._pid = 0
        self.cleared: LockStatus | None = None
        """The stale lock this acquisition cleared, if any (for the caller's report)."""

    @property
    def locked(self) -> bool:
        return self.fd is not None and self._pid == os.getpid()

    def acquire(self, timeout: float = 0.0, clear_stale: bool = True) -> FileLock:
        """Take the lock, waiting up to ``timeout`` seconds; a stale lock is cleared at once.
        Raises :class:`LockBusy` naming the holder."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            with _guard(self.path.parent):
                fd = _open(self.path)
                if _try_flock(fd) and _same_file(fd, self.path):
                    self._hold(fd)
                    return self
                os.close(fd)
                status = lock_status(self.path)
                if status.state == "stale" and clear_stale:
                    self._hold(self._replace())
                    self.cleared = status
                    return self
            if time.monotonic() >= deadline:
                raise LockBusy(status)
            time.sleep(0.05)

    def _replace(self) -> int:
        """A fresh, locked lock file renamed over the stale one (called under the guard)."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.replace(tmp, self.path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return fd

    def _hold(self, fd: int) -> None:
        self.fd, self._pid = fd, os.getpid()
        _held_fds.add(fd)
        record = {
            "pid": self._pid, "start": _start_time(self._pid), "host": socket.gethostname(),
            "command": _command(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)

    def release(self) -> None:
        """Drop the lock (its record first). Does nothing in a forked child."""
        fd, self.fd = self.fd, None
        if fd is None or self._pid != os.getpid():
            return
        _held_fds.discard(fd)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> FileLock:
        if not self.locked:
            self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()


def write_lock(index_dir: Path, indexname: str = "MAIN") -> FileLock:
    return FileLock(Path(index_dir) / f"{indexname}_WRITELOCK")


def ingest_lock(index_dir: Path) -> FileLock:
    return FileLock(Path(index_dir) / INGEST_LOCK)


def clear_stale(path: Path) -> LockStatus | None:
    """Clear ``path``'s lock if it is stale; returns what was cleared (None: nothing to do).
    Raises :class:`LockBusy` when a live process holds it."""
    lock = FileLock(path)
    lock.acquire(timeout=0.0)
    cleared = lock.cleared
    lock.release()
    return cleared


def main(argv: list[str] | None = None) -> int:
    """``python -m indexer.locking status|clear INDEX``: exit 0 free/cleared, 1 held."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("status", "clear"):
        print("usage: python -m indexer.locking status|clear INDEX", file=sys.stderr)
        return 2
    folder = Path(args[1])
    busy = False
    for path in (folder / WRITE_LOCK, folder / INGEST_LOCK):
        status = lock_status(path)
        if args[0] == "clear" and status.state != "held":
            cleared = clear_stale(path) if path.exists() else None
            print(f"{path}: cleared ({cleared.describe()})" if cleared else f"{path}: free")
            continue
        busy |= status.state == "held"
        print(status.describe())
    return 1 if busy else 0


if __name__ == "__main__":
    sys.exit(main())
