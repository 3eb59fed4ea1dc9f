"""Highlighting without spaCy: ``<mark>`` around matched words, everything else escaped.

The matcher compares the cheap :func:`~indexer.analysis.light_words` forms (folded surface and
stem, with the original offsets) against the terms the query actually used, so highlights land
on the words a visitor typed, in any inflection, in well under a millisecond per hit.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from indexer.analysis import Word, light_forms, light_words

SNIPPET_WORDS = 30


@dataclass
class MatchSet:
    """The terms a query matched with: plain terms, stems and prefixes."""

    terms: set[str] = field(default_factory=set)
    stems: set[str] = field(default_factory=set)
    prefixes: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.terms or self.stems or self.prefixes)

    def matches(self, word: Word) -> bool:
        return self.matches_forms(word.terms, word.stem)

    def matches_forms(self, terms: tuple[str, ...], stem: str | None) -> bool:
        if stem and stem in self.stems:
            return True
        prefixes = tuple(self.prefixes)
        return any(t in self.terms or (prefixes and t.startswith(prefixes)) for t in terms)

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
    """The whole text, escaped, with matched words in ``<mark>``."""
    spans = [(w.start, w.end) for w in light_words(text) if match.matches(w)] if match else []
    return _render(text, spans)


def snippet(text: str, match: MatchSet, size: int = SNIPPET_WORDS) -> tuple[str, int]:
    """The best passage of about ``size`` words, highlighted, and how many words matched in it.

    Best = most distinct query words, then most matches; the passage starts a few words before
    the first match so it reads naturally.
    """
    tokens = list(light_forms(text))
    if not tokens:
        return html.escape(text[:300]), 0
    check = match.matcher()
    hits = [bool(match) and terms is not None and check(terms, stem) for _, _, terms, stem in tokens]
    best_start, best_score = 0, (0, 0)
    for i, hit in enumerate(hits):
        if not hit:
            continue
        lo = max(0, i - 3)
        window = range(lo, min(len(tokens), lo + size))
        # Distinct query words count first: two different words beat one word repeated.
        keys = {tokens[j][3] or tokens[j][2][0] for j in window if hits[j]}  # type: ignore[index]
        score = (len(keys), sum(hits[j] for j in window))
        if score > best_score:
            best_start, best_score = lo, score
    lo = best_start
    hi = min(len(tokens), lo + size)
    if hi - lo < size:
        lo = max(0, hi - size)
    start = 0 if lo == 0 else tokens[lo][0]
    end = len(text) if hi == len(tokens) else tokens[hi - 1][1]
    spans = [(tokens[j][0], tokens[j][1]) for j in range(lo, hi) if hits[j]]
    body = " ".join(_render(text, spans, start, end).split())
    prefix = "… " if start > 0 else ""
    suffix = " …" if end < len(text) else ""
    return prefix + body + suffix, best_score[1]
