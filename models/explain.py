"""Why a tag was suggested, in terms an editor can check against the draft.

Four kinds of reasons, each saying which signal it came from:

* ``label`` — the tag's label, a variant or an alias, found in the draft (the words shown are the
  draft's own, where they were found);
* ``name_words`` — when the name itself is not in the draft, the words of a tag's name of two words
  or more found apart (*innovation* in the title, *publique* further on, for ``Innovation
  publique``);
* ``linear`` — the draft's words that weigh most for the tag in its linear model (only words of
  the draft, only positive weights: evidence *for* the tag);
* ``neighbour`` — a similar document that carries the tag, shown as "comme le document X" with a
  link, never as words: the words two documents share are rarely why the tag fits.

A neighbour that is a draft (``published: false``) is only named to callers allowed to see
drafts: :meth:`Reason.visible` lets the service filter.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.draft import BIGRAM_MARK, AnalysedDraft, _bigram_key, _word_keys
from models.labels import Span
from models.signals import Signals, _BaseSignals

MIN_REASON_SHARE = 0.3
"""A word is shown as a reason when its weight is at least this share of the best word's:
evidence is spread over hundreds of terms, so only the words standing out are worth showing."""

TOP_TERMS = 30
"""Terms looked at per tag: the words shown are among them (a word counts its forms, stem and
bigrams, so a few dozen terms cover the handful of words that stand out)."""

NAME_WORDS_SHOWN = 0.5
"""A long name's words are shown when at least this share of them, and two words at least, are in
the draft (one common word such as *numérique* is no reason)."""

MAX_NEIGHBOURS = 2
"""Similar documents shown for one tag."""


@dataclass(frozen=True)
class Reason:
    """One reason: the draft's words (``label``/``linear``) or a similar document (``neighbour``)."""

    signal: str
    text: str
    span: Span | None = None
    doc_id: str = ""
    published: bool = True
    similarity: float = 0.0

    def visible(self, drafts: bool) -> bool:
        """May be shown to a caller who may (``drafts``) or may not see draft documents."""
        return self.signal != "neighbour" or self.published or drafts

    def to_dict(self) -> dict[str, Any]:
        if self.signal == "neighbour":
            return {"signal": "neighbour", "text": f"comme le document « {self.text} »",
                    "title": self.text, "doc_id": self.doc_id,
                    "url": f"/documents/{self.doc_id}", "similarity": round(self.similarity, 3)}
        out: dict[str, Any] = {"signal": self.signal, "text": self.text}
        if self.span is not None:
            out.update(field=self.span.field, start=self.span.start, end=self.span.end)
        return out


def explain(base: _BaseSignals, ad: AnalysedDraft, sig: Signals, i: int, j: int,
            locator: _TermLocator | None, max_words: int = 4) -> list[Reason]:
    """Reasons for tag ``j`` (a column of ``base``) on draft ``i`` of ``sig``."""
    key = base.candidates[j]
    spans: list[Span] = []
    for fieldname, words, source, found in (
        ("title", ad.title_words, ad.draft.title, sig.title_matches[i].get(key, [])),
        ("text", ad.text_words, ad.text, sig.text_matches[i].get(key, [])),
    ):
        for a, b in found:
            start, end = words[a].start, words[b - 1].end
            spans.append(Span(fieldname, start, end, source[start:end]))
    reasons = [Reason("label", t.text, t) for t in _distinct_spans(_outermost(spans))[:2]]
    if not reasons:
        reasons = [Reason("name_words", t.text, t) for t in name_word_spans(base, ad, j)]

    if locator is not None:
        by_span: dict[Span, float] = defaultdict(float)
        for term, weight in linear_terms(base, sig, i, j):
            span = locator.span(term)
            if span is not None:
                by_span[span] += weight
        ranked = sorted(by_span.items(), key=lambda kv: -kv[1])
        best = ranked[0][1] if ranked else 0.0
        shown = [r.span for r in reasons if r.span is not None]
        for span, weight in ranked:
            if len(reasons) >= max_words or weight < MIN_REASON_SHARE * best:
                break
            if not any(s.field == span.field and s.start <= span.start and span.end <= s.end
                       or s.text.casefold() == span.text.casefold() for s in shown):
                reasons.append(Reason("linear", span.text, span))
                shown.append(span)

    top, w = sig.neighbour_rows[i]
    carrying = [(float(s), int(r)) for r, s in zip(top, w, strict=True)
                if s > 0 and base.Y[r, j] > 0]
    for s, r in sorted(carrying, reverse=True)[:MAX_NEIGHBOURS]:
        reasons.append(Reason("neighbour", base.doc_titles[r] or base.doc_ids[r],
                              doc_id=base.doc_ids[r], published=bool(base.doc_published[r]),
                              similarity=s))
    return reasons


def name_word_spans(base: _BaseSignals, ad: AnalysedDraft, j: int) -> list[Span]:
    """Where the words of tag ``j``'s long name with the most words in the draft are (the
    title's words first), when at least half of them are there: what ``name_words_*`` saw."""
    fields = (("title", ad.title_words, ad.draft.title), ("text", ad.text_words, ad.text))
    best: list[Span] = []
    best_share = 0.0
    for col, seq in getattr(base, "long_names", ()):
        if col != j:
            continue
        spans: list[Span] = []
        for ws in seq:
            span = next((Span(name, w.start, w.end, source[w.start:w.end])
                         for name, words, source in fields for w in words
                         if not ws.isdisjoint(_word_keys(w))), None)
            if span is not None:
                spans.append(span)
        share = len(spans) / len(seq)
        if share > best_share:
            best, best_share = spans, share
    best = _distinct_spans(best)
    return best if best_share >= NAME_WORDS_SHOWN and len(best) >= 2 else []


def linear_terms(base: _BaseSignals, sig: Signals, i: int, j: int,
                 n: int = TOP_TERMS) -> list[tuple[str, float]]:
    """The ``n`` terms of draft ``i`` weighing most for tag ``j`` in its linear model (positive
    contributions only: evidence *for* the tag)."""
    x = sig.X[i]
    if not x.nnz or not base.has_linear[j]:
        return []
    contrib = base.W[j, x.indices] * x.data
    top = np.argsort(-contrib)[:n]
    names = base.feature_names()
    return [(str(names[x.indices[t]]), float(contrib[t])) for t in top if contrib[t] > 0]


def _distinct_spans(spans: Iterable[Span]) -> list[Span]:
    """Spans without repeats that differ only by case (title and body spellings)."""
    seen: dict[str, Span] = {}
    for s in spans:
        seen.setdefault(s.text.casefold(), s)
    return list(seen.values())


def _outermost(spans: list[Span]) -> list[Span]:
    """Drop spans inside another one (``panorama des grands projets`` inside ``panorama des
    grands projets numériques de l'État``), keeping document order."""
    return [s for s in spans if not any(
        o is not s and o.field == s.field and o.start <= s.start and s.end <= o.end
        and (o.end - o.start) > (s.end - s.start) for o in spans
    )]


class _TermLocator:
    """Maps an analysis term (or a stem bigram) back to the first draft words producing it."""

    def __init__(self, ad: AnalysedDraft, bigrams: bool, wanted: set[str] | None = None) -> None:
        self.first: dict[str, Span] = {}
        bigrams = bigrams and (wanted is None or any(BIGRAM_MARK in t for t in wanted))
        for fieldname, words, source in (("title", ad.title_words, ad.draft.title),
                                         ("text", ad.text_words, ad.text)):
            for i, w in enumerate(words):
                for t in w.all_terms():
                    if wanted is None or t in wanted:
                        self.first.setdefault(t, Span(fieldname, w.start, w.end, w.text))
                if bigrams and i + 1 < len(words):
                    nxt = words[i + 1]
                    key = _bigram_key(w) + BIGRAM_MARK + _bigram_key(nxt)
                    if wanted is not None and key not in wanted:
                        continue
                    self.first.setdefault(
                        key, Span(fieldname, w.start, nxt.end, source[w.start:nxt.end])
                    )

    def span(self, term: str) -> Span | None:
        return self.first.get(term)


def reason_words(reasons: Sequence[Reason]) -> list[str]:
    """The draft's words among the reasons (the flat list older clients read)."""
    seen: dict[str, str] = {}
    for r in reasons:
        if r.signal != "neighbour":
            seen.setdefault(r.text.casefold(), r.text)
    return list(seen.values())
