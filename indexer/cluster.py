"""Ingest on a Dask cluster: workers analyse and write segments, this process publishes them.

``communiques ingest PATH --cluster tcp://scheduler:8786`` (or ``--cluster local:N``, a
``dask.distributed.LocalCluster`` of N single-threaded worker processes on this machine).

**Who does what.**

* *This process* (the ingesting one) walks the folders, reads each file and its content hash,
  decides what changed against the index (unchanged files skipped, the source rule, duplicate
  ids: the same :func:`indexer.ingest._changes` as a local ingest), and sends batches of file
  *texts* to the workers. With ``prepare`` (attachments, whose files are here), or for an id
  that several files share, it parses the files itself and sends the documents.
* *A worker* loads spaCy once (:class:`SpacyLoader`, a worker plugin), parses the texts it is
  sent, analyses them, and writes the batch's postings into a new segment in memory (the
  schema of :func:`indexer.schema.build_schema`, the writer options of every writer of the
  index). It sends back the segment as bytes (its files, name → content) with the ids it
  holds and the files it could not parse: nothing refers to its disk, so it may be another
  machine without the corpus or the index.
* *This process* writes those files into the index folder under the segment's new random
  name (invisible to readers until a table of contents names it), then publishes it under
  the write lock as a local ingest does (:func:`indexer.ingest.publish_batch`): older versions
  deleted, added or updated decided there, a document written through the API meanwhile
  kept.
* *Merges* (segments of like sizes merged as they accumulate, :data:`indexer.ingest.
  MERGE_TIERS`, and the end-of-ingest consolidation or ``--optimize``) also run on workers:
  the segments' files go out, the merged segment comes back and is swapped in under the lock
  (:func:`indexer.segments.swap_merged`, with deletions made meanwhile carried over).
  Merges of disjoint segments may run at once; this process holds the index's merge lock
  for the whole ingest, so no other merge competes.

**Safety.** Nothing is in the index until published under the lock, and each publication is
one atomic commit: a killed ingest leaves the last good index (the unpublished files are
cleaned later, :class:`indexer.snapshot.SafeSegmentWriter`), and ``local:N`` workers exit
with it. Tasks are submitted with ``retries``; a lost worker's tasks are run again by Dask
on another. The ingest lock and content hashes are the local ingest's.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whoosh.index import TOC, Index

from indexer.document import Document, DocumentError
from indexer.ingest import (
    BATCH_LOCK_WAIT,
    MAX_SEGMENTS,
    WRITER_OPTIONS,
    IngestError,
    IngestReport,
    SourceFile,
    _all_but_largest,
    _changes,
    _choose_small,
    _origin,
    analyse_stream,
    find_sources,
    index_vocabulary,
    indexed_state,
    locked_writer,
    parse_source,
    prune_missing,
    publish_batch,
    write_document,
)
from indexer.segments import (
    Prepared,
    _finish_segment,
    add_segment_files,
    merge_lock,
    merge_origin,
    prepare_documents,
    segment_files,
    swap_merged,
)
from indexer.vocabulary import Vocabulary

log = logging.getLogger("communiques.cluster")

RETRIES = 3
"""Times a failed task is run again (an exception in it; a lost worker's tasks are
rescheduled by Dask itself, up to ``distributed.scheduler.allowed-failures``)."""
MIN_BATCH = 24
"""Smallest batch sent to a worker. Batches shrink as the ingest nears its end (a share of
what is left per worker), so that the workers finish together, then stop shrinking here: a
segment per few dozen documents is what merging can absorb cheaply."""
TASKS_PER_WORKER = 2
"""Batches in flight per worker: one running, one queued, so that a worker never waits for
this process; more would only hold texts in memory."""
MERGE_LOCK_WAIT = 300.0
"""How long the ingest waits for another merge (after an API write) to finish."""
PLUGIN_NAME = "communiques-spacy"
CONNECT_TIMEOUT = 30.0
"""Seconds to reach a scheduler given by address."""


# --- on the workers -------------------------------------------------------------------------


try:
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPlugin
except ImportError:  # the cluster extra is not installed: the class still imports
    _WorkerPlugin = object  # type: ignore[assignment,misc]


class SpacyLoader(_WorkerPlugin):  # type: ignore[misc,valid-type]
    """Loads spaCy once in each worker, when it joins (in a thread: the worker keeps
    answering the scheduler meanwhile); registration returns once every worker has it."""

    idempotent = True
    name = PLUGIN_NAME

    async def setup(self, worker: object) -> None:  # noqa: ARG002 - the plugin protocol
        import asyncio

        from indexer.analysis import _pipeline

        await asyncio.to_thread(_pipeline.warm)


@dataclass
class Item:
    """One file sent to a worker: its text to parse there, or its parsed document."""

    source: SourceFile
    text: str | None
    doc: Document | None
    origin: str


@dataclass
class Built:
    """What a worker sends back for a batch: the segment (None when no document of the batch
    parsed) and its files, the ids it holds in order, the files it could not parse."""

    segment: object | None
    files: dict[str, bytes]
    ids: list[str]
    rejected: list[tuple[str, str]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cpu: float = 0.0


def _memory_index(indexname: str) -> Index:
    """An empty index in memory with the index's schema: where a worker writes segments.

    Its temporary files (the sorted runs of postings that Whoosh spills when a segment's
    postings outgrow the writer's memory limit, the columns' scratch files) go to private
    folders on the worker's disk, removed by :func:`_remove_temporary`: not to Whoosh's
    in-memory storage, whose files opened "raw" are never kept (a big merge failed with
    ``NameError: ….run``), nor to Whoosh's default folder named after the index, which every
    worker of the machine would share."""
    import tempfile

    from whoosh.filedb.filestore import FileStorage, RamStorage

    from indexer.schema import build_schema

    class _Private(RamStorage):
        def __init__(self) -> None:
            super().__init__()
            self.temporary: list[str] = []

        def temp_storage(self, name: str | None = None) -> FileStorage:  # noqa: ARG002
            folder = tempfile.mkdtemp(prefix="communiques-runs-")
            self.temporary.append(folder)
            return FileStorage(folder).create()

    return _Private().create_index(build_schema(), indexname=indexname)


def _remove_temporary(ix: Index) -> None:
    """Remove the temporary folders of a worker's index (Whoosh leaves the columns' one)."""
    import shutil

    for folder in getattr(ix.storage, "temporary", []):
        shutil.rmtree(folder, ignore_errors=True)


def build_batch(items: Sequence[Item], vocabulary: Vocabulary, indexname: str) -> Built:
    """On a worker: parse, analyse and write a batch into a new segment (see the module)."""
    cpu = time.process_time()
    docs: list[tuple[Document, str]] = []
    rejected: list[tuple[str, str]] = []
    failed: list[str] = []
    for item in items:
        doc = item.doc
        if doc is None:
            try:
                doc = parse_source(item.text or "", item.source)
            except DocumentError as exc:
                rejected.append((exc.path, exc.reason))
                failed.append(item.source.path.stem)
                continue
        docs.append((doc, item.origin))
    ix = _memory_index(indexname)

    def add(writer: object) -> list[str]:
        ids = []
        for (doc, origin), fields in analyse_stream(docs):
            write_document(writer, doc, fields, vocabulary, origin, replace=False)
            ids.append(doc.id)
        return ids

    try:
        prepared = prepare_documents(ix, add, WRITER_OPTIONS) if docs else None
    finally:
        _remove_temporary(ix)
    if prepared is None:
        return Built(None, {}, [], rejected, failed, time.process_time() - cpu)
    return Built(prepared.segment, segment_files(ix.storage, prepared.segment), prepared.ids,
                 rejected, failed, time.process_time() - cpu)


def merge_parts(parts: Sequence[tuple[object, dict[str, bytes]]], indexname: str
                ) -> tuple[object | None, dict[str, bytes], float]:
    """On a worker: merge segments sent as (segment, files) into one, in this order, leaving
    out their deleted documents; returns the new segment (None when none was left), its files
    and the CPU seconds it took."""
    from whoosh.reading import SegmentReader

    from indexer.snapshot import SafeSegmentWriter

    cpu = time.process_time()
    ix = _memory_index(indexname)
    storage = ix.storage
    for _, files in parts:
        for name, data in files.items():
            handle = storage.create_file(name)
            handle.write(data)
            handle.close()
    schema = ix.schema
    writer = SafeSegmentWriter(ix, _lk=False, **WRITER_OPTIONS)
    readers = []
    try:
        for segment, _ in parts:
            reader = SegmentReader(storage, schema, segment)
            readers.append(reader)
            writer.add_reader(reader)
        segment = _finish_segment(writer)
    except BaseException:
        if not writer.is_closed:
            writer.cancel()
        raise
    finally:
        for reader in readers:
            reader.close()
        _remove_temporary(ix)
    files = segment_files(storage, segment) if segment is not None else {}
    return segment, files, time.process_time() - cpu


# --- the client ---------------------------------------------------------------------------


def _require_distributed() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise IngestError(
            "--cluster needs Dask's distributed scheduler: pip install 'communiques[cluster]'"
        ) from None


def local_cluster(workers: int) -> Any:  # noqa: ANN401 - distributed.LocalCluster
    """A ``LocalCluster`` of ``workers`` single-threaded worker processes on the loopback.

    Its workers are started without the ``MALLOC_TRIM_THRESHOLD_`` that Dask's nannies set
    by default: setting it at all turns off glibc's adaptive thresholds, and spaCy and Whoosh
    allocate and free so much that a batch took 20 % more CPU time with it. Give workers
    started by other means (``dask worker``) the same setting: ``distributed.nanny.
    pre-spawn-environ.MALLOC_TRIM_THRESHOLD_: null`` in their Dask configuration."""
    import warnings

    import dask
    from distributed import LocalCluster

    # Its servers listen on the loopback, on free ports; the scheduler's HTTP server tries
    # 8787 first, and says so when another program has it.
    warnings.filterwarnings("ignore", message=r"Port \d+ is already in use",
                            category=UserWarning)
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                            host="127.0.0.1", dashboard_address=None,
                            silence_logs=logging.ERROR)


@contextlib.contextmanager
def connect(cluster: object) -> Iterator[Any]:
    """A ``distributed.Client`` for ``cluster`` with spaCy loaded on its workers: an address
    (``tcp://host:8786``), ``local:N`` (a new ``LocalCluster`` of N single-threaded worker
    processes, closed at the end of the block), or a ``Client`` (used as it is)."""
    _require_distributed()
    from distributed import Client

    if isinstance(cluster, Client):
        cluster.register_plugin(SpacyLoader(), name=PLUGIN_NAME)
        yield cluster
        return
    spec = str(cluster)
    if spec == "local" or spec.startswith("local:"):
        count = spec.partition(":")[2] or str(os.cpu_count() or 1)
        if not count.isdigit() or int(count) < 1:
            raise IngestError(f"--cluster {spec}: local:N needs a number of workers N ≥ 1")
        with local_cluster(int(count)) as local, Client(local) as client:
            client.register_plugin(SpacyLoader(), name=PLUGIN_NAME)
            yield client
        return
    try:
        client = Client(spec, timeout=f"{CONNECT_TIMEOUT}s")
    except OSError as exc:
        raise IngestError(f"--cluster {spec}: cannot reach the scheduler ({exc})") from None
    with client:
        client.wait_for_workers(1, timeout=120)
        client.register_plugin(SpacyLoader(), name=PLUGIN_NAME)
        yield client


def _worker_count(client: Any) -> int:  # noqa: ANN401 - distributed.Client
    return max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))


def _segments(ix: Index) -> list:
    """The segments of the index's newest generation (read from its table of contents; read
    again when a writer replaced it between listing and opening)."""
    for attempt in range(20):
        try:
            return list(TOC.read(ix.storage, ix.indexname).segments)
        except OSError:
            if attempt == 19:
                raise
            time.sleep(0.01)
    return []


class RemoteMerges:
    """Merges of this index's segments, run on the cluster's workers and swapped in here.

    Segments being merged are ``busy``: a later choice leaves them out, so several merges of
    disjoint segments may run at once. Needs the index's merge lock (held by the caller)."""

    def __init__(self, ix: Index, client: Any) -> None:  # noqa: ANN401 - distributed.Client
        self.ix = ix
        self.client = client
        self.busy: set[str] = set()
        self.running: dict[Any, tuple[list[str], list[tuple[str, int]]]] = {}
        self.done = 0
        self.docs = 0
        self.cpu = 0.0

    def plan(self, choose: Any = _choose_small) -> list[Any]:  # noqa: ANN401
        """Submit a merge of what ``choose`` picks among the free segments, as long as it
        picks something; returns the new futures."""
        futures = []
        while True:
            free = [s for s in _segments(self.ix) if s.segment_id() not in self.busy]
            chosen = choose(free)
            if not chosen:
                return futures
            futures.append(self.submit(chosen))

    def submit(self, chosen: list) -> Any:  # noqa: ANN401 - distributed.Future
        ids = [seg.segment_id() for seg in chosen]
        # The segments' files go straight to a worker (scattered), not inside the task
        # through the scheduler. A merge whose worker is lost fails (its input went with it)
        # and is let go: the segments stay as they are.
        payload = [[(seg, segment_files(self.ix.storage, seg)) for seg in chosen]]
        for attempt in range(RETRIES + 1):
            try:
                (parts,) = self.client.scatter(payload, hash=False)
                break
            except OSError:  # the worker chosen died meanwhile (CommClosedError): another
                if attempt == RETRIES:
                    raise
                time.sleep(0.5 * (attempt + 1))
        future = self.client.submit(merge_parts, parts, self.ix.indexname, retries=RETRIES,
                                    priority=10, pure=False, key=f"merge-{ids[0]}")
        parts.release()
        self.busy.update(ids)
        self.running[future] = (ids, merge_origin(chosen))
        return future

    def finish(self, future: Any) -> bool:  # noqa: ANN401 - distributed.Future
        """Swap a finished merge in (True), or let it go: it failed, or a segment it merged
        is gone. A merge is an optimisation: a failed one is logged, never fatal."""
        ids, origin = self.running.pop(future)
        try:
            segment, files, cpu = future.result()
        except Exception:  # noqa: BLE001 - see above
            log.exception("merging %d segments on the cluster failed", len(ids))
            self.busy.difference_update(ids)
            return False
        finally:
            future.release()
        self.cpu += cpu
        try:
            prepared = (add_segment_files(self.ix.storage, segment, files)
                        if segment is not None else None)
            merged = swap_merged(self.ix, ids, origin, prepared, locked_writer,
                                 BATCH_LOCK_WAIT)
        finally:
            self.busy.difference_update(ids)
        self.done += merged
        self.docs += len(origin) if merged else 0
        return merged

    def run(self, groups: Any) -> None:  # noqa: ANN401
        """Merge each group of segments ``groups(segments)`` makes, at once (disjoint groups,
        on as many workers), and wait for them all (no other merge may be running)."""
        from distributed import wait

        futures = [self.submit(group) for group in groups(_segments(self.ix))]
        wait(futures)
        for future in futures:
            self.finish(future)


CONSOLIDATE_ALONE = 20_000
"""Up to this many documents, the end-of-ingest consolidation is one merge (as a local
ingest's); beyond, the segments it merges are split into groups of like sizes merged at once
on several workers (one merge of 10^6 documents would take one worker over an hour)."""


def _optimize_groups(segments: list) -> list[list]:
    """``--optimize``: every segment into one."""
    if len(segments) > 1 or any(s.has_deletions() for s in segments):
        return [segments]
    return []


MERGE_MAX_DOCS = 50_000
"""The most documents one merge on a worker writes. A worker merges in memory: the
segments' files sent to it, the merged segment's, and Whoosh's and the posting arrays' own
(at 300,000 documents, two merges of 100,000 took 8.5 and 6.9 GB on the workers and 8.9 GB in
the ingesting process, which sends and receives the files: killed for want of memory on a
24 GB machine). The tiered merges during an ingest write at most 5 × 10,000 documents."""


def consolidation_groups(segments: list, workers: int) -> list[list]:
    """The end-of-ingest consolidation (:func:`indexer.ingest.consolidate_segments`): past
    :data:`~indexer.ingest.MAX_SEGMENTS` segments, every one but the largest is merged: into
    one, or, past :data:`CONSOLIDATE_ALONE` documents, into up to ``MAX_SEGMENTS - 1`` (at
    most one per worker) of balanced sizes, so that at most ``MAX_SEGMENTS`` are left; and
    never more than :data:`MERGE_MAX_DOCS` documents a merge (more segments are then left:
    a memory bound, not a count, is what a worker cannot exceed)."""
    if len(segments) <= MAX_SEGMENTS:
        return []
    rest = sorted(_all_but_largest(segments), key=lambda s: -s.doc_count_all())
    rest = [s for s in rest if s.doc_count_all() < MERGE_MAX_DOCS]  # the others stay
    if not rest:
        return []
    total = sum(s.doc_count_all() for s in rest)
    count = 1 if total <= CONSOLIDATE_ALONE else max(1, min(MAX_SEGMENTS - 1, workers,
                                                            len(rest) // 2))
    # Each segment goes into the lightest group: none ends above total / count + the largest
    # segment, which this count keeps within the bound.
    room = MERGE_MAX_DOCS - rest[0].doc_count_all()
    count = max(count, min(len(rest), -(-total // room)))
    groups: list[list] = [[] for _ in range(count)]
    sizes = [0] * count
    for seg in rest:  # the largest first, each into the lightest group
        k = sizes.index(min(sizes))
        groups[k].append(seg)
        sizes[k] += seg.doc_count_all()
    return [g for g in groups if len(g) > 1]


def ingest_on_cluster(
    ix: Index,
    paths: Sequence[Path],
    cluster: object,
    vocabulary: Vocabulary | None = None,
    prune: bool = False,
    batch_size: int = 256,
    progress: bool | None = None,
    prepare: Any = None,  # noqa: ANN401 - see indexer.ingest.ingest
    optimize: bool = False,
) -> IngestReport:
    """The body of :func:`indexer.ingest.ingest` with ``cluster`` (see the module): its
    report, with the segments left and what the workers did (``report.cluster``)."""
    import sys

    from distributed import as_completed

    vocabulary = vocabulary or index_vocabulary(ix)
    report = IngestReport()
    state = indexed_state(ix)
    sources = list(find_sources([Path(p) for p in paths]))
    position = {str(s.path): k for k, s in enumerate(sources)}
    # An id several files share: its files are parsed here, where the first one that parses
    # wins and the others are duplicates, exactly as in a local ingest.
    stems = Counter(s.path.stem for s in sources if s.problem is None)
    seen: dict[str, str] = {}
    show = sys.stderr.isatty() if progress is None else progress
    changes = _changes(sources, state, seen, report, prepare, show,
                       defer=lambda s: stems[s.path.stem] == 1)
    stats = {"workers": 0, "batches": 0, "files": 0, "merges": 0, "merged_docs": 0,
             "worker_cpu_s": 0.0, "merge_cpu_s": 0.0}
    with connect(cluster) as client, merge_lock(ix, MERGE_LOCK_WAIT) as mine:
        if not mine:
            raise IngestError("another merge of this index kept running; try again")
        workers = _worker_count(client)
        stats["workers"] = workers
        merges = RemoteMerges(ix, client)
        batches: dict[Any, list[tuple[str, str]]] = {}
        pending = as_completed()
        left = len(sources)

        def submit_batch() -> bool:
            nonlocal left
            size = min(batch_size, max(MIN_BATCH, math.ceil(left / (TASKS_PER_WORKER
                                                                      * workers))))
            items: list[Item] = []
            for source_file, text, doc in changes:
                doc_id, path = source_file.path.stem, str(source_file.path)
                items.append(Item(source_file, text if doc is None else None, doc,
                                  _origin(doc_id, path, state)))
                left = len(sources) - position[path] - 1
                if len(items) >= size:
                    break
            if not items:
                return False
            future = client.submit(build_batch, items, vocabulary, ix.indexname,
                                   retries=RETRIES, pure=False,
                                   key=f"analyse-{stats['batches']}-{os.urandom(4).hex()}")
            stats["batches"] += 1
            stats["files"] += len(items)
            batches[future] = [(i.source.path.stem, str(i.source.path)) for i in items]
            pending.add(future)
            return True

        for _ in range(TASKS_PER_WORKER * workers):
            if not submit_batch():
                break
        try:
            for future in pending:
                if future in merges.running:
                    merges.finish(future)
                else:
                    _publish_built(ix, future, batches.pop(future), report, seen, stats)
                    submit_batch()
                for merge in merges.plan():
                    pending.add(merge)
        except BaseException:
            client.cancel(list(batches) + list(merges.running))
            raise
        if prune:
            prune_missing(ix, paths, state, seen, report)
        merges.run(_optimize_groups if optimize
                   else lambda segments: consolidation_groups(segments, _worker_count(client)))
        stats["merges"] = merges.done
        stats["merged_docs"] = merges.docs
        stats["worker_cpu_s"] = round(stats["worker_cpu_s"] + merges.cpu, 3)
        stats["merge_cpu_s"] = round(merges.cpu, 3)
    report.segments = len(_segments(ix))
    report.cluster = stats
    _in_file_order(report, seen, position)
    return report


def _publish_built(ix: Index, future: Any, docs: list[tuple[str, str]],  # noqa: ANN401
                   report: IngestReport, seen: dict[str, str], stats: dict) -> None:
    """Publish what a worker built for a batch of ``docs`` (id, path)."""
    try:
        built: Built = future.result()
    finally:
        future.release()
    stats["worker_cpu_s"] += built.cpu
    report.rejected.extend(built.rejected)
    for doc_id in built.failed:
        seen.pop(doc_id, None)  # not read: a prune may remove its older version, as locally
    prepared: Prepared | None = None
    if built.segment is not None:
        prepared = add_segment_files(ix.storage, built.segment, built.files)
    paths = dict(docs)
    publish_batch(ix, prepared, [(doc_id, paths[doc_id]) for doc_id in built.ids], report)


def _in_file_order(report: IngestReport, seen: dict[str, str],
                   position: dict[str, int]) -> None:
    """Batches come back in any order: the report lists files in the order they were found,
    as a local ingest does (``seen``: id → the file read for it)."""
    last = len(position)
    for ids in (report.added, report.updated, report.unchanged):
        ids.sort(key=lambda i: position.get(seen.get(i, ""), last))
    report.rejected.sort(key=lambda r: position.get(r[0], last))
