"""Highlighting without spaCy: ``<mark>`` around matched words, everything else escaped.

The matcher compares the cheap :func:`~indexer.analysis.light_words` forms (folded surface and
stem, with the original offsets) against the terms the query actually used, so highlights land
on the words a visitor typed, in any inflection, in well under a millisecond per hit.

Why an inverted table of the tokens seen: a page of ten hits holds about a thousand distinct
tokens, and judging each against the query was most of a search's time. Every raw token met
is analysed once (:data:`_SEEN`) and filed under its terms and stem; a query then looks up the
few tokens that can match it, and a hit's text is only split and scanned for those.

Why marks written at ingest (:func:`marks_of`): even so, a hit read for the first time cost
its text split, its tokens put in a set and checked against the table, about 100 µs of the
150 a hit took. The ingest, which analyses every token anyway, stores beside the text the
hash of each key a token can be matched by (its stem and plain terms) and where the token
stands; a query makes a table of its own keys' hashes once (:meth:`MatchSet.hashes`), and a
hit's matches are then one numpy indexing of that table by its marks, its text split only as
far as the passage shown. Documents written before the marks existed keep the table's way.
"""

from __future__ import annotations

import html
import threading
import zlib
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from indexer.analysis import _LIGHT_TOKEN, _word_parts

SNIPPET_WORDS = 30

Piece = tuple[tuple[str, ...], str | None, int, int]
"""A word of a token: its plain terms, its stem, and where it stands in the token (offset,
length: without an elision or edge punctuation)."""
Pieces = tuple[Piece, ...]
"""The words of a token between spaces, as the light tokenizer finds them (most tokens: one;
``<b>État</b>`` or ``État,Région``: several; a stop word or punctuation: none)."""
Found = tuple[str, tuple[tuple[int, int], ...]]
"""A token that matches: the key of the query word it matches (its stem, else its first plain
term), and where its matching words stand in it."""

_HEAD = 3
"""Prefix queries look tokens up by the first letters of their terms."""

Marks = tuple[bytes, bytes]
"""What :func:`marks_of` stores for a hit's text: the 16-bit hashes of its tokens' keys, in
token order (uint16), and how many keys each token of ``text.split()`` has (uint8)."""

KEYS_PER_TOKEN = 255
"""A token's keys beyond this many (a run of hundreds of compound parts) are not marked."""

PREFIX_TERMS_MAX = 2_000
"""A prefix that starts more indexed terms than this (one or two letters typed) is matched
through the table of tokens seen rather than hashed term by term."""


class _Seen:
    """Every token between spaces analysed so far, its :data:`Pieces`, and the tables a query reads:
    term or stem → tokens, the first :data:`_HEAD` letters of a term → tokens, and the tokens in
    the order they were added (a query in progress catches up on the tokens other threads
    added meanwhile). Bounded: cleared whole when :data:`KEPT` tokens are held."""

    KEPT = 200_000

    def __init__(self) -> None:
        self.forms: dict[str, Pieces] = {}
        self.by_key: dict[str, list[str]] = {}
        self.by_head: dict[str, list[str]] = {}
        self.added: list[str] = []
        self.generation = 0
        self._lock = threading.Lock()

    def add(self, raws: set[str]) -> None:
        """Analyse and file the tokens not seen yet."""
        with self._lock:
            if len(self.forms) + len(raws) > self.KEPT:
                self.forms, self.by_key, self.by_head, self.added = {}, {}, {}, []
                self.generation += 1
            forms, by_key, by_head, added = self.forms, self.by_key, self.by_head, self.added
            for raw in raws:
                if raw in forms:
                    continue
                pieces = forms[raw] = _pieces(raw)
                if not pieces:
                    continue
                keys: set[str] = set()
                heads: set[str] = set()
                for terms, stem, _, _ in pieces:
                    keys.update(terms)
                    if stem is not None:
                        keys.add(stem)
                    heads.update(t[:_HEAD] for t in terms)
                for key in keys:
                    by_key.setdefault(key, []).append(raw)
                for head in heads:
                    by_head.setdefault(head, []).append(raw)
                added.append(raw)


def _pieces(raw: str) -> Pieces:
    """The words of a token between spaces: those of the light tokenizer, each analysed by the
    shared analysis (so a highlight marks what the index would have indexed)."""
    out = []
    for m in _LIGHT_TOKEN.finditer(raw):
        parts = _word_parts(m.group(), None)
        if parts is not None:
            out.append((parts[2], parts[3], m.start() + parts[1], len(parts[0])))
    return tuple(out)


_SEEN = _Seen()


def snippet_text(chapeau: str, body: str) -> str:
    """The text a hit's snippet is taken from (and its marks computed over)."""
    return "\n\n".join(x for x in (chapeau, body) if x)


def key_hash(key: str) -> int:
    """A term's or stem's hash in the marks: the low 16 bits of the CRC-32 of its UTF-8,
    stable across processes and versions (unlike Python's ``hash``). Short, so that marks
    add little to what a hit reads (a 3,000-character text: about 1.5 KB); a token whose
    hash only collides with a query key's is told apart when the passage is written."""
    return zlib.crc32(key.encode("utf-8")) & 0xFFFF


@lru_cache(maxsize=200_000)
def _token_keys(raw: str) -> tuple[int, ...]:
    """The hashes of the keys a token between spaces can be matched by: for each of its
    words the stem first, else the first plain term (the word's key when a snippet counts
    distinct query words), then its plain terms."""
    out: list[int] = []
    for terms, stem, _, _ in _pieces(raw):
        for key in ((stem,) if stem is not None else ()) + terms:
            h = key_hash(key)
            if h not in out:
                out.append(h)
    return tuple(out[:KEYS_PER_TOKEN])


def marks_of(text: str) -> Marks:
    """The marks of a hit's text (see :data:`Marks`), computed once at ingest."""
    hashes: list[int] = []
    counts: list[int] = []
    for raw in text.split():
        keys = _token_keys(raw)
        hashes.extend(keys)
        counts.append(len(keys))
    return (np.array(hashes, dtype=np.uint16).tobytes(),
            np.array(counts, dtype=np.uint8).tobytes())


def _marked(marks: Marks, hashes: np.ndarray) -> tuple[list[int], list[int]]:
    """The tokens that have a key among the query's ``hashes`` (:meth:`MatchSet.hashes`), in
    order, and the key of each (its first: the stem of its first word). Candidates only: see
    :func:`snippet`."""
    h = np.frombuffer(marks[0], dtype=np.uint16)
    keys = np.flatnonzero(hashes[h])
    if not len(keys):
        return [], []
    counts = np.frombuffer(marks[1], dtype=np.uint8)
    ends = np.cumsum(counts)
    tokens = np.searchsorted(ends, keys, side="right")
    at = list(dict.fromkeys(tokens.tolist()))
    return at, h[(ends - counts)[at]].tolist()


_LEARNT_ONCE = threading.Lock()


def learnt_once() -> bool:
    """False the first time it is asked in a process, True after: the words of the newest
    documents are learnt ahead once, by the first generation's read-ahead."""
    return not _LEARNT_ONCE.acquire(blocking=False)


def learn(texts: Iterable[str]) -> int:
    """Analyse ahead the words of texts that hits will show (the newest documents, read with
    the longest posting lists after start-up): a word's first analysis (its stem above all)
    is most of what a snippet costs the first time. Returns how many new tokens were filed;
    stops adding once the table is full, so that it is never cleared by this."""
    count = 0
    for text in texts:
        new = set(text.split()).difference(_SEEN.forms)
        if len(_SEEN.forms) + len(new) > _SEEN.KEPT // 2:
            break
        _SEEN.add(new)
        count += len(new)
    return count




@dataclass
class MatchSet:
    """The terms a query matched with: plain terms, stems and prefixes."""

    terms: set[str] = field(default_factory=set)
    stems: set[str] = field(default_factory=set)
    prefixes: set[str] = field(default_factory=set)
    _matched: dict[str, Found] | None = field(default=None, repr=False, compare=False)
    _state: tuple[int, int, int] = field(default=(0, 0, 0), repr=False, compare=False)
    _upto: tuple[int, int] = field(default=(0, 0), repr=False, compare=False)
    _hashes: tuple[tuple[int, int, int], np.ndarray | None] | None = field(
        default=None, repr=False, compare=False)

    def __bool__(self) -> bool:
        return bool(self.terms or self.stems or self.prefixes)

    def found(self, pieces: Pieces | None) -> Found | None:
        """What of a token's words match the query, or None."""
        if not pieces or not self:
            return None
        key, spans = None, []
        prefixes = tuple(self.prefixes)
        for terms, stem, offset, length in pieces:
            if (stem is not None and stem in self.stems) or not self.terms.isdisjoint(terms) or (
                    prefixes and any(t.startswith(prefixes) for t in terms)):
                key = key or stem or terms[0]
                spans.append((offset, length))
        return (key, tuple(spans)) if key else None

    def hashes(self, starting: Callable[[str, int], list[str] | None]) -> np.ndarray | None:
        """Which 16-bit hashes are those of a key the query matches (see :func:`marks_of`),
        as a table of 65,536 booleans (a hit's marks are then looked up in one indexing): its
        terms, its stems and, through ``starting`` (the index's terms that start with a
        prefix, or None past a limit), the terms its prefixes start. None when a prefix starts
        too many terms (the hits are then matched through the table of tokens seen). Once per
        query."""
        state = (len(self.terms), len(self.stems), len(self.prefixes))
        if self._hashes is not None and self._hashes[0] == state:
            return self._hashes[1]
        keys = self.terms | self.stems
        found: np.ndarray | None = None
        for prefix in self.prefixes:
            terms = starting(prefix, PREFIX_TERMS_MAX)
            if terms is None:
                break
            keys.update(terms)
        else:
            found = np.zeros(1 << 16, dtype=bool)
            found[np.fromiter(map(key_hash, keys), dtype=np.uint16, count=len(keys))] = True
        self._hashes = (state, found)
        return found

    def matched(self, raws: set[str]) -> dict[str, Found]:
        """Tokens between spaces → what matches in them, for every token of ``raws`` that
        matches, and others (absent: no match). Built from the tables of :data:`_SEEN` once
        per query (the match set must not change meanwhile: it is complete once parsed), then
        kept up to date with the tokens added since."""
        seen = _SEEN
        new = raws.difference(seen.forms)
        if new:
            seen.add(new)
        state = (len(self.terms), len(self.stems), len(self.prefixes))
        if self._matched is None or self._state != state:
            self._matched, self._state = {}, state
            self._upto = (seen.generation, len(seen.added))
            self._judge(self._candidates(seen))
        generation, upto = self._upto
        if generation != seen.generation:
            upto = 0
        added = seen.added
        if len(added) > upto:
            self._upto = (seen.generation, len(added))
            self._judge(added[upto:])
        return self._matched

    def _candidates(self, seen: _Seen) -> set[str]:
        """The tokens seen so far that can match: filed under one of the query's terms or
        stems, or under the first letters of one of its prefixes."""
        found: set[str] = set()
        for key in self.terms | self.stems:
            found.update(seen.by_key.get(key, ()))
        short = tuple(p for p in self.prefixes if len(p) < _HEAD)
        for p in self.prefixes:
            if len(p) >= _HEAD:
                found.update(seen.by_head.get(p[:_HEAD], ()))
        if short:
            for head in list(seen.by_head):
                if head.startswith(short):
                    found.update(seen.by_head.get(head, ()))
        return found

    def _judge(self, raws: list[str] | set[str]) -> None:
        matched, forms = self._matched, _SEEN.forms
        assert matched is not None
        for raw in raws:
            hit = self.found(forms.get(raw))
            if hit is not None:
                matched[raw] = hit


def _render(text: str, spans: list[tuple[int, int]], start: int = 0, end: int | None = None) -> str:
    end = len(text) if end is None else end
    out: list[str] = []
    pos = start
    for s, e in spans:
        if s < start or e > end:
            continue
        out.append(html.escape(text[pos:s]))
        out.append("<mark>" + html.escape(text[s:e]) + "</mark>")
        pos = e
    out.append(html.escape(text[pos:end]))
    return "".join(out)


def _spans(found: Found, begin: int) -> list[tuple[int, int]]:
    """Where the matching words of a token starting at ``begin`` stand, without elision or
    punctuation: ``l’<mark>État</mark>,``."""
    return [(begin + offset, begin + offset + length) for offset, length in found[1]]


def _positions(raws: list[str], match: MatchSet) -> tuple[list[int], dict[str, Found]]:
    """Where in ``raws`` the tokens that match stand, in order, and what matches in them:
    looked for with ``list.index`` (a C-level scan a matching token; a few tokens match,
    hundreds do not)."""
    distinct = set(raws)
    matched = match.matched(distinct)
    at: list[int] = []
    for raw in distinct.intersection(matched):
        i = raws.index(raw)
        while True:
            at.append(i)
            try:
                i = raws.index(raw, i + 1)
            except ValueError:
                break
    at.sort()
    return at, matched


def _offset(text: str, raws: list[str], k: int) -> int:
    """Where token ``k`` of ``text.split()`` starts: the first place its text is found past
    the length of the tokens before it (a space at least each) that starts a token and has
    exactly ``k`` tokens before it."""
    if k == 0:
        return len(text) - len(text.lstrip())
    pos = sum(map(len, raws[:k])) + k
    while True:
        pos = text.find(raws[k], pos)
        if text[pos - 1].isspace() and len(text[:pos].split()) == k:
            return pos
        pos += 1


def _starts(text: str, raws: list[str], lo: int, hi: int) -> list[int]:
    """Where tokens ``lo`` to ``hi - 1`` of ``text.split()`` start."""
    pos = _offset(text, raws, lo)
    out = [pos]
    for k in range(lo + 1, hi):
        pos = text.find(raws[k], pos + len(raws[k - 1]))
        out.append(pos)
    return out


def highlight(text: str, match: MatchSet) -> str:
    """The whole text, escaped, with matched words in ``<mark>`` (without their elision or
    punctuation: ``l’<mark>État</mark>,``)."""
    raws = text.split()
    if not match or not raws:
        return _render(text, [])
    at, matched = _positions(raws, match)
    if not at:
        return _render(text, [])
    starts = _starts(text, raws, 0, at[-1] + 1)
    return _render(text, [s for j in at for s in _spans(matched[raws[j]], starts[j])])


def _token(raw: str, found: Found) -> str:
    """One token between spaces, escaped, its matching words in ``<mark>``."""
    return _render(raw, _spans(found, 0))


def snippet(text: str, match: MatchSet, size: int = SNIPPET_WORDS, marks: Marks | None = None,
            hashes: np.ndarray | None = None) -> tuple[str, int]:
    """The best passage of about ``size`` words, highlighted, and how many words matched in it.

    Best = most distinct query words, then most matches; the passage starts a few words before
    the first match so it reads naturally.

    Why words between spaces: ``str.split`` is a tenth of the cost of a regular expression
    over a hit's text (Python's ``re`` was most of a snippet's time); each token's word is
    then what the analysis keeps of it (:func:`~indexer.analysis._word_parts`: elision and
    punctuation dropped, compounds in parts). With the text's ``marks`` and the query's
    ``hashes`` (:meth:`MatchSet.hashes`), the matching tokens are found in the marks and the
    text is split only as far as the passage; otherwise only the tokens that match are looked
    at (see :meth:`MatchSet.matched`). The passage is written from its tokens joined by single
    spaces (a snippet's white space is normalised anyway), never by finding them in the text.
    """
    if marks is not None and hashes is not None and match:
        at, keys = _marked(marks, hashes)
        while True:
            lo = _best_start(at, keys, size)
            end = lo + size
            raws = text.split(None, end)
            more = len(raws) > end
            if more:
                raws[end:] = []
            elif len(raws) - lo < size:  # the text ends before the passage would: it ends there
                lo = max(0, len(raws) - size)
            hi = len(raws)
            found = {j: _found(match, raws[j])
                     for j in at[bisect_left(at, lo) : bisect_left(at, hi)]}
            if None not in found.values():
                break
            # A hash that only collided: that token is no match; choose the passage again.
            kept = [k for k, j in enumerate(at) if found.get(j, True) is not None]
            at, keys = [at[k] for k in kept], [keys[k] for k in kept]
        return _passage(raws, lo, hi, more, list(found), found.__getitem__, text), len(found)
    raws = text.split()
    n = len(raws)
    at, matched = _positions(raws, match) if match else ([], {})
    keys = [matched[raws[i]][0] for i in at]
    lo = _best_start(at, keys, size)
    hi = min(n, lo + size)
    if hi - lo < size:
        lo = max(0, hi - size)
    shown = at[bisect_left(at, lo) : bisect_left(at, hi)]
    return _passage(raws, lo, hi, hi < n, shown, lambda j: matched[raws[j]], text), len(shown)


def _found(match: MatchSet, raw: str) -> Found | None:
    """What matches in a token the marks point at (None for a hash that only collided)."""
    return match.found(_pieces(raw))


def _best_start(at: list[int], keys: list, size: int) -> int:
    """Where the best passage of ``size`` tokens starts, given where matches stand (``at``,
    sorted) and the query word each matches (``keys``): a few tokens before the match that
    opens the passage with most distinct query words, then most matches."""
    best_start, best_score = 0, (0, 0)
    for i in at:
        lo = max(0, i - 3)
        a, b = bisect_left(at, lo), bisect_left(at, lo + size)
        # Distinct query words count first: two different words beat one word repeated.
        score = (len(set(keys[a:b])), b - a)
        if score > best_score:
            best_start, best_score = lo, score
    return best_start


def _passage(raws: list[str], lo: int, hi: int, more: bool, shown: list[int],
             found: Callable[[int], Found], text: str) -> str:
    """Tokens ``lo`` to ``hi - 1`` joined by single spaces, escaped, those of ``shown``
    highlighted; an ellipsis where the text goes on before or after.

    Escaped once: the matching words are wrapped in two control characters, the passage is
    escaped, then they become ``<mark>`` tags (a page's ten passages were 200 calls of
    ``html.escape``). A passage that holds either character itself is written piece by
    piece."""
    if not raws:
        return html.escape(text[:300])
    words = raws[lo:hi]
    plain = " ".join(words)
    if _OPEN in plain or _CLOSE in plain:
        return _passage_in_pieces(raws, lo, hi, more, shown, found)
    for j in shown:
        raw, pieces, pos = raws[j], [], 0
        for offset, length in found(j)[1]:
            pieces += (raw[pos:offset], _OPEN, raw[offset:offset + length], _CLOSE)
            pos = offset + length
        pieces.append(raw[pos:])
        words[j - lo] = "".join(pieces)
    body = html.escape(" ".join(words) if shown else plain)
    body = body.replace(_OPEN, "<mark>").replace(_CLOSE, "</mark>")
    return ("… " if lo > 0 else "") + body + (" …" if more else "")


_OPEN, _CLOSE = "\x02", "\x03"
"""Where a ``<mark>`` opens and closes in a passage before it is escaped."""


def _passage_in_pieces(raws: list[str], lo: int, hi: int, more: bool, shown: list[int],
                       found: Callable[[int], Found]) -> str:
    """:func:`_passage`, each run of plain words and each matching word escaped apart."""
    # Runs of unmatched tokens are joined and escaped at once: most tokens need no escaping.
    out: list[str] = []
    prev = lo
    for j in shown:
        if j > prev:
            out.append(html.escape(" ".join(raws[prev:j])))
        out.append(_token(raws[j], found(j)))
        prev = j + 1
    if hi > prev:
        out.append(html.escape(" ".join(raws[prev:hi])))
    body = " ".join(out)
    return ("… " if lo > 0 else "") + body + (" …" if more else "")
