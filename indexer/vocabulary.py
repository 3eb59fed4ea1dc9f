"""The site's tag vocabulary: messy raw tags → canonical keys and display labels.

Editors write the same idea many ways (``Etat plateforme`` / ``État plateforme``,
``Open data`` / ``Données ouvertes``). A tag's *key* folds case, accents, spaces and punctuation;
an alias file (``indexer/tag-aliases.yaml``, packaged with the code; ``--aliases`` names
another) merges keys that mean the same thing. The *label* shown to people is the variant
editors used most.

The vocabulary belongs to the index: the alias file an index was keyed with (its path, content
hash and entries) is recorded in the index folder (:func:`record_index_aliases`), so searches
read tags with the same aliases the documents were keyed with, and an ingest can tell when the
file has changed and re-key the documents' tags.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from indexer.analysis import fold

DEFAULT_ALIASES = Path(__file__).resolve().parent / "tag-aliases.yaml"
"""The alias file packaged with the code (``corpus/tag-aliases.yaml`` links to it)."""
INDEX_RECORD = "communiques-aliases.json"
"""The file, in an index folder, recording the alias file its documents were keyed with."""
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


class VocabularyError(Exception):
    """The alias file is unreadable or malformed; the message names the file and the entry."""


@functools.lru_cache(maxsize=1 << 16)
def tag_key(raw: str) -> str:
    """Normalised form of a tag: ``État-plateforme`` → ``etat plateforme``."""
    return _NON_ALNUM.sub(" ", fold(raw)).strip()


def _label_order(spelling: str) -> tuple[bool, str]:
    """Ties between spellings: a capitalised one first, then alphabetical."""
    return (not spelling[:1].isupper(), spelling)


def load_aliases(path: Path | None = None) -> dict[str, list[str]]:
    """Read the alias file: a mapping ``canonical label: [alias, ...]``."""
    path = DEFAULT_ALIASES if path is None else path
    if not path.exists():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise VocabularyError(f"{path}: cannot read alias file: {exc}") from None
    return parse_aliases(text, path)


def parse_aliases(text: str, path: Path | str = "aliases") -> dict[str, list[str]]:
    """The entries of an alias file's text; errors name ``path`` and the entry."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise VocabularyError(f"{path}: cannot read alias file: {exc}") from None
    if not isinstance(data, dict):
        raise VocabularyError(f"{path}: expected a mapping 'label: [aliases]'")
    out: dict[str, list[str]] = {}
    for label, aliases in data.items():
        if aliases is None:
            aliases = []
        if isinstance(aliases, str):
            aliases = [aliases]
        if not isinstance(label, str) or not isinstance(aliases, list):
            raise VocabularyError(f"{path}: entry {label!r} must map a label to a list of aliases")
        out[label] = [str(a) for a in aliases]
    return out


class Vocabulary:
    """Canonical tags with their variants and usage counts.

    Built from the alias file plus the tags seen in a corpus (:meth:`add`). Unknown tags are not
    dropped: they become their own canonical entry, and :meth:`unknown` lists them.
    """

    def __init__(self, aliases: dict[str, list[str]] | None = None) -> None:
        self.aliases = dict(aliases if aliases is not None else load_aliases())
        self._key_of: dict[str, str] = {}
        self._declared_label: dict[str, str] = {}
        for label, variants in self.aliases.items():
            key = tag_key(label)
            self._declared_label.setdefault(key, label)
            for variant in [label, *variants]:
                self._key_of.setdefault(tag_key(variant), key)
        self.variants: dict[str, Counter[str]] = {}

    def empty_copy(self) -> Vocabulary:
        """The same aliases, no tag counted yet (cheaper than reading the aliases again)."""
        other = Vocabulary.__new__(Vocabulary)
        other.aliases = self.aliases
        other._key_of = self._key_of
        other._declared_label = self._declared_label
        other.variants = {}
        return other

    def key(self, raw: str) -> str:
        """Canonical key of a raw tag (its own normalised form when no alias names it)."""
        k = tag_key(raw)
        return self._key_of.get(k, k)

    def keys(self, raws: Iterable[str]) -> list[str]:
        out: list[str] = []
        for raw in raws:
            k = self.key(raw)
            if k and k not in out:
                out.append(k)
        return out

    def add(self, raws: Iterable[str]) -> None:
        """Count one document's raw tags."""
        self.__dict__.pop("_labels", None)
        for raw in raws:
            k = self.key(raw)
            if k:
                self.variants.setdefault(k, Counter())[raw] += 1

    def add_counts(self, spellings: Counter[str]) -> None:
        """Count raw tags already counted over many documents (spelling → uses)."""
        self.__dict__.pop("_labels", None)
        for raw, n in spellings.items():
            k = self.key(raw)
            if k and n > 0:
                self.variants.setdefault(k, Counter())[raw] += n

    def label(self, key: str) -> str:
        """Display label (see :meth:`_label`), worked out once per key until the next count:
        facets show hundreds of labels at each search."""
        labels = self.__dict__.setdefault("_labels", {})
        found = labels.get(key)
        if found is None:
            found = labels[key] = self._label(key)
        return found

    def _label(self, key: str) -> str:
        """Display label: the canonical tag, spelt and capitalised as editors most often write it.

        The words are the alias file's label when it declares one (never another variant:
        ``RGAA`` used more often still shows ``Accessibilité numérique``), else the variant
        used most. Among the spellings of those same words (case, accents), the one used most
        wins (the alias file's on ties). The first letter is upper case when most uses of the
        tag, all variants together, start with one (``accessibilité numérique`` written once
        beside ``Accessibilité`` and ``RGAA`` shows ``Accessibilité numérique``).
        """
        counts = self.variants.get(key) or Counter()
        declared = self._declared_label.get(key)
        if declared is None and not counts:
            return key
        if declared is not None:
            words = declared
        else:
            best = max(counts.values())
            words = min((v for v, c in counts.items() if c == best), key=_label_order)
        same = {v: c for v, c in counts.items() if tag_key(v) == tag_key(words)}
        if same:
            best = max(same.values())
            tied = [v for v, c in same.items() if c == best]
            words = words if words in tied else min(tied, key=_label_order)
        upper = sum(c for v, c in counts.items() if v[:1].isupper())
        lower = sum(c for v, c in counts.items() if v[:1].islower())
        if upper > lower or (upper == lower and declared is not None and declared[:1].isupper()):
            return words[:1].upper() + words[1:]
        if lower > upper and words[:1].isupper() and not words[1:2].isupper():
            return words[:1].lower() + words[1:]
        return words

    def count(self, key: str) -> int:
        return sum(self.variants.get(key, Counter()).values())

    def known(self, raw: str) -> bool:
        """True when the alias file or the counted corpus knows this tag."""
        k = self.key(raw)
        return k in self._declared_label or k in self.variants

    def unknown(self) -> list[str]:
        """Keys seen in documents that no alias entry declares (for the report)."""
        return sorted(k for k in self.variants if k not in self._declared_label)

    def entries(self) -> list[dict[str, object]]:
        """Vocabulary listing: key, label, count, variants; most used first."""
        keys = set(self.variants) | set(self._declared_label)
        rows = [
            {
                "key": k,
                "label": self.label(k),
                "count": self.count(k),
                "variants": sorted(self.variants.get(k, {})),
            }
            for k in keys
        ]
        return sorted(rows, key=lambda r: (-int(r["count"]), str(r["label"])))


# --- the alias file an index was keyed with ---------------------------------------------------


@dataclass(frozen=True)
class AliasFile:
    """One alias file as read: where it is, its content hash and its entries."""

    path: Path
    sha256: str
    aliases: dict[str, list[str]]

    @classmethod
    def read(cls, path: Path | None = None) -> AliasFile:
        """Read ``path`` (the packaged file when None); a missing file is an error here,
        since a file named on the command line that does not exist is a mistake."""
        path = Path(path) if path is not None else DEFAULT_ALIASES
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise VocabularyError(f"{path}: cannot read alias file: {exc.strerror or exc}") from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise VocabularyError(f"{path}: alias file is not UTF-8 ({exc})") from None
        return cls(path.resolve(), hashlib.sha256(raw).hexdigest(), parse_aliases(text, path))

    def record(self) -> dict[str, object]:
        return {"path": str(self.path), "sha256": self.sha256, "aliases": self.aliases}


def _record_path(index_dir: Path) -> Path:
    return Path(index_dir) / INDEX_RECORD


def index_aliases(index_dir: Path | str | None) -> dict[str, object] | None:
    """The record of the alias file the index's documents were keyed with, or None (an index
    keyed before such records existed, or not on disk)."""
    if index_dir is None:
        return None
    try:
        data = json.loads(_record_path(Path(index_dir)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("aliases"), dict):
        return None
    return data


def index_aliases_stamp(index_dir: Path | str | None) -> tuple[int, int] | None:
    """Changes when the record is rewritten (a searcher re-reads the vocabulary then)."""
    if index_dir is None:
        return None
    try:
        info = _record_path(Path(index_dir)).stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def record_index_aliases(index_dir: Path | str, alias_file: AliasFile) -> None:
    """Record (atomically) that the index's documents are keyed with ``alias_file``."""
    target = _record_path(Path(index_dir))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(alias_file.record(), ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, target)


def aliases_of_index(index_dir: Path | str | None) -> dict[str, list[str]]:
    """The aliases a search of this index reads tags with: the recorded ones, else the
    packaged file's."""
    record = index_aliases(index_dir)
    if record is not None:
        return {str(k): [str(a) for a in v] for k, v in record["aliases"].items()}  # type: ignore[union-attr]
    return load_aliases()


def alias_file_for(index_dir: Path | str | None, path: Path | None = None) -> AliasFile:
    """The alias file to key an index with: ``path`` when given (``--aliases``), else the one
    the index was keyed with (when it still exists), else the packaged one."""
    if path is not None:
        return AliasFile.read(path)
    record = index_aliases(index_dir)
    if record is not None:
        recorded = Path(str(record.get("path", "")))
        if recorded.is_file():
            return AliasFile.read(recorded)
    return AliasFile.read(DEFAULT_ALIASES)
