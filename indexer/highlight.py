"""Highlighting without spaCy: ``<mark>`` around matched words, everything else escaped.

The matcher compares the cheap :func:`~indexer.analysis.light_words` forms (folded surface and
stem, with the original offsets) against the terms the query actually used, so highlights land
on the words a visitor typed, in any inflection, in well under a millisecond per hit.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import accumulate

from indexer.analysis import _LIGHT_TOKEN, Word, _word_parts

SNIPPET_WORDS = 30

Forms = tuple[tuple[str, ...], str | None, int, int]
"""A raw light token's plain terms, stem, and where its word stands in it (offset, length:
without an elision or edge punctuation)."""
_FORMS: dict[str, Forms | None] = {}
"""Raw light token → its :data:`Forms` (None for a stop word): what highlighting looks up for
every word of every hit, kept in a plain dictionary (a lookup costs a fraction of the
analysis cache's)."""
_FORMS_KEPT = 200_000
_UNSEEN = object()


def _forms(raw: str) -> Forms | None:
    parts = _word_parts(raw, None)
    forms = None if parts is None else (parts[2], parts[3], parts[1], len(parts[0]))
    if len(_FORMS) >= _FORMS_KEPT:
        _FORMS.clear()
    _FORMS[raw] = forms
    return forms


@dataclass
class MatchSet:
    """The terms a query matched with: plain terms, stems and prefixes."""

    terms: set[str] = field(default_factory=set)
    stems: set[str] = field(default_factory=set)
    prefixes: set[str] = field(default_factory=set)
    _judged: dict[str, str | None] | None = field(default=None, repr=False, compare=False)
    _judged_state: tuple[int, int, int] = field(default=(0, 0, 0), repr=False, compare=False)

    def __bool__(self) -> bool:
        return bool(self.terms or self.stems or self.prefixes)

    def matches(self, word: Word) -> bool:
        return self.matches_forms(word.terms, word.stem)

    def matches_forms(self, terms: tuple[str, ...], stem: str | None) -> bool:
        if stem and stem in self.stems:
            return True
        prefixes = tuple(self.prefixes)
        return any(t in self.terms or (prefixes and t.startswith(prefixes)) for t in terms)

    def judge(self, tokens: Iterable[str]) -> dict[str, str | None]:
        """Raw light tokens → the key of the query word each matches (its stem, else its
        folded form), or None: judged once per token and kept for the next texts of the same
        query (the match set must not change meanwhile: it is complete once parsed)."""
        state = (len(self.terms), len(self.stems), len(self.prefixes))
        if self._judged is None or self._judged_state != state:
            self._judged, self._judged_state = {}, state
        judged = self._judged
        new = set(tokens).difference(judged)
        if new:
            terms_set, stems = self.terms, self.stems
            prefixes = tuple(self.prefixes)
            on = bool(self)
            for raw in new:
                forms = _FORMS.get(raw, _UNSEEN)
                if forms is _UNSEEN:
                    forms = _forms(raw)
                if not on or forms is None:
                    judged[raw] = None
                    continue
                terms, stem = forms[0], forms[1]
                if stem is not None and stem in stems:
                    hit = True
                elif len(terms) == 1:  # most words: one plain term, no generator needed
                    hit = terms[0] in terms_set or bool(prefixes and terms[0].startswith(prefixes))
                else:
                    hit = not terms_set.isdisjoint(terms) or bool(
                        prefixes and any(t.startswith(prefixes) for t in terms))
                judged[raw] = (stem or terms[0]) if hit else None
        return judged

    def matcher(self):  # noqa: ANN201 - Callable[[tuple[str, ...], str | None], bool]
        """:meth:`matches_forms` memoised on the surface form, for scanning many hits' text:
        the same words recur, and a snippet checks every word of a hit's body."""
        memo: dict[str, bool] = {}
        prefixes = tuple(self.prefixes)
        terms_set, stems = self.terms, self.stems

        def check(terms: tuple[str, ...], stem: str | None) -> bool:
            hit = memo.get(terms[0])
            if hit is None:
                hit = bool(stem and stem in stems) or any(
                    t in terms_set or (prefixes and t.startswith(prefixes)) for t in terms
                )
                memo[terms[0]] = hit
            return hit

        return check


_TOKEN_SPLIT = re.compile(f"({_LIGHT_TOKEN.pattern})")
"""The light tokenizer as a splitter: ``split`` gives gaps and tokens in one C-level pass, and
the tokens' offsets follow from the lengths (no match object per token)."""


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


def highlight(text: str, match: MatchSet) -> str:
    """The whole text, escaped, with matched words in ``<mark>`` (the words of
    :func:`~indexer.analysis.light_words`, without their elision: ``l’<mark>État</mark>``)."""
    if not match:
        return _render(text, [])
    parts = _TOKEN_SPLIT.split(text)
    raws = parts[1::2]
    judged = match.judge(raws)
    spans = []
    pos = 0
    for k, raw in enumerate(raws):
        pos += len(parts[2 * k])
        forms = _FORMS.get(raw) or _forms(raw) if judged[raw] is not None else None
        if forms is not None:
            begin = pos + forms[2]
            spans.append((begin, begin + forms[3]))
        pos += len(raw)
    return _render(text, spans)


def snippet(text: str, match: MatchSet, size: int = SNIPPET_WORDS) -> tuple[str, int]:
    """The best passage of about ``size`` words, highlighted, and how many words matched in it.

    Best = most distinct query words, then most matches; the passage starts a few words before
    the first match so it reads naturally.

    Every word of the text is looked at (the light tokenizer's words, as :func:`light_forms`
    gives them), but each distinct token is judged once per query (see
    :meth:`MatchSet.judge`): the hits of one page share most of their words.
    """
    parts = _TOKEN_SPLIT.split(text)
    raws = parts[1::2]
    if not raws:
        return html.escape(text[:300]), 0
    ends = list(accumulate(map(len, parts)))  # token k spans ends[2k]:ends[2k + 1]
    judged = match.judge(raws)
    # Per token: None, or the key of the query word it matches (its stem, else its form).
    keys = [judged[r] for r in raws]
    best_start, best_score = 0, (0, 0)
    n = len(raws)
    for i, key in enumerate(keys):
        if key is None:
            continue
        lo = max(0, i - 3)
        window = keys[lo : min(n, lo + size)]
        # Distinct query words count first: two different words beat one word repeated.
        found = [k for k in window if k is not None]
        score = (len(set(found)), len(found))
        if score > best_score:
            best_start, best_score = lo, score
    lo = best_start
    hi = min(n, lo + size)
    if hi - lo < size:
        lo = max(0, hi - size)
    start = 0 if lo == 0 else ends[2 * lo]
    end = len(text) if hi == n else ends[2 * hi - 1]
    spans = [(ends[2 * j], ends[2 * j + 1]) for j in range(lo, hi) if keys[j] is not None]
    body = " ".join(_render(text, spans, start, end).split())
    prefix = "… " if start > 0 else ""
    suffix = " …" if end < len(text) else ""
    return prefix + body + suffix, best_score[1]
