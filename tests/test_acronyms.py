"""Acronyms mined from the texts at ingest, stored with the index, overridable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexer import acronyms
from tests.meaning_corpus import ids, index_of, search, searcher


@pytest.mark.parametrize("text, acronym, expansion", [
    ("L'État investit dans l'intelligence artificielle (IA) pour ses agents.", "IA",
     "intelligence artificielle"),
    ("la base adresse nationale (BAN) est publiée", "BAN", "base adresse nationale"),
    ("Le RGAA (référentiel général d'amélioration de l'accessibilité) évolue.", "RGAA",
     "referentiel general amelioration de accessibilite"),
    ("la direction interministérielle du numérique (DINUM) annonce", "DINUM",
     "direction interministerielle du numerique"),
    ("par la Direction générale des Finances publiques (DGFiP), qui", "DGFiP",
     "direction generale des finances publiques"),
    ("L'ANSSI (Agence nationale de la sécurité des systèmes d'information) publie", "ANSSI",
     "agence nationale de la securite des systemes information"),
    ("la Direction départementale des territoires et de la mer (DDTM) du Nord", "DDTM",
     "direction departementale des territoires et de la mer"),
    ("une offre platform as a service (PaaS) dédiée", "PaaS", "platform as a service"),
])
def test_mined_from_any_text(text: str, acronym: str, expansion: str) -> None:
    assert (acronym, expansion) in list(acronyms.mine(text))


@pytest.mark.parametrize("text", [
    "Le texte (PDF) est joint.",                    # no expansion before it
    "Rendez-vous à Paris (FR) le 3 mai.",           # letters do not spell it
    "un nouvel outil (2019) pour les agents",        # not an acronym
    "La Poste et la Banque (BAN) signent",           # "banque" alone is no B-A-N reading
])
def test_no_pair_without_a_spelled_out_expansion(text: str) -> None:
    assert list(acronyms.mine(text)) == []


DOCS = {
    "ia-definie": ("L'État et l'intelligence artificielle",
                   "Le plan intelligence artificielle (IA) de l'État finance des projets."),
    "ia-seule": ("Des agents formés à l'IA", "Une formation à l'IA pour tous les agents."),
    "expansion-seule": ("Intelligence artificielle et services publics",
                        "L'intelligence artificielle au service des usagers."),
    "eig": ("Recrutement d'entrepreneurs", "Les entrepreneurs d'intérêt général (EIG) rejoignent l'État."),
    "autre": ("Un autre sujet", "Le cloud de l'État."),
}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return index_of(tmp_path_factory.mktemp("acronyms"), DOCS)


@pytest.fixture
def si(index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    monkeypatch.setenv("COMMUNIQUES_SYNONYMS", str(tmp_path / "none.yaml"))
    return searcher(index)


def test_stored_with_the_index(index: Path) -> None:
    data = json.loads((index / acronyms.STORE_NAME).read_text(encoding="utf-8"))
    assert data["acronyms"]["ia"] == {"intelligence artificielle": 1}
    assert "eig" in data["acronyms"]


def test_either_side_finds_the_other_a_little_below(si) -> None:  # noqa: ANN001
    r = search(si, "IA ")
    found = ids(r)
    assert {"ia-seule", "ia-definie", "expansion-seule"} <= set(found)
    assert found.index("expansion-seule") > found.index("ia-seule")
    assert any("intelligence artificielle" in n for n in r.notes), r.notes
    found = ids(search(si, "intelligence artificielle "))
    assert {"ia-seule", "expansion-seule"} <= set(found)
    assert found.index("ia-seule") > found.index("expansion-seule")
    assert ids(search(si, "EIG "))[:1] == ["eig"]


def test_the_file_adds_and_removes_pairs(index: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    rules = tmp_path / "synonyms.yaml"
    rules.write_text("acronyms:\n  IA: []\n  CLD: [cloud]\n", encoding="utf-8")
    monkeypatch.setenv("COMMUNIQUES_SYNONYMS", str(rules))
    si = searcher(index)
    assert "expansion-seule" not in ids(search(si, "IA "))
    assert ids(search(si, "CLD ")) == ["autre"]
