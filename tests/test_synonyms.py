"""Synonyms the editors can edit: two-way groups, one-way rules, phrases, applied at query
time and said in the response's notes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from indexer import synonyms
from indexer.analysis import light_words
from tests.conftest import start_server
from tests.meaning_corpus import ids, index_of, search, searcher

DOCS = {
    "teletravail": ("Le télétravail des agents s'étend", "Les agents publics pratiquent le télétravail."),
    "collectivites": ("Les collectivités territoriales passent au numérique",
                      "Un fonds aide les collectivités territoriales."),
    "entreprises": ("Aides aux entreprises", "Un tableau de bord des aides aux entreprises."),
    "foncier": ("Hackathon des valeurs foncières", "Ouvrir les valeurs foncières au public."),
    "mots-epars": ("Le prix des services et les terrains de sport",
                   "Les terrains de sport ont un prix : rien à voir avec les valeurs."),
    "terrains-vendus": ("Publication du prix des terrains vendus", "Le prix des terrains par commune."),
    "distance": ("Le travail à distance des agents", "Le travail à distance progresse."),
    "nuage": ("Informatique en nuage souveraine", "Une offre d'informatique en nuage pour l'État."),
}

RULES = """
groups:
  - [télétravail, travail à distance, travailler de chez soi]
  - [valeurs foncières, prix des terrains]
  - [cadastre, prix des terrains]
  - [informatique en nuage, cloud]
one_way:
  mairie: [collectivité territoriale]
  société: [entreprise]
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("synonyms")
    rules = folder / "synonyms.yaml"
    rules.write_text(RULES, encoding="utf-8")
    return index_of(folder, DOCS), rules


@pytest.fixture
def si(corpus: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    monkeypatch.setenv("COMMUNIQUES_SYNONYMS", str(corpus[1]))
    return searcher(corpus[0])


def test_everyday_words_find_the_administrations(si) -> None:  # noqa: ANN001
    r = search(si, "travailler de chez soi ")
    assert set(ids(r)[:2]) == {"teletravail", "distance"}
    assert any(n.startswith("cherché aussi : ") and "télétravail" in n for n in r.notes), r.notes
    assert ids(search(si, "numérique des mairies "))[:1] == ["collectivites"]
    assert ids(search(si, "aides aux sociétés "))[:1] == ["entreprises"]


def test_groups_are_two_way_and_one_way_rules_are_not(si) -> None:  # noqa: ANN001
    assert ids(search(si, "cloud "))[:1] == ["nuage"]
    assert "nuage" in ids(search(si, "informatique en nuage "))
    # one-way: "entreprise" does not bring back what "société" means
    r = search(si, "entreprises ")
    assert not any("société" in n for n in r.notes)


def test_multi_word_entries_match_as_phrases(si) -> None:  # noqa: ANN001
    """"prix des terrains" finds the land values; as an alternative, a phrase counts only
    when its words stand together ("cadastre" → "prix des terrains")."""
    assert "foncier" in ids(search(si, "prix des terrains "))[:3]
    assert ids(search(si, "valeurs foncières "))[0] == "foncier"
    found = ids(search(si, "cadastre "))
    assert "terrains-vendus" in found and "mots-epars" not in found


def test_synonym_matches_rank_below_exact_words(si) -> None:  # noqa: ANN001
    found = ids(search(si, "télétravail "))
    assert found[0] == "teletravail" and "distance" in found
    found = ids(search(si, "travail à distance "))
    assert found[0] == "distance" and "teletravail" in found


def test_highlights_show_the_synonym_found(si) -> None:  # noqa: ANN001
    r = search(si, "travailler de chez soi ")
    hit = next(h for h in r.hits if h.id == "teletravail")
    assert "<mark>télétravail</mark>" in hit.title_html


def test_expansion_is_bounded() -> None:
    """A word in many groups never multiplies the query: one concept per run of words,
    at most MAX_ALTERNATIVES alternatives each."""
    th = synonyms.Thesaurus()
    for i in range(40):
        th.add_group(["numérique", f"synonyme{i}"], 0.8, "synonyme")
    found = th.expansions(list(light_words("numérique numérique numérique")))
    assert len(found) == 3
    assert all(len(e.alternatives) <= synonyms.MAX_ALTERNATIVES for e in found)
    many = " ".join(["numérique"] * 30)
    assert len(th.expansions(list(light_words(many)))) <= synonyms.MAX_CONCEPTS


@pytest.mark.parametrize("content, message", [
    ("groups: [[a]]", "two members"),
    ("groups: {a: b}", "list of lists"),
    ("one_way: [a, b]", "one_way"),
    ("autres: []", "unknown section"),
    ("groups: [[a, b]\n", "not valid YAML"),
])
def test_a_bad_file_is_reported_with_its_name(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "synonyms.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(synonyms.SynonymFileError, match=message) as err:
        synonyms.read_file(path)
    assert str(path) in str(err.value)


def test_shipped_file_reads() -> None:
    data = synonyms.read_file(synonyms.DEFAULT_FILE)
    assert len(data["groups"]) >= 20 and len(data["one_way"]) >= 20 and len(data["acronyms"]) >= 20


def test_edited_file_takes_effect_in_every_worker_while_writing(corpus, tmp_path: Path) -> None:  # noqa: ANN001
    """Two workers; a writer adds documents while readers search; editing the synonym file
    changes the answers of both workers without a restart or a re-index."""
    index, _ = corpus
    rules = tmp_path / "synonyms.yaml"
    rules.write_text("groups: []\n", encoding="utf-8")
    key = "synonym-test-key"
    server = start_server(index, {"COMMUNIQUES_SYNONYMS": str(rules), "COMMUNIQUES_API_KEY": key,
                                  "COMMUNIQUES_DOCUMENTS": str(tmp_path / "docs")}, workers=2)
    try:
        def found(q: str) -> list[str]:
            r = httpx.get(server.url + "/api/search", params={"q": q}, timeout=30)
            assert r.status_code == 200
            return [h["id"] for h in r.json()["hits"]]

        assert "foncier" not in found("cadastre ")
        rules.write_text("groups:\n  - [cadastre, valeurs foncières]\n", encoding="utf-8")
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "text/markdown"}
        # The file is read again within a second; the deadline only bounds a slow machine
        # (each round writes a document and searches).
        deadline = time.monotonic() + 120
        seen = 0
        n = 0
        while time.monotonic() < deadline and seen < 6:
            n += 1
            body = f"---\ntitle: Note {n}\ndate: 2024-01-0{1 + n % 9} 10:00:00 +01:00\n---\n\nTexte {n}.\n"
            w = httpx.put(f"{server.url}/api/documents/note-{n}?collection=communiques",
                          content=body, headers=headers, timeout=30)
            assert w.status_code in (200, 201), w.text
            seen = seen + 1 if "foncier" in found("cadastre ") else 0
        assert seen >= 6, "the edited file was not used by every worker"
    finally:
        server.stop()


def test_a_query_reads_the_same_in_every_worker() -> None:
    """The readings a query gets (and their order, and which are kept past the cap) do not
    depend on the process: two workers answer the same query with the same results and the
    same "cherché aussi" note, whatever order their sets iterate in."""
    code = (
        "from indexer.synonyms import build\n"
        "from indexer.analysis import light_words\n"
        "th = build({'groups': [['covid', 'coronavirus', 'crise sanitaire', 'pandémie'],"
        " ['numérisation', 'dématérialisation', 'transformation numérique']],"
        " 'one_way': {'covid-19': ['covid', 'sars-cov-2'], 'numériser': ['dématérialiser']},"
        " 'acronyms': {}}, {})\n"
        "for q in ('Covid-19 outils', 'gouvernement accélère numérisation'):\n"
        "    print([[a.text for a in e.alternatives] for e in th.expansions(list(light_words(q)))])\n"
    )
    outs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout
        for seed in range(8)
    }
    assert len(outs) == 1, outs
