"""Ingest: files → documents → batched French analysis → Whoosh, incrementally and safely.

A file whose content hash is already in the index is skipped before any parsing. A bad file is
rejected with its reason and never stops the others. Documents are committed in batches; each
commit is atomic in Whoosh (new segments, then the table of contents), so an interrupted ingest
leaves the last committed index, with every document either in its old or its new state.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm
from whoosh.index import Index
from whoosh.writing import IndexWriter

from indexer.analysis import AnalysedText, Word, analyze_many_with
from indexer.document import (
    MAX_FIELD_CHARS,
    Document,
    DocumentError,
    content_hash,
    parse_text,
    read_source,
)
from indexer.engine import encode_meta
from indexer.locking import LockBusy, ingest_lock, workers_die_with_parent, write_lock
from models.vocabulary import Vocabulary

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
    """
    from whoosh.codec.whoosh3 import W3Codec

    return {"compound": False, "codec": W3Codec(compression=0)}


WRITER_OPTIONS = writer_options()
BATCH_LOCK_WAIT = 30.0
"""How long an ingest's commit waits for the write lock: only an API write (well under a
second) can hold it, since the ingest lock keeps a second ingest out."""

log = logging.getLogger("communiques.ingest")


class IngestError(Exception):
    """A usage problem that stops the whole ingest (missing path, index locked)."""


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

    def summary(self) -> str:
        return (
            f"added {len(self.added)}, updated {len(self.updated)}, "
            f"unchanged {len(self.unchanged)}, pruned {len(self.pruned)}, "
            f"rejected {len(self.rejected)}"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "unchanged": len(self.unchanged),
            "pruned": len(self.pruned),
            "rejected": [{"path": p, "reason": r} for p, r in self.rejected],
            **({"segments": self.segments} if self.segments is not None else {}),
        }


def find_files(paths: Sequence[Path]) -> Iterator[Path]:
    """Markdown files under the given paths, recursively, without following directory links
    (a symlink loop cannot trap the walk) and skipping hidden folders."""
    for root in paths:
        if root.is_file():
            yield root
            continue
        if not root.is_dir():
            raise IngestError(f"{root}: no such file or directory")
        for folder, dirs, files in os.walk(root, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if (
                    name.endswith(MARKDOWN_SUFFIXES)
                    and not name.startswith(".")
                    and name.lower() not in NOT_DOCUMENTS
                ):
                    yield Path(folder) / name


def collection_of(path: Path) -> str:
    """The folder a file sits in; Jekyll's ``_collection`` folders lose their underscore."""
    return path.parent.name.lstrip("_") or "communiques"


def _utc_naive(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def _texts(doc: Document) -> list[str]:
    attachment = "\n\n".join(a.text for a in doc.attachments if a.text)[:MAX_FIELD_CHARS]
    return [doc.title, doc.chapeau, doc.body, attachment]


def analyse_stream(
    items: Iterable[tuple[Document, T]], n_process: int = 1
) -> Iterator[tuple[tuple[Document, T], list[list[Word]]]]:
    """Analyse every field of each document in one ``nlp.pipe`` stream, in input order.

    ``items`` pairs each document with a caller's value, handed back with the analysis.
    """
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
    writer: IndexWriter, doc: Document, fields: list[list[Word]], vocabulary: Vocabulary
) -> None:
    """Add or replace one analysed document (``update_document`` on the unique id)."""
    title, chapeau, body, attachment = (
        AnalysedText(text, words) for text, words in zip(_texts(doc), fields, strict=True)
    )
    writer.update_document(
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
        attachments=[{"path": a.path, "name": a.name, "error": a.error} for a in doc.attachments],
        date=_utc_naive(doc.date),
        date_iso=doc.date.isoformat(),
        year=str(doc.date.year),
        published=doc.published,
        hash=doc.hash,
        meta=encode_meta(
            id=doc.id,
            ts=doc.date.timestamp(),
            year=doc.date.year,
            coll=doc.collection,
            tags=vocabulary.keys(doc.tags),
            raw_tags=list(doc.tags),
            cats=vocabulary.keys(doc.categories),
            pub=doc.published,
            title=doc.title,
            lens=[len(words) for words in fields],
        ),
    )


def indexed_state(ix: Index) -> dict[str, tuple[str, str]]:
    """``id → (content hash, path)`` of every indexed document."""
    with ix.searcher() as s:
        return {f["id"]: (f.get("hash", ""), f.get("path", "")) for f in s.all_stored_fields()}


def open_writer(ix: Index, timeout: float = 0.0) -> IndexWriter:
    """A writer, or a clear error naming the holder when a live process holds the index's
    write lock. A stale lock (its owner died, a descriptor survived it) is cleared first; see
    :mod:`indexer.locking`."""
    folder = getattr(ix.storage, "folder", None)
    if folder is None:  # not on disk (RamStorage): Whoosh's own lock
        from whoosh.index import LockError

        try:
            return ix.writer(timeout=timeout, **WRITER_OPTIONS)
        except LockError:
            raise IngestError("the index is locked by another writer; try again later") from None
    lock = write_lock(Path(folder), ix.indexname)
    try:
        lock.acquire(timeout=timeout)
    except LockBusy as exc:
        raise IngestError(
            f"the index is locked by another writer ({exc.status.describe()}); try again later"
        ) from None
    if lock.cleared is not None:
        log.warning("cleared a stale write lock: %s", lock.cleared.describe())
    try:
        writer = ix.writer(_lk=False, **WRITER_OPTIONS)
    except BaseException:
        lock.release()
        raise
    writer.writelock = lock  # released by Whoosh on commit or cancel
    return writer


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
) -> IngestReport:
    """Ingest every markdown file under ``paths`` into ``ix`` and report what happened.

    ``prepare(doc)`` may enrich a parsed document before analysis (attachments' text) and
    return an extra string folded into its content hash. With ``optimize``, the index is
    merged into one segment at the end (see :func:`optimize_index`).

    One ingest at a time per index: a second one fails at once with an :class:`IngestError`
    naming the first. Worker processes (``n_process``) die with this process, even by kill -9.
    """
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
        with workers_die_with_parent():
            report = _ingest(ix, paths, vocabulary, prune, batch_size, n_process, progress,
                             prepare)
        report.segments = optimize_index(ix) if optimize else consolidate_segments(ix)
        store_acronyms(ix)
        return report
    finally:
        if lock is not None:
            lock.release()


def store_acronyms(ix: Index) -> None:
    """The acronyms the indexed texts define, stored with the index (see
    :mod:`indexer.acronyms`): mined from stored text, after the last commit."""
    from indexer.acronyms import mine_index

    mine_index(ix)


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
    vocabulary = vocabulary or Vocabulary()
    report = IngestReport()
    state = indexed_state(ix)
    files = list(find_files([Path(p) for p in paths]))
    seen: dict[str, str] = {}
    show = sys.stderr.isatty() if progress is None else progress

    def changed_documents() -> Iterator[tuple[Document, bool]]:
        """Parse files lazily; yield only new or changed documents (with "is new")."""
        for path in tqdm(files, desc="ingest", unit="file", disable=not show, file=sys.stderr):
            doc_id = path.stem
            if doc_id in seen:
                report.rejected.append(
                    (str(path), f"duplicate id '{doc_id}' (already read from {seen[doc_id]})")
                )
                continue
            try:
                source = read_source(path)
                old = state.get(doc_id)
                if prepare is None and old is not None and old[0] == content_hash(source):
                    seen[doc_id] = str(path)
                    report.unchanged.append(doc_id)
                    continue
                doc = parse_text(source, doc_id, collection_of(path), str(path))
                if prepare is not None:
                    extra = prepare(doc)
                    if extra:
                        doc.hash = content_hash(source + extra)
            except DocumentError as exc:
                report.rejected.append((exc.path, exc.reason))
                continue
            seen[doc_id] = str(path)
            if old is not None and old[0] == doc.hash:
                report.unchanged.append(doc_id)
                continue
            yield doc, old is None

    # One nlp.pipe stream over every changed document (workers start once), consumed here in
    # order: each document is written as soon as its fields are analysed, and a commit closes
    # each batch, so an interruption loses at most the batch in progress.
    writer: IndexWriter | None = None
    in_batch = 0
    try:
        for (doc, is_new), fields in analyse_stream(changed_documents(), n_process=n_process):
            if writer is None:
                writer = open_writer(ix, timeout=BATCH_LOCK_WAIT)
            write_document(writer, doc, fields, vocabulary)
            (report.added if is_new else report.updated).append(doc.id)
            in_batch += 1
            if in_batch >= batch_size:
                writer.commit()
                writer, in_batch = None, 0
    except BaseException:
        if writer is not None:
            writer.cancel()
        raise
    if writer is not None:
        writer.commit()

    if prune:
        roots = [Path(p).resolve() for p in paths]
        gone = [i for i, (_, p) in state.items() if i not in seen and p and _under(p, roots)]
        if gone:
            writer = open_writer(ix, timeout=BATCH_LOCK_WAIT)
            for doc_id in gone:
                writer.delete_by_term("id", doc_id)
            writer.commit()
            report.pruned.extend(gone)
    return report


def optimize_index(ix: Index) -> int:
    """Merge every segment of the index into one; returns the number of segments after.

    Batch commits leave several segments (Whoosh merges only the small ones), and the search
    box pays for each cold word once per segment: at 10,000 documents, 12 segments answered
    in 21 ms p95 where one answers in 14 ms. Merging rewrites the whole index (about 3 ms a
    document), so it suits a full build, the artefact that is then published, rather than
    the small daily ingests. Atomic like any commit: readers see the old segments or the new.
    """
    return _merge(ix, optimize=True)


MAX_SEGMENTS = 6
"""More segments than this after an ingest, and all but the largest are merged into one."""


def _merge_all_but_largest(writer: IndexWriter, segments: list) -> list:
    """A Whoosh merge policy: every segment but the largest merged into the writer's new one."""
    from whoosh.reading import SegmentReader

    ordered = sorted(segments, key=lambda seg: seg.doc_count_all())
    for seg in ordered[:-1]:
        reader = SegmentReader(writer.storage, writer.schema, seg)
        writer.add_reader(reader)
        reader.close()
    return ordered[-1:]


def _segment_count(ix: Index) -> int:
    reader = ix.reader()
    try:
        return len(reader.leaf_readers())
    finally:
        reader.close()


def consolidate_segments(ix: Index) -> int:
    """After an ingest, keep the segments few without rewriting the whole index; returns the
    number of segments after.

    Whoosh's own policy merges only small segments at each commit: a 10,000-document ingest
    in batches of 256 leaves about 12, and the search box pays for each cold word once per
    segment. Beyond :data:`MAX_SEGMENTS`, every segment but the largest is merged into one:
    a first big ingest is mostly rewritten once, a small daily ingest into a large index
    rewrites only the small segments.
    """
    count = _segment_count(ix)
    if count <= MAX_SEGMENTS:
        return count
    return _merge(ix, mergetype=_merge_all_but_largest)


def _merge(ix: Index, **commit_options: object) -> int:
    """An empty commit that merges segments (atomic like any commit); the count after."""
    writer = open_writer(ix, timeout=BATCH_LOCK_WAIT)
    try:
        writer.commit(**commit_options)
    except BaseException:
        writer.cancel()
        raise
    return _segment_count(ix)


def upsert_text(
    ix: Index, source: str, doc_id: str, collection: str, path: str = "",
    vocabulary: Vocabulary | None = None, timeout: float = 10.0,
) -> tuple[Document, bool]:
    """Parse, analyse and write one document given as markdown text (the API's PUT).

    Returns the document and whether it was new. Raises :class:`DocumentError` for bad input.
    """
    doc = parse_text(source, doc_id, collection, path or f"api:{collection}/{doc_id}.md")
    (fields,) = analyse_documents([doc])
    is_new = doc_id not in _ids(ix, [doc_id])
    writer = open_writer(ix, timeout=timeout)
    try:
        write_document(writer, doc, fields, vocabulary or Vocabulary())
    except BaseException:
        writer.cancel()
        raise
    writer.commit()
    return doc, is_new


def _ids(ix: Index, ids: Iterable[str]) -> set[str]:
    with ix.searcher() as s:
        return {i for i in ids if s.document_number(id=i) is not None}


def delete_document(ix: Index, doc_id: str, timeout: float = 10.0) -> bool:
    """Remove one document; False when it was not indexed."""
    if not _ids(ix, [doc_id]):
        return False
    writer = open_writer(ix, timeout=timeout)
    writer.delete_by_term("id", doc_id)
    writer.commit()
    return True
