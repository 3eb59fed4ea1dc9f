"""Compounds written apart or together: *france connect* / *FranceConnect*,
*dataconnexions4* / *Dataconnexions #4*.

Only the index's own vocabulary decides: two adjacent query words are also tried joined when
the lexicon holds the joined form, and a query word the lexicon does not hold is tried split
in two when it holds both halves (letters and digits first: ``dataconnexions4``). ``#4``,
``n°4`` and ``4`` already meet in the analysis (the ``#`` and the ``n°`` fall away).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from indexer.analysis import STOP_WORDS, Word

MIN_PART = 3
"""Shortest half of a split word (digits excepted): ``in`` + ``clusion`` is no reading."""
_LETTERS_DIGITS = re.compile(r"^([^\W\d_]{2,})(\d+)$|^(\d+)([^\W\d_]{2,})$")


class Lexicon(Protocol):
    def doc_frequency(self, term: str) -> int: ...


def joins(lexicon: Lexicon, words: Sequence[Word]) -> list[tuple[int, str]]:
    """(position of the first word, joined form) for each adjacent pair the index holds
    joined: ``france connect`` → ``franceconnect``."""
    out = []
    for i in range(len(words) - 1):
        a, b = words[i].surface, words[i + 1].surface
        if not (a.isalnum() and b.isalnum()):
            continue
        joined = a + b
        if lexicon.doc_frequency(joined) > 0:
            out.append((i, joined))
    return out


def split(lexicon: Lexicon, word: Word) -> tuple[str, str] | None:
    """Two halves the index holds, for a word it does not hold: ``dataconnexions4`` →
    ``dataconnexions`` + ``4``; ``franceconnect`` → ``france`` + ``connect`` on an index
    that only has them apart. The split whose rarer half is most frequent wins."""
    surface = word.surface
    if not surface.isalnum() or lexicon.doc_frequency(surface) > 0:
        return None
    m = _LETTERS_DIGITS.match(surface)
    if m:
        a, b = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        if lexicon.doc_frequency(a) and lexicon.doc_frequency(b):
            return a, b
    best: tuple[int, str, str] | None = None
    for cut in range(MIN_PART, len(surface) - MIN_PART + 1):
        a, b = surface[:cut], surface[cut:]
        if a in STOP_WORDS or b in STOP_WORDS:
            continue
        rarer = min(lexicon.doc_frequency(a), lexicon.doc_frequency(b))
        if rarer and (best is None or rarer > best[0]):
            best = (rarer, a, b)
    return (best[1], best[2]) if best else None
