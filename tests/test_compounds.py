"""Compounds written apart or together, numbers with # and n°, ligatures and accent variants."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.meaning_corpus import ids, index_of, search, searcher

DOCS = {
    "franceconnect": ("FranceConnect passe le cap des 10 millions", "FranceConnect compte des usagers."),
    "france-seule": ("La France et ses territoires connectés", "La France investit."),
    "dataconnexions": ("Dataconnexions #4 : les lauréats", "Le concours Dataconnexions#4 récompense."),
    "numero": ("Le baromètre n°7 est publié", "Septième édition du baromètre."),
    "coeur": ("Au cœur de l'État", "Le cœur des services publics et leur manœuvre."),
    "evenement": ("Un évènement pour les agents", "L'évènement réunit les agents."),
    "tout-attache": ("Le dispositif Tiers-Lieux Numériques", "Les tierslieux accueillent les usagers."),
}


@pytest.fixture(scope="module")
def si(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    folder: Path = tmp_path_factory.mktemp("compounds")
    return searcher(index_of(folder, DOCS))


def test_words_written_apart_find_the_compound(si) -> None:  # noqa: ANN001
    r = search(si, "france connect ")
    assert ids(r)[0] == "franceconnect"
    assert any("franceconnect" in n for n in r.notes), r.notes


def test_a_word_written_together_finds_its_parts(si) -> None:  # noqa: ANN001
    assert ids(search(si, "dataconnexions4 "))[:1] == ["dataconnexions"]
    assert ids(search(si, "tiers lieux "))[:1] == ["tout-attache"]


@pytest.mark.parametrize("q", ["dataconnexions 4 ", "Dataconnexions #4 ", "dataconnexions n°4 ",
                               "dataconnexions#4 "])
def test_hash_and_numero_meet_the_number(si, q: str) -> None:  # noqa: ANN001
    assert ids(search(si, q))[:1] == ["dataconnexions"]


@pytest.mark.parametrize("q", ["baromètre 7 ", "baromètre n°7 ", "barometre #7 "])
def test_numbers_in_the_text(si, q: str) -> None:  # noqa: ANN001
    assert ids(search(si, q))[:1] == ["numero"]


@pytest.mark.parametrize("q", ["coeur ", "cœur ", "manoeuvre ", "COEUR "])
def test_ligatures_fold_alike(si, q: str) -> None:  # noqa: ANN001
    assert ids(search(si, q))[:1] == ["coeur"]


@pytest.mark.parametrize("q", ["événement ", "évènement ", "evenement ", "événements "])
def test_accent_variants_fold_alike(si, q: str) -> None:  # noqa: ANN001
    assert ids(search(si, q))[:1] == ["evenement"]
