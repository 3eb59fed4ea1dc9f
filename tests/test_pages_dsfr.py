"""The DSFR pages over HTTP: the design system served by the service, the results fragment (the
one renderer the script uses), the footer's pages, OpenSearch, canonical links, French messages,
and the document body rendered from markdown and sanitised."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.markup import body_html, event_info
from tests.conftest import SAMPLE_CORPUS, build_index, start_server
from tests.test_pages import CSP, Page, api_search, get, page, result_ids

KEY = {"Authorization": "Bearer test-key-123"}
ROOT = Path(__file__).resolve().parents[1]
DSFR = ROOT / "node_modules" / "@gouvfr" / "dsfr" / "dist"


# --- the sanitiser, alone -------------------------------------------------------------------------


def test_body_html_keeps_structure_and_drops_what_can_run() -> None:
    md = (
        "# Titre\n\nDu **gras**, de l’*italique* et [un lien](https://exemple.org/page){:target=\"_blank\"}"
        " puis [interne](https://www.numerique.gouv.fr/x/).\n\n"
        "{: .citation}\n> Une citation\n\n- un\n- deux\n\n"
        "| a | b |\n| - | - |\n| 1 | 2 |\n\n"
        "<script>alert(1)</script><img src=x onerror=alert(2)>"
        "[piège](javascript:alert(3)) <a href=\"https://x.org\" onclick=\"alert(4)\">x</a>\n"
    )
    html = body_html(md, "www.numerique.gouv.fr")
    assert "<h2>Titre</h2>" in html and "<h1" not in html
    assert "<strong>gras</strong>" in html and "<em>italique</em>" in html
    assert "<blockquote>" in html and "<li>un</li>" in html and "<table>" in html
    assert "{:" not in html and "citation" not in html.split("<blockquote>")[0][-40:]
    assert "<script" not in html and "alert(1)" not in html and "<img" not in html
    assert "href=\"javascript" not in html and "onclick" not in html
    ext = html.split('href="https://exemple.org/page"')[1].split(">")[0]
    assert 'target="_blank"' in ext and "nouvelle fenêtre" in ext and 'rel="noopener"' in ext
    internal = html.split('href="https://www.numerique.gouv.fr/x/"')[1].split(">")[0]
    assert "target" not in internal and 'rel="noopener"' in internal


def test_event_fields_from_front_matter() -> None:
    info = event_info({"event_start_date": "2024-06-06 09:30:00 +02:00", "lieu": "Paris",
                       "adresse": "1 rue X", "inscription": "https://exemple.org/inscription",
                       "champs_informations": [{"intitule": "Public", "contenu": "Agents"}]})
    assert info and info.place == "Paris" and info.registration.endswith("/inscription")
    assert info.details == [("Public", "Agents")]
    assert not event_info({"title": "rien"})


# --- the service ----------------------------------------------------------------------------------


def test_dsfr_is_served_by_the_service(live_server: str) -> None:
    if not DSFR.is_dir():
        pytest.skip("node_modules/@gouvfr/dsfr is missing: run `npm ci --ignore-scripts`")
    for path, kind in (("/dsfr/dsfr.min.css", "text/css"), ("/dsfr/dsfr.module.min.js", "text/javascript"),
                       ("/dsfr/fonts/Marianne-Regular.woff2", "font/woff2"),
                       ("/dsfr/icons/system/checkbox-circle-line.svg", "image/svg+xml")):
        r = httpx.get(live_server + path, timeout=30)
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind), path
        assert r.headers["content-security-policy"] == CSP
    for bad in ("/dsfr/../package.json", "/dsfr/%2e%2e/package.json", "/dsfr/dsfr.css.map",
                "/dsfr/.hidden.css", "/dsfr/scripts/x.py", "/dsfr/nothing.css"):
        assert httpx.get(live_server + bad, timeout=30).status_code == 404, bad


def test_fragment_is_the_page_partials(live_server: str) -> None:
    r = httpx.get(live_server + "/fragments/recherche", params={"q": "cloud"}, timeout=30)
    assert r.status_code == 200 and r.headers["content-security-policy"] == CSP
    frag = Page(r.text)
    for part in ("result-count", "param-errors", "active-filters", "facets", "results-body"):
        assert frag.all("div", id=part) or frag.all("p", id=part), part
    api = api_search(live_server, q="cloud")
    assert result_ids(frag)[: len(api["hits"])] == [h["id"] for h in api["hits"]]
    _, full = page(live_server, "/", q="cloud")
    assert frag.text_of["result-count"] == full.text_of["result-count"]
    assert "<html" not in r.text and "<header" not in r.text
    bad = httpx.get(live_server + "/fragments/recherche", params={"q": "x", "date_from": "2024-01-01",
                                                                 "date_to": "2020-01-01"}, timeout=30)
    assert bad.status_code == 400 and "postérieure" in bad.text


def test_footer_pages_opensearch_and_canonical(live_server: str) -> None:
    _, home = page(live_server, "/")
    footer_links = {a.get("href") for t, a in home.elements
                    if t == "a" and "fr-footer__bottom-link" in a.get("class", "")}
    assert {"/plan-du-site", "/accessibilite", "/mentions-legales", "/donnees-personnelles"} <= footer_links
    assert home.all("link", rel="search", href="/opensearch.xml")
    for path in ("/accessibilite", "/mentions-legales", "/donnees-personnelles", "/plan-du-site"):
        r, p = page(live_server, path)
        assert r.headers["content-security-policy"] == CSP and len(p.all("h1")) == 1
    assert "partiellement conforme" in get(live_server, "/accessibilite").text
    assert "0 serious" not in get(live_server, "/accessibilite").text
    osd = get(live_server, "/opensearch.xml")
    assert osd.headers["content-type"].startswith("application/opensearchdescription+xml")
    assert "/?q={searchTerms}" in osd.text
    doc_id = api_search(live_server, q="cloud")["hits"][0]["id"]
    _, doc = page(live_server, f"/documents/{doc_id}")
    (canonical,) = doc.all("link", rel="canonical")
    assert canonical["href"].startswith("https://") and doc_id in canonical["href"]


def test_pages_past_the_last_and_reversed_dates_speak_french(live_server: str) -> None:
    total = api_search(live_server, q="numérique")["total"]
    last = -(-total // 10)
    r, p = page(live_server, "/", status=200, q="numérique", page="999")
    assert f"La page 999 n’existe pas : cette recherche compte {last} pages" in p.text_of["past-last"]
    (link,) = p.all("a", **{"data-page": str(last)})[-1:]
    assert f"page={last}" in link["href"]
    r, p = page(live_server, "/", status=400, q="cloud", date_from="2024-01-01", date_to="2020-01-01")
    assert "postérieure à la date de fin" in p.text_of["search-error"] and "must not" not in r.text


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    index = build_index(tmp_path_factory.mktemp("dsfr-index"), SAMPLE_CORPUS)
    var = tmp_path_factory.mktemp("dsfr-var")
    server = start_server(index, {"COMMUNIQUES_API_KEY": "test-key-123",
                                  "COMMUNIQUES_DOCUMENTS": str(var / "documents")}, workers=2)
    yield server.url
    server.stop()


DRAFT = """---
title: Brouillon quokkafragment secret
date: 2024-03-01 10:00:00 +01:00
published: false
---

Texte quokkafragment.
"""
PUBLISHED = """---
title: Publié quokkafragment
date: 2024-03-02 10:00:00 +01:00
---

## Un intertitre

Texte quokkafragment avec [un lien](https://exemple.org/).
"""


def test_fragments_while_writing_on_two_workers(two_workers: str) -> None:
    """Readers fetch fragments while documents are written: no error, never a draft for the
    public, and the published document appears, its page rendered from its markdown."""
    base = two_workers
    errors: list[str] = []
    stop = threading.Event()

    def read() -> None:
        with httpx.Client(base_url=base, timeout=30) as c:
            while not stop.is_set():
                r = c.get("/fragments/recherche", params={"q": "quokkafragment"})
                if r.status_code != 200:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
                if "secret" in r.text:
                    errors.append("a draft reached the public")

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for i in range(3):
            for doc_id, text in ((f"dsfr-draft-{i}", DRAFT), (f"dsfr-pub-{i}", PUBLISHED)):
                r = httpx.put(f"{base}/api/documents/{doc_id}", params={"collection": "actualites"},
                              content=text, headers={"Content-Type": "text/markdown", **KEY}, timeout=60)
                assert r.status_code in (200, 201), r.text
    finally:
        stop.set()
        for t in readers:
            t.join(timeout=60)
    assert not errors, errors[:5]
    with httpx.Client(base_url=base, timeout=30) as c:
        for _ in range(4):  # either worker
            frag = c.get("/fragments/recherche", params={"q": "quokkafragment"}).text
            assert "dsfr-pub-0" in frag and "dsfr-draft-0" not in frag
        signed = c.get("/fragments/recherche", params={"q": "quokkafragment"}, headers=KEY).text
        assert "dsfr-draft-0" in signed and "Brouillon" in signed
        doc = c.get("/documents/dsfr-pub-0").text
        assert "<h2>Un intertitre</h2>" in doc and 'rel="noopener"' in doc
        assert c.get("/documents/dsfr-draft-0").status_code == 404


def test_event_details_of_another_shape_are_ignored_not_an_error() -> None:
    """A ``champs_informations`` that is a date, a string or a mapping (seen from PUT): no
    details, and the page still renders."""
    import datetime

    for value in (datetime.date(2024, 1, 2), "texte", {"intitule": "x"}, 3):
        assert event_info({"champs_informations": value}).details == []
