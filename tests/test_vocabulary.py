"""Tag normalisation and the alias file: every spelling of a tag must land on one key."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from indexer.document import DocumentError, parse_file
from indexer.ingest import find_files
from models.vocabulary import (
    DEFAULT_ALIASES,
    Vocabulary,
    VocabularyError,
    load_aliases,
    tag_key,
)
from tests.conftest import SAMPLE_CORPUS, require_shared

# Spellings editors really used (in the sample corpus, the real one, or both) for one idea.
VARIANT_GROUPS: list[set[str]] = [
    {"État plateforme", "Etat plateforme"},
    {"Open data", "Open Data", "open data", "Données ouvertes", "données ouvertes"},
    {"FranceRelance", "France Relance"},
    {"accessibilité numérique", "Accessibilité", "RGAA"},
    {"Entrepreneurs d'intérêt général", "Entrepreneur d'Intérêt Général",
     "Entrepreneurs d'Intérêt Général", "entrepreneur.e d’intérêt général", "EIG"},
    {"Designers d'Intérêt Général", "Designer d'intérêt général"},
    {"Intelligence artificielle", "intelligence artificielle", "IA", "ia"},
    {"Logiciels libres", "logiciel libre", "Logiciel libre"},
    {"Cybersécurité", "Sécurité"},
    {"startup d'État", "Startup d'Etat"},
    {"beta.gouv.fr", "Beta.gouv.fr"},
    {"panorama des grands projets SI", "Panorama des grands projets numériques de l'État"},
    {"Système d'information", "système d'information et de communication"},
    {"Outils numériques", "Outils numériques pour les agents"},
    {"Qualité des services publics numériques", "qualité des services en ligne"},
    {"Évènement", "Evénement", "Événement"},
    {"identité numérique", "Identité numérique"},
    {"Inclusion numérique", "inclusion numérique"},
    {"Sobriété numérique", "sobriété numérique"},
    {"UX design", "UX"},
    {"blue hats", "BlueHats"},
]

# Related but distinct: merging them would lose what editors meant.
DISTINCT = [
    ("Open data", "Open source"),
    ("Cybersécurité", "Sécurisation"),
    ("Intelligence artificielle", "Innovation publique"),
    ("Transformation numérique", "Transformation publique"),
    ("Logiciels libres", "Open source"),
    ("Numérique responsable", "Sobriété numérique"),
]


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary(load_aliases())


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("État-plateforme", "etat plateforme"),
        ("  Open   Data ", "open data"),
        ("entrepreneur.e d’intérêt général", "entrepreneur e d interet general"),
        ("TECH.GOUV", "tech gouv"),
        ("Cœur de métier", "coeur de metier"),
        ("Programme 10%", "programme 10"),
        ("!!!", ""),
    ],
)
def test_tag_key_folds_case_accents_and_punctuation(raw: str, key: str) -> None:
    assert tag_key(raw) == key


@pytest.mark.parametrize("group", VARIANT_GROUPS, ids=lambda g: sorted(g)[0])
def test_variants_share_one_key(vocab: Vocabulary, group: set[str]) -> None:
    keys = {vocab.key(raw) for raw in group}
    assert len(keys) == 1, {raw: vocab.key(raw) for raw in group}


@pytest.mark.parametrize(("a", "b"), DISTINCT)
def test_related_tags_stay_distinct(vocab: Vocabulary, a: str, b: str) -> None:
    assert vocab.key(a) != vocab.key(b)


def test_alias_file_is_consistent() -> None:
    """No spelling may be claimed by two canonical tags (the first would silently win)."""
    aliases = load_aliases(DEFAULT_ALIASES)
    assert aliases, f"{DEFAULT_ALIASES} is missing or empty"
    owner: dict[str, str] = {}
    for label, variants in aliases.items():
        for variant in [label, *variants]:
            k = tag_key(variant)
            assert k, f"{variant!r} (under {label!r}) normalises to nothing"
            assert owner.setdefault(k, label) == label, (
                f"{variant!r} is listed under {label!r} and {owner[k]!r}"
            )


def test_label_is_the_most_used_spelling() -> None:
    v = Vocabulary({"Open data": ["Données ouvertes", "Open Data"]})
    v.add(["Open Data"])
    v.add(["Open Data", "Données ouvertes"])
    assert v.key("données ouvertes") == "open data"
    assert v.label("open data") == "Open Data"
    assert v.count("open data") == 3
    assert sorted(v.entries()[0]["variants"]) == ["Données ouvertes", "Open Data"]


def test_label_prefers_the_alias_file_on_ties_and_when_unused() -> None:
    v = Vocabulary({"Accessibilité numérique": ["Accessibilité", "RGAA"]})
    assert v.label("accessibilite numerique") == "Accessibilité numérique"  # declared, unused
    v.add(["Accessibilité"])
    v.add(["accessibilité numérique"])
    # a tie between "Accessibilité" and the declared label written in lower case
    assert v.label("accessibilite numerique") == "Accessibilité numérique"
    v.add(["RGAA"])
    v.add(["RGAA"])
    # the canonical label, never another variant, however often it is used
    assert v.label("accessibilite numerique") == "Accessibilité numérique"


def test_unknown_tags_are_kept_and_listed(vocab: Vocabulary) -> None:
    v = Vocabulary(load_aliases())
    v.add(["Open Data", "Hackathon météo"])
    assert v.known("open data") and v.known("Hackathon météo")
    assert v.unknown() == ["hackathon meteo"]
    assert v.keys(["IA", "Intelligence artificielle", " ", "ia"]) == ["intelligence artificielle"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Open data: [Open Data\n", "bad.yaml"),  # not YAML: the file is named
        ("- Open data\n- IA\n", "mapping"),
        ("Open data: {a: b}\n", "Open data"),  # the faulty entry is named
    ],
)
def test_alias_file_errors_say_what_is_wrong(tmp_path: Path, text: str, reason: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(VocabularyError, match=reason):
        load_aliases(bad)


def test_alias_file_absent_or_with_single_values(tmp_path: Path) -> None:
    assert load_aliases(tmp_path / "absent.yaml") == {}
    single = tmp_path / "single.yaml"
    single.write_text("Intelligence artificielle: IA\nCloud:\n", encoding="utf-8")
    assert load_aliases(single) == {"Intelligence artificielle": ["IA"], "Cloud": []}


def _raw_tags(folder: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for path in find_files([folder]):
        if path.name.lower() == "readme.md":
            continue
        try:
            counts.update(parse_file(path).tags)
        except DocumentError:
            continue
    return counts


def _check_corpus_variants(folder: Path) -> None:
    """Within one corpus, the known variant groups collapse, and the alias file merges
    something real (at least a few groups are actually present with several spellings)."""
    vocab = Vocabulary(load_aliases())
    present = _raw_tags(folder)
    merged = 0
    for group in VARIANT_GROUPS:
        seen = group & set(present)
        assert len({vocab.key(t) for t in seen}) <= 1, seen
        merged += len(seen) >= 2
    assert merged >= 3
    vocab_plain = Vocabulary({})
    for raw, n in present.items():
        vocab.add([raw] * n)
        vocab_plain.add([raw] * n)
    assert len(vocab.variants) < len(vocab_plain.variants)


def test_sample_corpus_variants_collapse() -> None:
    _check_corpus_variants(SAMPLE_CORPUS)


@pytest.mark.shared
def test_real_corpus_variants_collapse() -> None:
    _check_corpus_variants(require_shared())
