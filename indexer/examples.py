"""Examples of the query language taken from the index being served.

The help of ``/archives`` shows one example per operator and field, each a link. Fixed
examples (``cloud AND nubo``) promise results that another corpus does not have; these are
built from the served documents' own titles, tags, collections, categories, attachments and
dates, and each is kept only if it finds something. Built once per index generation.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from indexer.analysis import STOP_WORDS, light_words

if TYPE_CHECKING:
    from indexer.engine import Engine
    from indexer.search import SearchIndex

log = logging.getLogger(__name__)

SAMPLE = 2_000
"""Documents looked at (the most recent): enough for frequent words, bounded at any size."""


@dataclass(frozen=True)
class Example:
    what: str
    query: str
    effect: str


_CACHE: weakref.WeakKeyDictionary[Engine, list[Example]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _quoted(value: str) -> str:
    return f'"{value}"' if any(ch.isspace() for ch in value) else value


def _title_words(title: str) -> list[str]:
    """A title's words as a visitor would type them: lower case, no stop words, no digits."""
    out = []
    for w in light_words(title):
        text = w.text if w.text.isupper() and len(w.text) > 1 else w.text.lower()
        if w.surface in STOP_WORDS or not w.surface.isalpha() or len(w.surface) < 3:
            out.append("")  # keeps positions: a phrase needs adjacent words
        else:
            out.append(text)
    return out


def _candidates(si: SearchIndex, engine: Engine) -> list[Example]:  # noqa: C901, PLR0912, PLR0915
    # Published documents only: the help page is public, and a draft's words must not show.
    live = np.flatnonzero(engine.live & engine.published)
    recent = live[np.argsort(-engine.timestamp[live], kind="stable")][:SAMPLE]
    titles = [_title_words(engine.titles[d]) for d in recent]
    df: Counter[str] = Counter()
    bigrams: Counter[tuple[str, str]] = Counter()
    near: Counter[tuple[str, str]] = Counter()
    for words in titles:
        df.update({w for w in words if w})
        for a, b in zip(words, words[1:], strict=False):
            if a and b and a != b:
                bigrams[(a, b)] += 1
        for a, b in zip(words, words[2:], strict=False):
            if a and b and a != b:
                near[(a, b)] += 1
    n = max(1, len(titles))
    common = [w for w, c in df.most_common(200) if c < n / 2 and len(w) >= 4]
    out: list[Example] = []
    sets = [set(t) for t in titles]
    if bigrams:
        (a, b), _ = bigrams.most_common(1)[0]
        out.append(Example("Une expression exacte", f'"{a} {b}"', "les mots côte à côte, dans cet ordre"))
    if near:
        (a, b), _ = near.most_common(1)[0]
        out.append(Example("Des mots proches", f'"{a} {b}"~3',
                           "les deux mots à trois mots d’écart au plus"))
    if common:
        first = common[0]
        with_first = Counter(w for s in sets if first in s for w in s if w and w != first)
        partner = next((w for w, _ in with_first.most_common() if w in common), None)
        other = next((w for w in common[1:] if w != partner and not with_first.get(w)), None)
        other = other or next((w for w in common[1:] if w != partner), None)
        if partner:
            out.append(Example("Tous les mots", f"{first} AND {partner}",
                               "chaque mot doit figurer (c’est le comportement par défaut)"))
        if other:
            out.append(Example("L’un ou l’autre", f"{first} OR {other}", "au moins un des mots"))
        if partner:
            out.append(Example("Exclure un mot", f"{first} NOT {partner}",
                               "les documents sans le second mot"))
            out.append(Example("Exclure, en bref", f"{first} -{partner}",
                               "le signe moins devant le mot à écarter"))
        if partner and other:
            out.append(Example("Grouper", f"{first} AND ({partner} OR {other})",
                               "les parenthèses fixent l’ordre des opérateurs"))
        out.append(Example("Chercher dans le titre", f"title:{first}",
                           "le mot dans le titre seulement"))
        long_word = next((w for w in common if len(w) >= 8), None)
        if long_word:
            head = long_word[:5]
            out.append(Example("Un début de mot", f"{head}*", f"les mots commençant par « {head} »"))
    voc = si.vocabulary
    tag_counts = np.asarray(engine.tags[recent].sum(axis=0)).ravel()
    if len(tag_counts) and tag_counts.max() > 0:
        label = voc.label(engine.tag_names[int(tag_counts.argmax())])
        out.append(Example("Une étiquette", f"tag:{_quoted(label)}",
                           "les documents portant l’étiquette (variantes d’écriture comprises)"))
    colls = np.bincount(engine.collection[recent], minlength=len(engine.collection_names))
    if len(colls) and colls.max() > 0:
        names = ", ".join(engine.collection_names[i] for i in np.flatnonzero(colls))
        out.append(Example("Une collection", f"collection:{engine.collection_names[int(colls.argmax())]}",
                           names))
    categories: Counter[str] = Counter()
    attachment_words: Counter[str] = Counter()
    for d in recent[:300].tolist():
        try:
            f = engine.stored_fields(int(d))
        except (TypeError, OSError):  # a segment merged away under an older generation
            break
        categories.update(c for c in f.get("categories", []) if isinstance(c, str))
        attachment = f.get("attachment", "")
        if attachment:
            attachment_words.update({w for w in _title_words(attachment[:5000]) if len(w) >= 6})
    if categories:
        out.append(Example("Une catégorie", f"category:{_quoted(categories.most_common(1)[0][0])}",
                           "la catégorie indiquée par le site"))
    if attachment_words:
        word = attachment_words.most_common(1)[0][0]
        out.append(Example("Les pièces jointes", f"attachment:{word}",
                           "le mot dans le texte des pièces jointes"))
    years = Counter(int(y) for y in engine.year[recent] if y > 0)
    if years:
        top = years.most_common(1)[0][0]
        first_year, last_year = min(years), max(years)
        span = (top - 1, top) if top - 1 in years else (top, top + 1)
        out.append(Example("Une période", f"date:[{span[0]}-01-01 TO {span[1]}-12-31]",
                           "publiés entre ces deux dates, incluses"))
        out.append(Example("Depuis une date", f"date:>={last_year}-01",
                           f"publiés depuis janvier {last_year} (aussi >, <, <=)"))
        if first_year < last_year:
            out.append(Example("Avant une date", f"date:<{first_year + 1}",
                               f"publiés avant {first_year + 1}"))
        out.append(Example("Une année", f"year:{top}", f"publiés en {top}"))
    return out


def syntax_examples(si: SearchIndex) -> list[Example]:
    """The examples for the index ``si`` serves, each checked to find at least a document."""
    from indexer.search import SearchRequest

    engine = si.engine()
    with _LOCK:
        found = _CACHE.get(engine)
    if found is not None:
        return found
    kept = []
    try:
        candidates = _candidates(si, engine)
    except (TypeError, OSError) as exc:  # files of a generation merged away meanwhile
        log.warning("query examples not built: %s", exc)
        return []
    for ex in candidates:
        try:
            if len(si.run(SearchRequest(q=ex.query, size=1), limit=1).docs):
                kept.append(ex)
        except (ValueError, TypeError, OSError):
            continue
    with _LOCK:
        _CACHE[engine] = kept
    return kept
