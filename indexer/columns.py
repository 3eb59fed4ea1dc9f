"""Per-document values of an index generation, read once per segment.

The engine needs, for every document, its id, date, year, collection, tags, categories,
published flag, title and field lengths: the compact ``meta`` column written at ingest. Reading
and decoding it for every document at each new generation cost ~40 µs a document (0.4 s at
10,000 documents, at every API write). Whoosh never changes a segment once written (deletions
are a separate set), so each segment's values are decoded once (:class:`SegmentColumns`),
kept for the next generations (in :class:`indexer.engine.SegmentPostings`), and a generation
is assembled from its segments' arrays and their current deletions (:func:`assemble`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from whoosh.reading import IndexReader

from indexer.schema import TEXT_FIELDS


@dataclass
class SegmentColumns:
    """One segment's per-document values, deleted documents included (segment-local numbers)."""

    present: np.ndarray
    """True where the document has values (every document written by this version)."""
    ids: list[str]
    titles: list[str]
    timestamp: np.ndarray
    year: np.ndarray
    published: np.ndarray
    lengths: dict[str, np.ndarray]
    collection: KeyMatrix
    """One key a document (its rows are every document with values)."""
    tags: KeyMatrix
    categories: KeyMatrix
    raw_tags: list[list[str]]
    spellings: Counter[str] = field(default_factory=Counter)
    """Raw tag spellings of every document with values, counted once for the segment."""
    public_spellings: Counter[str] = field(default_factory=Counter)
    """The same, of published documents only."""


def read_segment(leaf: IndexReader) -> SegmentColumns:
    """Decode the ``meta`` column of one segment (or of any reader)."""
    n = leaf.doc_count_all()
    present = np.zeros(n, dtype=bool)
    ids, titles = [""] * n, [""] * n
    timestamp = np.full(n, np.nan, dtype=np.float64)
    year = np.zeros(n, dtype=np.int32)
    published = np.ones(n, dtype=bool)
    lengths = {f: np.zeros(n, dtype=np.float32) for f in TEXT_FIELDS}
    collection = [""] * n
    tags: list[list[str]] = [[] for _ in range(n)]
    categories: list[list[str]] = [[] for _ in range(n)]
    raw_tags: list[list[str]] = [[] for _ in range(n)]
    spellings: Counter[str] = Counter()
    public: Counter[str] = Counter()
    # A reader without documents has no column at all (Whoosh's empty reader refuses it).
    column = leaf.column_reader("meta") if n and leaf.has_column("meta") else None
    for docnum in range(n if column is not None else 0):
        raw = column[docnum]
        if not raw:
            continue
        meta = json.loads(raw)
        present[docnum] = True
        ids[docnum] = meta["id"]
        # A document without a date: NaN (no date filter matches it), year 0.
        if meta["ts"] is not None:
            timestamp[docnum] = meta["ts"]
        year[docnum] = meta["year"] or 0
        published[docnum] = meta["pub"]
        titles[docnum] = meta["title"]
        for fname, length in zip(TEXT_FIELDS, meta["lens"], strict=True):
            lengths[fname][docnum] = length
        collection[docnum] = meta["coll"]
        tags[docnum] = meta["tags"]
        categories[docnum] = meta["cats"]
        if meta["raw_tags"]:
            raw_tags[docnum] = meta["raw_tags"]
            spellings.update(meta["raw_tags"])
            if meta["pub"]:
                public.update(meta["raw_tags"])
    return SegmentColumns(present, ids, titles, timestamp, year, published, lengths,
                          KeyMatrix.of([[c] if ok else [] for c, ok in zip(collection, present,
                                                                         strict=True)]),
                          KeyMatrix.of(tags), KeyMatrix.of(categories), raw_tags, spellings,
                          public)


def deleted_of(leaf: IndexReader) -> frozenset[int]:
    """The segment's deleted documents (local numbers)."""
    if not leaf.has_deletions():
        return frozenset()
    found = getattr(leaf, "deleted_docs_set", None)
    if found is not None:
        return frozenset(found)
    return frozenset(d for d in range(leaf.doc_count_all()) if leaf.is_deleted(d))


@dataclass
class KeyMatrix:
    """A segment's document × key pairs (tags or categories): local rows and key codes."""

    rows: np.ndarray
    cols: np.ndarray
    keys: list[str]

    @classmethod
    def of(cls, lists: list[list[str]]) -> KeyMatrix:
        code: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        for docnum, keys in enumerate(lists):
            for key in keys:
                rows.append(docnum)
                cols.append(code.setdefault(key, len(code)))
        return cls(np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64), list(code))


def _pairs(parts: Sequence[tuple[KeyMatrix, int, np.ndarray]],
           ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """The generation's (document, key) pairs, keys numbered in order of first appearance
    among live documents (the order facets break ties with)."""
    code: dict[str, int] = {}
    rows, cols = [], []
    for km, offset, live in parts:
        if not len(km.rows):
            continue
        keep = live[km.rows]
        mapping = np.fromiter((code.setdefault(k, len(code)) for k in km.keys), dtype=np.int64,
                              count=len(km.keys))
        rows.append(km.rows[keep] + offset)
        cols.append(mapping[km.cols[keep]])
    r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    names = list(code)
    used, first = np.unique(c, return_index=True)
    order = used[np.argsort(first, kind="stable")]
    renumber = np.zeros(max(1, len(names)), dtype=np.int64)
    renumber[order] = np.arange(len(order))
    return r, renumber[c], {names[old]: i for i, old in enumerate(order.tolist())}


def _matrix(parts: Sequence[tuple[KeyMatrix, int, np.ndarray]], n: int,
            ) -> tuple[sparse.csr_matrix, dict[str, int]]:
    """The generation's document × key matrix (see :func:`_pairs`)."""
    r, c, code = _pairs(parts)
    return sparse.csr_matrix((np.ones(len(r), dtype=np.int32), (r, c)),
                             shape=(n, max(1, len(code)))), code


def _codes(parts: Sequence[tuple[KeyMatrix, int, np.ndarray]], n: int,
           ) -> tuple[np.ndarray, dict[str, int]]:
    """One key code a document (0 for a document without values)."""
    r, c, code = _pairs(parts)
    out = np.zeros(n, dtype=np.int32)
    out[r] = c
    return out, code


@dataclass
class Generation:
    """A generation's per-document arrays (global document numbers)."""

    live: np.ndarray
    ids: list[str]
    titles: list[str]
    timestamp: np.ndarray
    year: np.ndarray
    published: np.ndarray
    lengths: dict[str, np.ndarray]
    collection: np.ndarray
    collection_code: dict[str, int]
    tags: sparse.csr_matrix
    tag_code: dict[str, int]
    categories: sparse.csr_matrix
    category_code: dict[str, int]
    raw_tags: list[list[str]]
    spellings: Counter[str]
    public_spellings: Counter[str]


def assemble(parts: Sequence[tuple[SegmentColumns, frozenset[int]]]) -> Generation:
    """One generation from its segments, in document-number order, with their deletions."""
    lives, spellings, public = [], Counter(), Counter()
    for cols, deleted in parts:
        live = cols.present.copy()
        if deleted:
            gone = np.fromiter(deleted, dtype=np.int64, count=len(deleted))
            live[gone[gone < len(live)]] = False
        lives.append(live)
        # Counted once per segment; a deleted document's spellings are taken back out.
        spellings.update(cols.spellings)
        public.update(cols.public_spellings)
        for docnum in deleted:
            if docnum < len(live) and cols.present[docnum] and cols.raw_tags[docnum]:
                spellings.subtract(cols.raw_tags[docnum])
                if cols.published[docnum]:
                    public.subtract(cols.raw_tags[docnum])
    spellings, public = +spellings, +public  # drop what fell to zero

    def cat_arrays(name: str, dtype: type) -> np.ndarray:
        arrays = [getattr(cols, name) for cols, _ in parts]
        return np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)

    def cat_lists(name: str) -> list:
        out: list = []
        for cols, _ in parts:
            out.extend(getattr(cols, name))
        return out

    live = np.concatenate(lives) if lives else np.zeros(0, dtype=bool)
    n = len(live)
    ids, titles = cat_lists("ids"), cat_lists("titles")
    timestamp, year = cat_arrays("timestamp", np.float64), cat_arrays("year", np.int32)
    published = cat_arrays("published", bool)
    lengths = {f: (np.concatenate([cols.lengths[f] for cols, _ in parts]) if parts
                   else np.zeros(0, dtype=np.float32)) for f in TEXT_FIELDS}
    # What a deleted document leaves: nothing (no id to find, no date, no length).
    dead = np.flatnonzero(~live)
    for docnum in dead:
        ids[docnum] = titles[docnum] = ""
    timestamp[dead], year[dead], published[dead] = 0.0, 0, True
    for values in lengths.values():
        values[dead] = 0.0
    offsets = np.cumsum([0] + [len(x) for x in lives])[:-1]
    coll, coll_code = _codes([(cols.collection, int(o), lv) for (cols, _), o, lv
                              in zip(parts, offsets, lives, strict=True)], n)
    tags, tag_code = _matrix([(cols.tags, int(o), lv) for (cols, _), o, lv
                              in zip(parts, offsets, lives, strict=True)], n)
    categories, cat_code = _matrix([(cols.categories, int(o), lv) for (cols, _), o, lv
                                    in zip(parts, offsets, lives, strict=True)], n)
    return Generation(
        live=live, ids=ids, titles=titles, timestamp=timestamp, year=year,
        published=published, lengths=lengths, collection=coll,
        collection_code=coll_code, tags=tags, tag_code=tag_code, categories=categories,
        category_code=cat_code, raw_tags=cat_lists("raw_tags"), spellings=spellings,
        public_spellings=public,
    )
