"""From what a person typed to a Whoosh query.

Two readings of the same box:

* **Search box** (plain words): every word must match, in any inflection (lemma, surface form,
  stem), with typos forgiven and the last word read as a prefix while the visitor types.
* **Archivist syntax** (as soon as quotes, operators, ``field:``, ``-word``, ``*`` or ranges
  appear): Whoosh's own parser reads the structure, then every word in it is expanded exactly
  as in the search box, so ``title:numériques`` still finds *numérique*.

A query that does not parse is searched as plain words, with a note saying so: never an error.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from whoosh import query as wq
from whoosh.analysis import RegexTokenizer
from whoosh.fields import DATETIME, TEXT, Schema
from whoosh.qparser import FuzzyTermPlugin, PlusMinusPlugin, QueryParser

from indexer.analysis import STOP_WORDS, Word, analyze_query, fold, make_word
from indexer.compounds import joins, split
from indexer.highlight import MatchSet
from indexer.schema import TEXT_FIELDS
from indexer.synonyms import Thesaurus

MAX_QUERY_LENGTH = 500
STEM_WEIGHT = 0.6
PREFIX_WEIGHT = 0.7
FUZZY_WEIGHT = 0.35
JOIN_WEIGHT = 1.0
"""A compound joined or split is the words typed, adjacent: as good as an exact match."""
MAX_PREFIX_TERMS = 20
TYPO_MAX_DF = 3
"""Typo expansion only for words in fewer documents than this (rare or unknown words)."""
MAX_FUZZY_TERMS = 8
MAX_PATTERN_TERMS = 200
"""Terms an archivist's ``numéri*`` or ``num?rique`` may expand to."""
MAX_QUERY_PATTERN_TERMS = 1_000
"""Terms all the wildcards of one query may expand to together: ``a* OR b* OR … z*`` would
be 5,200 terms in four fields, most of a second; such a query is refused (400) instead."""
MAX_FUZZY_NODES = 10
"""Explicit fuzzy terms (``word~2``) per query, for the same reason."""

# What turns a query into archivist syntax. A "?" or "*" counts only inside or at the end of a
# word ("numéri*"), not as punctuation ("quel bilan ?").
_SYNTAX = re.compile(
    r'["()\[\]{}]|\b(?:AND|OR|NOT)\b|\w:|(?:^|\s)[-+]\S|\w[*?]|[*?]\w|\w\^\d|\w~\d?(?:\s|$)'
)
_RAW_WORD = re.compile(r"[\w’'.+\-@/]+")
FIELD_ALIASES = {"titre": "title", "tags": "tag", "etiquette": "tag", "pj": "attachment"}


class QueryError(ValueError):
    """A query refused outright (too long, leading wildcard); the message says which part."""


@dataclass
class ParsedQuery:
    """A query ready to run, what to highlight with, and how it was read.

    Search-box queries carry ``groups`` (one per word, scored by the engine); archivist
    queries carry a Whoosh ``query``.
    """

    query: wq.Query | None
    match: MatchSet
    mode: str  # "box", "advanced" or "all"
    groups: list[WordGroup] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    read_as: str | None = None
    """The text actually searched, when the query was tidied first (see :func:`_tidy`)."""
    concepts: list[Concept] = field(default_factory=list)
    """Other readings of runs of ``groups``: synonyms, acronyms, compounds joined or split."""


@dataclass
class Alternative:
    """One other reading of a run of query words: all its groups must match, and when it
    has several words they must stand together (``phrase``: the terms to check, stems and
    folded forms)."""

    text: str
    groups: list[WordGroup]
    phrase: tuple[tuple[str, ...], ...] = ()


@dataclass
class Concept:
    """Query words ``start``..``end`` (exclusive), or any of ``alternatives`` weighted by
    ``weight``: a document matching an alternative counts as matching those words."""

    start: int
    end: int
    alternatives: list[Alternative]
    weight: float
    source: str
    label: str


# --- expansion of one word ----------------------------------------------------------------------


class Lexicon(Protocol):
    """What expansion needs of the index's vocabulary (see :class:`indexer.engine.Lexicon`)."""

    def doc_frequency(self, term: str) -> int: ...
    def prefix(self, prefix: str, limit: int) -> list[str]: ...
    def fuzzy(self, word: str, maxdist: int, limit: int) -> list[str]: ...


def lemma_table(lexicon: Lexicon) -> Callable[[str], str | None] | None:
    """The lemmas the index's documents gave each surface form, for query analysis without
    spaCy (see :meth:`indexer.engine.Lexicon.lemma`); None when the index has no such table
    (or the lexicon is not an index's)."""
    return getattr(lexicon, "lemma_of", None)


@dataclass
class WordGroup:
    """One query word and every term it may match, weighted: exact forms > prefix > stem > typo."""

    text: str
    alternatives: list[tuple[str, float]]
    fields: dict[str, float] = field(default_factory=lambda: dict(TEXT_FIELDS))

    def to_query(self) -> wq.Query:
        return wq.Or([
            wq.Term(f, t, boost=fb * w) for t, w in self.alternatives for f, fb in self.fields.items()
        ])


def typo_distance(word: str) -> int:
    """Edit distance forgiven: none under 5 letters, 1 from 5, 2 from 8."""
    if len(word) < 5 or any(ch.isdigit() for ch in word):
        return 0
    return 2 if len(word) >= 8 else 1


def expand_word(
    lexicon: Lexicon,
    word: Word,
    match: MatchSet,
    prefix: bool = False,
    fields: dict[str, float] = TEXT_FIELDS,
) -> WordGroup:
    """Everything one query word may match, and what to highlight for it."""
    weighted: list[tuple[str, float]] = [(t, 1.0) for t in word.terms]
    match.terms.update(word.terms)
    if word.stem:
        weighted.append((word.stem, STEM_WEIGHT))
        match.stems.add(word.stem)
    surface = word.surface
    if prefix:
        weighted += [(t, PREFIX_WEIGHT) for t in lexicon.prefix(surface, MAX_PREFIX_TERMS)]
        match.prefixes.add(surface)
    # A word many documents hold is no typo: expanding it would only add noise and cost.
    dist = typo_distance(surface) if lexicon.doc_frequency(surface) < TYPO_MAX_DF else 0
    for t in lexicon.fuzzy(surface, dist, MAX_FUZZY_TERMS):
        weighted.append((t, FUZZY_WEIGHT))
        match.terms.add(t)
    return WordGroup(word.text, weighted, dict(fields))


def _prefix_only(lexicon: Lexicon, raw: str, match: MatchSet) -> WordGroup | None:
    folded = fold(raw)
    terms = lexicon.prefix(folded, MAX_PREFIX_TERMS)
    if not terms:
        return None
    match.prefixes.add(folded)
    return WordGroup(raw, [(t, PREFIX_WEIGHT) for t in terms])


LOWERCASE_OPERATORS = frozenset({"and", "or", "not"})
"""Typed for AND, OR, NOT; ``et`` and ``ou`` are stop words already."""


def _lowercase_operator(lexicon: Lexicon, word: Word) -> bool:
    """``cloud and nubo``: an English operator in lower case that no document holds is
    neither searched nor "corrected" into another word."""
    return word.text.lower() in LOWERCASE_OPERATORS and not lexicon.doc_frequency(word.surface)


# --- search box ---------------------------------------------------------------------------------


def box_query(lexicon: Lexicon, text: str, typing: bool | None = None,
              thesaurus: Thesaurus | None = None) -> ParsedQuery:
    """Plain words: one group per word, all required (see the engine for the OR fallback);
    the last word is a prefix while typing (``typing`` defaults to "no trailing space")."""
    text = text.replace("\u00a0", " ")
    typing = (not text.endswith((" ", "\t"))) if typing is None else typing
    words = list(analyze_query(text.strip(), lemma_table(lexicon)))
    notes: list[str] = []
    # While typing, a last "or" may be the start of "organisme": only whole words are dropped.
    kept = [w for i, w in enumerate(words)
            if not _lowercase_operator(lexicon, w) or (typing and i == len(words) - 1)]
    for w in words:
        if w not in kept:
            notes.append(f"« {w.text} » ignoré : les opérateurs s'écrivent en majuscules "
                         f"({w.text.upper()})")
    words = kept
    match = MatchSet()
    groups: list[WordGroup] = []
    stripped = text.rstrip()
    raw_last = _RAW_WORD.findall(stripped)
    for i, w in enumerate(words):
        is_last = i == len(words) - 1 and w.end >= len(stripped.rstrip("+.,;:!?»\"'"))
        groups.append(expand_word(lexicon, w, match, prefix=typing and is_last))
    # A last word that analysis dropped (a stop word, half typed): prefix only when alone.
    if typing and not words and raw_last:
        group = _prefix_only(lexicon, raw_last[-1], match)
        if group is not None:
            groups.append(group)
    parsed = ParsedQuery(None, match, "box", groups, [w.text for w in words], notes)
    if words and len(groups) == len(words):
        parsed.concepts = concepts(lexicon, words, match, thesaurus)
    return parsed


# --- other readings: synonyms, acronyms, compounds ----------------------------------------------


def _alternative(text: str, words: Sequence[Word], match: MatchSet) -> Alternative:
    """An alternative's words match in their folded forms and stems (no prefix, no typo:
    they come from the synonym file or the index, not from a visitor's keyboard)."""
    groups = []
    for w in words:
        weighted = [(t, 1.0) for t in w.terms]
        match.terms.update(w.terms)
        if w.stem:
            weighted.append((w.stem, STEM_WEIGHT))
            match.stems.add(w.stem)
        groups.append(WordGroup(w.text, weighted))
    phrase: tuple[tuple[str, ...], ...] = ()
    if len(words) > 1:
        # Stems stand at their word's position in the index, so one phrase over stems finds
        # every inflection; words without a stem (acronyms, numbers) by their folded form.
        phrase = (tuple(w.stem or w.surface for w in words),)
    return Alternative(text, groups, phrase)


def _word(form: str) -> Word:
    """A lexicon form as a query word: its folded form and its stem."""
    return make_word(form, 0, None) or Word(form, 0, len(form), (form,), None)


def concepts(
    lexicon: Lexicon, words: Sequence[Word], match: MatchSet, thesaurus: Thesaurus | None
) -> list[Concept]:
    """Every other reading of the query's words, one :class:`Concept` per run of words."""
    out: list[Concept] = []
    for i, joined in joins(lexicon, words):
        alt = _alternative(joined, [_word(joined)], match)
        out.append(Concept(i, i + 2, [alt], JOIN_WEIGHT, "compound", " ".join(
            w.text for w in words[i : i + 2])))
    for i, w in enumerate(words):
        halves = split(lexicon, w)
        if halves:
            parts = [_word(h) for h in halves]
            out.append(Concept(i, i + 1, [_alternative(" ".join(halves), parts, match)],
                               JOIN_WEIGHT, "compound", w.text))
    if thesaurus is not None:
        for exp in thesaurus.expansions(words):
            alts = [_alternative(p.text, p.words, match) for p in exp.alternatives]
            out.append(Concept(exp.start, exp.end, alts, exp.weight, exp.source,
                               " ".join(w.text for w in words[exp.start : exp.end])))
    return out


def concept_note(used: Sequence[Concept]) -> str | None:
    """"cherché aussi : collectivités territoriales (pour « mairies »), …" """
    parts = []
    for c in used:
        alts = " / ".join(a.text for a in c.alternatives)
        parts.append(f"{alts} (pour « {c.label} »)")
    return "cherché aussi : " + ", ".join(parts) if parts else None


# --- archivist syntax -----------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _parser() -> QueryParser:
    raw = RegexTokenizer(r"[^\s]+")
    names = ["text", *TEXT_FIELDS, "tag", "category", "collection", "year", "id", *FIELD_ALIASES]
    schema = Schema(date=DATETIME(), **{n: TEXT(analyzer=raw) for n in names})
    parser = QueryParser("text", schema)
    parser.add_plugin(PlusMinusPlugin())
    parser.add_plugin(FuzzyTermPlugin())
    return parser


def looks_advanced(text: str) -> bool:
    return bool(_SYNTAX.search(text))


class _Converter:
    """Rewrites the parser's raw tree into queries over the real index fields."""

    def __init__(self, lexicon: Lexicon, key_of_tag) -> None:  # noqa: ANN001
        self.lexicon = lexicon
        self.key_of_tag = key_of_tag
        self.match = MatchSet()
        self.notes: list[str] = []
        self.fuzzy = 0
        self.expanded = 0

    def fields_for(self, fieldname: str) -> dict[str, float]:
        if fieldname in TEXT_FIELDS:
            return {fieldname: TEXT_FIELDS[fieldname]}
        return TEXT_FIELDS

    def words(self, text: str) -> list[Word]:
        return list(analyze_query(text, lemma_table(self.lexicon)))

    def convert(self, q: wq.Query) -> wq.Query:  # noqa: C901, PLR0911, PLR0912 - one case per node
        if isinstance(q, wq.BinaryQuery):  # AndNot, AndMaybe, Require (before CompoundQuery)
            return type(q)(self.convert(q.a), self.convert(q.b))
        if isinstance(q, wq.CompoundQuery):
            subs = [self.convert(s) for s in q.subqueries]
            return type(q)(subs, boost=q.boost)
        if isinstance(q, wq.Not):
            return wq.Not(self.convert(q.query))
        if isinstance(q, wq.Every):
            return wq.Every()
        fieldname = FIELD_ALIASES.get(getattr(q, "fieldname", ""), getattr(q, "fieldname", ""))
        if fieldname in ("tag", "category"):
            if isinstance(q, wq.Phrase):
                text = " ".join(q.words)
            else:
                text = q.text if isinstance(q, wq.Term) else ""
            return wq.Term(fieldname, self.key_of_tag(text)) if text else wq.NullQuery
        if isinstance(q, wq.Phrase):
            return self.phrase(fieldname, " ".join(q.words), q.slop)
        if fieldname in ("collection", "year", "id"):
            if isinstance(q, wq.Term):
                return wq.Term(fieldname, q.text.lower() if fieldname != "id" else q.text)
            if isinstance(q, wq.TermRange):
                return wq.TermRange(fieldname, q.start, q.end, q.startexcl, q.endexcl)
            return q
        if isinstance(q, (wq.Prefix, wq.Wildcard)):
            pattern = fold(q.text)
            if pattern[:1] in ("*", "?"):
                raise QueryError(f"'{q.text}': a wildcard cannot start a word")
            # Expanded through the lexicon, most frequent terms first and bounded: "a*" on a
            # large archive must not become a query over every term of the index.
            if isinstance(q, wq.Prefix):
                self.match.prefixes.add(pattern)
                terms = self.lexicon.prefix(pattern, MAX_PATTERN_TERMS)
            else:
                head = re.split(r"[*?]", pattern)[0]
                self.match.prefixes.add(head)
                rx = re.compile(fnmatch.translate(pattern))
                terms = [t for t in self.lexicon.prefix(head, MAX_PATTERN_TERMS * 20) if rx.match(t)]
                terms = terms[:MAX_PATTERN_TERMS]
            self.expanded += len(terms)
            if self.expanded > MAX_QUERY_PATTERN_TERMS:
                raise QueryError(
                    f"q: the wildcards of this query match more than {MAX_QUERY_PATTERN_TERMS:,} "
                    "words; use fewer of them, or more letters before * and ?"
                )
            if not terms:
                return wq.NullQuery
            self.match.terms.update(terms)
            return WordGroup(q.text, [(t, 1.0) for t in terms], self.fields_for(fieldname)).to_query()
        if isinstance(q, wq.FuzzyTerm):
            self.fuzzy += 1
            if self.fuzzy > MAX_FUZZY_NODES:
                raise QueryError(f"q: more than {MAX_FUZZY_NODES} fuzzy terms (word~N)")
            term = fold(q.text)
            self.match.terms.add(term)
            return wq.Or([
                wq.FuzzyTerm(f, term, boost=b, maxdist=min(q.maxdist, 2), prefixlength=1)
                for f, b in self.fields_for(fieldname).items()
            ])
        if isinstance(q, wq.Term):
            words = self.words(q.text)
            for w in [w for w in words if _lowercase_operator(self.lexicon, w)]:
                words.remove(w)
                self.notes.append(f"« {w.text} » ignoré : les opérateurs s'écrivent en "
                                  f"majuscules ({w.text.upper()})")
            if not words:
                return wq.NullQuery
            groups = [
                expand_word(self.lexicon, w, self.match, fields=self.fields_for(fieldname)).to_query()
                for w in words
            ]
            return groups[0] if len(groups) == 1 else wq.And(groups)
        if isinstance(q, (wq.NumericRange, wq.DateRange)) and fieldname == "date":
            return q
        if fieldname in TEXT_FIELDS or fieldname == "text":
            # Any other node on the raw default field: search its words instead.
            text = " ".join(str(t[1]) for t in q.all_terms() if isinstance(t[1], str))
            self.notes.append(f"partie non reconnue lue comme des mots : {text or repr(q)}")
            return self.convert(wq.Term(fieldname, text)) if text else wq.NullQuery
        return q

    def phrase(self, fieldname: str, text: str, slop: int) -> wq.Query:
        words = self.words(text)
        if not words:
            return wq.NullQuery
        if len(words) == 1:
            return expand_word(
                self.lexicon, words[0], self.match, fields=self.fields_for(fieldname)
            ).to_query()
        surfaces = [w.surface for w in words]
        self.match.terms.update(surfaces)
        return wq.Or([
            wq.Phrase(f, surfaces, slop=max(1, slop), boost=b)
            for f, b in self.fields_for(fieldname).items()
        ])


def advanced_query(lexicon: Lexicon, text: str, key_of_tag) -> ParsedQuery:  # noqa: ANN001
    """Archivist syntax; falls back to plain words (with a note) when it does not parse."""
    converter = _Converter(lexicon, key_of_tag)
    try:
        raw = _parser().parse(text)
        notes = _oddities(text, raw)
        q = converter.convert(raw).normalize()
    except QueryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure means: read as plain words
        plain = re.sub(r'["()\[\]{}^~*?:]|\b(?:AND|OR|NOT|TO)\b', " ", text)
        parsed = box_query(lexicon, plain, typing=False)
        parsed.notes.append(
            f"la syntaxe n'a pas pu être lue ({type(exc).__name__}: {exc}); "
            f"recherche des mots : {' '.join(plain.split())}"
        )
        return parsed
    if isinstance(q, wq.Not):
        q = wq.And([wq.Every(), q])
    return ParsedQuery(q, converter.match, "advanced", notes=notes + converter.notes)


def _oddities(text: str, raw: wq.Query) -> list[str]:
    notes = []
    if text.count('"') % 2:
        notes.append("guillemet non fermé : les mots ont été cherchés séparément")
    if text.count("(") != text.count(")"):
        notes.append("parenthèses non équilibrées : regroupement ignoré")
    for t in raw.all_terms():
        if t[0] == "text" and isinstance(t[1], str) and re.match(r"^\w+:", t[1]):
            notes.append(f"champ inconnu dans '{t[1]}' : cherché comme texte")
    return notes


# --- promises of the query language ---------------------------------------------------------------

FIELD_NAMES = ("title", "chapeau", "body", "attachment", "tag", "category", "collection",
               "date", "year", "id")
KNOWN_FIELDS = frozenset({*FIELD_NAMES, "text", *FIELD_ALIASES})
_FIELD = re.compile(r"(^|[\s(+\-])([^\W\d_]\w*):(?!//)(?=\S)")
_DATE_COMPARISON = re.compile(r"\b(date|year):(>=|<=|>|<)(\d{4}(?:-\d{1,2}(?:-\d{1,2})?)?)(?=$|[\s)])")
_LEADING_OP = re.compile(r"(^|\()\s*(AND|OR)\b\s*")
_TRAILING_OP = re.compile(r"\s*\b(AND|OR|NOT)\s*(?=$|\))")
_DOUBLED_OP = re.compile(r"\b(AND|OR|NOT)\s+(AND|OR)\b")


def _period(value: str) -> tuple[dt.date, dt.date]:
    """First and last day of ``2019``, ``2019-06`` or ``2019-06-30`` (ValueError if none)."""
    parts = [int(p) for p in value.split("-")]
    if len(parts) == 1:
        return dt.date(parts[0], 1, 1), dt.date(parts[0], 12, 31)
    if len(parts) == 2:
        first = dt.date(parts[0], parts[1], 1)
        following = dt.date(parts[0] + parts[1] // 12, parts[1] % 12 + 1, 1)
        return first, following - dt.timedelta(days=1)
    day = dt.date(*parts)
    return day, day


def _date_range(m: re.Match[str], notes: list[str]) -> str:
    """``date:>2023-01-01`` as Lucene and Elasticsearch read it: ``>`` after the whole day
    (or month, or year) named, ``>=`` from its start, ``<`` before its start, ``<=`` to its
    end."""
    op, value = m.group(2), m.group(3)
    try:
        first, last = _period(value)
        if op == ">":
            rng = f"[{(last + dt.timedelta(days=1)).isoformat()} TO]"
        elif op == ">=":
            rng = f"[{first.isoformat()} TO]"
        elif op == "<":
            rng = f"[TO {(first - dt.timedelta(days=1)).isoformat()}]"
        else:
            rng = f"[TO {last.isoformat()}]"
    except (ValueError, OverflowError):
        notes.append(f"date non comprise dans « {m.group(0)} » : écrivez AAAA, AAAA-MM ou AAAA-MM-JJ")
        return " "
    return f"date:{rng}"


def _known_field(m: re.Match[str], notes: list[str]) -> str:
    """``auteur:dupont``: a field the index does not have is dropped, its value searched as
    words, and a note names the fields there are."""
    name = m.group(2)
    if name.lower() in KNOWN_FIELDS:
        return m.group(0)
    notes.append(
        f"champ inconnu « {name} » : sa valeur est cherchée dans tout le texte "
        f"(champs possibles : {', '.join(FIELD_NAMES)})"
    )
    return m.group(1)


def _tidy(text: str, notes: list[str]) -> str:
    """What the help promises before Whoosh's parser sees the query: date comparisons, and
    operators with nothing to join (``cloud NOT``, ``AND cloud``, ``cloud AND OR nubo``)
    dropped with a note instead of being searched as words."""
    text = _DATE_COMPARISON.sub(lambda m: _date_range(m, notes), text)
    text = _FIELD.sub(lambda m: _known_field(m, notes), text)
    for _ in range(5):
        before = text
        m = _DOUBLED_OP.search(text)
        if m:
            notes.append(f"« {m.group(1)} {m.group(2)} » : seul « {m.group(2)} » a été gardé")
            text = text[: m.start()] + m.group(2) + text[m.end() :]
        m = _LEADING_OP.search(text)
        if m:
            notes.append(f"« {m.group(2)} » sans mot avant : opérateur ignoré")
            text = text[: m.start()] + m.group(1) + text[m.end() :]
        m = _TRAILING_OP.search(text)
        if m:
            notes.append(f"« {m.group(1)} » sans mot après : opérateur ignoré")
            text = text[: m.start()] + text[m.end() :]
        if text == before:
            break
    return text


def parse_query(lexicon: Lexicon, text: str, key_of_tag,  # noqa: ANN001
                thesaurus: Thesaurus | None = None) -> ParsedQuery:
    """Read a visitor's or archivist's query. Empty text matches every document."""
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryError(f"query too long ({len(text)} characters, limit {MAX_QUERY_LENGTH})")
    if not text.strip():
        return ParsedQuery(wq.Every(), MatchSet(), "all")
    if looks_advanced(text):
        notes: list[str] = []
        tidied = _tidy(text, notes)
        if looks_advanced(tidied):
            parsed = advanced_query(lexicon, tidied, key_of_tag)
        else:
            parsed = box_query(lexicon, tidied, typing=False, thesaurus=thesaurus)
        parsed.notes[:0] = notes
        if tidied != text:
            parsed.read_as = " ".join(tidied.split())
        return parsed
    parsed = box_query(lexicon, text, thesaurus=thesaurus)
    if not parsed.groups and text.strip():
        stop_only = all(fold(w) in STOP_WORDS for w in _RAW_WORD.findall(text))
        if stop_only:
            parsed.notes.append("la requête ne contient que des mots vides")
    return parsed
