"""Snippets and highlights: what a visitor sees marked, and the table of seen tokens behind it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from indexer import highlight
from indexer.analysis import STEM_PREFIX, stem
from indexer.highlight import MatchSet, snippet
from indexer.schema import open_index
from indexer.search import SearchIndex


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
