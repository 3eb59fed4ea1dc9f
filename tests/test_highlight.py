"""Snippets and highlights: what a visitor sees marked, and the table of seen tokens behind it."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from indexer import highlight
from indexer import schema as schema_module
from indexer.analysis import STEM_PREFIX, stem
from indexer.highlight import MatchSet, snippet
from indexer.schema import open_index
from indexer.search import SearchIndex, SearchRequest
from service.cli import main
from tests.conftest import GOOD


def highlight_request(q: str) -> SearchRequest:
    return SearchRequest(q=q, drafts=True)


def words(*plain: str, stems: tuple[str, ...] = (), prefixes: tuple[str, ...] = ()) -> MatchSet:
    return MatchSet(set(plain), {STEM_PREFIX + stem(s) for s in stems}, set(prefixes))


def test_marks_the_word_without_its_elision_or_punctuation() -> None:
    html, n = snippet("Les missions de l’État, en bref.", words("etat"))
    assert "l’<mark>État</mark>," in html
    assert n == 1
    assert highlight.highlight("« L’État »", words("etat")) == "« L’<mark>État</mark> »"


def test_inflections_compounds_and_prefixes_are_marked() -> None:
    text = "Des services numériques ; le site data.gouv.fr et la numérisation."
    html, _ = snippet(text, words(stems=("numérique",)))
    assert "<mark>numériques</mark>" in html
    html, _ = snippet(text, words("gouv"))
    assert "<mark>data.gouv.fr</mark>" in html
    html, _ = snippet(text, words(prefixes=("numeris",)))
    assert "<mark>numérisation</mark>." in html


def test_a_snippet_is_escaped_and_its_white_space_normalised() -> None:
    """Written from its tokens: runs of plain words escaped at once, matched ones marked."""
    text = "Chapeau <b>&</b>\n\n  l’État,\tet  «\u00a0l’État » "
    html, n = snippet(text, words("etat"))
    assert html == "Chapeau &lt;b&gt;&amp;&lt;/b&gt; l’<mark>État</mark>, et « l’<mark>État</mark> »"
    assert n == 2
    long = " ".join(f"mot{i}" for i in range(80)) + " cloud " + " ".join(["fin"] * 80)
    html, _ = snippet(long, words("cloud"))
    assert html.startswith("… mot77 mot78 mot79 <mark>cloud</mark> fin") and html.endswith(" …")


def test_passage_with_the_most_distinct_query_words_wins() -> None:
    filler = " ".join(["texte"] * 40)
    text = f"cloud cloud cloud {filler} le cloud souverain ici {filler}"
    html, n = snippet(text, words("cloud", "souverain"))
    assert "<mark>cloud</mark> <mark>souverain</mark>" in html
    assert html.startswith("… ") and html.endswith(" …")
    assert n == 2


def test_text_is_escaped_and_whitespace_kept_as_single_spaces() -> None:
    html, _ = snippet("<script>État</script>\n\n  et   la   suite", words("etat"))
    assert "<script>" not in html
    assert html == "&lt;script&gt;<mark>État</mark>&lt;/script&gt; et la suite"


def test_no_match_gives_the_opening_words() -> None:
    text = " ".join(f"mot{i}" for i in range(100))
    html, n = snippet(text, words("absent"))
    assert html.startswith("mot0 mot1") and html.endswith(" …") and n == 0
    html, n = snippet(text, MatchSet())
    assert html.startswith("mot0") and n == 0


def test_a_token_filed_by_another_query_meanwhile_is_still_marked() -> None:
    """A query judges the tokens seen when it starts, then catches up on those added since,
    whoever added them (another request's thread)."""
    match = words("zorglubisation")
    snippet("rien à voir ici", match)  # the query's table is built now
    other = threading.Thread(target=highlight.learn, args=(["La Zorglubisation, enfin."],))
    other.start()
    other.join()
    html, n = snippet("Vive la Zorglubisation, enfin.", match)
    assert "<mark>Zorglubisation</mark>," in html and n == 1


def test_the_table_is_bounded_and_cleared_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(highlight, "_SEEN", highlight._Seen())
    monkeypatch.setattr(highlight._Seen, "KEPT", 50)
    match = words("cible")
    for i in range(20):
        text = " ".join(f"mot{i}x{j}" for j in range(10)) + " la cible"
        html, n = snippet(text, match)
        assert "<mark>cible</mark>" in html and n == 1
        assert len(highlight._SEEN.forms) <= 50
    assert highlight._SEEN.generation > 0
    # learning ahead never clears the table: it stops at half
    assert highlight.learn([" ".join(f"autre{j}" for j in range(100))]) == 0


def test_the_newest_documents_words_are_learnt_ahead(
    tmp_path: Path, sample_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(highlight, "_SEEN", highlight._Seen())
    monkeypatch.setattr(highlight, "_LEARNT_ONCE", threading.Lock())
    si = SearchIndex(open_index(sample_index))
    si.warm()
    engine = si.engine()
    newest = max(range(len(engine.ids)), key=lambda d: engine.timestamp[d])
    title = engine.stored_fields(newest)["title"]
    assert set(title.split()) <= set(highlight._SEEN.forms)
    assert highlight.learnt_once()  # once a process


# --- marks written at ingest ----------------------------------------------------------------


def _starting(*texts: str):  # noqa: ANN202 - the lexicon's ``starting`` over these texts
    terms = sorted({t for text in texts for raw in text.split()
                    for piece in highlight._pieces(raw) for t in piece[0]})

    def starting(prefix: str, limit: int) -> list[str] | None:
        found = [t for t in terms if t.startswith(prefix)]
        return found if len(found) <= limit else None
    return starting


MARKED_CASES = [
    ("Les missions de l’État, en bref.", words("etat")),
    ("Des services numériques ; le site data.gouv.fr et la numérisation.",
     words(stems=("numérique",))),
    ("Des services numériques ; le site data.gouv.fr et la numérisation.", words("gouv")),
    ("Des services numériques ; le site data.gouv.fr et la numérisation.",
     words(prefixes=("numeris",))),
    ("Chapeau <b>&</b>\n\n  l’État,\tet  «\u00a0l’État » ", words("etat")),
    (" ".join(f"mot{i}" for i in range(80)) + " cloud " + " ".join(["fin"] * 80), words("cloud")),
    (" ".join(["texte"] * 40) + " cloud cloud le cloud souverain ici " + " ".join(["x"] * 40),
     words("cloud", "souverain")),
    ("début " + " ".join(["texte"] * 40) + " la fin du cloud", words("cloud")),
    (" ".join(f"mot{i}" for i in range(100)), words("absent")),
    ("", words("etat")),
    ("Le cloud de l’État et le numérique", words("cloud", stems=("numérique",),
                                                 prefixes=("eta",))),
]


@pytest.mark.parametrize(("text", "match"), MARKED_CASES)
def test_marks_give_the_same_snippet_as_the_table(text: str, match: MatchSet) -> None:
    """The marks a document gets at ingest find the same passage and the same highlights as
    the table of tokens seen (documents written before them keep that way)."""
    hashes = match.hashes(_starting(text))
    assert hashes is not None
    assert snippet(text, match, marks=highlight.marks_of(text), hashes=hashes) == snippet(
        text, match)


def test_marks_of_a_long_text() -> None:
    text = " ".join(["mot"] * 70_000) + " le cloud enfin"
    marks = highlight.marks_of(text)
    assert len(marks[1]) == 70_003  # a count of keys per token
    html, n = snippet(text, words("cloud"), marks=marks, hashes=words("cloud").hashes(
        _starting("cloud")))
    assert html == "… mot mot mot mot mot mot mot mot mot mot mot mot mot mot mot mot mot " \
        "mot mot mot mot mot mot mot mot mot mot le <mark>cloud</mark> enfin" and n == 1


def test_a_hash_that_only_collides_is_not_marked() -> None:
    """Marks point at tokens by a short hash: a token whose hash equals a query key's without
    matching it is shown plain, and the passage is the one the real matches give."""
    filler = " ".join(["texte"] * 40)
    text = f"ami ami ami {filler} le cloud souverain ici {filler}"
    match = words("cloud")
    query = match.hashes(_starting(text))
    assert query is not None
    hashes, counts = highlight.marks_of(text)
    forged = np.frombuffer(hashes, np.uint16).copy()
    forged[:3] = np.flatnonzero(query)[0]  # each "ami" has one key, now colliding with "cloud"
    html, n = snippet(text, match, marks=(forged.tobytes(), counts), hashes=query)
    assert html == snippet(text, match)[0]
    assert "<mark>cloud</mark> souverain" in html and "ami" not in html and n == 1


def test_a_prefix_starting_too_many_terms_goes_through_the_table() -> None:
    match = words(prefixes=("n",))
    assert match.hashes(lambda prefix, limit: None) is None
    assert words("cloud").hashes(lambda prefix, limit: None) is not None


def test_search_hits_use_the_marks_and_show_what_the_table_shows(sample_index: Path) -> None:
    """Over the sample corpus, through the service's own search: every hit has marks, and
    its snippet is the table's, for words, inflections, prefixes and typos."""
    si = SearchIndex(open_index(sample_index))
    engine = si.engine()
    assert all(engine.stored_fields(d).get("marks") is not None for d in range(engine.n))
    compared = 0
    for q in ["numérique", "numériques", "l'État", "donnees ouvertes", "transfo num", "clou",
              "cybersécurté", "identité numérique", "franceconnect"]:
        result = si.search(highlight_request(q))
        m = si.run(highlight_request(q), limit=10)
        for hit, i in zip(result.hits, m.order[:10].tolist(), strict=True):
            f = engine.stored_fields(int(m.docs[i]))
            text = highlight.snippet_text(f.get("chapeau", ""), f.get("body", ""))
            assert hit.snippet_html == snippet(text, m.parsed.match)[0]
            compared += 1
    assert compared > 30


def test_an_index_written_before_the_marks_is_still_highlighted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An index whose schema has no marks field (written by the previous version) gets none
    at its next ingests, and its hits are highlighted through the table of words seen."""
    src, index = tmp_path / "src", tmp_path / "index"
    src.mkdir()
    for i in range(3):
        (src / f"doc-{i}.md").write_text(GOOD.format(
            title=f"Communiqué {i}", body=f"Les services numériques de l’État, numéro {i}."),
            encoding="utf-8")
    build = schema_module.build_schema

    def without_marks():  # noqa: ANN202 - the previous version's schema
        schema = build()
        schema.remove("marks")
        return schema
    with monkeypatch.context() as m:
        m.setattr(schema_module, "build_schema", without_marks)
        assert main(["ingest", str(src), "--index", str(index)]) == 0
    (src / "doc-3.md").write_text(GOOD.format(title="Communiqué 3", body="Le numérique."),
                                  encoding="utf-8")
    assert main(["ingest", str(src), "--index", str(index)]) == 0
    si = SearchIndex(open_index(index), preload=False)
    engine = si.engine()
    assert "marks" not in engine.searcher.schema
    assert all("marks" not in engine.stored_fields(d) for d in range(engine.n))
    result = si.search(SearchRequest(q="numériques"))
    assert result.total == 4
    assert all("<mark>num" in h.snippet_html for h in result.hits)


def test_a_passage_holding_the_characters_marks_are_written_with() -> None:
    """A passage is escaped once, its marks first written as two control characters; a text
    that holds one of them itself is written piece by piece, the same way."""
    text = "Un \x02texte\x03 <b>brut</b> sur le cloud, et le cloud encore."
    html, n = snippet(text, words("cloud"))
    assert html == ("Un \x02texte\x03 &lt;b&gt;brut&lt;/b&gt; sur le <mark>cloud</mark>, et le "
                    "<mark>cloud</mark> encore.") and n == 2
    clean = text.replace("\x02", "").replace("\x03", "")
    assert snippet(clean, words("cloud"))[0] == html.replace("\x02", "").replace("\x03", "")
