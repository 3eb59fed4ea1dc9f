"""Each segment's posting lists as plain arrays, in a file of the segment beside Whoosh's.

Why: Whoosh keeps a posting list as blocks, each a compressed pickle of its document
numbers, weights and every posting's positions. Reading a list the first time unpickles all
of it (~40 µs a block), and checking a phrase at twenty candidates unpickles the blocks
holding them. On a first read that was most of a search's time (p95 12 ms at 10,000
documents, 3 ms for the same requests once read). Here the same postings are written once,
when the segment is finished, as numpy arrays: document numbers and term frequencies for
every analysed field, and positions for the fields where phrases are looked for
(:data:`~indexer.schema.PHRASE_FIELDS`). A reader reads a list's bytes straight into an
array (one ``pread``); nothing is decoded.

The file belongs to its segment (``<segment id>.cqp``): it is written when the segment's
own files are finished, before any table of contents lists the segment, so a reader of a
generation finds it with the other files, and it is deleted, merged away and shipped (a
segment built by a Dask worker) with them. A segment without one (an index written by an
earlier version, a write that could not make it) is read through Whoosh as before: the file
only ever saves time.

Layout: ``MAGIC``, the header's length (8 bytes, little-endian), a JSON header naming each
array's offset, type and length, then the arrays, each 8-byte aligned. Per field: the terms
(UTF-8, sorted as Whoosh sorts them: by their bytes) and their offsets; per term, where its
postings start; per posting, the segment-local document number, the weight Whoosh stores
(the term's frequency) and, for phrase fields, how many positions it has; per term, where its
positions start; the positions.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from whoosh.reading import SegmentReader

from indexer.schema import PHRASE_FIELDS, TEXT_FIELDS

log = logging.getLogger("communiques.postings")

MAGIC = b"CQPOST01"
EXTENSION = "cqp"
_HEADER = 8


def file_name(segment_id: str) -> str:
    return f"{segment_id}.{EXTENSION}"


# --- writing ---------------------------------------------------------------------------------


CHUNK = 1 << 20
"""Postings whose positions are parsed together (bounds the memory of writing a large
segment's file)."""


class _Accumulator:
    """One field's postings as they come, in the order Whoosh writes them (by term, then
    document): the terms, where each term's postings start, and per posting its document,
    its weight and (phrase fields) its raw value, parsed by chunks of :data:`CHUNK`."""

    def __init__(self, positions: bool) -> None:
        self.names: list[bytes] = []
        self.post_starts = [0]
        self.ids = array("i")  # int32, float32: as the file holds them (no copy to convert)
        self.tfs = array("f")
        self.positions = positions
        self.pending: list[bytes] = []
        self.counts: list[np.ndarray] = []
        self.deltas: list[np.ndarray] = []

    def parse_pending(self) -> None:
        if self.pending:
            count, delta = _parse_positions(self.pending)
            self.counts.append(count)
            self.deltas.append(delta)
            self.pending = []

    def arrays(self) -> dict[str, np.ndarray]:
        """The field's arrays as the file holds them."""
        self.post_starts.append(len(self.ids))
        starts = np.asarray(self.post_starts[1:], dtype=np.int64)
        names = self.names
        out: dict[str, np.ndarray] = {
            "term_bytes": np.frombuffer(b"".join(names), dtype=np.uint8),
            "term_offsets": np.cumsum([0] + [len(t) for t in names], dtype=np.int64),
            "post_starts": starts,
            "ids": np.frombuffer(self.ids, dtype=np.int32),
            "tf": np.frombuffer(self.tfs, dtype=np.float32),
        }
        if self.positions:
            self.parse_pending()
            count = np.concatenate(self.counts) if self.counts else np.zeros(0, np.uint32)
            flat = np.concatenate(self.deltas) if self.deltas else np.zeros(0, np.int64)
            # Positions are stored as deltas within each posting: a running sum, less the sum
            # at the start of each posting.
            running = np.cumsum(flat)
            ends = np.concatenate(([0], np.cumsum(count, dtype=np.int64)))
            base = np.zeros(len(count), dtype=np.int64)
            inner = ends[:-1] > 0
            base[inner] = running[ends[:-1][inner] - 1]
            pos = running - np.repeat(base, count.astype(np.int64))
            dtype = np.uint16 if not len(pos) or pos.max() < 65_536 else np.uint32
            out["counts"] = count
            out["pos_starts"] = ends[starts]
            out["positions"] = pos.astype(dtype)
        return out


class Collector:
    """The posting arrays of a segment being written, taken from the postings Whoosh writes
    (:meth:`tee`), so that they need not be read back from its blocks afterwards: reading
    them back cost ~10 µs a term, most of the arrays' price for the small segments an
    ingest commits in batches."""

    def __init__(self, schema: object) -> None:
        self.fields = {f: _Accumulator(f in PHRASE_FIELDS) for f in TEXT_FIELDS if f in schema}

    def tee(self, items: Iterable[tuple]) -> Iterator[tuple]:
        """``items`` (Whoosh's ``(field, term, document, weight, value)`` postings, sorted),
        passed on unchanged, the analysed fields' ones recorded on the way."""
        fields = self.fields
        field_name = None
        acc = None
        last = None
        for item in items:
            if item[0] != field_name:
                field_name, last = item[0], None
                acc = fields.get(field_name)
                if acc is not None:
                    ids, tfs, names, starts = acc.ids, acc.tfs, acc.names, acc.post_starts
                    pending = acc.pending if acc.positions else None
            if acc is not None and item[2] >= 0:  # -1: a spelling word, not a posting
                if item[1] != last:
                    last = item[1]
                    names.append(last)
                    starts.append(len(ids))
                ids.append(item[2])
                tfs.append(item[3])
                if pending is not None:
                    pending.append(item[4] or b"")
                    if len(pending) >= CHUNK:
                        acc.parse_pending()
                        pending = acc.pending
            yield item

    def arrays(self) -> dict[str, dict[str, np.ndarray]]:
        return {f: acc.arrays() for f, acc in self.fields.items() if acc.names}


def _field_arrays(reader: SegmentReader, field: str, positions: bool) -> dict[str, np.ndarray]:
    """The arrays of one field of a segment, read through Whoosh's own matchers once (a
    segment written without a :class:`Collector`: an index of an earlier version)."""
    terms = reader._terms  # noqa: SLF001 - the codec's term table: items and matchers
    fmt = reader.schema[field].format
    acc = _Accumulator(positions)
    for (fname, tbytes), info in terms.items_from(field, b""):
        if fname != field:
            break
        m = terms._codec.postings_reader(terms._postfile, info, fmt, term=(field, tbytes))  # noqa: SLF001
        block_ids, block_tfs, values = read_list(m, values=positions)
        acc.names.append(tbytes)
        acc.post_starts.append(len(acc.ids))
        acc.ids.extend(block_ids.tolist())
        acc.tfs.extend(block_tfs.tolist())
        if positions:
            acc.pending.extend(values)
            if len(acc.pending) >= CHUNK:
                acc.parse_pending()
    return acc.arrays()


_K, _M, _J = 0x4B, 0x4D, 0x4A
"""Pickle's opcodes for an int of 1, 2 and 4 bytes (BININT1, BININT2, BININT)."""
_HEAD = np.array([0x80, 0x02, 0x5D, 0x71, 0x00], dtype=np.uint8)
"""What every value holds after its count: protocol 2, an empty list, memoised."""


def _parse_positions(values: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Each posting's count of positions and their deltas, all postings in one array.

    Whoosh's value is a 4-byte count, then a protocol-2 pickle of the deltas: an empty
    list, then one int appended, or a mark, the ints and "append them". Unpickling each one
    was most of the time of writing this file; the ints are read here with numpy, the
    k-th int of every posting at step k (as many steps as the longest posting). Anything
    else than that shape is unpickled value by value."""
    n = len(values)
    if not n:
        return np.zeros(0, np.uint32), np.zeros(0, np.int64)
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)
    buf = np.frombuffer(b"".join(values) + bytes(8), dtype=np.uint8)
    starts = np.cumsum(lengths) - lengths
    count = np.zeros(n, dtype=np.int64)
    for k in range(4):
        count = (count << 8) | buf[starts + k]
    multi = count > 1
    ok = (buf[starts[:, None] + np.arange(4, 9)] == _HEAD).all(axis=1)
    ok &= ~multi | (buf[starts + 9] == 0x28)
    ok &= lengths >= 11
    ptr = starts + 9 + multi
    out_start = np.cumsum(count) - count
    deltas = np.zeros(int(count.sum()), dtype=np.int64)
    active = np.flatnonzero(ok & (count > 0))
    k = 0
    while len(active):
        p = ptr[active]
        op = buf[p]
        b1 = buf[p + 1].astype(np.int64)
        two = b1 | (buf[p + 2].astype(np.int64) << 8)
        four = two | (buf[p + 3].astype(np.int64) << 16) | (buf[p + 4].astype(np.int64) << 24)
        four -= (four >> 31) << 32  # BININT is signed
        value = np.where(op == _K, b1, np.where(op == _M, two, four))
        known = (op == _K) | (op == _M) | (op == _J)
        ok[active[~known]] = False
        deltas[out_start[active] + k] = value
        ptr[active] = p + np.where(op == _K, 2, np.where(op == _M, 3, 5))
        k += 1
        active = active[known & (count[active] > k)]
    end = starts + lengths
    close = np.where(multi, 0x65, 0x61)
    ok &= buf[np.minimum(ptr, len(buf) - 1)] == close
    ok &= (ptr + 1 == end) | ((ptr + 2 == end) & (buf[end - 1] == 0x2E))
    if not ok.all():
        for i in np.flatnonzero(~ok).tolist():
            v = values[i]
            got = pickle.loads(v[4:] if v.endswith(b".") else v[4:] + b".")
            if len(got) != count[i]:
                raise ValueError(f"a posting's positions disagree with its count ({v!r})")
            deltas[out_start[i]: out_start[i] + count[i]] = got
    return count.astype(np.uint32), deltas


def read_list(m: object, values: bool = False) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
    """A Whoosh matcher's whole list: document numbers (int64), weights (float32) and, with
    ``values``, each posting's raw value. Whoosh's blocks are decoded directly (ids as a numpy
    cumulative sum rather than Whoosh's per-posting generator); deletions are not applied."""
    m = getattr(m, "child", m)
    ids: list[np.ndarray] = []
    tfs: list[np.ndarray] = []
    raw: list[bytes] = []
    if hasattr(m, "_read_data") and hasattr(m, "_next_block") and not m._byteids:  # noqa: SLF001
        while m.is_active():
            m._read_data()  # noqa: SLF001 - Whoosh's block, decoded once
            data = m._data  # noqa: SLF001
            block = np.cumsum(np.asarray(data[0], dtype=np.int64))
            ids.append(block)
            weights = data[1]
            if weights is None or isinstance(weights, float):
                tfs.append(np.full(len(block), weights or 1.0, dtype=np.float32))
            else:
                tfs.append(np.asarray(weights, dtype=np.float32))
            if values:
                raw.extend(data[2] if data[2] is not None else [b""] * len(block))
            m._next_block()  # noqa: SLF001
    else:
        block_ids, block_tfs = [], []
        while m.is_active():
            block_ids.append(m.id())
            block_tfs.append(m.weight())
            if values:
                raw.append(m.value())
            m.next()
        ids.append(np.asarray(block_ids, dtype=np.int64))
        tfs.append(np.asarray(block_tfs, dtype=np.float32))
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), raw
    return np.concatenate(ids), np.concatenate(tfs), raw


def write(storage: object, schema: object, segment: object,
          collected: Collector | None = None) -> str | None:
    """Write the arrays file of a finished segment into ``storage`` (from the postings
    ``collected`` while it was written, else read back from its blocks); its name, or None
    when it could not be written (logged; the segment is then read through Whoosh)."""
    name = file_name(segment.segment_id())
    tmp = f"{name}.tmp"
    try:
        if collected is not None:
            fields = collected.arrays()
        else:
            reader = SegmentReader(storage, schema, segment)
            try:
                fields = {
                    f: _field_arrays(reader, f, f in PHRASE_FIELDS)
                    for f in TEXT_FIELDS if f in schema and reader.field_length(f)
                }
            finally:
                reader.close()
        header: dict[str, dict[str, list]] = {}
        chunks: list[bytes] = []
        offset = 0
        for f, arrays in fields.items():
            header[f] = {}
            for key, arr in arrays.items():
                data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
                header[f][key] = [offset, arr.dtype.newbyteorder("<").str, len(arr)]
                pad = (-len(data)) % 8
                chunks.append(data + b"\0" * pad)
                offset += len(data) + pad
        head = json.dumps({"fields": header}).encode()
        head += b" " * ((-len(head)) % 8)
        handle = storage.create_file(tmp)
        try:
            handle.write(MAGIC + len(head).to_bytes(_HEADER, "little") + head)
            for chunk in chunks:
                handle.write(chunk)
        finally:
            handle.close()
        storage.rename_file(tmp, name, safe=False)
        return name
    except Exception:  # noqa: BLE001 - the file only saves time: never fail a write for it
        log.warning("%s: posting arrays not written; the segment is read through Whoosh",
                    segment.segment_id(), exc_info=True)
        with contextlib.suppress(Exception):
            storage.delete_file(tmp)
        return None


def add_missing(ix: object) -> int:
    """Write the arrays file of every segment of the newest generation that has none (an
    index written by an earlier version); returns how many were written. Safe beside
    readers and writers: a file appears whole (renamed into place), and a segment merged
    away meanwhile is only logged."""
    storage = ix.storage
    if getattr(storage, "folder", None) is None:
        return 0
    try:
        segments = ix._segments()  # noqa: SLF001 - the newest TOC's segments
    except Exception:  # noqa: BLE001 - no generation yet
        return 0
    names = set(storage.list())
    count = 0
    for segment in segments:
        if file_name(segment.segment_id()) not in names and segment.doc_count_all():
            count += write(storage, ix.schema, segment) is not None
    return count


# --- reading ---------------------------------------------------------------------------------


POSITIONS_SPAN_READ = 16_384
"""Positions (4 bytes each) a phrase check reads at once for all its documents rather than one
read per document, when the documents' positions lie within this many of each other."""


class _Terms:
    """The sorted terms of a field, as a sequence of bytes for :func:`bisect.bisect_left`."""

    def __init__(self, blob: bytes, offsets: np.ndarray) -> None:
        self.blob = blob
        # Indexed through a memoryview: a Python int each, half the cost of a numpy scalar
        # (a lookup is ~15 steps of bisection, and a query looks up dozens of terms).
        self.offsets = memoryview(np.ascontiguousarray(offsets, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> bytes:
        offsets = self.offsets
        return self.blob[offsets[i]:offsets[i + 1]]

    def find(self, term: bytes) -> int:
        i = bisect_left(self, term)
        return i if i < len(self) and self[i] == term else -1


@dataclass
class _Field:
    terms: _Terms
    post_starts: np.ndarray
    pos_starts: np.ndarray | None
    arrays: dict[str, tuple[int, np.dtype]]
    """The large arrays (ids, tf, counts, positions): where each starts in the file, its type."""


class _Source:
    """Bytes of the file at any offset: ``pread`` on a descriptor of its own, or a bytes
    object (an index in memory)."""

    def __init__(self, fd: int | None = None, data: bytes | None = None) -> None:
        self.fd = fd
        self.data = data

    def read(self, offset: int, size: int) -> bytes:
        if self.data is not None:
            return self.data[offset: offset + size]
        out = os.pread(self.fd, size, offset)
        while len(out) < size:  # a short read: go on where it stopped
            more = os.pread(self.fd, size - len(out), offset + len(out))
            if not more:
                raise OSError(f"posting arrays file ends at {offset + len(out)}")
            out += more
        return out

    def __del__(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


class PlainPostings:
    """One segment's arrays file. Thread-safe: only reads.

    Why ``pread`` and not a memory map: the kernel maps a file's pages in large folios (2 MB
    here), so a map read at a few thousand scattered lists counted gigabytes in each
    worker's resident memory; the lists read are kept by the engine's bounded cache anyway.
    The terms and the per-term offsets (a few MB at most) are held in memory."""

    def __init__(self, source: _Source, name: str = "") -> None:
        self._source = source
        head = source.read(0, len(MAGIC) + _HEADER)
        if head[: len(MAGIC)] != MAGIC:
            raise ValueError(f"{name}: not a posting arrays file")
        size = int.from_bytes(head[len(MAGIC):], "little")
        header = json.loads(source.read(len(MAGIC) + _HEADER, size))
        base = len(MAGIC) + _HEADER + size
        self.fields: dict[str, _Field] = {}

        def small(off: int, dt: str, n: int) -> np.ndarray:
            dtype = np.dtype(dt)
            data = source.read(base + off, n * dtype.itemsize)
            if len(data) != n * dtype.itemsize:
                raise ValueError(f"{name}: truncated")
            return np.frombuffer(data, dtype=dtype)

        for f, arrays in header["fields"].items():
            blob = small(*arrays["term_bytes"]).tobytes()
            pos = arrays.get("pos_starts")
            self.fields[f] = _Field(
                _Terms(blob, small(*arrays["term_offsets"])), small(*arrays["post_starts"]),
                small(*pos) if pos else None,
                {key: (base + off, np.dtype(dt)) for key, (off, dt, _) in arrays.items()
                 if key in ("ids", "tf", "counts", "positions")})

    def has(self, field: str) -> bool:
        return field in self.fields

    def has_positions(self, field: str) -> bool:
        f = self.fields.get(field)
        return f is not None and f.pos_starts is not None

    def _slice(self, f: _Field, key: str, a: int, b: int) -> np.ndarray:
        start, dtype = f.arrays[key]
        data = self._source.read(start + a * dtype.itemsize, (b - a) * dtype.itemsize)
        return np.frombuffer(data, dtype=dtype)

    def _term(self, field: str, term: str) -> tuple[_Field, int, int, int] | None:
        f = self.fields.get(field)
        if f is None:
            return None
        i = f.terms.find(term.encode("utf-8"))
        if i < 0:
            return None
        return f, i, int(f.post_starts[i]), int(f.post_starts[i + 1])

    def postings(self, field: str, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Segment-local document numbers and term frequencies of ``term``, or None when the
        segment does not hold it."""
        found = self._term(field, term)
        if found is None:
            return None
        f, _, a, b = found
        return self._slice(f, "ids", a, b), self._slice(f, "tf", a, b)

    def positions(self, field: str, term: str, docs: Sequence[int]) -> dict[int, list[int]]:
        """The positions of ``term`` in each of ``docs`` (segment-local) that holds it."""
        found = self._term(field, term) if self.has_positions(field) and len(docs) else None
        if found is None:
            return {}
        f, i, a, b = found
        ids = self._slice(f, "ids", a, b)
        wanted = np.asarray(docs, dtype=np.int64)
        at = np.searchsorted(ids, wanted)
        ok = at < len(ids)
        ok[ok] = ids[at[ok]] == wanted[ok]
        if not ok.any():
            return {}
        counts = self._slice(f, "counts", a, b)
        ends = np.cumsum(counts, dtype=np.int64)
        begins = ends - counts
        start = int(f.pos_starts[i])
        spans = [(d, int(begins[k]), int(ends[k]))
                 for d, k in zip(wanted[ok].tolist(), at[ok].tolist(), strict=True)]
        lo, hi = min(s for _, s, _ in spans), max(e for _, _, e in spans)
        if hi - lo <= POSITIONS_SPAN_READ:
            # One read for every document asked (a pread costs more than the bytes between).
            block = self._slice(f, "positions", start + lo, start + hi)
            return {d: block[s - lo:e - lo].tolist() for d, s, e in spans}
        return {d: self._slice(f, "positions", start + s, start + e).tolist()
                for d, s, e in spans}


def open_for(storage: object, segment_id: str) -> PlainPostings | None:
    """The arrays file of a segment, or None when it has none (or an unreadable one: logged,
    and the segment read through Whoosh)."""
    name = file_name(segment_id)
    try:
        source = _source(storage, name)
        return PlainPostings(source, name) if source is not None else None
    except Exception:  # noqa: BLE001 - a damaged file costs speed, never answers
        log.warning("%s: unreadable; the segment is read through Whoosh", name, exc_info=True)
        return None


def _source(storage: object, name: str) -> _Source | None:
    files = getattr(storage, "_files", None)  # a pinned generation (indexer.snapshot)
    if isinstance(files, dict) and name in files:
        return _Source(fd=os.dup(files[name][0]))
    folder = getattr(storage, "folder", None)
    if folder is not None:
        try:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None
        return _Source(fd=fd)
    if not storage.file_exists(name):
        return None
    handle = storage.open_file(name)
    try:
        return _Source(data=bytes(handle.read()))
    finally:
        handle.close()
