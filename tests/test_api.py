"""The search service over real HTTP (uvicorn on a free loopback port)."""

from __future__ import annotations

import csv
import html
import io
import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_search_cli import load_queries, reciprocal_rank

KEY = {"Authorization": "Bearer test-key-123"}


def get(base: str, path: str, **params: object) -> httpx.Response:
    return httpx.get(base + path, params=params, timeout=30)


def search(base: str, **params: object) -> dict:
    r = get(base, "/api/search", **params)
    assert r.status_code == 200, r.text
    return r.json()


def test_response_shape(live_server: str) -> None:
    data = search(live_server, q="cloud")
    assert {"total", "took_ms", "page", "size", "hits", "facets", "suggestion"} <= set(data)
    hit = data["hits"][0]
    assert {"id", "path", "url", "title", "title_html", "snippet_html", "date", "tags",
            "collection", "score"} <= set(hit)
    assert set(data["facets"]) == {"tag", "collection", "year"}
    assert "<mark>" in hit["title_html"] + hit["snippet_html"]
    assert len(hit["snippet_html"].split()) <= 45


def test_every_word_must_match_then_or(live_server: str) -> None:
    both = search(live_server, q="cloud nubo ")
    assert both["total"] >= 1
    for h in both["hits"]:
        doc = get(live_server, f"/api/documents/{h['id']}").json()
        text = (doc["title"] + doc["chapeau"] + doc["body"]).lower()
        if both["mode"] == "box":
            assert "cloud" in text and "nubo" in text
    # a word found nowhere does not empty the result: OR takes over
    fallback = search(live_server, q="cloud xylophonique ")
    assert fallback["total"] > 0 and fallback["mode"] == "or"


def test_last_word_is_a_prefix_while_typing(live_server: str) -> None:
    typed = search(live_server, q="cloud interministériel nu")
    assert typed["hits"][0]["id"].startswith("cloud-interministeriel-nubo")
    assert "<mark>Nubo</mark>" in typed["hits"][0]["title_html"]


@pytest.mark.parametrize("typo", ["accessibilte", "accesibilité", "cybersécurtié"])
def test_typos_are_forgiven(live_server: str, typo: str) -> None:
    data = search(live_server, q=typo + " ")
    assert data["total"] > 0
    assert "<mark>" in data["hits"][0]["title_html"] + data["hits"][0]["snippet_html"]


def test_suggestion_for_a_misspelt_word(live_server: str) -> None:
    assert search(live_server, q="clodu souverain ")["suggestion"].strip() == "cloud souverain"
    assert search(live_server, q="cloud souverain ")["suggestion"] is None


def test_accents_and_elisions_optional(live_server: str) -> None:
    with_accents = search(live_server, q="l’identité numérique ")
    without = search(live_server, q="l'identite numerique ")
    assert with_accents["total"] == without["total"] > 0
    assert [h["id"] for h in with_accents["hits"]] == [h["id"] for h in without["hits"]]


def test_filters_and_facets(live_server: str) -> None:
    data = search(live_server, q="numérique", size=100)
    tags = {f["value"]: f["count"] for f in data["facets"]["tag"]}
    years = {f["value"]: f["count"] for f in data["facets"]["year"]}
    assert sum(years.values()) == data["total"]
    tag, count = next(iter(tags.items()))
    filtered = search(live_server, q="numérique", tag=tag, size=100)
    assert filtered["total"] == count
    year = next(iter(years))
    by_year = search(live_server, q="numérique", year=year, size=100)
    assert by_year["total"] == years[year]
    assert all(h["date"].startswith(year) for h in by_year["hits"])
    coll = search(live_server, q="numérique", collection="evenements", size=100)
    assert coll["total"] > 0 and all(h["collection"] == "evenements" for h in coll["hits"])
    ranged = search(live_server, q="numérique", date_from="2020-01-01", date_to="2020-12-31", size=100)
    assert ranged["total"] == years.get("2020", 0)


def test_tag_variants_filter_together(live_server: str) -> None:
    a = search(live_server, tag="Etat plateforme", size=100)["total"]
    b = search(live_server, tag="État plateforme", size=100)["total"]
    assert a == b > 0


def test_date_sort(live_server: str) -> None:
    newest = [h["date"] for h in search(live_server, q="numérique", sort="-date", size=50)["hits"]]
    oldest = [h["date"] for h in search(live_server, q="numérique", sort="date", size=50)["hits"]]
    assert newest == sorted(newest, reverse=True) and oldest == sorted(oldest)


def test_newest_first_on_ties(live_server: str) -> None:
    dates = [h["date"] for h in search(live_server, q="", size=100)["hits"]]
    assert dates == sorted(dates, reverse=True)


def test_archivist_syntax(live_server: str) -> None:
    phrase = search(live_server, q='"cloud interne"')
    assert phrase["total"] >= 1 and phrase["mode"] == "advanced"
    excluded = search(live_server, q="cloud -nubo", size=100)
    assert excluded["total"] > 0
    assert all("nubo" not in h["id"] for h in excluded["hits"])
    titled = search(live_server, q="title:accessibilité", size=100)
    assert titled["total"] > 0 and all("ccessib" in h["title"] for h in titled["hits"])
    ored = search(live_server, q="nubo OR tchap", size=100)["total"]
    assert ored >= search(live_server, q="nubo ", size=100)["total"] + 1
    dated = search(live_server, q="date:[2019-01-01 TO 2019-12-31]", size=100)
    assert dated["total"] > 0 and all(h["date"].startswith("2019") for h in dated["hits"])
    tagged = search(live_server, q='tag:"Etat plateforme"', size=100)
    assert tagged["total"] == search(live_server, tag="État plateforme", size=100)["total"]


@pytest.mark.parametrize("q", ['"cloud', "(((", "date:[hier TO demain]", "tag:", "AND OR NOT", "a:b:c", "~", "^"])
def test_bad_syntax_is_never_a_500(live_server: str, q: str) -> None:
    r = get(live_server, "/api/search", q=q)
    assert r.status_code == 200, r.text


def test_limits_are_clear_4xx(live_server: str) -> None:
    assert get(live_server, "/api/search", q="x" * 600).status_code == 422
    assert get(live_server, "/api/search", size=1000).status_code == 422
    r = get(live_server, "/api/search", page=5000, size=100)
    assert r.status_code == 400 and "page" in r.json()["detail"]
    r = get(live_server, "/api/search", q="*ation")
    assert r.status_code == 400 and "wildcard" in r.json()["detail"]
    r = get(live_server, "/api/search", sort="title")
    assert r.status_code == 422 and "sort" in r.json()["detail"]


def test_autocomplete(live_server: str) -> None:
    data = get(live_server, "/api/autocomplete", q="accessib").json()
    items = data["completions"]
    assert 0 < len(items) <= 8
    assert any(i["kind"] == "term" and i["text"].lower().startswith("accessib") for i in items)
    assert any(i["kind"] == "title" for i in items)


def test_document_and_similar(live_server: str) -> None:
    hit = search(live_server, q="cloud nubo ")["hits"][0]
    doc = get(live_server, f"/api/documents/{hit['id']}").json()
    assert doc["title"] == hit["title"] and doc["body"]
    similar = get(live_server, f"/api/documents/{hit['id']}/similar").json()
    assert similar and hit["id"] not in [s["id"] for s in similar]
    assert any("Cloud" in s["tags"] or "cloud" in s["title"].lower() for s in similar[:3])
    assert get(live_server, "/api/documents/inconnu").status_code == 404


def test_export_all_matches(live_server: str) -> None:
    total = search(live_server, q="numérique")["total"]
    r = get(live_server, "/api/export", q="numérique", format="csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == total > 10
    r = get(live_server, "/api/export", q="numérique", format="jsonl", fields="id,title,date")
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert len(lines) == total and set(lines[0]) == {"id", "title", "date"}
    assert get(live_server, "/api/export", q="x", fields="secret").status_code == 400


HOSTILE = """---
title: 'Alerte <img src=x onerror=alert(1)> zorglub'
date: 2024-01-02 10:00:00 +01:00
tags:
- <script>alert(2)</script>
---

Le corps zorglub contient <script>alert(3)</script> et &lt;img src=x onerror=alert(4)&gt; en texte.
"""


def unmark(html_text: str) -> str:
    """The text an HTML fragment shows, once its ``<mark>`` highlights are taken out."""
    return html.unescape(html_text.replace("<mark>", "").replace("</mark>", ""))


def test_writes_need_the_key_and_payloads_come_back_escaped(live_server: str) -> None:
    url = live_server + "/api/documents/alerte-zorglub"
    headers = {"Content-Type": "text/markdown"}
    assert httpx.put(url, content=HOSTILE, headers=headers).status_code == 401
    bad_key = {**headers, "Authorization": "Bearer wrong"}
    assert httpx.put(url, content=HOSTILE, headers=bad_key).status_code == 401
    r = httpx.put(url, content=HOSTILE, headers={**headers, **KEY}, timeout=60)
    assert r.status_code == 200 and r.json()["status"] == "created", r.text
    data = search(live_server, q="zorglub ")
    hit = data["hits"][0]
    assert hit["id"] == "alerte-zorglub"
    for fragment in (hit["title_html"], hit["snippet_html"]):
        assert "<img" not in fragment and "<script" not in fragment
    # the markup comes back as text: escaped, with only the highlights as live tags
    assert hit["title_html"] == "Alerte &lt;img src=x onerror=alert(1)&gt; <mark>zorglub</mark>"
    assert unmark(hit["title_html"]) == hit["title"]
    assert "&lt;img src=x onerror=alert(4)&gt;" in hit["snippet_html"]
    body = get(live_server, "/api/documents/alerte-zorglub").json()["body"]
    assert unmark(hit["snippet_html"]).strip(" …") in body
    # validation errors name the field
    r = httpx.put(url, content="---\ndate: 2020-01-01\n---\n", headers={**headers, **KEY}, timeout=60)
    assert r.status_code == 422 and "title" in r.json()["detail"]
    assert httpx.delete(url).status_code == 401
    assert httpx.delete(url, headers=KEY, timeout=60).status_code == 200
    assert search(live_server, q="zorglub ")["total"] == 0


def test_health_metrics_openapi(live_server: str) -> None:
    assert get(live_server, "/health").json()["documents"] >= 60
    metrics = get(live_server, "/metrics").text
    assert "communiques_requests_total" in metrics and "communiques_request_seconds_bucket" in metrics
    assert "/api/search" in get(live_server, "/openapi.json").json()["paths"]
    assert get(live_server, "/docs").status_code == 200


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60)
       | st.lists(st.sampled_from(['"', "(", ")", "AND", "OR", "NOT", "-", "*", "~2", "title:", "tag:",
                                   "date:[", "TO", "]", "cloud", "État", "l’", "^3", ":", "{", "}"]),
                  max_size=8).map(" ".join))
def test_generated_queries_never_5xx(live_server: str, q: str) -> None:
    r = get(live_server, "/api/search", q=q)
    assert r.status_code < 500, (q, r.text)
    r = get(live_server, "/api/autocomplete", q=q)
    assert r.status_code < 500, (q, r.text)


def _variants(query: str) -> dict[str, str]:
    words = query.split()
    cut = " ".join(words[:-1] + [words[-1][:4]])
    i = max(range(len(words)), key=lambda k: len(words[k]))
    w = words[i]
    j = len(w) // 2
    typo = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    return {"plain": query + " ", "cut": cut, "typo": " ".join(words[:i] + [typo] + words[i + 1 :]) + " "}


def test_queries_dev_over_http(shared_server: str) -> None:
    """Known items, as an archivist finds them (some are drafts: a key shows them)."""
    rows = load_queries()
    archivist = {"Authorization": "Bearer test-key-123"}
    for name, floor in (("plain", 0.95), ("cut", 0.9), ("typo", 0.9)):
        rr = []
        for _, query, rel in rows:
            q = _variants(query)[name]
            r = httpx.get(shared_server + "/api/search", params={"q": q}, headers=archivist,
                          timeout=30)
            rr.append(reciprocal_rank([h["id"] for h in r.json()["hits"]], rel))
        mrr = sum(rr) / len(rr)
        assert mrr >= floor, f"{name}: MRR@10 = {mrr:.3f}"


def test_cors_allows_get_from_the_site_origin(sample_index) -> None:  # noqa: ANN001
    from tests.conftest import start_server

    server = start_server(sample_index, {"COMMUNIQUES_SITE_ORIGIN": "https://site.example"})
    try:
        r = httpx.get(server.url + "/api/search", params={"q": "cloud"},
                      headers={"Origin": "https://site.example"})
        assert r.headers["access-control-allow-origin"] == "https://site.example"
        r = httpx.get(server.url + "/api/search", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
        pre = httpx.options(server.url + "/api/documents/x", headers={
            "Origin": "https://site.example", "Access-Control-Request-Method": "DELETE"})
        assert "DELETE" not in pre.headers.get("access-control-allow-methods", "")
    finally:
        server.stop()
