"""A draft as the tag suggester reads it, and its features: the shared French analysis of its
title and text, turned into a bag of terms (title counted twice, stem bigrams).

Every feature comes from :mod:`indexer.analysis` (the index's analysis), so a tag suggested for a
word means the same as a search for that word.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from indexer.analysis import Word, analyze_many, learnt_words, light_words, word_lemma

MAX_DRAFT_CHARS = 20_000
"""Only this much of a draft's text is analysed: real communiqués are 1–4 kB, the tags are decided
in the first paragraphs, and it bounds the time a huge paste can take."""

BIGRAM_MARK = " "
"""Bigram terms are two stems joined by a space: never a term of a single word."""


# --- drafts and their analysis -----------------------------------------------------------------


@dataclass
class Draft:
    """What the suggester reads: a title, a text (chapeau and body) and, for training, raw tags."""

    title: str
    text: str
    tags: list[str] = field(default_factory=list)
    id: str = ""
    published: bool = True
    """False for a draft (``published: false``): never named to anonymous callers."""

    @classmethod
    def from_document(cls, doc: Any) -> Draft:  # noqa: ANN401 - Document or index record
        """A parsed :class:`~indexer.document.Document` or an index record (dict)."""
        get = doc.get if isinstance(doc, dict) else lambda k, d="": getattr(doc, k, d)
        text = "\n\n".join(x for x in (get("chapeau", ""), get("body", "")) if x)
        return cls(title=get("title", "") or "", text=text, tags=list(get("tags", []) or []),
                   id=get("id", "") or "", published=get("published", True) is not False)

    def fingerprint(self) -> str:
        """Stable hash of the content (feedback on a draft without id refers to it)."""
        return draft_hash(self.title, self.text)


def draft_hash(title: str, text: str) -> str:
    """sha256 of title and text: identifies an unsaved draft in the feedback log."""
    return hashlib.sha256(f"{title.strip()}\n\n{text.strip()}".encode()).hexdigest()


@dataclass
class AnalysedDraft:
    """A draft with the shared analysis of its title and (truncated) text, computed once.

    Cross-validation analyses the corpus once and refits models many times on these.
    """

    draft: Draft
    title_words: list[Word]
    text_words: list[Word]
    text: str
    """The analysed part of the text (the offsets of ``text_words`` point into it)."""
    analysis: str = "full"
    """Which of :data:`ANALYSES` produced the words."""


ANALYSES = ("full", "light", "table")
"""How a draft is read at suggestion time.

``full``: the shared spaCy analysis (lemmas, surface forms, stems) — what the index uses.
``table`` (the suggester's default): the same words without spaCy: the regex tokenisation of
:func:`indexer.analysis.light_words` (folded surface forms and stems), each word given the lemma
its surface form most often took in the training documents' full analysis (a form → lemma
table learnt by :func:`learn_lemmas` at ``fit`` and kept in the model), as the search path does
for queries with the index's table. A model read this way is trained on the full analysis, so
a draft gets the terms the model learnt from; a form no training document holds keeps its
surface form and stem. About as fast as ``light``.
``light``: the regex path alone (same folded surface forms and stems, no lemmas, no spaCy), for
training as well as for drafts."""

TRAINED_ON = {"full": "full", "table": "full", "light": "light"}
"""The analysis of the training documents for each way of reading drafts."""


def learn_lemmas(drafts: Iterable[AnalysedDraft]) -> dict[str, str]:
    """The form → lemma table of drafts analysed the ``full`` way: for each folded surface form,
    the lemma most of its occurrences (titles and texts) took in context; on a tie, a lemma
    rather than none, then the first in order (the index's rule, :meth:`Lexicon.lemma`). Forms
    whose most frequent reading is the form itself are left out (a lookup then finds nothing,
    as for a form never seen)."""
    counts: dict[str, Counter[str]] = {}
    for d in drafts:
        if d.analysis != "full":
            raise ValueError(f"a lemma table is learnt from the full analysis, not {d.analysis!r}")
        for words in (d.title_words, d.text_words):
            for w in words:
                counts.setdefault(w.surface, Counter())[word_lemma(w)] += 1
    table: dict[str, str] = {}
    for surface, seen in counts.items():
        lemma = min(seen, key=lambda k: (-seen[k], k == "", k))
        if lemma:
            table[surface] = lemma
    return table


def analyse(drafts: Sequence[Draft], max_chars: int = MAX_DRAFT_CHARS,
            batch_size: int = 32, analysis: str = "full",
            lemmas: Mapping[str, str] | None = None) -> list[AnalysedDraft]:
    """Run the shared French analysis over titles and texts (one batched spaCy pass for
    ``full``; none for ``light`` and ``table``, which needs ``lemmas``, a table from
    :func:`learn_lemmas`)."""
    if analysis not in ANALYSES:
        raise ValueError(f"analysis must be one of {', '.join(ANALYSES)}, not {analysis!r}")
    if analysis == "table" and lemmas is None:
        raise ValueError("the table analysis needs a form → lemma table (learn_lemmas)")
    texts: list[str] = []
    for d in drafts:
        texts.extend((d.title or "", (d.text or "")[:max_chars]))
    if analysis == "light":
        words = [list(light_words(t)) for t in texts]
    elif analysis == "table":
        lookup = lemmas.get  # type: ignore[union-attr]
        words = [list(learnt_words(t, lookup)) for t in texts]
    else:
        words = list(analyze_many(texts, batch_size=batch_size)) if texts else []
    return [
        AnalysedDraft(d, words[2 * i], words[2 * i + 1], texts[2 * i + 1], analysis)
        for i, d in enumerate(drafts)
    ]


def _identity(tokens: list[str]) -> list[str]:
    """TF-IDF analyzer for pre-computed terms (module level so the model pickles)."""
    return tokens


def _word_keys(w: Word) -> frozenset[str]:
    """What a word is compared on for label matching: folded surface and stem, not compound
    parts (``beta.gouv.fr`` must not match every ``fr``)."""
    return frozenset((w.surface, w.stem) if w.stem else (w.surface,))


def _bigram_key(w: Word) -> str:
    return w.stem or w.surface


def draft_terms(ad: AnalysedDraft, title_weight: int = 2, bigrams: bool = True) -> list[str]:
    """Bag of terms of an analysed draft: every analysis term of each word, stem bigrams, the
    title repeated ``title_weight`` times (editors tag what the title announces)."""
    out: list[str] = []
    for words, weight in ((ad.title_words, title_weight), (ad.text_words, 1)):
        terms: list[str] = []
        for w in words:
            terms.extend(w.all_terms())
        if bigrams:
            keys = [_bigram_key(w) for w in words]
            terms.extend(a + BIGRAM_MARK + b for a, b in zip(keys, keys[1:], strict=False))
        out.extend(terms * max(1, weight))
    return out
