"""The archivists' query language over real HTTP, and the statistics."""

from __future__ import annotations

import httpx
import pytest


def search(base: str, q: str, **params: object) -> dict:
    r = httpx.get(base + "/api/search", params={"q": q, "size": 100, **params}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def ids(data: dict) -> set[str]:
    return {h["id"] for h in data["hits"]}


def test_phrase_keeps_word_order(live_server: str) -> None:
    exact = search(live_server, '"cloud interne"')
    assert exact["total"] >= 1
    assert ids(search(live_server, '"interne cloud"')) < ids(exact)


def test_phrase_with_slop(live_server: str) -> None:
    """``~N`` lets the words stand up to N positions apart: more documents than the exact
    phrase, all of them holding both words."""
    exact = ids(search(live_server, '"cloud Etat"'))
    loose = ids(search(live_server, '"cloud Etat"~4'))
    both = ids(search(live_server, "cloud AND Etat"))
    assert exact and exact < loose <= both


def test_boolean_operators_and_grouping(live_server: str) -> None:
    nubo, tchap = ids(search(live_server, "nubo")), ids(search(live_server, "tchap"))
    assert ids(search(live_server, "nubo OR tchap")) == nubo | tchap
    assert ids(search(live_server, "nubo AND tchap")) == nubo & tchap
    grouped = ids(search(live_server, "(nubo OR tchap) AND NOT cloud"))
    assert grouped == (nubo | tchap) - ids(search(live_server, "cloud"))
    assert ids(search(live_server, "cloud -nubo")) == ids(search(live_server, "cloud")) - nubo


@pytest.mark.parametrize(
    ("q", "check"),
    [
        ("collection:evenements", lambda h: h["collection"] == "evenements"),
        ("year:2021", lambda h: h["date"].startswith("2021")),
        ("date:[2018-01-01 TO 2018-12-31]", lambda h: h["date"].startswith("2018")),
        ("title:cloud", lambda h: "cloud" in h["title"].lower()),
    ],
)
def test_fields(live_server: str, q: str, check) -> None:  # noqa: ANN001
    data = search(live_server, q)
    assert data["total"] > 0, q
    assert all(check(h) for h in data["hits"]), q


def test_tag_field_matches_every_spelling_of_the_tag(live_server: str) -> None:
    tags = httpx.get(live_server + "/api/tags", timeout=30).json()["tags"]
    entry = next(t for t in tags if t["key"] == "open data")
    spellings = {entry["label"], *entry["variants"]}
    assert len(entry["variants"]) > 1  # the point: several spellings, one tag
    data = search(live_server, 'tag:"Open data"')
    assert data["total"] == entry["count"]
    assert all(spellings & set(h["tags"]) for h in data["hits"]), data["hits"]
    assert ids(search(live_server, 'tag:"données ouvertes"')) == ids(data)


def test_category_field(live_server: str) -> None:
    articles = search(live_server, "category:Article")
    assert articles["total"] == search(live_server, "", category="Article")["total"] > 0


def test_prefix(live_server: str) -> None:
    data = search(live_server, "numéri*")
    assert data["total"] >= search(live_server, "numérique ")["total"]
    assert "<mark>" in data["hits"][0]["title_html"] + data["hits"][0]["snippet_html"]


def test_unparsable_parts_are_explained(live_server: str) -> None:
    data = search(live_server, '"cloud nubo')
    assert data["notes"] and data["total"] > 0
    data = search(live_server, "date:[hier TO demain] cloud")
    assert any("syntaxe" in n for n in data["notes"])


def test_stats(live_server: str) -> None:
    stats = httpx.get(live_server + "/api/stats").json()
    assert stats["documents"] == sum(stats["per_year"].values()) == sum(stats["per_collection"].values())
    assert set(stats["per_collection"]) >= {"communiques", "actualites", "evenements"}
    cloud = next(t for t in stats["tags"] if t["key"] == "cloud")
    assert cloud["first"] <= cloud["last"] and cloud["count"] >= 2
    assert 0 < stats["untagged_share"] < 1


def test_stats_cli(sample_index, capsys) -> None:  # noqa: ANN001
    import json

    from service.cli import main

    assert main(["stats", "--index", str(sample_index), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["documents"] >= 60
