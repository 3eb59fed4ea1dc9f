"""The Whoosh schema, built in one place, and opening the index that uses it."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from whoosh import index as whoosh_index
from whoosh.analysis import Analyzer
from whoosh.columns import VarBytesColumn
from whoosh.fields import BOOLEAN, COLUMN, DATETIME, ID, KEYWORD, STORED, TEXT, FieldType, Schema
from whoosh.formats import Existence, Positions

from indexer.analysis import FrenchTokenizer

SCHEMA_VERSION = 5
"""Bumped whenever fields or analysis change so that an old index is rebuilt, not misread.
5: the surface → lemma table (:data:`LEMMA_FIELD`)."""

TEXT_FIELDS: dict[str, float] = {"title": 4.0, "chapeau": 2.0, "body": 1.0, "attachment": 0.6}
"""Analysed fields and their weight in ranking: title > chapeau > body > attachments."""

PHRASE_FIELDS = ("title", "chapeau", "body")
"""Fields where a phrase is looked for (attachments are long, their positions costly)."""

DEFAULT_INDEX_DIR = "var/index"


class IndexError_(Exception):
    """The index folder cannot be opened or was built by an incompatible version."""


class WordPositions(Positions):
    """Whoosh's positions format, fed directly from analysed words when it gets them: ingest
    hands over :class:`~indexer.analysis.AnalysedText`, and building the postings from its words
    skips a Token object per term (a third of Whoosh's share of ingest time)."""

    def word_values(self, value, analyzer, **kwargs):  # noqa: ANN001, ANN003, ANN201
        words = getattr(value, "words", None)
        if words is None:
            yield from super().word_values(value, analyzer, **kwargs)
            return
        poses: dict[str, list[int]] = {}
        for pos, w in enumerate(words):
            for term in w.terms:
                poses.setdefault(term, []).append(pos)
            if w.stem:
                poses.setdefault(w.stem, []).append(pos)
        fb = self.field_boost
        for term, poslist in poses.items():
            yield term, len(poslist), len(poslist) * fb, self.encode(poslist)


LEMMA_FIELD = "sl"
"""Unscored field holding, per document, one term per (folded surface form, folded lemma)
pair its words took in context, joined by :data:`~indexer.analysis.PAIR_SEPARATOR` (the
lemma empty when the analysis gave none beyond the surface form). A term's document
frequency counts the documents where that form took that lemma: queries read a word's lemma
there instead of running spaCy on a lone word (see :meth:`indexer.engine.Lexicon.lemma`).
Being terms of the index, the pairs follow Whoosh's segments: merged, copied and dropped
with them."""

MARKS_FIELD = "marks"
"""Stored beside a document: where its snippet can be highlighted (see
:func:`indexer.highlight.marks_of`); an index written before it has none (hits are then
matched through the table of tokens seen)."""


class TermSet(Existence):
    """Existence of each of a sequence of ready-made terms (no analyzer: the terms come from
    the words the document was analysed into)."""

    def word_values(self, value, analyzer, **kwargs):  # noqa: ANN001, ANN003, ANN201, ARG002
        fb = self.field_boost
        return ((term, 1, fb, b"") for term in set(value))


class TERMSET(FieldType):
    """An indexed, unscored, unstored field of ready-made terms (a list of strings)."""

    def __init__(self) -> None:
        super().__init__(TermSet(), analyzer=None, scorable=False, stored=False)


def _text_field(ana: Analyzer, stored: bool = True) -> TEXT:
    field = TEXT(analyzer=ana, phrase=True, stored=stored)
    field.format = WordPositions(field_boost=field.format.field_boost)
    return field


def french_analyzer() -> Analyzer:
    return FrenchTokenizer()


def build_schema() -> Schema:
    ana = french_analyzer()
    return Schema(
        id=ID(stored=True, unique=True),
        path=ID(stored=True),
        url=STORED,
        collection=ID(stored=True),
        tag=KEYWORD(commas=True, stored=True, scorable=False),
        tags=STORED,
        category=KEYWORD(commas=True, stored=True, scorable=False),
        categories=STORED,
        title=_text_field(ana),
        chapeau=_text_field(ana),
        body=_text_field(ana),
        attachment=_text_field(ana),
        attachments=STORED,
        date=DATETIME(stored=True, sortable=True),
        date_iso=STORED,
        year=ID(stored=True),
        published=BOOLEAN(stored=True),
        hash=STORED,
        # "api" for a document written through the API, "files" for one ingested from a
        # folder: an ingest never replaces the former with a file from another folder.
        origin=STORED,
        # Where a hit's snippet can be highlighted (see indexer.highlight.marks_of).
        marks=STORED,  # MARKS_FIELD
        # What the search engine needs of every document (date, year, collection, tag keys,
        # field lengths, title) in one small column, read at start-up without the bodies.
        meta=COLUMN(VarBytesColumn()),
        sl=TERMSET(),
    )


def default_index_dir() -> Path:
    return Path(os.environ.get("COMMUNIQUES_INDEX", DEFAULT_INDEX_DIR))


def _meta_path(path: Path) -> Path:
    return path / "communiques-index.json"


OPEN_ATTEMPTS = 20
T = TypeVar("T")


def _retried(opener: Callable[..., T], path: Path) -> T:
    """``opener(path)`` (Whoosh's ``open_dir`` or ``exists_in``, which opens too), again when
    the newest generation it listed was replaced before it read it: another process's commit
    (an API write, an ingest, a merge) removes the previous table of contents, and the next
    listing finds the new one."""
    for attempt in range(OPEN_ATTEMPTS):
        try:
            return opener(str(path))
        except FileNotFoundError:
            if attempt == OPEN_ATTEMPTS - 1:
                raise
            time.sleep(min(0.001 * (attempt + 1), 0.02))
    raise AssertionError("unreachable")


def open_index(path: Path, create: bool = False, rebuild: bool = False) -> whoosh_index.Index:
    """Open the index at ``path``; with ``create``, make an empty one when there is none.

    An index written by another schema version is refused with a message saying to re-ingest,
    or, with ``rebuild`` (ingest: the index is derived data), emptied and made anew.
    """
    path = Path(path)
    if rebuild and _retried(whoosh_index.exists_in, path):
        try:
            return open_index(path)
        except IndexError_:
            for child in path.iterdir():
                if child.is_file() or child.is_symlink():
                    child.unlink()
            return open_index(path, create=True)
    if _retried(whoosh_index.exists_in, path):
        meta = _meta_path(path)
        version = None
        if meta.exists():
            try:
                version = json.loads(meta.read_text()).get("schema_version")
            except (OSError, ValueError):
                version = None
        if version != SCHEMA_VERSION:
            raise IndexError_(
                f"{path}: index built with schema version {version}, this version needs "
                f"{SCHEMA_VERSION}; delete the folder and ingest again"
            )
        return _retried(whoosh_index.open_dir, path)
    if not create:
        raise IndexError_(f"{path}: no index here; run 'communiques ingest PATH --index {path}'")
    path.mkdir(parents=True, exist_ok=True)
    # The version first, the (empty) index second: a process killed in between leaves a
    # folder that is not yet an index, made anew by the next ``create``, never one of an
    # unknown version.
    tmp = _meta_path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps({"schema_version": SCHEMA_VERSION}))
    os.replace(tmp, _meta_path(path))
    return whoosh_index.create_in(str(path), build_schema())


class PublishError(Exception):
    """The link cannot be (re)pointed; the message says why."""


def publish(build: Path, link: Path) -> Path:
    """Point ``link`` at the index folder ``build``, atomically (a symlink replaced by rename).

    Services reading ``link`` open the new index on their next check while requests in flight
    finish on the old one; ``build`` is checked to be a complete index of this version first.
    Returns the previous target, if any, so that it can be kept for a rollback or removed.
    """
    build, link = Path(build).resolve(), Path(link)
    open_index(build)  # refuses a missing, incomplete or incompatible index
    if link.exists() and not link.is_symlink():
        raise PublishError(
            f"{link}: a folder, not a published link; move it aside (it can then be published)"
        )
    previous = link.resolve() if link.is_symlink() else None
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    os.symlink(build, tmp)
    os.replace(tmp, link)
    return previous  # type: ignore[return-value]
