"""Documents without a date (Jekyll accepts them; real drafts have none): indexed with no date,
after the dated ones on date sorts (both directions), « sans date » on pages, counted in a
« sans date » year bucket, left out by date filters; ``suggest`` needs only a title or a text.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from indexer.document import DocumentError, parse_text
from indexer.ingest import ingest
from indexer.schema import open_index
from indexer.search import SearchIndex, SearchRequest
from tests.conftest import ROOT, start_server

KEY = "undated-key"

DATED = """---
title: Le cloud de l’État en {year}
date: {year}-03-04 10:00:00 +01:00
tags:
- Cloud
---

Le cloud souverain progresse en {year}.
"""

UNDATED = """---
title: {title}
tags:
- Cloud
---

Un brouillon sur le cloud souverain, sans date.
"""


def write_corpus(folder: Path) -> Path:
    docs = folder / "communiques"
    docs.mkdir(parents=True)
    for year in (2019, 2021, 2023):
        (docs / f"cloud-{year}.md").write_text(DATED.format(year=year), encoding="utf-8")
    (docs / "brouillon-a.md").write_text(UNDATED.format(title="Brouillon A sur le cloud"),
                                         encoding="utf-8")
    (docs / "brouillon-b.md").write_text(
        UNDATED.format(title="Brouillon B sur le cloud").replace("title:", "date:\ntitle:"),
        encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("undated-corpus"))


@pytest.fixture(scope="module")
def index(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("undated-index")
    report = ingest(open_index(folder, create=True), [corpus], progress=False)
    assert report.rejected == [] and len(report.added) == 5
    return folder


@pytest.fixture(scope="module")
def si(index: Path) -> SearchIndex:
    return SearchIndex(open_index(index), preload=False)


UNDATED_IDS = {"brouillon-a", "brouillon-b"}


@pytest.mark.parametrize("date", ["", "date:\n", "date: ''\n", "date: ~\n"])
def test_missing_or_empty_date_is_none(date: str) -> None:
    doc = parse_text(f"---\ntitle: Sans date\n{date}---\n\nTexte.\n", "x", "communiques")
    assert doc.date is None and doc.year is None and doc.date_iso == ""


def test_a_bad_date_is_still_refused() -> None:
    with pytest.raises(DocumentError, match="field 'date'"):
        parse_text("---\ntitle: T\ndate: hier\n---\n", "x", "communiques")


@pytest.mark.parametrize("sort", ["date", "-date"])
def test_undated_sort_after_dated_both_ways(si: SearchIndex, sort: str) -> None:
    for q in ("", "cloud"):
        ids = [h.id for h in si.search(SearchRequest(q=q, sort=sort, size=10)).hits]
        assert len(ids) == 5
        assert set(ids[-2:]) == UNDATED_IDS, ids
        dated = ids[:3]
        assert dated == sorted(dated, reverse=sort == "-date")
        # a page boundary among them: the second page holds the undated ones
        page2 = si.search(SearchRequest(q=q, sort=sort, size=2, page=3)).hits
        assert [h.id for h in page2][0] in UNDATED_IDS


def test_year_facet_has_a_sans_date_bucket(si: SearchIndex) -> None:
    years = {f.value: (f.label, f.count) for f in si.search(SearchRequest(q="cloud")).facets["year"]}
    assert years["0"] == ("sans date", 2)
    assert years["2021"] == ("2021", 1)
    assert si.stats()["per_year"] == {"2019": 1, "2021": 1, "2023": 1, "sans date": 2}


def test_date_filters_leave_undated_out(si: SearchIndex) -> None:
    import datetime as dt

    for req in (SearchRequest(q="cloud", year=2021),
                SearchRequest(q="cloud", date_from=dt.date(1, 1, 1)),
                SearchRequest(q="cloud", date_to=dt.date(9999, 12, 31)),
                SearchRequest(q="cloud date:[0001-01-01 TO 9999-12-31]"),
                SearchRequest(q="year:2021 OR year:2023")):
        ids = {h.id for h in si.search(req).hits}
        assert ids and not ids & UNDATED_IDS, (req, ids)
    only = {h.id for h in si.search(SearchRequest(q="", year=0)).hits}
    assert only == UNDATED_IDS


def test_records_and_stats(si: SearchIndex) -> None:
    doc = si.document("brouillon-a")
    assert doc is not None and doc["date"] == ""
    cloud = next(t for t in si.stats()["tags"] if t["key"] == "cloud")
    assert cloud["count"] == 5 and (cloud["first"], cloud["last"]) == ("2019-03-04", "2023-03-04")
    assert all(r["date"] == "" for r in si.export(SearchRequest(q="", year=0)))


# --- suggest ---------------------------------------------------------------------------------


def suggest(model: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "suggest", "--model", str(model), *map(str, files)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )


def test_suggest_needs_only_a_title_or_a_text(tmp_path: Path, sample_model: Path | None) -> None:
    if sample_model is None:
        pytest.skip("no tag model")
    undated = tmp_path / "brouillon.md"
    undated.write_text(UNDATED.format(title="Le cloud de l’État"), encoding="utf-8")
    text_only = tmp_path / "texte.md"
    text_only.write_text("---\npublished: false\ndate: hier\n---\n\nLe cloud souverain de "
                         "l’État s’ouvre aux ministères.\n", encoding="utf-8")
    title_only = tmp_path / "titre.md"
    title_only.write_text("---\ntitle: Le cloud souverain de l’État\n---\n", encoding="utf-8")
    empty = tmp_path / "vide.md"
    empty.write_text("---\npublished: false\n---\n\n", encoding="utf-8")
    proc = suggest(sample_model, undated, text_only, title_only, empty)
    assert "Traceback" not in proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [("tags" in x) for x in lines] == [True, True, True, False], lines
    assert "no title and no text" in lines[3]["error"]
    assert proc.returncode == 1
    for line in lines[:3]:
        assert any(t["key"] == "cloud" for t in line["tags"]), line


# --- over HTTP -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    var = tmp_path_factory.mktemp("undated-var")
    live = start_server(index, {"COMMUNIQUES_API_KEY": KEY, "COMMUNIQUES_RATE_WRITE": "off",
                                "COMMUNIQUES_READ_KEY": "undated-read",
                                "COMMUNIQUES_DOCUMENTS": str(var / "documents")}, workers=2)
    try:
        yield live.url
    finally:
        live.stop()


AUTH = {"Authorization": f"Bearer {KEY}"}


def test_api_and_pages_show_undated_documents(server: str) -> None:
    with httpx.Client(base_url=server, timeout=30, headers=AUTH) as client:
        for sort in ("date", "-date"):
            hits = client.get("/api/search", params={"q": "cloud", "sort": sort}).json()["hits"]
            assert {h["id"] for h in hits[-2:]} == UNDATED_IDS
        facets = client.get("/api/search", params={"q": "cloud"}).json()["facets"]["year"]
        assert {"value": "0", "label": "sans date", "count": 2} in facets
        only = client.get("/api/search", params={"q": "", "year": 0}).json()
        assert {h["id"] for h in only["hits"]} == UNDATED_IDS
        dated = client.get("/api/search", params={"q": "cloud", "date_from": "2000-01-01"})
        assert not {h["id"] for h in dated.json()["hits"]} & UNDATED_IDS
        page = client.get("/documents/brouillon-a")
        assert page.status_code == 200 and "sans date" in page.text
        results = client.get("/", params={"q": "brouillon", "sort": "date"})
        assert results.status_code == 200 and "sans date" in results.text
        bucket = client.get("/", params={"q": "cloud", "year": "0"})
        assert bucket.status_code == 200 and "Brouillon A" in bucket.text
        assert "Le cloud de l’État en 2021" not in bucket.text
        assert client.get("/api/stats").json()["per_year"]["sans date"] >= 2
        assert client.get("/api/export", params={"q": "", "format": "csv"}).status_code == 200


def test_put_undated_while_searching(server: str) -> None:
    """Writes of undated documents through the API while both workers answer searches."""
    errors: list[str] = []
    stop = threading.Event()

    def read() -> None:
        with httpx.Client(base_url=server, timeout=60, headers=AUTH) as client:
            while not stop.is_set():
                for params in ({"q": "cloud", "sort": "date"}, {"q": "", "year": 0}):
                    r = client.get("/api/search", params=params)
                    if r.status_code != 200:
                        errors.append(f"{params}: {r.status_code}")

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        for i in range(4):
            r = httpx.put(f"{server}/api/documents/sans-date-{i}", headers={
                **AUTH, "Content-Type": "text/markdown"}, timeout=60,
                content=UNDATED.format(title=f"Note interne {i}").encode())
            assert r.status_code == 200, r.text
    finally:
        stop.set()
        for t in readers:
            t.join(timeout=60)
    assert errors == []
    # Each worker opens a new index generation within a fraction of a second of a commit
    # (the writing worker at once): wait for the other one, as a reader would.
    deadline = time.monotonic() + 15
    while True:
        hits = httpx.get(f"{server}/api/search", params={"q": "note interne", "sort": "-date",
                                                         "size": 20}, headers=AUTH, timeout=30)
        found = {h["id"] for h in hits.json()["hits"] if h["id"].startswith("sans-date-")}
        if found == {f"sans-date-{i}" for i in range(4)} or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert found == {f"sans-date-{i}" for i in range(4)}
    assert all(h["date"] == "" for h in hits.json()["hits"] if h["id"] in found)
