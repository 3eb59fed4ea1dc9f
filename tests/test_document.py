"""Parsing the site's Jekyll files into documents."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from indexer.document import DocumentError, markdown_to_text, parse_file, parse_text

GOOD = """---
title: 'Fonds pour la transformation de l''action publique&nbsp;: deux projets
  lauréats'
date: 2018-06-20 10:00:00 +02:00
tags:
- État plateforme
- Cloud
categories:
- Communiqué de presse
chapeau-text: Un [chapeau](https://exemple.fr) court.
communique_file: uploads/CP.pdf
files:
- file: "/uploads/annexe.pdf"
  nom: Annexe
published: false
event_start_date: 2023-13-45
---

## Un titre de section
{: .text-center}

Un paragraphe avec un [lien](https://exemple.fr){:target="_blank"} et <b>du HTML</b>.

<div class="encadre"><p>Texte encadré</p></div>
<script>alert(1)</script>
"""


def test_parses_real_format_fields() -> None:
    doc = parse_text(GOOD, "fonds", "communiques", "x/communiques/fonds.md")
    assert doc.title == "Fonds pour la transformation de l'action publique : deux projets lauréats"
    assert doc.date == dt.datetime(2018, 6, 20, 10, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert doc.tags == ["État plateforme", "Cloud"]
    assert doc.categories == ["Communiqué de presse"]
    assert doc.chapeau == "Un chapeau court."
    assert [a.path for a in doc.attachments] == ["uploads/CP.pdf", "/uploads/annexe.pdf"]
    assert doc.published is False
    assert doc.url == "/espace-presse/fonds/"


def test_body_is_clean_text() -> None:
    doc = parse_text(GOOD, "fonds", "communiques")
    assert "{:" not in doc.body and "<" not in doc.body and "alert" not in doc.body
    assert "Un titre de section" in doc.body
    assert "Un paragraphe avec un lien et du HTML." in doc.body
    assert "Texte encadré" in doc.body


def test_malformed_attribute_list_does_not_leak() -> None:
    assert "{:" not in markdown_to_text('la loi « Handicap »{:target="_blank") du 11 février')


def test_tags_as_string_or_missing() -> None:
    src = GOOD.replace("tags:\n- État plateforme\n- Cloud\n", "tags: Cloud, Open data\n")
    assert parse_text(src, "a", "actualites").tags == ["Cloud", "Open data"]
    src = GOOD.replace("tags:\n- État plateforme\n- Cloud\n", "")
    assert parse_text(src, "a", "actualites").tags == []


def test_permalinks_per_collection() -> None:
    assert parse_text(GOOD, "a", "actualites").url == "/actualites/a/"
    assert parse_text(GOOD, "a", "evenements").url == "/agenda/a/"


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("pas de front matter", "no YAML front matter"),
        ("---\ntitle: x\ndate: 2020-01-01\nsans fin", "not closed"),
        ("---\ntitle: [1, 2]\ndate: 2020-01-01\n---\n", "field 'title'"),
        ("---\ndate: 2020-01-01\n---\n", "field 'title' is missing"),
        ("---\ntitle: x\ndate: hier\n---\n", "field 'date'"),
        ("---\ntitle: x\ndate: 2020-01-01\ntags: {a: b}\n---\n", "field 'tags'"),
        ("---\ntitle: 'x\ndate: 2020\n---\n", "invalid YAML"),
    ],
)
def test_bad_documents_name_the_reason(source: str, reason: str) -> None:
    with pytest.raises(DocumentError) as err:
        parse_text(source, "bad", "communiques", "bad.md")
    assert reason in str(err.value)
    assert str(err.value).startswith("bad.md: ")


def test_binary_and_non_utf8_files(tmp_path: Path) -> None:
    (tmp_path / "bin.md").write_bytes(b"\x00\x01\x02---")
    (tmp_path / "latin.md").write_bytes("---\ntitle: État\n---\n".encode("latin-1"))
    with pytest.raises(DocumentError, match="binary"):
        parse_file(tmp_path / "bin.md")
    with pytest.raises(DocumentError, match="not UTF-8"):
        parse_file(tmp_path / "latin.md")


def test_real_corpus_parses(shared_corpus: Path) -> None:
    files = sorted(shared_corpus.rglob("*.md"))
    assert len(files) == 91
    docs = [parse_file(p) for p in files]
    assert all(d.title and d.date for d in docs)
    assert {d.collection for d in docs} == {"communiques", "actualites", "evenements"}
