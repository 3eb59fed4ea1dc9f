"""Relaxed queries: when no document holds every word, the documents holding the query's
most important (rarest) words come first, not those holding the most frequent ones."""

from __future__ import annotations

import pytest

from tests.meaning_corpus import ids, index_of, search, searcher

FREQUENT = {
    f"frequent-{i}": (f"Services numériques, édition {i}",
                      "Les services numériques de l'État. " * 3 + f"Numéro {i}.")
    for i in range(8)
}
DOCS = {
    **FREQUENT,
    "rare": ("Un hackathon à Bercy", "Le hackathon réunit des développeurs."),
    "unrelated": ("Le cloud de l'État", "Rien à voir."),
}


@pytest.fixture(scope="module")
def si(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    return searcher(index_of(tmp_path_factory.mktemp("relaxed"), DOCS))


def test_the_rare_word_wins_over_the_frequent_ones(si) -> None:  # noqa: ANN001
    r = search(si, "hackathon services numériques ")
    assert r.mode == "or"
    assert any("approchants" in n for n in r.notes)
    assert ids(r)[0] == "rare"
    assert "unrelated" not in ids(r)
    assert set(ids(r)[1:]) <= set(FREQUENT)


def test_documents_with_every_word_still_come_first(tmp_path_factory: pytest.TempPathFactory) -> None:
    docs = {**DOCS, "complete": ("Hackathon des services numériques", "Un hackathon.")}
    si = searcher(index_of(tmp_path_factory.mktemp("relaxed-complete"), docs))
    r = search(si, "hackathon services numériques ")
    assert ids(r)[:2] == ["complete", "rare"]


def test_every_word_matching_is_not_relaxed(si) -> None:  # noqa: ANN001
    r = search(si, "services numériques ")
    assert r.mode == "box" and set(ids(r)) <= set(FREQUENT) and r.total == len(FREQUENT)
