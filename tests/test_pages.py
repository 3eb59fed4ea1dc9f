"""The server-rendered pages over real HTTP, without JavaScript: forms, links, escaping, CSP."""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlparse

import httpx
import pytest

KEY = {"Authorization": "Bearer test-key-123"}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
DOC_ID = "cloud-interministeriel-nubo-le-cloud-de-letat-souvre-a-de-nouveaux-ministeres"
DOC_WITH_ATTACHMENT = "intelligence-artificielle-letat-partage-ses-modeles-et-ses-jeux-de-donnees-dentrainement"


class Page(HTMLParser):
    """Just enough of the DOM for the checks: elements with attributes, text by element id."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.inline_scripts = 0
        self.style_elements = 0
        self._stack: list[tuple[str, dict[str, str], list[str]]] = []
        self.text_of: dict[str, str] = {}
        self._script_has_src = False
        self._in_script = False
        self.feed(html)

    VOID = {"meta", "link", "input", "br", "img", "hr", "source", "wbr"}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.elements.append((tag, a))
        if tag == "script":
            self._in_script = True
            self._script_has_src = "src" in a
            if not self._script_has_src:
                self.inline_scripts += 1
        if tag == "style":
            self.style_elements += 1
        if tag not in self.VOID:
            self._stack.append((tag, a, []))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False
        while self._stack:
            t, a, parts = self._stack.pop()
            text = "".join(parts)
            if "id" in a:
                self.text_of[a["id"]] = " ".join(text.split())
            if self._stack:
                self._stack[-1][2].append(text)
            if t == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._in_script and self._script_has_src and data.strip():
            self.inline_scripts += 1
        if self._stack:
            self._stack[-1][2].append(data)

    def all(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [a for t, a in self.elements
                if t == tag and all(a.get(k.rstrip("_")) == v for k, v in attrs.items())]

    def links(self, css_class: str) -> list[str]:
        return [a["href"] for t, a in self.elements
                if t == "a" and css_class in a.get("class", "").split()]


def get(base: str, path: str, **params: object) -> httpx.Response:
    """GET base + path; ``params`` (when given) replace the path's own query string."""
    return httpx.get(base + path, params=params or None, timeout=30)


def page(base: str, path: str, status: int = 200, **params: object) -> tuple[httpx.Response, Page]:
    r = get(base, path, **params)
    assert r.status_code == status, (path, r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("text/html")
    return r, Page(r.text)


def api_search(base: str, **params: object) -> dict:
    r = get(base, "/api/search", **params)
    assert r.status_code == 200, r.text
    return r.json()


def result_ids(p: Page) -> list[str]:
    ids = []
    for t, a in p.elements:
        if t == "a" and a.get("href", "").startswith("/documents/"):
            ids.append(a["href"].removeprefix("/documents/"))
    return ids


def result_titles(html: str) -> list[str]:
    return re.findall(r'<h3 class="[^"]*\bresult-title"><a href="/documents/[^"]+">(.*?)</a></h3>', html)


PAGES = ["/", "/?q=cloud", f"/documents/{DOC_ID}", "/editeur", "/archives",
         "/archives?q=cloud&date_from=2019-01-01", "/documents/inconnu"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_is_french_accessible_and_has_a_strict_csp(live_server: str, path: str) -> None:
    status = 404 if "inconnu" in path else 200
    r = httpx.get(live_server + path, timeout=30)
    assert r.status_code == status
    assert r.headers["content-security-policy"] == CSP
    html = r.text
    p = Page(html)
    assert p.all("html", lang="fr")
    for landmark in ("header", "nav", "main", "footer"):
        assert p.all(landmark), f"{path}: no <{landmark}>"
    skip = p.all("a", href="#contenu")
    assert skip and p.all("main", id="contenu")
    assert p.elements.index(("a", skip[0])) < p.elements.index(("main", p.all("main")[0]))
    # no inline script or style anywhere: the CSP would block them
    assert p.inline_scripts == 0 and p.style_elements == 0
    assert not [a for _, a in p.elements if "style" in a or any(k.startswith("on") for k in a)]
    for t, a in p.elements:
        if t == "script":
            assert a["src"].startswith(("/static/", "/dsfr/"))
    # every field has a label
    labelled = {a.get("for") for a in p.all("label")}
    for t, a in p.elements:
        if t in ("input", "select", "textarea") and a.get("type") != "hidden":
            assert a.get("id") in labelled or a.get("aria-label"), f"{path}: unlabelled {t} {a}"
    ids = [a["id"] for _, a in p.elements if "id" in a]
    assert len(ids) == len(set(ids)), f"{path}: duplicate ids"
    assert len(p.all("h1")) == 1


def test_static_files_are_served_with_the_csp(live_server: str) -> None:
    for name, kind in (("site.css", "text/css"), ("search.js", "text/javascript"),
                       ("editor.js", "text/javascript")):
        r = get(live_server, f"/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
        assert r.headers["content-security-policy"] == CSP
    for bad in ("/static/nope.js", "/static/..%2Fpages.py", "/static/%2e%2e/routes/pages.py",
                "/static/app.py"):
        assert httpx.get(live_server + bad, timeout=10).status_code == 404


def test_the_search_form_works_without_javascript(live_server: str) -> None:
    _, home = page(live_server, "/")
    form = home.all("form", id="search-form")[0]
    assert form["method"] == "get" and form["action"] == "/"
    assert home.all("input", name="q") and home.all("select", name="sort")
    assert home.all("label", for_="q")

    r, p = page(live_server, "/", q="cloud")
    api = api_search(live_server, q="cloud")
    assert result_ids(p)[: len(api["hits"])] == [h["id"] for h in api["hits"]]
    assert [t for t in result_titles(r.text)] == [h["title_html"] for h in api["hits"]]
    assert "<mark>" in r.text
    count = p.text_of["result-count"]
    assert count == f"{api['total']} résultats pour « cloud »"
    assert p.all("p", id="result-count", role="status")[0]["aria-live"] == "polite"
    assert p.all("input", id="q")[0]["value"] == "cloud"


def test_facets_sort_and_pages_are_plain_links(live_server: str) -> None:
    from models.vocabulary import Vocabulary

    voc = Vocabulary()
    _, p = page(live_server, "/", q="numérique")
    api = api_search(live_server, q="numérique", size=100)
    tag = api["facets"]["tag"][0]
    href = next(h for h in p.links("facet-link")
                if parse_qs(urlparse(h).query).get("tag") == [tag["value"]])
    assert parse_qs(urlparse(href).query) == {"q": ["numérique"], "tag": [tag["value"]]}
    _, filtered = page(live_server, href)
    assert filtered.text_of["result-count"].startswith(f"{tag['count']} résultat")
    assert filtered.all("a", **{"aria-current": "true"}), "the active facet is marked"
    chips = filtered.links("chip")
    assert len(chips) == 1 and parse_qs(urlparse(chips[0]).query) == {"q": ["numérique"]}
    for doc_id in result_ids(filtered)[:10]:
        doc = get(live_server, f"/api/documents/{doc_id}").json()
        assert tag["value"] in {voc.key(t) for t in doc["tags"]}, doc_id

    year = api["facets"]["year"][0]["value"]
    r, by_year = page(live_server, "/", q="numérique", year=year)
    results = r.text.split('id="results"')[1].split("</ol>")[0]
    dates = re.findall(r'<time datetime="([^"]+)"', results)
    assert dates and all(d.startswith(year) for d in dates)

    newest = [h["id"] for h in api_search(live_server, q="numérique", sort="-date")["hits"]]
    _, sorted_page = page(live_server, "/", q="numérique", sort="-date")
    assert result_ids(sorted_page)[:10] == newest
    assert sorted_page.all("option", value="-date", selected="")

    pages = p.links("page-link")
    assert pages, "more than one page of results"
    second = next(h for h in pages if "page=2" in h)
    _, p2 = page(live_server, second)
    assert p2.all("ol", id="results")[0]["start"] == "11"
    assert result_ids(p2)[:10] == [h["id"] for h in api_search(live_server, q="numérique", page=2)["hits"]]
    assert p2.all("a", **{"aria-current": "page", "data-page": "2"})


def test_suggestion_is_a_link_and_the_empty_state_shows(live_server: str) -> None:
    _, p = page(live_server, "/", q="clodu souverain ")
    assert p.text_of["suggestion"] == "Essayez avec cloud souverain"
    link = next(a["href"] for t, a in p.elements if t == "a" and "data-q" in a)
    assert parse_qs(urlparse(link).query)["q"][0].strip() == "cloud souverain"

    r, empty = page(live_server, "/", q="zzzyyyxxx qqqwwweee ")
    assert empty.text_of["result-count"].startswith("Aucun résultat")
    assert 'id="empty-state" class="fr-callout empty-state">' in r.text  # not hidden
    assert "Aucun document ne correspond" in empty.text_of["empty-state"]


def test_notes_are_shown(live_server: str) -> None:
    api = api_search(live_server, q="cloud xylophonique ")
    assert api["notes"]
    _, p = page(live_server, "/", q="cloud xylophonique ")
    assert api["notes"][0] in p.text_of["notes"]


def test_bad_input_gives_a_page_with_a_reason_never_a_crash(live_server: str) -> None:
    _, p = page(live_server, "/", status=400, q="*ation")
    assert "wildcard" in p.text_of["search-error"]
    _, p = page(live_server, "/", q="cloud", page="abc", year="zz", date_from="hier", sort="title")
    errors = p.text_of["param-errors"]
    assert "Année ignorée" in errors and "Date de début ignorée" in errors
    assert p.text_of["result-count"].startswith(f"{api_search(live_server, q='cloud')['total']} résultat")
    _, p = page(live_server, "/", q="x" * 700)
    assert "trop longue" in p.text_of["param-errors"]
    r, p = page(live_server, "/", q="<script>alert(1)</script>", tag="<b>x</b>")
    assert "<script>alert" not in r.text and "<b>x" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    # a page number beyond any (the API's 422) shows the first page rather than an error
    _, beyond = page(live_server, "/", q="cloud", page="99999")
    _, first = page(live_server, "/", q="cloud")
    assert result_ids(beyond) == result_ids(first) and result_ids(first)
    assert beyond.text_of["result-count"] == first.text_of["result-count"]


# The title's markup is escaped for markdown (``\\<``) so that the stored title holds it as text.
HOSTILE = r"""---
title: 'Alerte <img src=x onerror=alert(1)> frobnitz'
date: 2024-01-02 10:00:00 +01:00
tags:
- <script>alert(2)</script>
categories:
- <i>catégorie</i>
---

Le corps frobnitz contient <script>alert(3)</script> et &lt;img src=x onerror=alert(4)&gt; en texte.

Un second <b>paragraphe</b> frobnitz.
"""


def test_hostile_document_is_escaped_everywhere(live_server: str) -> None:
    url = live_server + "/api/documents/pages-hostile-frobnitz"
    r = httpx.put(url, content=HOSTILE, headers={"Content-Type": "text/markdown", **KEY}, timeout=30)
    assert r.status_code == 200, r.text
    try:
        stored = get(live_server, "/api/documents/pages-hostile-frobnitz").json()
        assert stored["title"] == "Alerte <img src=x onerror=alert(1)> frobnitz"
        for path, params in (("/", {"q": "frobnitz"}), ("/documents/pages-hostile-frobnitz", {}),
                             ("/archives", {"q": "frobnitz"})):
            resp, p = page(live_server, path, **params)
            html = resp.text
            assert "<img" not in html and "<script>alert" not in html and "<i>cat" not in html
            assert "&lt;img src=x onerror=alert(1)&gt;" in html
            if not path.startswith("/documents/"):  # a document's body keeps harmless markup
                assert "<b>paragraphe" not in html
        _, p = page(live_server, "/", q="frobnitz")
        assert "&lt;script&gt;alert(2)&lt;/script&gt;" in get(live_server, "/", q="frobnitz").text
        _, doc = page(live_server, "/documents/pages-hostile-frobnitz")
        assert doc.text_of["doc-title"] == "Alerte <img src=x onerror=alert(1)> frobnitz"
    finally:
        assert httpx.delete(url, headers=KEY, timeout=30).status_code == 200


def test_document_page(live_server: str) -> None:
    api = get(live_server, f"/api/documents/{DOC_ID}").json()
    r, p = page(live_server, f"/documents/{DOC_ID}")
    assert p.text_of["doc-title"] == api["title"]
    assert api["chapeau"] in r.text.replace("&#39;", "'")
    # the body is the source's markdown rendered (tests/test_pages_dsfr.py checks the markup)
    body = r.text.split('class="doc-body"')[1].split("</div>")[0]
    assert body.count("<p>") >= 1 and "{:" not in body
    assert "7 novembre 2023" in r.text
    tag_links = [a["href"] for t, a in p.elements if t == "a" and "tag-link" in a.get("class", "")]
    assert len(tag_links) == len(api["tags"]) and all(h.startswith("/?tag=") for h in tag_links)
    for link, tag in zip(tag_links, api["tags"], strict=True):  # each link lists its tag's documents
        _, tagged = page(live_server, link)
        expected = api_search(live_server, tag=tag)
        shown = result_ids(tagged)
        assert DOC_ID in shown and shown == [h["id"] for h in expected["hits"]][: len(shown)]
        assert tagged.text_of["result-count"].startswith(f"{expected['total']} document")
    similar = [s["id"] for s in get(live_server, f"/api/documents/{DOC_ID}/similar").json()]
    similar_links = [h.removeprefix("/documents/") for t, a in p.elements if t == "a"
                     for h in [a.get("href", "")] if h.startswith("/documents/")]
    assert similar and similar_links == similar

    r, p = page(live_server, f"/documents/{DOC_WITH_ATTACHMENT}")
    assert p.text_of["attachments-title"] == "Pièces jointes"
    assert "/uploads/CP_IA_RESSOURCES_OUVERTES_JANVIER2025.pdf" in r.text


def test_unknown_document_is_a_404_page(live_server: str) -> None:
    r, p = page(live_server, "/documents/inconnu", status=404)
    assert "introuvable" in r.text and "inconnu" in r.text
    assert r.headers["content-security-policy"] == CSP
    r, _ = page(live_server, "/documents/<b>x", status=404)
    assert "<b>x" not in r.text and "&lt;b&gt;x" in r.text


def test_editor_page(live_server: str) -> None:
    r, p = page(live_server, "/editeur")
    for field in ("ed-title", "ed-text", "ed-k", "ed-doc-id"):
        assert p.all("label", for_=field), field
    assert p.text_of["yaml-output"] == "tags: []"
    assert p.all("button", id="copy-yaml") and p.all("button", id="send-feedback")
    assert "/static/editor.js" in r.text and "<noscript>" in r.text
    assert p.all("div", id="editor-status", role="status")
    # sent without JavaScript: the text comes back, escaped, with a word on what is needed
    r = httpx.post(live_server + "/editeur", data={"title": "Mon <b>titre</b>", "text": "Du texte"},
                   timeout=30)
    assert r.status_code == 200 and r.headers["content-security-policy"] == CSP
    assert 'value="Mon &lt;b&gt;titre&lt;/b&gt;"' in r.text and ">Du texte</textarea>" in r.text
    assert "JavaScript" in r.text


# The examples come from the index served (tests/test_query_promises.py checks each finds
# something); every operator and field is shown.
EXAMPLES = ['"', '"~3', "AND", "OR", "NOT", "(", " -", "title:", "tag:", "collection:",
            "category:", "date:[", "date:>=", "year:", "*"]


def test_archives_explains_the_syntax_and_exports_the_query(live_server: str) -> None:
    r, p = page(live_server, "/archives")
    help_text = p.text_of["syntaxe"]
    for example in EXAMPLES:
        assert example in help_text, example
    assert p.all("input", type="date", name="date_from") and p.all("input", type="date", name="date_to")
    assert p.all("select", name="sort")
    for href in p.links("example"):
        assert get(live_server, href).status_code == 200, href

    r, p = page(live_server, "/archives", q="numérique", date_from="2019-01-01", date_to="2021-12-31",
                sort="-date")
    api = api_search(live_server, q="numérique", date_from="2019-01-01", date_to="2021-12-31")
    assert p.text_of["result-count"].startswith(f"{api['total']} résultat")
    exports = [a["href"] for t, a in p.elements if t == "a" and a.get("href", "").startswith("/api/export?")]
    assert len(exports) == 4  # csv, csv-excel, xlsx, jsonl
    for href in exports:
        params = parse_qs(urlparse(href).query)
        assert params["q"] == ["numérique"] and params["date_from"] == ["2019-01-01"]
        assert params["date_to"] == ["2021-12-31"] and params["sort"] == ["-date"]
    csv_href = next(h for h in exports if "format=csv" in h)
    jsonl_href = next(h for h in exports if "format=jsonl" in h)
    rows = list(csv.DictReader(io.StringIO(get(live_server, csv_href).text)))
    assert len(rows) == api["total"] > 0
    assert len(get(live_server, jsonl_href).text.splitlines()) == api["total"]
    assert all("2019" <= row["date"][:4] <= "2021" for row in rows)
    # the archives' pages and facets stay on /archives
    assert all(urljoin("/archives", h).startswith("/archives") for h in p.links("facet-link"))
