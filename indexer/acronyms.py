"""Acronyms learnt from the texts themselves: "intelligence artificielle (IA)", "la base
adresse nationale (BAN)", "RGAA (référentiel général d'amélioration de l'accessibilité)".

Press releases spell an acronym out the first time they use it, in one of two shapes: the
expansion then the acronym in brackets, or the acronym then the expansion in brackets. A
candidate is kept only when the acronym's letters can be read, in order, from the start of
the expansion's words (two at least): each gives a prefix of itself, up to three letters (``DINUM`` = *D*irection
*I*nterministérielle du *Num*érique), small words (``de``, ``la``, ``du``…) may give nothing,
and the expansion starts with the word that gives the first letter. This is stricter than
Schwartz & Hearst's letter-anywhere rule, so mining stays precise on any French text.

The pairs found at the end of an ingest are written beside the index (:data:`STORE_NAME`),
so they follow the index when it is published; the synonym file's ``acronyms:`` section adds
or removes pairs at query time (see :mod:`indexer.synonyms`).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from indexer.analysis import fold
from indexer.snapshot import open_searcher

STORE_NAME = "acronyms.json"
FORMAT = 1
MAX_EXTRA_WORDS = 6
"""Words an expansion may hold beyond the acronym's letters (small words, mostly)."""
MAX_PREFIX = 3
"""Letters one word may give (``DINUM``: *num*érique)."""

# Small words that an acronym usually skips ("direction interministérielle DU numérique").
SKIPPABLE = frozenset(
    ["a", "au", "aux", "d", "de", "des", "du", "en", "et", "l", "la", "le", "les", "pour", "par", "sur", "dans", "avec", "un", "une", "à"]
)
_ACRONYM = r"[A-Z][A-Za-z0-9&]*[A-Z0-9][A-Za-z0-9&]*"
_BEFORE = re.compile(rf"\(\s*({_ACRONYM})\s*\)")
_AFTER = re.compile(rf"\b({_ACRONYM})\s*\(([^()\n]{{3,160}})\)")
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")
_ELISION = re.compile(r"^(?:l|d|j|m|n|s|t|c|qu|jusqu|lorsqu|puisqu)['’]")
_CLAUSE_END = re.compile(r"[.;:!?,()\[\]\n«»\"]")


def _letters(acronym: str) -> str:
    return "".join(ch for ch in fold(acronym) if ch.isalnum())


def is_acronym(token: str) -> bool:
    """Two or more letters, at least two of them capitals, at most 10 characters."""
    letters = _letters(token)
    return 2 <= len(letters) <= 10 and sum(ch.isupper() for ch in token) >= 2


def _words(text: str) -> list[str]:
    """Folded words, elisions dropped (``l'accessibilité`` → ``accessibilite``)."""
    out = []
    for raw in _WORD.findall(text):
        word = _ELISION.sub("", fold(raw).replace("’", "'"))
        if word:
            out.append(word)
    return out


def aligns(letters: str, words: list[str], small_words_spell: bool = True) -> bool:
    """True when every word is used and together they spell ``letters``: each content word
    gives a prefix of itself (one letter or more), small words a prefix or nothing; the
    first word gives the first letter."""
    if not words or not letters or not words[0].startswith(letters[0]):
        return False
    if sum(w not in SKIPPABLE for w in words) < 2:
        return False  # "Banque (BAN)" is a word cut short, not an acronym spelled out

    @cache
    def go(i: int, j: int) -> bool:
        if i == len(words):
            return j == len(letters)
        word = words[i]
        if word in SKIPPABLE and i > 0:
            if go(i + 1, j):
                return True
            if not small_words_spell:
                return False
        p = 1
        while p <= min(len(word), MAX_PREFIX) and j + p <= len(letters) and word[:p] == letters[j : j + p]:
            if go(i + 1, j + p):
                return True
            p += 1
        return False

    return go(0, 0)


def _expansion_before(letters: str, before: str) -> str | None:
    """The shortest run of words ending just before the bracket that spells the acronym."""
    clause = _CLAUSE_END.split(before)[-1]
    words = _words(clause)
    longest = min(len(words), len(letters) + MAX_EXTRA_WORDS)
    # Small words giving letters only when nothing else spells it ("platform as a service"
    # for PaaS), so that "direction départementale des territoires et de la mer" is read
    # whole for DDTM, not from "départementale des".
    for small_words_spell in (False, True):
        for k in range(1, longest + 1):
            tail = words[-k:]
            if tail[0] in SKIPPABLE:
                continue
            if aligns(letters, tail, small_words_spell):
                return " ".join(tail)
    return None


def _expansion_inside(letters: str, inside: str) -> str | None:
    """The words in the bracket, when all of them together spell the acronym."""
    words = _words(inside)
    if not words or len(words) > len(letters) + MAX_EXTRA_WORDS:
        return None
    return " ".join(words) if aligns(letters, words) else None


def mine(text: str) -> Iterable[tuple[str, str]]:
    """Every (acronym, expansion) pair a text defines, acronym as written, expansion folded."""
    for m in _BEFORE.finditer(text):
        acronym = m.group(1)
        if not is_acronym(acronym):
            continue
        expansion = _expansion_before(_letters(acronym), text[max(0, m.start() - 300) : m.start()])
        if expansion:
            yield acronym, expansion
    for m in _AFTER.finditer(text):
        acronym = m.group(1)
        if not is_acronym(acronym):
            continue
        expansion = _expansion_inside(_letters(acronym), m.group(2))
        if expansion:
            yield acronym, expansion


def mine_texts(texts: Iterable[str]) -> dict[str, dict[str, int]]:
    """Pairs over many texts: ``{acronym key: {expansion: count}}``, the key folded."""
    counts: Counter[tuple[str, str]] = Counter()
    for text in texts:
        for acronym, expansion in set(mine(text)):
            counts[(fold(acronym), expansion)] += 1
    out: dict[str, dict[str, int]] = {}
    for (key, expansion), n in counts.items():
        out.setdefault(key, {})[expansion] = n
    return out


def save(folder: Path, pairs: dict[str, dict[str, int]]) -> Path:
    """Write the store atomically (a searching worker never reads half a file)."""
    path = Path(folder) / STORE_NAME
    data = {"format": FORMAT, "acronyms": pairs}
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".acronyms-", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, sort_keys=True, indent=1)
    os.replace(tmp, path)
    return path


def load(folder: Path | None) -> dict[str, dict[str, int]]:
    """The index's mined pairs; none when the index has no store (older or empty index)."""
    if folder is None:
        return {}
    path = Path(folder) / STORE_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return {}
    pairs = data.get("acronyms", {})
    return pairs if isinstance(pairs, dict) else {}


def mine_index(ix) -> Path | None:  # noqa: ANN001 - whoosh Index
    """Mine every live published document of ``ix`` (title, chapeau, body, attachments) and
    store the pairs with it. Reads stored text only (no spaCy): seconds for 10,000 documents.

    Drafts are left out: the pairs show in every caller's query notes ("cherché aussi"), and
    an expansion found only in an unannounced release would betray it."""
    folder = getattr(ix.storage, "folder", None)
    if folder is None:
        return None
    # Pinned: an API write's merge may delete segment files while this reads them.
    with open_searcher(ix) as searcher:
        texts = (
            "\n".join(str(f.get(name, "")) for name in ("title", "chapeau", "body", "attachment"))
            for f in searcher.all_stored_fields()
            if f.get("published", True)
        )
        pairs = mine_texts(texts)
    return save(Path(folder), pairs)
