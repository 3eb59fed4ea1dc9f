"""The site's tag vocabulary: messy raw tags → canonical keys and display labels.

Editors write the same idea many ways (``Etat plateforme`` / ``État plateforme``,
``Open data`` / ``Données ouvertes``). A tag's *key* folds case, accents, spaces and punctuation;
an alias file (``corpus/tag-aliases.yaml``) merges keys that mean the same thing. The *label*
shown to people is the variant editors used most.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import yaml

from indexer.analysis import fold

DEFAULT_ALIASES = Path(__file__).resolve().parent.parent / "corpus" / "tag-aliases.yaml"
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


class VocabularyError(Exception):
    """The alias file is unreadable or malformed; the message names the file and the entry."""


def tag_key(raw: str) -> str:
    """Normalised form of a tag: ``État-plateforme`` → ``etat plateforme``."""
    return _NON_ALNUM.sub(" ", fold(raw)).strip()


def load_aliases(path: Path | None = None) -> dict[str, list[str]]:
    """Read the alias file: a mapping ``canonical label: [alias, ...]``."""
    path = DEFAULT_ALIASES if path is None else path
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
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
        for raw in raws:
            k = self.key(raw)
            if k:
                self.variants.setdefault(k, Counter())[raw] += 1

    def label(self, key: str) -> str:
        """Display label: the variant editors used most; the alias file's label on ties or none.

        A tie between the declared label written differently (``accessibilité numérique``) and
        another variant (``Accessibilité``) also goes to the alias file's spelling.
        """
        counts = self.variants.get(key)
        declared = self._declared_label.get(key)
        if not counts:
            return declared or key
        best = max(counts.values())
        tied = [v for v, c in counts.items() if c == best]
        if declared and (declared in tied or (
            len(tied) > 1 and any(tag_key(v) == tag_key(declared) for v in tied)
        )):
            # A tie involving the declared label, however it was capitalised or accented.
            return declared
        return sorted(v for v, c in counts.items() if c == best)[0]

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
