"""API writes in a process of their own, at a lower CPU priority than the serving worker.

Why: a ``PUT`` analyses the document with spaCy, writes a segment, and now and then merges
small segments: tens of milliseconds of CPU each, holding the Python interpreter's lock of
whichever process runs them. Run in a thread of the serving worker, every read of that worker
waited behind them (search p95 131 ms under writes on 2 cores, ``/health`` 50 ms). In a child
process at ``nice`` :data:`DEFAULT_NICE`, the serving worker only awaits the answer and the
operating system gives the cores to reads first; writes take what is left, which under a
read load of a few hundred requests a second is plenty.

One child per serving worker, started with the worker and warmed (spaCy loaded) before
``/health`` says ready (``COMMUNIQUES_WRITE_WARM=0``: at the first write); writes queue to it
in order. The index's write lock still orders writes between
the children of all workers and any ``ingest``: the rules of :func:`indexer.ingest.upsert_text`
are unchanged. A child that dies (killed, out of memory) fails the writes it held with
:class:`WriteProcessLost` (the API answers 503 with ``Retry-After``) and is replaced at the
next write; what it had committed is committed, what it had not is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_NICE = 5
"""How much lower than the serving worker the write process runs (``COMMUNIQUES_WRITE_NICE``,
0–19; 0 keeps the same priority)."""


class WriteProcessLost(RuntimeError):
    """The write process died before answering: the write may be sent again."""


@dataclass(frozen=True)
class Written:
    """What the API answers about a write (the document itself stays in the child)."""

    id: str
    created: bool
    url: str


# --- in the child ----------------------------------------------------------------------------


def _start_child(nice: int) -> None:
    """Lower the child's priority (spaCy is loaded by :func:`_warm`, or by the first write)."""
    if nice > 0:
        # Not permitted: the same priority as the worker, still off its interpreter lock.
        with contextlib.suppress(OSError):
            os.nice(nice)


_opened: dict[str, Any] = {}


def _index(index_dir: str) -> Any:  # noqa: ANN401 - whoosh Index, imported lazily
    """The index in ``index_dir``, opened once (each writer reads its newest generation)."""
    if index_dir not in _opened:
        from indexer.schema import open_index

        _opened[index_dir] = open_index(Path(index_dir))
    return _opened[index_dir]


def write_document(index_dir: str, raw: bytes, doc_id: str, collection: str,
                 documents_dir: str | None) -> Written:
    """``PUT``: decode, analyse and write one document (see :func:`upsert_text`)."""
    from indexer.document import decode_source
    from indexer.ingest import upsert_text

    source = decode_source(raw, doc_id)
    result = upsert_text(_index(index_dir), source, doc_id, collection,
                         Path(documents_dir) if documents_dir else None, raw)
    return Written(result.doc.id, result.created, result.doc.url)


def delete_by_id(index_dir: str, doc_id: str, documents_dir: str | None) -> bool:
    """``DELETE``: see :func:`indexer.ingest.delete_document`."""
    from indexer.ingest import delete_document as delete

    return delete(_index(index_dir), doc_id,
                  Path(documents_dir) if documents_dir else None)


def _warm() -> bool:
    """Wait until spaCy is loaded and has run once (the first write is then as fast as the
    next)."""
    from indexer.analysis import load_in_background

    load_in_background().join()
    return True


# --- in the serving worker ---------------------------------------------------------------------


class WriteProcess:
    """The serving worker's handle on its write process (made on first use, remade when it
    dies)."""

    def __init__(self, nice: int = DEFAULT_NICE) -> None:
        self.nice = nice
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._warming: Future | None = None

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_child, initargs=(self.nice,))
            return self._pool

    def start(self) -> None:
        """Start the child now and warm it (its interpreter, imports, spaCy) in the
        background; :attr:`ready` says when it is done."""
        self._warming = self._executor().submit(_warm)

    @property
    def ready(self) -> bool:
        """False while a started child is still warming (``/health`` then says loading: a
        balancer sends no writes to a worker whose first write would wait seconds)."""
        warming = self._warming
        return warming is None or warming.done()

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:  # noqa: ANN401
        """``fn(*args)`` in the write process; its exceptions are raised here."""
        pool = self._executor()
        try:
            return await asyncio.wrap_future(pool.submit(fn, *args))
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise WriteProcessLost("the write process stopped before answering; send the "
                                   "write again (PUT and DELETE may be repeated)") from None

    def close(self) -> None:
        """Let the child finish the write it holds, then stop it."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
