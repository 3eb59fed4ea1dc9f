"""Segments built outside the write lock, published under it in a few milliseconds.

**Why.** Whoosh does all of a write under the index's write lock: turning documents into
postings, writing the new segment's files, and merging older segments into it at commit.
Under load that took seconds (a merge of a hundred documents, with the service's threads
sharing the processor), and every API write waited behind it.

**How.** The heavy part never needs the lock: a segment is a set of new files under a fresh
random name that no table of contents (TOC) mentions yet, invisible to readers and writers.

* :func:`prepare_documents` writes documents into such a segment; :func:`publish` then takes
  the lock, deletes the documents' older versions from the index's segments (a term lookup
  per id), adds the segment to the list and writes the new TOC.
* :func:`merge_segments` merges chosen segments into a new one from a pinned reader (see
  :mod:`indexer.snapshot`), then, under the lock, replaces them by it if they are all still
  there, and first deletes from it the documents deleted from them in the meantime (an API
  ``DELETE`` or a new version committed while the merge ran). Merges never overlap: a
  second one gives way (``.communiques-merge.lock``).

A segment may also be written elsewhere, by a Dask worker into an index in memory
(:mod:`indexer.cluster`): :func:`segment_files` turns it into bytes, :func:`add_segment_files`
writes them into the index folder under the segment's own new name, after which it is
published (:func:`publish`) or swapped in for the segments it merges (:func:`swap_merged`)
like one prepared here.

A prepared segment's files are safe from other writers' clean-up because
:class:`~indexer.snapshot.SafeSegmentWriter` deletes only the files of segments that the
previous generation used (and leftovers of a crashed writer once they are an hour old).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from whoosh.index import Index
from whoosh.writing import IndexWriter

from indexer.locking import FileLock, LockBusy
from indexer.snapshot import SafeSegmentWriter, open_reader

log = logging.getLogger("communiques.segments")
MERGE_LOCK = ".communiques-merge.lock"


@dataclass
class Prepared:
    """A segment written but not yet in any TOC; ``ids`` its documents' ids, in order."""

    segment: object
    ids: list[str]
    storage: object

    def discard(self) -> None:
        """Delete the segment's files (it will never be published)."""
        prefix = self.segment.segment_id() + "."
        for name in self.storage.list():
            if name.startswith(prefix):
                with contextlib.suppress(OSError):
                    self.storage.delete_file(name)


def segment_files(storage: object, segment: object) -> dict[str, bytes]:
    """The files of a segment, name → content: a segment as self-contained bytes, to travel
    between machines (see :mod:`indexer.cluster`)."""
    prefix = segment.segment_id() + "."
    files = {}
    for name in storage.list():
        if name.startswith(prefix):
            handle = storage.open_file(name)
            try:
                files[name] = bytes(handle.read())
            finally:
                handle.close()
    return files


def add_segment_files(storage: object, segment: object, files: dict[str, bytes]) -> Prepared:
    """Write a segment's files (built elsewhere, :func:`segment_files`) into ``storage``,
    under their own names: a prepared segment, not yet in any TOC, ready for :func:`publish`
    or :func:`swap_merged`. A file already there is an error (segment names are random)."""
    prepared = Prepared(segment, [], storage)
    prefix = segment.segment_id() + "."
    try:
        for name, data in files.items():
            if not name.startswith(prefix) or "/" in name or name in storage.list():
                raise ValueError(f"{name}: not a new file of segment {segment.segment_id()}")
            handle = storage.create_file(name)
            try:
                handle.write(data)
            finally:
                handle.close()
    except BaseException:
        prepared.discard()
        raise
    return prepared


def _finish_segment(writer: SafeSegmentWriter) -> object | None:
    """Close a writer that was never to commit, keeping the segment it wrote."""
    if not writer._added:  # noqa: SLF001 - Whoosh's own flag
        writer.cancel()
        return None
    segment = writer._finalize_segment()  # noqa: SLF001 - commit without the TOC
    writer._finish()  # noqa: SLF001
    return segment


def prepare_documents(ix: Index, add: Callable[[IndexWriter], list[str]],
                      options: dict[str, object]) -> Prepared | None:
    """A new segment holding what ``add(writer)`` adds (``add_document`` only), written
    without the lock; ``add`` returns the ids it added, in order. None when it added none."""
    writer = SafeSegmentWriter(ix, _lk=False, **options)
    try:
        ids = add(writer)
    except BaseException:
        writer.cancel()
        raise
    segment = _finish_segment(writer)
    if segment is None:
        return None
    return Prepared(segment, ids, writer.storage)


def publish(writer: IndexWriter, prepared: Prepared | None, drop: Sequence[int] = ()) -> None:
    """Commit ``writer`` (which holds the lock, and has deleted what the new documents
    replace) with the prepared segment added; documents at positions ``drop`` of the prepared
    segment are left out (refused under the lock). No merge happens here."""
    if prepared is not None:
        for k in drop:
            prepared.segment.delete_document(k)
        if prepared.segment.deleted_count() == prepared.segment.doc_count_all():
            prepared.discard()
            prepared = None
    extra = [prepared.segment] if prepared is not None else []
    writer.commit(mergetype=lambda _writer, segments: list(segments) + extra)


@contextlib.contextmanager
def merge_lock(ix: Index, timeout: float = 0.0) -> Iterator[bool]:
    """The index's merge lock for the block (True), or False when another merge kept it
    ``timeout`` seconds."""
    folder = getattr(ix.storage, "folder", None)
    if folder is None:
        yield True
        return
    lock = FileLock(Path(folder) / MERGE_LOCK)
    try:
        lock.acquire(timeout=timeout)
    except LockBusy:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def merge_segments(ix: Index, choose: Callable[[list], list], options: dict[str, object],
                   locked_writer: Callable[..., contextlib.AbstractContextManager],
                   timeout: float) -> bool:
    """Merge the segments ``choose(segments)`` picks (of the newest generation) into one,
    outside the lock, then swap it in under the lock (see the module's doc). False when
    nothing was merged: nothing chosen, another merge running, or a chosen segment gone."""
    with merge_lock(ix) as mine:
        if not mine:
            return False
        reader = open_reader(ix)
        try:
            leaves = [leaf for leaf, _ in reader.leaf_readers() if leaf.segment() is not None]
            by_id = {leaf.segment().segment_id(): leaf for leaf in leaves}
            chosen = choose([leaf.segment() for leaf in leaves])
            if not chosen:
                return False
            chosen_ids = [seg.segment_id() for seg in chosen]
            writer = SafeSegmentWriter(ix, _lk=False, **options)
            origin: list[tuple[str, int]] = []  # new docnum → (segment id, old docnum)
            try:
                for segid in chosen_ids:
                    leaf = by_id[segid]
                    origin += [(segid, d) for d in leaf.all_doc_ids()]
                    writer.add_reader(leaf)
            except BaseException:
                writer.cancel()
                raise
            segment = _finish_segment(writer)
        finally:
            reader.close()
        prepared = Prepared(segment, [], writer.storage) if segment is not None else None
        return swap_merged(ix, chosen_ids, origin, prepared, locked_writer, timeout)


def merge_origin(segments: Sequence) -> list[tuple[str, int]]:
    """For a merge of ``segments`` (in this order): each new document number's segment id
    and document number there. A merge copies the live documents of each segment in turn."""
    return [(seg.segment_id(), d) for seg in segments
            for d in range(seg.doc_count_all()) if not seg.is_deleted(d)]


def swap_merged(ix: Index, chosen_ids: Sequence[str], origin: Sequence[tuple[str, int]],
                prepared: Prepared | None,
                locked_writer: Callable[..., contextlib.AbstractContextManager],
                timeout: float) -> bool:
    """Under the lock, replace the segments ``chosen_ids`` by their merge ``prepared`` (None:
    they held no live document), if they are all still there, first deleting from it the
    documents deleted from them since (``origin``: :func:`merge_origin`). False, and the
    merge's files deleted, when one of them is gone."""
    try:
        with locked_writer(ix, timeout=timeout) as current:
            now = {seg.segment_id(): seg for seg in current.segments}
            if any(segid not in now for segid in chosen_ids):
                return False
            if prepared is not None:
                for k, (segid, docnum) in enumerate(origin):
                    if now[segid].is_deleted(docnum):
                        prepared.segment.delete_document(k)
            keep = [seg for seg in current.segments if seg.segment_id() not in chosen_ids]
            extra = [prepared.segment] if prepared is not None else []
            current.commit(mergetype=lambda _writer, _segments: keep + extra)
            prepared = None
    finally:
        if prepared is not None:
            prepared.discard()
    return True
