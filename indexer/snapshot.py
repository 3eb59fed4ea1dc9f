"""Readers that hold one index generation whole, and writers that delete old files safely.

**Why.** With separate segment files, a Whoosh reader opens the terms and postings files of
each segment when it is created, but the per-document *columns* (stored fields, field
lengths, the engine's ``meta`` column, vectors) only on first use. A writer that commits a
merge deletes the files of the segments it merged at once (``whoosh.index.clean_files``).
A reader of the previous generation that had not yet touched, say, the stored-fields column
of a merged segment then finds no file: ``W3PerDocReader.has_column`` answers False, its
``_cached_reader`` returns None, and ``stored_fields`` fails with ``TypeError: 'NoneType'
object is not subscriptable``. Whoosh retries only the *opening* of a reader on ``IOError``,
not these late opens, and its deletion order is arbitrary (a set), so a reader cannot even
tell that the generation it read was being taken apart while it opened it.

**What this module does** (the cure at the depth of the cause):

* :func:`open_reader` opens *every* file of a generation's segments up front and keeps the
  descriptors (:class:`PinnedStorage`): on POSIX a deleted file stays readable through an open
  descriptor, so once pinned, a generation can be read to the end whatever writers do
  (merges, optimisations, deletions), by this or any other process. Files are read with
  ``pread`` at each reader's own position, so one descriptor serves every reader of the file.
* The pinning is checked: files are listed and opened *after* the table of contents (TOC) of
  generation N was read, and the TOC of N must still exist *after* they are all open.
  :class:`SafeSegmentWriter` deletes the TOCs of old generations before any segment file, so
  "TOC N still there" proves that no file of N had been deleted when the listing was made.
  Otherwise the generation vanished under the reader: it starts again with the newest one.
* :class:`SafeSegmentWriter` is Whoosh's ``SegmentWriter`` with only that deletion order
  changed; every writer of the project uses it (see :func:`indexer.ingest.open_writer`).

An empty index (no segment yet: a new index, or a first ingest killed before its first
commit) gives an :class:`EmptyGenerationReader`, which knows its generation, so that a
searcher over it is "up to date" until the first commit.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import shutil
import time
import uuid
from collections.abc import Iterable

from whoosh.filedb.filestore import FileStorage, Storage
from whoosh.filedb.structfile import StructFile
from whoosh.index import TOC, EmptyIndexError, FileIndex, Index
from whoosh.reading import EmptyReader, IndexReader
from whoosh.searching import Searcher
from whoosh.writing import SegmentWriter

from indexer import plain_postings

OPEN_ATTEMPTS = 200
"""Generations that may vanish in a row under a reader before it gives up (each attempt takes
a millisecond or two; a writer commits far less often than that)."""


class PinnedFile(io.RawIOBase):
    """A read-only view of an open descriptor with its own position (``pread``): several
    readers share one descriptor without sharing an offset."""

    def __init__(self, fd: int, size: int) -> None:
        super().__init__()
        self._fd = fd
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - any writable buffer
        if self._pos >= self._size:
            return 0
        n = os.preadv(self._fd, [buffer], self._pos)
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = self._size + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        """Closes this view only: the descriptor belongs to its :class:`PinnedStorage`."""
        super().close()


class PinnedStorage(Storage):
    """The files of one generation, opened once and kept open until :meth:`close`.

    Answers what Whoosh's readers ask of a storage (``open_file``, ``file_exists``,
    ``file_length``, ``list``) from the pinned descriptors only, never from the folder: a file
    deleted since is still served, and a file that was not part of the generation does not
    exist."""

    supports_mmap = False

    def __init__(self, base: FileStorage, files: dict[str, tuple[int, int]]) -> None:
        self.base = base
        self.folder = base.folder
        self._files = files
        self.readonly = True

    @classmethod
    def pin(cls, base: FileStorage, names: Iterable[str]) -> PinnedStorage:
        """Open every named file; raises ``FileNotFoundError`` when one is gone (after closing
        those already opened)."""
        files: dict[str, tuple[int, int]] = {}
        try:
            for name in names:
                fd = os.open(os.path.join(base.folder, name),
                             os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                files[name] = (fd, os.fstat(fd).st_size)
        except BaseException:
            for fd, _ in files.values():
                os.close(fd)
            raise
        return cls(base, files)

    def open_file(self, name: str, **kwargs: object) -> StructFile:
        try:
            fd, size = self._files[name]
        except KeyError:
            raise FileNotFoundError(f"{name}: not a file of this index generation") from None
        return StructFile(io.BufferedReader(PinnedFile(fd, size)), name=name, **kwargs)

    def file_exists(self, name: str) -> bool:
        return name in self._files

    def file_length(self, name: str) -> int:
        try:
            return self._files[name][1]
        except KeyError:
            raise FileNotFoundError(f"{name}: not a file of this index generation") from None

    def file_modified(self, name: str) -> float:
        return self.base.file_modified(name)

    def list(self) -> list[str]:
        return list(self._files)

    def __iter__(self):  # noqa: ANN204
        return iter(self.list())

    def lock(self, name: str):  # noqa: ANN201 - writers lock the real folder
        return self.base.lock(name)

    def close(self) -> None:
        """Close the descriptors (every reader of the generation is done with them)."""
        files, self._files = self._files, {}
        for fd, _ in files.values():
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:
        self.close()


class EmptyGenerationReader(EmptyReader):
    """Whoosh's reader of an index without segments, plus the generation it was read at."""

    def __init__(self, schema, generation: int) -> None:  # noqa: ANN001
        super().__init__(schema)
        self._generation = generation

    def generation(self) -> int:
        return self._generation


def _segment_files(names: Iterable[str], segment_ids: set[str]) -> list[str]:
    return [n for n in names if n.split(".", 1)[0] in segment_ids and "." in n]


def open_reader(ix: Index) -> IndexReader:
    """A reader of the newest generation of ``ix`` that no later commit can break (see the
    module's doc). Indexes not in a folder (RamStorage) get Whoosh's own reader."""
    storage = ix.storage
    if not isinstance(storage, FileStorage):
        return ix.reader()
    indexname = ix.indexname
    last: Exception | None = None
    for attempt in range(OPEN_ATTEMPTS):
        if attempt:
            time.sleep(min(0.001 * attempt, 0.02))
        try:
            toc = TOC.read(storage, indexname)
        except EmptyIndexError:
            raise
        except (OSError, EOFError) as exc:  # the newest TOC was replaced as we read it
            last = exc
            continue
        if not toc.segments:
            return EmptyGenerationReader(toc.schema, toc.generation)
        ids = {seg.segment_id() for seg in toc.segments}
        try:
            pinned = PinnedStorage.pin(storage, _segment_files(storage.list(), ids))
        except FileNotFoundError as exc:
            last = exc
            continue
        if not storage.file_exists(TOC._filename(indexname, toc.generation)):
            pinned.close()  # generation N was being cleaned while we listed its files
            continue
        try:
            return FileIndex._reader(pinned, toc.schema, list(toc.segments), toc.generation)
        except OSError as exc:  # a file the segment needs was not in the listing
            pinned.close()
            last = exc
    raise OSError(f"{storage.folder}: no index generation stayed whole long enough to be "
                  f"opened ({OPEN_ATTEMPTS} attempts; last: {last})")


def open_searcher(ix: Index) -> Searcher:
    """A searcher over :func:`open_reader`'s reader (``up_to_date`` checks ``ix``)."""
    return Searcher(open_reader(ix), fromindex=ix)


ORPHAN_SECONDS = 3600.0
"""Files of a segment that no TOC ever listed are deleted once this old (a writer that died
before publishing its segment); younger ones may be a segment being prepared
(:mod:`indexer.segments`)."""


def clean_files(storage: Storage, indexname: str, generation: int, segments: list,
                previous: set[str]) -> None:
    """Whoosh's ``clean_files``, made safe for readers and for segments being prepared:

    * every old TOC is deleted first, then segment files (see the module's doc);
    * only the files of segments that the previous generation used (``previous``) and the new
      one does not are deleted, plus leftovers older than :data:`ORPHAN_SECONDS`; a segment
      prepared outside the lock, not yet published, is left alone.

    Names starting with a dot (the locks) are never touched."""
    keep = {seg.segment_id() for seg in segments}
    toc_pattern = TOC._pattern(indexname)
    seg_pattern = TOC._segment_pattern(indexname)
    now = time.time()
    tocs: list[str] = []
    files: list[str] = []
    for name in storage.list():
        if name.startswith("."):
            continue
        if name.startswith(f"{indexname}.tmp"):  # a dead writer's temporary folder
            path = os.path.join(storage.folder, name)
            with contextlib.suppress(OSError):
                if os.path.isdir(path) and now - os.path.getmtime(path) > ORPHAN_SECONDS:
                    shutil.rmtree(path, ignore_errors=True)
            continue
        toc = toc_pattern.match(name)
        if toc:
            if int(toc.group(1)) != generation:
                tocs.append(name)
            continue
        seg = seg_pattern.match(name)
        if not seg or seg.group(1) in keep:
            continue
        if seg.group(1) in previous:
            files.append(name)
        else:
            with contextlib.suppress(OSError):
                if now - storage.file_modified(name) > ORPHAN_SECONDS:
                    files.append(name)
    for name in tocs:
        try:
            storage.delete_file(name)
        except FileNotFoundError:
            pass
        except OSError:
            return  # an old TOC stays: its segments' files wait for the next commit's clean-up
    for name in files:
        with contextlib.suppress(OSError):
            storage.delete_file(name)


class _WriterStorage(FileStorage):
    """The index folder, with temporary files in a folder of this writer's own.

    Whoosh puts every writer's temporary files in one ``<index>.tmp`` folder and deletes that
    folder when a writer finishes: right while it was the only writer, wrong as soon as
    segments are prepared beside a committing writer (one would delete the other's files)."""

    def __init__(self, base: FileStorage) -> None:
        super().__init__(base.folder, supports_mmap=base.supports_mmap, readonly=base.readonly)
        self._temp: FileStorage | None = None

    def temp_storage(self, name: str | None = None) -> FileStorage:
        if self._temp is None or not os.path.isdir(self._temp.folder):
            private = f"{name or 'writer'}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
            self._temp = super().temp_storage(private)
        return self._temp


class SafeSegmentWriter(SegmentWriter):
    """Whoosh's writer, deleting an old generation's TOC before any of its segment files, and
    only the files of segments the previous generation used (see :func:`clean_files`), with
    temporary files of its own (:class:`_WriterStorage`). Without the lock (a segment being
    prepared), a TOC replaced while it is read is read again."""

    def __init__(self, ix: Index, **kwargs: object) -> None:
        if isinstance(ix.storage, FileStorage):
            ix = copy.copy(ix)
            ix.storage = _WriterStorage(ix.storage)
        for attempt in range(OPEN_ATTEMPTS):
            try:
                super().__init__(ix, **kwargs)
                break
            except OSError:
                if attempt == OPEN_ATTEMPTS - 1 or kwargs.get("_lk", True):
                    raise
                time.sleep(0.005)
        self._previous = {seg.segment_id() for seg in self.segments}
        self._own = self.newsegment.segment_id()
        """This writer's new segment: its (empty) files go when it is not used."""
        self._collected: plain_postings.Collector | None = None
        """The postings of the segment as it was written (see :meth:`_flush_segment`)."""

    def _flush_segment(self) -> None:
        """Whoosh's, with the postings it writes recorded on the way for the posting arrays
        (every path goes through the pool: documents added, segments merged, re-keyed)."""
        pool = self.pool
        whoosh_postings = pool.iter_postings
        self._collected = plain_postings.Collector(self.schema)
        pool.iter_postings = lambda: self._collected.tee(whoosh_postings())
        try:
            super()._flush_segment()
        finally:
            pool.iter_postings = whoosh_postings

    def _finalize_segment(self):  # noqa: ANN202 - Whoosh's segment
        """Whoosh's, then the segment's posting arrays (:mod:`indexer.plain_postings`), written
        before any TOC lists the segment: every reader of it finds them."""
        segment = super()._finalize_segment()
        if segment is not None and segment.doc_count_all():
            plain_postings.write(self.storage, self.schema, segment, self._collected)
        return segment

    def _commit_toc(self, segments: list) -> None:
        toc = TOC(self.schema, segments, self.generation)
        toc.write(self.storage, self.indexname)
        clean_files(self.storage, self.indexname, self.generation, segments,
                    self._previous | {self._own})

    def cancel(self) -> None:
        super().cancel()
        prefix = self._own + "."
        for name in self.storage.list():
            if name.startswith(prefix):
                with contextlib.suppress(OSError):
                    self.storage.delete_file(name)
