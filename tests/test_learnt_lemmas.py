"""Query words get the lemma their surface form took in the documents, read from the index's
lemma table, without spaCy; an index without the table is still searched with spaCy's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from whoosh import index as whoosh_index

from indexer import analysis
from indexer.analysis import analyze_query, lemma_pairs, make_word, pair_term
from indexer.document import parse_text
from indexer.ingest import write_document
from indexer.schema import LEMMA_FIELD, build_schema, open_index
from indexer.search import SearchIndex, SearchRequest
from indexer.vocabulary import Vocabulary
from tests.conftest import GOOD, SAMPLE_CORPUS


class _NoSpacy:
    """Stands for the spaCy pipeline: any use of it fails the test."""

    loaded = True

    @property
    def nlp(self):  # noqa: ANN201
        raise AssertionError("spaCy was run on a query")


@pytest.fixture
def no_spacy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analysis, "_pipeline", _NoSpacy())

    def refuse(text: str) -> tuple:
        raise AssertionError(f"spaCy was asked for {text!r}")

    monkeypatch.setattr(analysis, "_analyze_query", refuse)


def _words(text: str, lemmas: dict[str, str]) -> list[analysis.Word]:
    """Words of ``text`` with the lemmas given (by folded surface form), as an analysis would."""
    out = []
    for m in re.finditer(r"\w+", text):
        w = make_word(m.group(), m.start(), lemmas.get(analysis.fold(m.group())))
        if w is not None:
            out.append(w)
    return out


def _index(folder: Path, docs: list[tuple[str, str, dict[str, str]]], schema=None):  # noqa: ANN001, ANN202
    """An index of documents (id, title, lemmas by surface form), analysed by hand."""
    folder.mkdir(parents=True, exist_ok=True)
    if schema is None:
        ix = open_index(folder, create=True)
    else:
        ix = whoosh_index.create_in(str(folder), schema)
    writer = ix.writer()
    for doc_id, title, lemmas in docs:
        doc = parse_text(GOOD.format(title=title, body=title), doc_id, "communiques")
        fields = [_words(text, lemmas) for text in (doc.title, doc.chapeau, doc.body, "")]
        write_document(writer, doc, fields, Vocabulary({}))
    writer.commit()
    return ix


def test_pairs_of_a_document_name_each_form_and_its_lemma() -> None:
    words = _words("Les mairies et la mairie rurales", {"mairies": "mairie", "rurales": "rural"})
    assert lemma_pairs([words]) == sorted({
        pair_term("mairies", "mairie"), pair_term("mairie", ""), pair_term("rurales", "rural")})


def test_a_query_word_gets_the_lemma_the_documents_gave_it_without_spacy(
    tmp_path: Path, no_spacy: None
) -> None:
    # "développés" lemmatised as "développer" in three documents, "développé" in one.
    docs = [(f"d{i}", "Services développés par l'État", {"developpes": "developper"})
            for i in range(3)]
    docs.append(("d3", "Outils développés", {"developpes": "developpe"}))
    docs.append(("d4", "Il faut développer les outils", {}))
    si = SearchIndex(_index(tmp_path / "ix", docs), preload=False)
    lexicon = si.engine().lexicon
    assert lexicon.lemma("developpes") == "developper"
    (word,) = analyze_query("développés", lexicon.lemma_of)
    assert word.terms == ("developpes", "developper")
    m = si.run(SearchRequest(q="développés "))
    assert ("developper", 1.0) in m.parsed.groups[0].alternatives
    # The lemma meets the document holding only the infinitive.
    assert "d4" in {m.engine.ids[d] for d in m.docs}
    assert si.search(SearchRequest(q="développés outils")).total >= 1


def test_an_unknown_word_keeps_its_surface_form_and_stem(tmp_path: Path, no_spacy: None) -> None:
    si = SearchIndex(_index(tmp_path / "ix", [("d0", "Les mairies rurales",
                                               {"mairies": "mairie"})]), preload=False)
    lexicon = si.engine().lexicon
    assert lexicon.lemma("communales") is None
    assert lexicon.lemma("rurales") is None  # in the documents, but never given a lemma
    (word,) = analyze_query("communales", lexicon.lemma_of)
    assert word.terms == ("communales",)
    assert word.stem == analysis.STEM_PREFIX + analysis.stem("communales")
    # Typos are still forgiven for such words.
    assert si.search(SearchRequest(q="mariies ")).total == 1


def test_an_index_without_the_table_still_gets_spacy_lemmas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = build_schema()
    schema.remove(LEMMA_FIELD)
    ix = _index(tmp_path / "ix", [("d0", "Les mairies", {"mairies": "mairie"})], schema=schema)
    si = SearchIndex(ix, preload=False)
    assert si.engine().lexicon.lemma_of is None
    asked: list[str] = []
    monkeypatch.setattr(analysis, "_analyze_query",
                        lambda text: asked.append(text) or tuple(analysis.light_words(text)))
    monkeypatch.setattr(analysis, "_pipeline", _NoSpacy())
    si.search(SearchRequest(q="mairies "))
    assert asked


def test_the_table_follows_segments_as_they_are_written_and_merged(tmp_path: Path) -> None:
    ix = _index(tmp_path / "ix", [("d0", "Les mairies", {"mairies": "mairie"})])
    si = SearchIndex(ix, preload=False)
    assert si.engine().lexicon.lemma("mairies") == "mairie"
    writer = ix.writer()
    for doc_id in ("d1", "d2"):
        doc = parse_text(GOOD.format(title="Deux mairies", body="x"), doc_id, "communiques")
        write_document(writer, doc, [_words(doc.title, {"mairies": "maire"}), [], [], []],
                       Vocabulary({}))
    writer.commit()
    si.changed()
    assert len(si.engine().leaves) == 2
    assert si.engine().lexicon.lemma("mairies") == "maire"  # two documents against one
    writer = ix.writer()
    writer.delete_by_term("id", "d1")
    writer.delete_by_term("id", "d2")
    writer.commit(optimize=True)  # the merge drops the deleted documents' pairs
    si.changed()
    assert len(si.engine().leaves) == 1
    assert si.engine().lexicon.lemma("mairies") == "mairie"


def test_known_items_of_the_sample_corpus_without_spacy(sample_index: Path,
                                                        no_spacy: None) -> None:
    si = SearchIndex(open_index(sample_index), preload=False)
    assert si.engine().lexicon.learnt
    rows = [line.split("\t") for line in
            (SAMPLE_CORPUS / "KNOWN_ITEMS.tsv").read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]
    for query, doc_id in rows:
        hits = si.search(SearchRequest(q=query + " ")).hits
        assert hits and hits[0].id == doc_id, query
