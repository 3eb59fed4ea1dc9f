"""The one French analysis: folding, elisions, inflections, offsets, compounds."""

from __future__ import annotations

import pytest

from indexer.analysis import analyze, fold, light_words, terms_of


def terms(text: str) -> set[str]:
    return set(terms_of(analyze(text)))


def meet(a: str, b: str) -> bool:
    """Do a lone query word and a word in a sentence share a term?"""
    return bool(terms(a) & terms(f"Le texte {b} ici."))


def test_fold_accents_case_and_ligatures() -> None:
    assert fold("État") == fold("Etat") == "etat"
    assert fold("cœur") == "coeur"
    assert fold("l’identité") == "l'identite"


@pytest.mark.parametrize("text", ["l’identité", "l'identité", "d’identité", "qu’identité"])
def test_elisions_removed_both_apostrophes(text: str) -> None:
    words = analyze(text)
    assert [w.text for w in words] == ["identité"]
    assert words[0].start == len(text) - len("identité")


@pytest.mark.parametrize(
    ("query", "doc_word"),
    [
        ("numériques", "numérique"),
        ("numérique", "numériques"),
        ("développé", "développer"),
        ("développer", "développé"),
        ("développe", "développé"),
        ("recrute", "recrutés"),
        ("recrutés", "recrute"),
        ("Etat", "État"),
        ("nationale", "national"),
    ],
)
def test_query_word_meets_its_inflections(query: str, doc_word: str) -> None:
    assert meet(query, doc_word)


def test_offsets_point_at_original_words() -> None:
    text = "La DINUM a développé l’identité numérique."
    for w in analyze(text):
        assert text[w.start : w.end] == w.text


def test_stop_words_dropped_but_content_words_kept() -> None:
    kept = [w.text for w in analyze("Les deux nouveaux services et la plus grande plateforme")]
    assert "Les" not in kept and "et" not in kept and "la" not in kept
    assert {"deux", "nouveaux", "plus"} <= set(kept)


def test_domains_products_acronyms_and_numbers() -> None:
    t = terms("Sur demarches-simplifiees.fr, data.gouv.fr et FranceConnect+ la DINUM publie 43,6 M€ en 2024.")
    assert {"demarches-simplifiees.fr", "demarches", "simplifiees"} <= t
    assert {"data.gouv.fr", "data", "gouv"} <= t
    assert {"franceconnect+", "franceconnect"} <= t
    assert {"dinum", "2024", "43,6"} <= t
    assert "~dinum" not in t  # acronyms are not stemmed


def test_light_words_agree_with_full_analysis_on_surface_and_stem() -> None:
    text = "Les agents recrutés développent l’identité numérique de l’État."
    full = {(w.start, w.surface, w.stem) for w in analyze(text)}
    light = {(w.start, w.surface, w.stem) for w in light_words(text)}
    assert full == light


def test_streamed_analysis_keeps_each_context_with_its_text() -> None:
    """Contexts wait in a queue beside ``nlp.pipe`` (not spaCy's ``as_tuples``): with worker
    processes, each text's words must still come back with its own context, in order."""
    from indexer.analysis import analyze_many_with

    texts = [(f"Le ministère publie le communiqué numéro {i} sur les données", i) for i in range(150)]
    texts.insert(40, ("", "vide"))
    out = list(analyze_many_with(iter(texts), batch_size=16, n_process=2))
    assert [ctx for _, ctx in out] == [ctx for _, ctx in texts]
    for words, ctx in out:
        if ctx == "vide":
            assert words == []
        else:
            assert str(ctx) in [w.text for w in words]
            assert "donnee" in {t for w in words for t in w.terms}
