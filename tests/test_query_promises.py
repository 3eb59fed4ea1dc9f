"""The query language keeps the help's promises: examples that find something in the index
served, dates compared as in Lucene, dangling operators and unknown fields explained, and
lowercase and/or never "corrected" into other words."""

from __future__ import annotations

import re
import threading
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from indexer.examples import syntax_examples
from tests.conftest import start_server
from tests.meaning_corpus import ids, index_of, search, searcher

DOCS = {
    "fin-2018": ("Le cloud de l'État en 2018", "Nubo, le cloud interne, ouvre.", "2018-12-31"),
    "debut-2019": ("Le cloud interne Nubo grandit", "Nubo accueille un ministère.", "2019-01-01"),
    "nouvel-an-2023": ("Tchap et le cloud", "La messagerie Tchap passe au cloud.", "2023-01-01"),
    "lendemain-2023": ("Tchap franchit un cap", "La messagerie des agents.", "2023-01-02"),
    "fevrier-2023": ("Le cloud souverain de l'État", "Un cloud souverain pour les agents.", "2023-02-15"),
}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return index_of(tmp_path_factory.mktemp("promises"), DOCS)


@pytest.fixture(scope="module")
def si(index: Path):  # noqa: ANN201
    return searcher(index)


@pytest.mark.parametrize("q, expected", [
    ("date:>2023-01-01", {"lendemain-2023", "fevrier-2023"}),
    ("date:>=2023-01", {"nouvel-an-2023", "lendemain-2023", "fevrier-2023"}),
    ("date:>2023-01", {"fevrier-2023"}),
    ("date:<2019", {"fin-2018"}),
    ("date:<=2019-01", {"fin-2018", "debut-2019"}),
    ("date:<2019-01-01", {"fin-2018"}),
    ("cloud date:>=2023", {"nouvel-an-2023", "fevrier-2023"}),
    ("year:>2019", {"nouvel-an-2023", "lendemain-2023", "fevrier-2023"}),
])
def test_date_comparisons_as_in_lucene(si, q: str, expected: set[str]) -> None:  # noqa: ANN001
    r = search(si, q, size=20)
    assert set(ids(r)) == expected, (q, ids(r), r.notes)


def test_a_date_that_is_no_date_gets_a_note(si) -> None:  # noqa: ANN001
    r = search(si, "cloud date:>2023-13-45")
    assert any("date non comprise" in n for n in r.notes), r.notes


@pytest.mark.parametrize("q, note", [
    ("cloud NOT", "« NOT » sans mot après"),
    ("cloud AND", "« AND » sans mot après"),
    ("AND cloud", "« AND » sans mot avant"),
    ("cloud AND OR tchap", "seul « OR »"),
    ("(cloud OR) nubo", "« OR » sans mot après"),
])
def test_a_dangling_operator_is_dropped_with_a_note(si, q: str, note: str) -> None:  # noqa: ANN001
    r = search(si, q)
    assert any(note in n for n in r.notes), r.notes
    assert r.total > 0


def test_an_unknown_field_is_named_and_its_value_searched(si) -> None:  # noqa: ANN001
    r = search(si, "auteur:tchap")
    assert any("champ inconnu « auteur »" in n for n in r.notes), r.notes
    assert set(ids(r)) == {"nouvel-an-2023", "lendemain-2023"}
    assert r.suggestion is None


@pytest.mark.parametrize("q", ["cloud and nubo", "cloud or tchap", "cloud et nubo", "cloud ou tchap",
                               "nubo AND cloud and", "cloud not nubo"])
def test_lowercase_operators_are_never_corrected(si, q: str) -> None:  # noqa: ANN001
    r = search(si, q)
    assert r.suggestion is None, (q, r.suggestion)
    assert r.total > 0


def test_lowercase_and_is_said_to_be_ignored(si) -> None:  # noqa: ANN001
    r = search(si, "cloud and nubo ")
    assert any("« and » ignoré" in n for n in r.notes), r.notes
    assert set(ids(r)[:2]) == {"fin-2018", "debut-2019"}


def test_examples_come_from_the_index_and_find_something(si) -> None:  # noqa: ANN001
    examples = syntax_examples(si)
    queries = [e.query for e in examples]
    assert len(examples) >= 10, queries
    for op in ("AND", "OR", "NOT", "title:", "tag:", "collection:", "date:", "year:", "*", '"'):
        assert any(op in q for q in queries), op
    for q in queries:
        assert search(si, q).total > 0, q


def test_examples_of_the_real_corpus_find_something(shared_corpus: Path, tmp_path: Path) -> None:
    from tests.conftest import build_index

    si = searcher(build_index(tmp_path / "index", shared_corpus))
    for ex in syntax_examples(si):
        assert search(si, ex.query).total > 0, ex.query


def _examples_of_page(html: str) -> list[str]:
    hrefs = re.findall(r'<a class="[^"]*\bexample" href="([^"]+)"', html)
    return [parse_qs(urlparse(unescape(h)).query)["q"][0] for h in hrefs]


def test_archives_help_examples_work_on_two_workers_while_writing(index: Path, tmp_path: Path) -> None:
    """Every example link of /archives finds documents, asked of two workers while a writer
    adds documents through the API."""
    key = "promises-key"
    server = start_server(index, {"COMMUNIQUES_API_KEY": key,
                                  "COMMUNIQUES_DOCUMENTS": str(tmp_path / "docs")}, workers=2)
    stop = threading.Event()
    errors: list[str] = []

    def write() -> None:
        n = 0
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "text/markdown"}
        while not stop.is_set() and n < 20:
            n += 1
            body = f"---\ntitle: Cloud note {n}\ndate: 2024-03-0{1 + n % 9} 10:00:00 +01:00\n---\n\nTexte.\n"
            r = httpx.put(f"{server.url}/api/documents/note-{n}?collection=communiques",
                          content=body, headers=headers, timeout=30)
            if r.status_code not in (200, 201):
                errors.append(r.text)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(3):
            page = httpx.get(server.url + "/archives", timeout=30)
            assert page.status_code == 200
            queries = _examples_of_page(page.text)
            assert len(queries) >= 10
            for q in queries:
                r = httpx.get(server.url + "/api/search", params={"q": q}, timeout=30)
                assert r.status_code == 200 and r.json()["total"] > 0, q
                assert httpx.get(server.url + "/archives", params={"q": q},
                                 timeout=30).status_code == 200, q
    finally:
        stop.set()
        writer.join()
        server.stop()
    assert not errors, errors
