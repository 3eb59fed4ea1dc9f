"""Ingest: files → documents → batched French analysis → Whoosh, incrementally and safely.

A file whose content hash is already in the index is skipped before any parsing. A bad file is
rejected with its reason and never stops the others. Documents are analysed in batches, then
written and committed in short slices under the write lock; each commit is atomic in Whoosh
(new segments, then the table of contents), so an interrupted ingest leaves the last committed
index, with every document either in its old or its new state. Documents written through the
API win over files of other folders (:func:`source_conflict`); the API's writes
(:func:`upsert_text`, :func:`delete_document`) decide and do everything under the lock.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm
from whoosh.index import Index
from whoosh.writing import IndexWriter

from indexer import plain_postings
from indexer.analysis import AnalysedText, Word, analyze_many_with, lemma_pairs
from indexer.document import (
    MAX_FIELD_CHARS,
    Document,
    DocumentError,
    content_hash,
    parse_text,
    read_source,
)
from indexer.engine import encode_meta
from indexer.highlight import marks_of, snippet_text
from indexer.ids import id_problem
from indexer.locking import FileLock, LockBusy, ingest_lock, workers_die_with_parent, write_lock
from indexer.schema import LEMMA_FIELD, MARKS_FIELD
from indexer.segments import Prepared, merge_segments, prepare_documents, publish
from indexer.site import IGNORED_DIRS, env_permalinks, find_site, jekyll_url
from indexer.snapshot import SafeSegmentWriter, open_reader, open_searcher
from indexer.vocabulary import AliasFile, Vocabulary, index_aliases, record_index_aliases

T = TypeVar("T")
MARKDOWN_SUFFIXES = (".md", ".markdown")
NOT_DOCUMENTS = frozenset({"readme.md", "changelog.md", "license.md", "contributing.md"})
"""Markdown files that describe a folder rather than being a communiqué."""
def writer_options() -> dict[str, object]:
    """How every writer of the index writes its segments.

    - Separate files, not one compound file: Whoosh reads a compound segment by copying each
      of its files into memory (a ``BytesIO`` per reader): at 100,000 documents, 440 MB of
      postings per worker process, and as much again of the mapped file counted as resident.
    - Posting blocks not zlib-compressed: decompressing was a sixth of the time to read a
      posting list into the engine, and compressing a tenth of the time to commit.
    - Stored fields not compressed either, and no length statistics in posting blocks
      (:mod:`indexer.codec`): half of reading a hit; a sixth of a light ingest's CPU.
    """
    from indexer.codec import IndexCodec

    return {"compound": False, "codec": IndexCodec(compression=0)}


WRITER_OPTIONS = writer_options()
BATCH_LOCK_WAIT = 30.0
"""How long an ingest's commit waits for the write lock: only an API write (well under a
second) can hold it, since the ingest lock keeps a second ingest out."""
MERGE_TIERS = (10, 100, 1_000, 10_000)
MERGE_SEGMENTS = 5
"""After each write, once 5 segments are of one size class (up to 10 documents, 11 to 100,
101 to 1,000, 1,001 to 10,000), they are merged into one (:func:`merge_small_segments`),
outside the write lock: the segment count stays logarithmic in the index size, each document
is rewritten about once per class, and no write waits for a merge."""
SLOW_LOCK_SECONDS = 1.0
"""A write lock held longer than this is logged (what API writes may have waited for)."""
API_ORIGIN = "api"
FILES_ORIGIN = "files"
"""Where a document came from (the stored ``origin`` field), for the source rule: see
:func:`source_conflict`."""

log = logging.getLogger("communiques.ingest")


class IngestError(Exception):
    """A usage problem that stops the whole ingest (missing path, index locked)."""


class WriteLockBusy(IngestError):
    """The write lock stayed held by another writer for longer than the caller would wait
    (the API answers 503 with ``Retry-After``: the write can simply be sent again)."""


@dataclass
class IngestReport:
    """What an ingest did; ``rejected`` holds (file, reason) pairs."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    segments: int | None = None
    """Segments of the index after the ingest (see :func:`consolidate_segments`)."""
    rekeyed: int | None = None
    """Documents whose tags were re-keyed because the alias file changed (None: it had not)."""
    cluster: dict[str, object] | None = None
    """On a cluster (:mod:`indexer.cluster`): workers, batches, files sent, merges, workers'
    CPU time."""

    def summary(self) -> str:
        rekeyed = f", tags re-keyed {self.rekeyed}" if self.rekeyed is not None else ""
        return (
            f"added {len(self.added)}, updated {len(self.updated)}, "
            f"unchanged {len(self.unchanged)}, pruned {len(self.pruned)}, "
            f"rejected {len(self.rejected)}{rekeyed}"
        )


    def to_dict(self) -> dict[str, object]:
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "unchanged": len(self.unchanged),
            "pruned": len(self.pruned),
            "rejected": [{"path": p, "reason": r} for p, r in self.rejected],
            **({"segments": self.segments} if self.segments is not None else {}),
            **({"rekeyed": self.rekeyed} if self.rekeyed is not None else {}),
            **({"cluster": self.cluster} if self.cluster is not None else {}),
        }


@dataclass(frozen=True)
class SourceFile:
    """A markdown file found by :func:`find_sources`: its collection, and, for a Jekyll site,
    its permalink pattern and its path inside the collection folder (Jekyll's ``:path``).
    ``problem`` says why it is refused (the ingest reports it, with the file)."""

    path: Path
    collection: str
    problem: str | None = None
    permalink: str | None = None
    relpath: str = ""


def _is_markdown(name: str) -> bool:
    return (
        name.endswith(MARKDOWN_SUFFIXES)
        and not name.startswith(".")
        and name.lower() not in NOT_DOCUMENTS
    )


def _link_problem(path: Path, root: Path) -> str | None:
    """A file link is read only when it points inside the folder being ingested
    (``passwd.md -> /etc/passwd`` is refused)."""
    if not path.is_symlink():
        return None
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return "unreadable: a link to nothing (broken or looping link)"
    if target != root and root not in target.parents:
        regular = target.is_file()
        return "a link pointing outside the folder being ingested" + (
            "" if regular else " (and not a regular file)")
    return None


def _walk(folder: Path, root: Path) -> Iterator[tuple[Path, str | None]]:
    """Markdown files under ``folder``, sorted, without following directory links (a link
    loop cannot trap the walk) and skipping hidden and non-document folders."""
    for current, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in IGNORED_DIRS)
        for name in sorted(files):
            if _is_markdown(name):
                path = Path(current) / name
                yield path, _link_problem(path, root)


def find_sources(paths: Sequence[Path]) -> Iterator[SourceFile]:
    """Every markdown file under ``paths`` with its collection.

    A Jekyll site root (see :func:`indexer.site.find_site`) is read through its collection
    folders only; any other folder recursively, the collection being each file's folder (its
    underscore dropped). A file whose stem is not a valid id, or a link pointing outside the
    folder given, comes with its ``problem``.
    """
    overridden = env_permalinks()
    for given in paths:
        given = Path(given)
        if given.is_file() or (given.is_symlink() and not given.is_dir()):
            yield _source(given, collection_of(given), _link_problem(given, given.parent.resolve()))
            continue
        if not given.is_dir():
            raise IngestError(f"{given}: no such file or directory")
        root = given.resolve()
        site = find_site(given)
        if site is None:
            for path, problem in _walk(given, root):
                yield _source(path, collection_of(path), problem)
            continue
        for name, folder in site.collections.items():
            pattern = site.permalinks.get(name) if name not in overridden else None
            for path, problem in _walk(folder, root):
                rel = path.relative_to(folder).with_suffix("").as_posix()
                yield _source(path, name, problem, pattern, rel)


def _source(path: Path, collection: str, problem: str | None, permalink: str | None = None,
            relpath: str = "") -> SourceFile:
    problem = problem or id_problem(path.stem)
    return SourceFile(path, collection, problem, permalink, relpath or path.stem)


def find_files(paths: Sequence[Path]) -> Iterator[Path]:
    """The files :func:`find_sources` finds and does not refuse."""
    for source in find_sources(paths):
        if source.problem is None:
            yield source.path


def collection_of(path: Path) -> str:
    """The folder a file sits in; Jekyll's ``_collection`` folders lose their underscore."""
    return path.parent.name.lstrip("_") or "communiques"


def parse_source(source: str, source_file: SourceFile) -> Document:
    """The document of one file's text (its id the file's stem), with its Jekyll URL when
    its collection has a permalink pattern. Raises :class:`DocumentError`."""
    path = source_file.path
    doc = parse_text(source, path.stem, source_file.collection, str(path))
    if source_file.permalink:
        doc.url = jekyll_url(source_file.permalink, doc.collection, doc.id,
                             source_file.relpath, getattr(doc, "date", None), doc.categories)
    return doc


def _texts(doc: Document) -> list[str]:
    attachment = "\n\n".join(a.text for a in doc.attachments if a.text)[:MAX_FIELD_CHARS]
    return [doc.title, doc.chapeau, doc.body, attachment]


def analyse_stream(
    items: Iterable[tuple[Document, T]], n_process: int = 1
) -> Iterator[tuple[tuple[Document, T], list[list[Word]]]]:
    """Analyse every field of each document in one ``nlp.pipe`` stream, in input order.

    ``items`` pairs each document with a caller's value, handed back with the analysis.
    """
    # Nothing to analyse (an unchanged corpus): spaCy is not even loaded (seconds saved).
    stream = iter(items)
    first = next(stream, None)
    if first is None:
        return
    items = itertools.chain([first], stream)
    # Workers get a number, not the document: contexts travel to spaCy's processes and back
    # pickled, and a document (its body) would make that trip for nothing.
    pending: dict[int, tuple[Document, T]] = {}

    def texts() -> Iterator[tuple[str, int | None]]:
        for key, item in enumerate(items):
            pending[key] = item
            fields = _texts(item[0])
            for text in fields[:-1]:
                yield text, None
            yield fields[-1], key  # the last field carries the key: the document is complete

    fields: list[list[Word]] = []
    for words, key in analyze_many_with(texts(), n_process=n_process):
        fields.append(words)
        if key is not None:
            yield pending.pop(key), fields
            fields = []


def analyse_documents(docs: Sequence[Document], n_process: int = 1) -> list[list[list[Word]]]:
    """Analysis of a few documents at once (the API's single-document writes)."""
    return [fields for _, fields in analyse_stream(((d, None) for d in docs), n_process)]


def write_document(
    writer: IndexWriter, doc: Document, fields: list[list[Word]], vocabulary: Vocabulary,
    origin: str = FILES_ORIGIN, replace: bool = True,
) -> None:
    """Add or replace one analysed document (``update_document`` on the unique id; with
    ``replace=False``, only added: a segment prepared outside the lock, whose older versions
    are deleted when it is published); ``origin`` says whether it was written through the
    API (see :func:`source_conflict`)."""
    title, chapeau, body, attachment = (
        AnalysedText(text, words) for text, words in zip(_texts(doc), fields, strict=True)
    )
    (writer.update_document if replace else writer.add_document)(
        id=doc.id,
        path=doc.path,
        url=doc.url,
        collection=doc.collection,
        tag=",".join(vocabulary.keys(doc.tags)),
        tags=list(doc.tags),
        category=",".join(vocabulary.keys(doc.categories)),
        categories=list(doc.categories),
        title=title,
        _stored_title=str(title),
        chapeau=chapeau,
        _stored_chapeau=str(chapeau),
        body=body,
        _stored_body=str(body),
        attachment=attachment,
        _stored_attachment=str(attachment),
        attachments=[a.record() for a in doc.attachments],
        # A document without a date has no date or year field (Whoosh skips None): date
        # queries and filters never match it.
        date=doc.utc_naive,
        date_iso=doc.date_iso,
        year=str(doc.year) if doc.year is not None else None,
        published=doc.published,
        hash=doc.hash,
        origin=origin,
        meta=encode_meta(
            id=doc.id,
            ts=doc.timestamp,
            year=doc.year,
            coll=doc.collection,
            tags=vocabulary.keys(doc.tags),
            raw_tags=list(doc.tags),
            cats=vocabulary.keys(doc.categories),
            pub=doc.published,
            title=doc.title,
            lens=[len(words) for words in fields],
        ),
        **({LEMMA_FIELD: lemma_pairs(fields)} if LEMMA_FIELD in writer.schema else {}),
        **({MARKS_FIELD: marks_of(snippet_text(str(chapeau), str(body)))}
           if MARKS_FIELD in writer.schema else {}),
    )


@dataclass(frozen=True)
class Indexed:
    """What the index holds of one document: enough to skip it, prune it or protect it."""

    hash: str
    path: str
    origin: str


def _indexed(fields: dict) -> Indexed:
    return Indexed(fields.get("hash", ""), fields.get("path", ""),
                   fields.get("origin", FILES_ORIGIN))


def indexed_state(ix: Index) -> dict[str, Indexed]:
    """``id → Indexed`` of every indexed document."""
    with open_searcher(ix) as s:
        return {f["id"]: _indexed(f) for f in s.all_stored_fields()}


def _same_file(a: str, b: str) -> bool:
    return bool(a and b) and os.path.realpath(a) == os.path.realpath(b)


def source_conflict(old: Indexed | None, path: str) -> str | None:
    """The source rule: why the file at ``path`` may not replace the indexed document ``old``
    (None: it may).

    A document written through the API (``PUT``) is the editors' latest word: an ingest never
    replaces it with a file from another folder (the corpus' older copy, say), and reports
    that file as rejected with this reason. The API keeps its documents as files in its own
    folder (``COMMUNIQUES_DOCUMENTS``): ingesting that folder (a rebuild) is fine, since
    those files are the API's own. Deleting the document through the API lifts the rule.
    """
    if old is None or old.origin != API_ORIGIN or _same_file(old.path, path):
        return None
    return (f"id written through the API (kept in {old.path}), which wins over this file; "
            "delete it through the API, or ingest the API's documents folder, to change it")


def _lock_writer(ix: Index, timeout: float) -> tuple[IndexWriter, FileLock | None]:
    """A writer holding the write lock, and that lock (None for an index in memory)."""
    folder = getattr(ix.storage, "folder", None)
    if folder is None:  # not on disk (RamStorage): Whoosh's own lock
        from whoosh.index import LockError

        try:
            return SafeSegmentWriter(ix, timeout=timeout, **WRITER_OPTIONS), None
        except LockError:
            raise WriteLockBusy(
                "the index is locked by another writer; try again later") from None
    lock = write_lock(Path(folder), ix.indexname)
    try:
        lock.acquire(timeout=timeout)
    except LockBusy as exc:
        raise WriteLockBusy(
            f"the index is locked by another writer ({exc.status.describe()}); try again later"
        ) from None
    if lock.cleared is not None:
        log.warning("cleared a stale write lock: %s", lock.cleared.describe())
    try:
        writer = SafeSegmentWriter(ix, _lk=False, **WRITER_OPTIONS)
    except BaseException:
        lock.release()
        raise
    return writer, lock


def open_writer(ix: Index, timeout: float = 0.0) -> IndexWriter:
    """A writer, or a clear error naming the holder when a live process holds the index's
    write lock (:class:`WriteLockBusy`). A stale lock (its owner died, a descriptor survived
    it) is cleared first; see :mod:`indexer.locking`. The writer deletes replaced files in
    the order that readers rely on (:class:`indexer.snapshot.SafeSegmentWriter`)."""
    writer, lock = _lock_writer(ix, timeout)
    if lock is not None:
        writer.writelock = lock  # released by Whoosh on commit or cancel
    return writer


@contextlib.contextmanager
def locked_writer(ix: Index, timeout: float = 0.0) -> Iterator[IndexWriter]:
    """A writer whose lock is held until the block ends, commit included: what is decided
    from the index (is the id new? whose is it?) and what is done beside it (the API's files)
    happen under the same lock as the write. The writer is cancelled if the block fails
    before committing."""
    writer, lock = _lock_writer(ix, timeout)
    taken = time.monotonic()
    try:
        yield writer
    finally:
        try:
            if not writer.is_closed:
                writer.cancel()
        finally:
            if lock is not None:
                lock.release()
            held = time.monotonic() - taken
            if held > SLOW_LOCK_SECONDS:
                log.warning("write lock held %.1f s (%d segments)", held,
                            len(getattr(writer, "segments", ())))


def _under(path: str, roots: Iterable[Path]) -> bool:
    p = Path(path).resolve()
    return any(p == r or r in p.parents for r in roots)


def ingest(
    ix: Index,
    paths: Sequence[Path],
    vocabulary: Vocabulary | None = None,
    prune: bool = False,
    batch_size: int = 256,
    n_process: int = 1,
    progress: bool | None = None,
    prepare: callable | None = None,  # type: ignore[valid-type]
    optimize: bool = False,
    alias_file: AliasFile | None = None,
    cluster: object | None = None,
) -> IngestReport:
    """Ingest every markdown file under ``paths`` into ``ix`` and report what happened.

    With ``alias_file``, documents are keyed with its aliases; when it differs (content hash)
    from the file the index was keyed with, every indexed document's tags are re-keyed first,
    without analysing any text again (see :func:`rekey_tags`), and the index records the new
    file.

    ``prepare(doc)`` may enrich a parsed document before analysis (attachments' text) and
    return an extra string folded into its content hash. With ``optimize``, the index is
    merged into one segment at the end (see :func:`optimize_index`).

    One ingest at a time per index: a second one fails at once with an :class:`IngestError`
    naming the first. Worker processes (``n_process``) die with this process, even by kill -9.

    With ``cluster`` (a Dask scheduler's address, ``local:N``, or a ``distributed.Client``),
    documents are analysed and written into segments by the cluster's workers, and merges
    run there too; this process reads the files, decides what changed, and publishes (see
    :mod:`indexer.cluster`).
    """
    folder = getattr(ix.storage, "folder", None)
    with _only_ingest(ix):
        rekeyed = None
        if alias_file is None and vocabulary is None and folder is not None:
            from indexer.vocabulary import alias_file_for

            alias_file = alias_file_for(folder)
        if alias_file is not None:
            vocabulary = Vocabulary(alias_file.aliases)
            rekeyed = sync_aliases(ix, alias_file)
        if cluster is not None:
            from indexer.cluster import ingest_on_cluster

            report = ingest_on_cluster(ix, paths, cluster, vocabulary, prune, batch_size,
                                       progress, prepare, optimize)
        else:
            with workers_die_with_parent():
                report = _ingest(ix, paths, vocabulary, prune, batch_size, n_process,
                                 progress, prepare)
            report.segments = optimize_index(ix) if optimize else consolidate_segments(ix)
        report.rekeyed = rekeyed
        store_acronyms(ix)
        plain_postings.add_missing(ix)  # an index written by an earlier version
        return report


@contextlib.contextmanager
def _only_ingest(ix: Index) -> Iterator[None]:
    """The index's ingest lock for the block (nothing for an index in memory); a second
    ingest, or re-keying, fails at once with an :class:`IngestError` naming the first."""
    folder = getattr(ix.storage, "folder", None)
    lock = ingest_lock(Path(folder)) if folder is not None else None
    if lock is not None:
        try:
            lock.acquire(timeout=0.0)
        except LockBusy as exc:
            raise IngestError(
                f"another ingest is running on this index ({exc.status.describe()}); "
                "try again when it has finished"
            ) from None
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def store_acronyms(ix: Index) -> None:
    """The acronyms the indexed texts define, stored with the index (see
    :mod:`indexer.acronyms`): mined from stored text, after the last commit."""
    from indexer.acronyms import mine_index

    mine_index(ix)


def _changes(
    sources: Sequence[SourceFile],
    state: dict[str, Indexed],
    seen: dict[str, str],
    report: IngestReport,
    prepare: callable | None,  # type: ignore[valid-type]
    show: bool,
    defer: Callable[[SourceFile], bool] | None = None,
) -> Iterator[tuple[SourceFile, str, Document | None]]:
    """Read files lazily; yield only new or changed ones: each file, its text, and its
    document (None when ``defer(file)`` says it is parsed where it is analysed, which is only
    for a file without ``prepare``: its content hash decides alone whether it changed).
    Refused, duplicate, unchanged and unparsable files go to ``report``; ``seen`` gets the id
    → path of every file read."""
    for source_file in tqdm(sources, desc="ingest", unit="file", disable=not show,
                            file=sys.stderr):
        path = source_file.path
        if source_file.problem is not None:
            report.rejected.append((str(path), source_file.problem))
            continue
        doc_id = path.stem
        if doc_id in seen:
            report.rejected.append(
                (str(path), f"duplicate id '{doc_id}' (already read from {seen[doc_id]})")
            )
            continue
        try:
            source = read_source(path)
            old = state.get(doc_id)
            if prepare is None and old is not None and old.hash == content_hash(source):
                seen[doc_id] = str(path)
                report.unchanged.append(doc_id)
                continue
            conflict = source_conflict(old, str(path))
            if conflict is not None:
                seen[doc_id] = str(path)
                report.rejected.append((str(path), conflict))
                continue
            if prepare is None and defer is not None and defer(source_file):
                seen[doc_id] = str(path)
                yield source_file, source, None
                continue
            doc = parse_source(source, source_file)
            if prepare is not None:
                extra = prepare(doc)
                if extra:
                    doc.hash = content_hash(source + extra)
        except DocumentError as exc:
            report.rejected.append((exc.path, exc.reason))
            continue
        seen[doc_id] = str(path)
        if old is not None and old.hash == doc.hash:
            report.unchanged.append(doc_id)
            continue
        yield source_file, source, doc


def _origin(doc_id: str, doc_path: str, state: dict[str, Indexed]) -> str:
    """The origin a document read from ``doc_path`` is written with: the API's when the file
    is the one the API keeps of it (a rebuild from the API's folder), else "files"."""
    old = state.get(doc_id)
    return old.origin if old is not None and _same_file(old.path, doc_path) else FILES_ORIGIN


def _ingest(
    ix: Index,
    paths: Sequence[Path],
    vocabulary: Vocabulary | None,
    prune: bool,
    batch_size: int,
    n_process: int,
    progress: bool | None,
    prepare: callable | None,  # type: ignore[valid-type]
) -> IngestReport:
    vocabulary = vocabulary or index_vocabulary(ix)
    report = IngestReport()
    state = indexed_state(ix)
    sources = list(find_sources([Path(p) for p in paths]))
    seen: dict[str, str] = {}
    show = sys.stderr.isatty() if progress is None else progress
    changed = ((doc, None) for _, _, doc in _changes(sources, state, seen, report, prepare, show))

    # One nlp.pipe stream over every changed document (workers start once). A batch is
    # analysed and written into a new segment without the write lock, then published under it
    # in milliseconds (indexer.segments): an API write never waits for spaCy or Whoosh.
    batch: list[tuple[Document, list[list[Word]]]] = []
    for (doc, _), fields in analyse_stream(changed, n_process=n_process):
        batch.append((doc, fields))
        if len(batch) >= batch_size:
            _write_batch(ix, batch, vocabulary, report, state)
            batch = []
    if batch:
        _write_batch(ix, batch, vocabulary, report, state)
    if prune:
        prune_missing(ix, paths, state, seen, report)
    return report


def prune_missing(ix: Index, paths: Sequence[Path], state: dict[str, Indexed],
                  seen: dict[str, str], report: IngestReport) -> None:
    """Remove the documents indexed from a file under ``paths`` that this ingest did not
    read (``seen``), in one commit."""
    roots = [Path(p).resolve() for p in paths]
    gone = [i for i, old in state.items() if i not in seen and old.path
            and _under(old.path, roots)]
    if not gone:
        return
    with locked_writer(ix, timeout=BATCH_LOCK_WAIT) as writer:
        searcher = writer.searcher()
        for doc_id in gone:
            # Checked again under the lock: an API write may have taken the id since.
            fields = searcher.document(id=doc_id)
            if fields is None or not _under(fields.get("path", ""), roots):
                continue
            writer.delete_by_term("id", doc_id)
            report.pruned.append(doc_id)
        writer.commit(merge=False)


def _write_batch(ix: Index, batch: list[tuple[Document, list[list[Word]]]],
                 vocabulary: Vocabulary, report: IngestReport, state: dict[str, Indexed]) -> None:
    """Write analysed documents into a new segment without the lock, then publish it under
    the lock (:func:`publish_batch`)."""

    def add(writer: IndexWriter) -> list[str]:
        for doc, fields in batch:
            write_document(writer, doc, fields, vocabulary,
                           _origin(doc.id, doc.path, state), replace=False)
        return [doc.id for doc, _ in batch]

    prepared = prepare_documents(ix, add, WRITER_OPTIONS)
    publish_batch(ix, prepared, [(doc.id, doc.path) for doc, _ in batch], report)
    merge_small_segments(ix, BATCH_LOCK_WAIT)


def publish_batch(ix: Index, prepared: Prepared | None, docs: Sequence[tuple[str, str]],
                  report: IngestReport) -> None:
    """Publish a prepared segment holding ``docs`` (id, path), in this order, under the
    lock. "Added" or "updated", and the source rule, are decided under the lock, from the
    index as it is then (an API write may have come in since the ingest started): a refused
    document is left out of the segment, an older version deleted."""
    done: list[tuple[str, bool]] = []
    try:
        with locked_writer(ix, timeout=BATCH_LOCK_WAIT) as writer:
            searcher = writer.searcher()
            drop: list[int] = []
            for k, (doc_id, path) in enumerate(docs):
                found = searcher.document(id=doc_id)
                old = _indexed(found) if found is not None else None
                conflict = source_conflict(old, path)
                if conflict is not None:
                    report.rejected.append((path, conflict))
                    drop.append(k)
                    continue
                if old is not None:
                    writer.delete_by_term("id", doc_id)
                done.append((doc_id, old is None))
            publish(writer, prepared, drop)
            prepared = None
    finally:
        if prepared is not None:
            prepared.discard()
    for doc_id, is_new in done:
        (report.added if is_new else report.updated).append(doc_id)


def _choose_small(segments: list) -> list:
    """The segments of the first size class (see :data:`MERGE_TIERS`) that holds enough of
    them: segments of like sizes merged together, so a document is rewritten about once per
    class, never at each write."""
    for low, high in zip((0, *MERGE_TIERS), MERGE_TIERS, strict=False):
        same = [s for s in segments if low < s.doc_count_all() <= high]
        if len(same) >= MERGE_SEGMENTS:
            return same
    return []


def merge_small_segments(ix: Index, timeout: float = BATCH_LOCK_WAIT) -> bool:
    """Merge small segments when there are too many (see :data:`MERGE_TIERS`), outside the
    lock (:func:`indexer.segments.merge_segments`); True when something was merged."""
    return merge_segments(ix, _choose_small, WRITER_OPTIONS, locked_writer, timeout)


def optimize_index(ix: Index) -> int:
    """Merge every segment of the index into one; returns the number of segments after.

    Batch commits leave several segments (Whoosh merges only the small ones), and the search
    box pays for each cold word once per segment: at 10,000 documents, 12 segments answered
    in 21 ms p95 where one answers in 14 ms. Merging rewrites the whole index (about 3 ms a
    document), so it suits a full build, the artefact that is then published, rather than
    the small daily ingests. Atomic like any commit: readers see the old segments or the new.
    """
    merge_segments(ix, lambda segs: segs if len(segs) > 1 or any(
        s.has_deletions() for s in segs) else [], WRITER_OPTIONS, locked_writer,
        BATCH_LOCK_WAIT)
    return _segment_count(ix)


MAX_SEGMENTS = 6
"""More segments than this after an ingest, and all but the largest are merged into one."""


def _all_but_largest(segments: list) -> list:
    """Every segment but the largest (to be merged into one)."""
    ordered = sorted(segments, key=lambda seg: seg.doc_count_all())
    return ordered[:-1]


def _segment_count(ix: Index) -> int:
    reader = open_reader(ix)
    try:
        return len(reader.leaf_readers())
    finally:
        reader.close()


def consolidate_segments(ix: Index) -> int:
    """After an ingest, keep the segments few without rewriting the whole index; returns the
    number of segments after.

    Merges after each batch keep segments of like sizes few (:data:`MERGE_TIERS`), but an
    ingest may still leave several, and the search box pays for each cold word once per
    segment. Beyond :data:`MAX_SEGMENTS`, every segment but the largest is merged into one
    (outside the write lock, :func:`indexer.segments.merge_segments`):
    a first big ingest is mostly rewritten once, a small daily ingest into a large index
    rewrites only the small segments.
    """
    count = _segment_count(ix)
    if count <= MAX_SEGMENTS:
        return count
    merge_segments(ix, _all_but_largest, WRITER_OPTIONS, locked_writer, BATCH_LOCK_WAIT)
    return _segment_count(ix)


# --- re-keying tags when the alias file changes -------------------------------------------------


def apply_alias_file(ix: Index, alias_file: AliasFile) -> int | None:
    """:func:`sync_aliases` on its own (``serve --aliases``), as an ingest would: one at a time
    per index."""
    with _only_ingest(ix):
        return sync_aliases(ix, alias_file)


def index_vocabulary(ix: Index) -> Vocabulary:
    """A vocabulary with the aliases the index's documents were keyed with."""
    from indexer.vocabulary import aliases_of_index

    return Vocabulary(aliases_of_index(getattr(ix.storage, "folder", None)))


def sync_aliases(ix: Index, alias_file: AliasFile) -> int | None:
    """Make the index keyed with ``alias_file``: re-key every document's tags when the index
    was keyed with another file (or before files were recorded), then record this one.
    Returns the number of documents re-keyed, or None when the file had not changed."""
    folder = getattr(ix.storage, "folder", None)
    record = index_aliases(folder)
    if record is not None and record.get("sha256") == alias_file.sha256:
        if record.get("path") != str(alias_file.path) and folder is not None:
            record_index_aliases(folder, alias_file)  # same content, moved: note where
        return None
    count = rekey_tags(ix, Vocabulary(alias_file.aliases))
    if folder is not None:
        record_index_aliases(folder, alias_file)
    if not count:
        return None  # nothing indexed yet: nothing to re-key
    # Recorded after the commit: a crash in between leaves the old record, and the next
    # ingest re-keys again (re-keying is idempotent).
    log.info("alias file %s changed: tags of %d documents re-keyed", alias_file.path, count)
    return count


class _RekeyedReader:
    """A segment reader seen through a new vocabulary, for ``IndexWriter.add_reader``.

    Whoosh copies a reader's stored fields, columns and postings into the writer's new
    segment as they are; this view hands over the tag and category keys computed again from
    each document's raw tags and categories (stored beside the keys), and everything else
    unchanged: the analysed text's postings are copied, never produced again.
    """

    KEYED = {"tag": "tags", "category": "categories"}
    """Keyed field → the stored field holding the raw values it is computed from."""

    def __init__(self, reader: object, vocabulary: Vocabulary) -> None:
        self._reader = reader
        self._voc = vocabulary
        self._keys: dict[int, dict[str, list[str]]] = {}

    def __getattr__(self, name: str) -> object:
        return getattr(self._reader, name)

    def _doc_keys(self, docnum: int, stored: dict | None = None) -> dict[str, list[str]]:
        keys = self._keys.get(docnum)
        if keys is None:
            stored = stored if stored is not None else self._reader.stored_fields(docnum)
            keys = {f: self._voc.keys(stored.get(raw) or []) for f, raw in self.KEYED.items()}
            self._keys[docnum] = keys
        return keys

    def iter_docs(self) -> Iterator[tuple[int, dict]]:
        for docnum, stored in self._reader.iter_docs():
            keys = self._doc_keys(docnum, stored)
            yield docnum, {**stored, **{f: ",".join(v) for f, v in keys.items()}}

    def column_reader(self, fieldname: str, *args: object, **kwargs: object) -> object:
        column = self._reader.column_reader(fieldname, *args, **kwargs)
        if fieldname != "meta":
            return column
        return _RekeyedMeta(column, self)

    def iter_postings(self) -> Iterator[tuple[str, bytes, int, float, bytes]]:
        for item in self._reader.iter_postings():
            if item[0] not in self.KEYED:
                yield item
        schema = self._reader.schema
        for docnum in self._reader.all_doc_ids():
            for fieldname, keys in self._doc_keys(docnum).items():
                if keys:
                    for btext, _, weight, value in schema[fieldname].index(",".join(keys)):
                        yield fieldname, btext, docnum, weight, value


class _RekeyedMeta:
    """The ``meta`` column with the tag and category keys of the new vocabulary."""

    def __init__(self, column: object, view: _RekeyedReader) -> None:
        self._column = column
        self._view = view

    def __getattr__(self, name: str) -> object:
        return getattr(self._column, name)

    def __getitem__(self, docnum: int) -> bytes:
        import json

        raw = self._column[docnum]
        if not raw:
            return raw
        meta = json.loads(raw)
        keys = self._view._doc_keys(docnum)
        meta["tags"], meta["cats"] = keys["tag"], keys["category"]
        return encode_meta(**meta)


def rekey_tags(ix: Index, vocabulary: Vocabulary) -> int:
    """Re-key every document's tags and categories with ``vocabulary``, in one atomic commit,
    without analysing any text: each segment is copied through :class:`_RekeyedReader` into
    one new segment that replaces them all. Returns the number of documents."""
    from whoosh.writing import CLEAR

    writer = open_writer(ix, timeout=BATCH_LOCK_WAIT)
    try:
        reader = writer.reader()
        try:
            count = reader.doc_count()
            if count:
                for leaf, _ in reader.leaf_readers():
                    writer.add_reader(_RekeyedReader(leaf, vocabulary))
        finally:
            reader.close()
        if not count:
            writer.cancel()
            return 0
        writer.commit(mergetype=CLEAR)
    except BaseException:
        if not writer.is_closed:
            writer.cancel()
        raise
    return count


API_WRITE_WAIT = float(os.environ.get("COMMUNIQUES_WRITE_WAIT", "5"))
"""Seconds an API write waits for the write lock before giving up (503, Retry-After)."""
FILE_MODE = 0o644
"""Mode of the files the API keeps (readable by the other accounts that ingest or back up)."""


@dataclass
class WriteResult:
    """What an API write did: the document, whether it was new, the files it removed."""

    doc: Document
    created: bool
    removed: list[str] = field(default_factory=list)


def _api_file(folder: Path, collection: str, doc_id: str) -> Path:
    return folder / collection / f"{doc_id}.md"


def _stage_file(target: Path, raw: bytes) -> Path:
    """The new file written beside its target, synced, not yet in place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".md")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def _other_copies(folder: Path, doc_id: str, keep: Path | None) -> list[Path]:
    """The API's files of ``doc_id`` in other collections than ``keep``'s."""
    return [p for p in folder.glob(f"*/{doc_id}.md") if keep is None or p != keep]


def upsert_text(
    ix: Index, source: str, doc_id: str, collection: str, documents_dir: Path | None = None,
    raw: bytes | None = None, vocabulary: Vocabulary | None = None,
    timeout: float = API_WRITE_WAIT,
) -> WriteResult:
    """Parse, analyse and write one document given as markdown text (the API's PUT).

    The analysis, and the writing of the document's new segment, run first, without the write
    lock (:mod:`indexer.segments`). Then, under the lock: whether the id is new is read from
    the index (so of parallel writes of a new id, exactly one "creates" it),
    the document is committed as written through the API (see :func:`source_conflict`), and
    its file is put in place under ``documents_dir`` (``raw``, mode 0644), its copies in other
    collections removed (a move). Raises :class:`DocumentError` for bad input and
    :class:`WriteLockBusy` when the lock stays held ``timeout`` seconds.
    """
    target = _api_file(documents_dir, collection, doc_id) if documents_dir is not None else None
    doc = parse_text(source, doc_id, collection,
                     str(target) if target is not None else f"api:{collection}/{doc_id}.md")
    (fields,) = analyse_documents([doc])

    def add(writer: IndexWriter) -> list[str]:
        write_document(writer, doc, fields, vocabulary or index_vocabulary(ix), API_ORIGIN,
                       replace=False)
        return [doc_id]

    prepared = prepare_documents(ix, add, WRITER_OPTIONS)
    staged = _stage_file(target, raw if raw is not None else source.encode("utf-8")) \
        if target is not None else None
    try:
        with locked_writer(ix, timeout=timeout) as writer:
            created = writer.searcher().document_number(id=doc_id) is None
            if not created:
                writer.delete_by_term("id", doc_id)
            publish(writer, prepared)
            prepared = None
            removed: list[str] = []
            if staged is not None and target is not None and documents_dir is not None:
                os.replace(staged, target)
                staged = None
                for other in _other_copies(documents_dir, doc_id, target):
                    other.unlink(missing_ok=True)
                    removed.append(str(other))
    finally:
        if staged is not None:
            staged.unlink(missing_ok=True)
        if prepared is not None:
            prepared.discard()
    _merge_in_background(ix, timeout)
    return WriteResult(doc, created, removed)


def _merge_in_background(ix: Index, timeout: float) -> None:
    """Small segments merged after an API write, in a thread: the write has answered."""

    def merge() -> None:
        try:
            merge_small_segments(ix, timeout)
        except Exception:  # noqa: BLE001 - a merge is an optimisation: the next write retries
            log.exception("merging small segments failed")

    threading.Thread(target=merge, name="merge-segments", daemon=True).start()


def delete_document(ix: Index, doc_id: str, documents_dir: Path | None = None,
                    timeout: float = API_WRITE_WAIT) -> bool:
    """Remove one document, and the API's files of it; False when it was not indexed.
    Decided and done under the write lock (:class:`WriteLockBusy` after ``timeout``)."""
    with locked_writer(ix, timeout=timeout) as writer:
        if writer.searcher().document_number(id=doc_id) is None:
            return False
        writer.delete_by_term("id", doc_id)
        writer.commit(merge=False)
        if documents_dir is not None:
            for path in _other_copies(documents_dir, doc_id, None):
                path.unlink(missing_ok=True)
    return True
