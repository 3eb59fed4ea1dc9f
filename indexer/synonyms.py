"""Other words for the same thing, applied at query time (no re-index).

Three sources make one :class:`Thesaurus`:

* ``corpus/synonyms.yaml`` (``COMMUNIQUES_SYNONYMS``): ``groups`` of equivalent words or
  phrases (two-way: any of them finds the others) and ``one_way`` rules (the word on the left
  also finds those on the right, not the reverse), as Typesense's multi-way and one-way
  synonyms;
* the acronyms mined from the index's own texts (:mod:`indexer.acronyms`), two-way;
* the file's ``acronyms`` section, which adds pairs or removes mined ones (``SIGLE: []``).

Expansion never multiplies the query. Each rule that applies to a run of query words becomes
one *concept*: the run itself, or any of its alternatives, each alternative's words all
required and, when it has several, standing together as a phrase. Elasticsearch's
``synonym_graph`` and Solr's multi-word synonyms expand into cross products of positions that
users see explode (``TooManyClauses``, slow phrase queries); here a query of *n* words with
synonyms costs *n* word scores plus one per alternative word, bounded by
:data:`MAX_ALTERNATIVES` per run and :data:`MAX_CONCEPTS` per query.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from indexer import acronyms
from indexer.analysis import Word, fold, light_words

log = logging.getLogger(__name__)

DEFAULT_FILE = Path(__file__).resolve().parents[1] / "corpus" / "synonyms.yaml"
SYNONYM_WEIGHT = 0.8
"""An alternative's score against the query's own words: a little below exact matches."""
ACRONYM_WEIGHT = 0.8
MAX_ALTERNATIVES = 6
MAX_CONCEPTS = 8
RELOAD_SECONDS = 1.0
"""How often the synonym file's modification time is checked."""


class SynonymFileError(ValueError):
    """The synonym file cannot be read; the message names the file and the entry."""


@dataclass(frozen=True)
class Phrase:
    """A word or phrase of a rule, analysed like a query (folded forms and stems)."""

    text: str
    words: tuple[Word, ...]

    @classmethod
    def of(cls, text: str) -> Phrase:
        return cls(text, tuple(light_words(text)))

    def keys(self) -> list[frozenset[str]]:
        return [_keys(w) for w in self.words]


@dataclass(frozen=True)
class Rule:
    lhs: Phrase
    rhs: tuple[Phrase, ...]
    weight: float
    source: str  # "synonyme" or "sigle"


@dataclass
class Expansion:
    """Query words ``start``..``end`` (exclusive) may also be read as any of ``alternatives``."""

    start: int
    end: int
    alternatives: list[Phrase]
    weight: float
    source: str
    matched: str = ""


def _keys(word: Word) -> frozenset[str]:
    """What makes two words the same for a rule: folded form, lemma or stem."""
    return frozenset(word.terms) | ({word.stem} if word.stem else frozenset())


def _entries(value: object, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    if value is None:
        return []
    raise SynonymFileError(f"{where}: expected a word, a phrase or a list of them")


@dataclass
class Thesaurus:
    rules: list[Rule] = field(default_factory=list)
    _by_first: dict[str, list[int]] = field(default_factory=dict)
    """A first word's key → the places in :attr:`rules` of the rules it starts: a word's
    rules are tried in the file's order, never in the order its set of keys iterates (which
    differs from process to process)."""

    def add(self, lhs: str, rhs: Sequence[str], weight: float, source: str) -> None:
        left = Phrase.of(lhs)
        right = tuple(p for p in (Phrase.of(r) for r in rhs) if p.words and p.text != lhs)
        if not left.words or not right:
            return
        self.rules.append(Rule(left, right, weight, source))
        for key in _keys(left.words[0]):
            self._by_first.setdefault(key, []).append(len(self.rules) - 1)

    def add_group(self, members: Sequence[str], weight: float, source: str) -> None:
        for m in members:
            self.add(m, [o for o in members if fold(o) != fold(m)], weight, source)

    def expansions(self, words: Sequence[Word]) -> list[Expansion]:
        """Rules matching runs of ``words``: longest run first at each position, bounded."""
        keys = [_keys(w) for w in words]
        found: dict[tuple[int, int], Expansion] = {}
        for i, first in enumerate(keys):
            candidates: set[int] = set()
            for k in first:
                candidates.update(self._by_first.get(k, ()))
            for rule in map(self.rules.__getitem__, sorted(candidates)):
                lhs = rule.lhs.keys()
                end = i + len(lhs)
                if end > len(words) or any(not (lhs[j] & keys[i + j]) for j in range(len(lhs))):
                    continue
                exp = found.setdefault(
                    (i, end), Expansion(i, end, [], rule.weight, rule.source, rule.lhs.text)
                )
                own = {tuple(w.surface for w in words[i:end])}
                for alt in rule.rhs:
                    surfaces = tuple(w.surface for w in alt.words)
                    if surfaces in own or any(a.words == alt.words for a in exp.alternatives):
                        continue
                    if len(exp.alternatives) < MAX_ALTERNATIVES:
                        exp.alternatives.append(alt)
                if rule.source == "synonyme":
                    exp.source = "synonyme"
        out = [e for e in found.values() if e.alternatives]
        out.sort(key=lambda e: (-(e.end - e.start), e.start))
        return out[:MAX_CONCEPTS]


def read_file(path: Path) -> dict:
    """The synonym file's three sections, checked; an empty or absent section is empty."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise SynonymFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise SynonymFileError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise SynonymFileError(f"{path}: expected the sections groups, one_way, acronyms")
    unknown = set(data) - {"groups", "one_way", "acronyms"}
    if unknown:
        raise SynonymFileError(f"{path}: unknown section(s) {', '.join(sorted(map(str, unknown)))}")
    groups = data.get("groups") or []
    if not isinstance(groups, list):
        raise SynonymFileError(f"{path}: groups: expected a list of lists")
    out: dict = {"groups": [], "one_way": {}, "acronyms": {}}
    for n, g in enumerate(groups, 1):
        members = _entries(g, f"{path}: groups, entry {n}")
        if len(members) < 2:
            raise SynonymFileError(f"{path}: groups, entry {n}: a group needs two members or more")
        out["groups"].append(members)
    for section in ("one_way", "acronyms"):
        value = data.get(section) or {}
        if not isinstance(value, dict):
            raise SynonymFileError(f"{path}: {section}: expected 'word: [other words]' entries")
        for k, v in value.items():
            out[section][str(k)] = _entries(v, f"{path}: {section}, entry '{k}'")
    return out


def build(file_data: dict | None, mined: dict[str, dict[str, int]]) -> Thesaurus:
    """One thesaurus from the file's sections and the index's mined acronyms."""
    th = Thesaurus()
    file_data = file_data or {"groups": [], "one_way": {}, "acronyms": {}}
    for members in file_data["groups"]:
        th.add_group(members, SYNONYM_WEIGHT, "synonyme")
    for lhs, rhs in file_data["one_way"].items():
        th.add(lhs, rhs, SYNONYM_WEIGHT, "synonyme")
    pairs: dict[str, tuple[str, list[str]]] = {}
    for key, expansions in mined.items():
        if isinstance(expansions, dict):
            best = sorted(expansions, key=lambda e: (-int(expansions[e]), len(e)))
            pairs[key] = (key.upper(), best[:2])
    for acronym, expansions in file_data["acronyms"].items():
        pairs[fold(acronym)] = (acronym, expansions)  # [] removes a mined pair
    for acronym, expansions in pairs.values():
        if expansions:
            th.add_group([acronym, *expansions], ACRONYM_WEIGHT, "sigle")
    return th


class ThesaurusSource:
    """The thesaurus of one index, rebuilt when the synonym file or the acronym store
    changes (checked at most every :data:`RELOAD_SECONDS`): editing the file takes effect
    on the next queries of every worker, without re-indexing or restarting."""

    def __init__(self, index_folder: Path | None, path: Path | None = None) -> None:
        self.index_folder = index_folder
        env = os.environ.get("COMMUNIQUES_SYNONYMS")
        self.path = Path(path or env or DEFAULT_FILE)
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._checked = 0.0
        self._thesaurus = Thesaurus()
        self.error: str | None = None

    def _stamps(self) -> tuple:
        out = []
        for p in (self.path, Path(self.index_folder or ".") / acronyms.STORE_NAME):
            try:
                st = p.stat()
                out.append((st.st_mtime_ns, st.st_size))
            except OSError:
                out.append(None)
        return tuple(out) + (str(self.index_folder),)

    def get(self) -> Thesaurus:
        now = time.monotonic()
        if self._stamp is not None and now - self._checked < RELOAD_SECONDS:
            return self._thesaurus
        with self._lock:
            self._checked = now
            stamp = self._stamps()
            if stamp != self._stamp:
                self._stamp = stamp
                file_data = None
                self.error = None
                if self.path.is_file():
                    try:
                        file_data = read_file(self.path)
                    except SynonymFileError as exc:
                        self.error = str(exc)
                        log.error("synonyms not used: %s", exc)
                self._thesaurus = build(file_data, acronyms.load(self.index_folder))
        return self._thesaurus
