"""Label matching: a tag's label, its editors' variants and its aliases found in a draft.

A tag named in the text is strong evidence, and the only evidence for a tag used once.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from indexer.analysis import Word, analyze_many
from models.draft import _word_keys


@dataclass(frozen=True)
class Span:
    """Where a reason was found: ``field`` is ``title`` or ``text``; offsets in that field."""

    field: str
    start: int
    end: int
    text: str


_GAP_OK = re.compile(r"^[ \t\xa0'’\-]*(?:\w{1,4}[ \t\xa0'’\-]+){0,2}$")
"""What may separate two words of a tag phrase in a draft: blanks on one line, elisions, up to two short
(stop) words — ``transformation numérique de l’État`` — but no punctuation."""

_PHRASE_CACHE: dict[str, tuple[frozenset[str], ...]] = {}
"""Analysed tag phrases: training refits the matcher once per fold on the same few hundred
phrases, and spaCy is the slow part."""


class LabelMatcher:
    """Finds tag labels, variants and aliases in a draft, word by word on folded forms and stems.

    Phrases are analysed with the shared analysis at fit time; matching a draft is a dictionary
    lookup per word, so it costs nothing next to spaCy.
    """

    def __init__(self, phrases: dict[str, list[str]]) -> None:
        flat = [(key, p) for key, ps in phrases.items() for p in dict.fromkeys(ps) if p.strip()]
        todo = list(dict.fromkeys(p for _, p in flat if p not in _PHRASE_CACHE))
        for p, words in zip(todo, analyze_many(todo), strict=True):
            _PHRASE_CACHE[p] = tuple(_word_keys(w) for w in words)
        self.phrases: dict[str, list[tuple[frozenset[str], ...]]] = defaultdict(list)
        self.by_first: dict[str, list[tuple[str, tuple[frozenset[str], ...]]]] = defaultdict(list)
        for key, phrase in flat:
            seq = _PHRASE_CACHE[phrase]
            if not seq:
                continue
            if seq in self.phrases[key]:
                continue
            self.phrases[key].append(seq)
            for k in seq[0]:
                self.by_first[k].append((key, seq))

    def find(self, words: Sequence[Word], source: str) -> dict[str, list[tuple[int, int]]]:
        """``tag key → [(first word index, last word index + 1)]`` of every match in ``words``
        (analysed from ``source``). Consecutive phrase words may only be separated by spaces,
        apostrophes, hyphens or a short dropped stop word: ``données » est ouvert`` is not
        ``données ouvertes``."""
        keys = [_word_keys(w) for w in words]
        joined = [
            bool(_GAP_OK.match(source[a.end:b.start]))
            for a, b in zip(words, words[1:], strict=False)
        ]
        found: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for i, ks in enumerate(keys):
            tried: set[tuple[str, tuple[frozenset[str], ...]]] = set()
            for k in ks:
                for tag, seq in self.by_first.get(k, ()):
                    if (tag, seq) in tried:
                        continue
                    tried.add((tag, seq))
                    n = len(seq)
                    if (i + n <= len(keys) and all(seq[j] & keys[i + j] for j in range(n))
                            and all(joined[i:i + n - 1])):
                        span = (i, i + n)
                        if span not in found[tag]:
                            found[tag].append(span)
        return found
