"""Highlighting without spaCy: ``<mark>`` around matched words, everything else escaped.

The matcher compares the cheap :func:`~indexer.analysis.light_words` forms (folded surface and
stem, with the original offsets) against the terms the query actually used, so highlights land
on the words a visitor typed, in any inflection, in well under a millisecond per hit.

Why an inverted table of the tokens seen: a page of ten hits holds about a thousand distinct
tokens, and judging each against the query was most of a search's time. Every raw token met
is analysed once (:data:`_SEEN`) and filed under its terms and stem; a query then looks up the
few tokens that can match it, and a hit's text is only split and scanned for those.
"""

from __future__ import annotations

import html
import threading
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field

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


def snippet(text: str, match: MatchSet, size: int = SNIPPET_WORDS) -> tuple[str, int]:
    """The best passage of about ``size`` words, highlighted, and how many words matched in it.

    Best = most distinct query words, then most matches; the passage starts a few words before
    the first match so it reads naturally.

    Why words between spaces: ``str.split`` is a tenth of the cost of a regular expression
    over a hit's text (Python's ``re`` was most of a snippet's time); each token's word is
    then what the analysis keeps of it (:func:`~indexer.analysis._word_parts`: elision and
    punctuation dropped, compounds in parts). Only the tokens that match are looked at (see
    :meth:`MatchSet.matched`), and the passage is written from its tokens joined by single
    spaces (a snippet's white space is normalised anyway), never by finding them in the text.
    """
    raws = text.split()
    n = len(raws)
    if not n:
        return html.escape(text[:300]), 0
    at, matched = _positions(raws, match) if match else ([], {})
    keys = [matched[raws[i]][0] for i in at]
    best_start, best_score = 0, (0, 0)
    for i in at:
        lo = max(0, i - 3)
        a, b = bisect_left(at, lo), bisect_left(at, lo + size)
        # Distinct query words count first: two different words beat one word repeated.
        score = (len(set(keys[a:b])), b - a)
        if score > best_score:
            best_start, best_score = lo, score
    lo = best_start
    hi = min(n, lo + size)
    if hi - lo < size:
        lo = max(0, hi - size)
    # Runs of unmatched tokens are joined and escaped at once: most tokens need no escaping.
    out: list[str] = []
    prev = lo
    for j in at[bisect_left(at, lo) : bisect_left(at, hi)]:
        if j > prev:
            out.append(html.escape(" ".join(raws[prev:j])))
        out.append(_token(raws[j], matched[raws[j]]))
        prev = j + 1
    if hi > prev:
        out.append(html.escape(" ".join(raws[prev:hi])))
    body = " ".join(out)
    prefix = "… " if lo > 0 else ""
    suffix = " …" if hi < n else ""
    return prefix + body + suffix, best_score[1]
