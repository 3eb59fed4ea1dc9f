"""A Jekyll site root as input: its collections (``.md`` and ``.markdown``), nothing else of
the site, permalinks from ``_config.yml``, attachments in ``_uploads/`` or ``uploads/`` without
``--attachments-root``; links leaving the folder and file names that are not ids refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fpdf import FPDF

from indexer.ids import id_problem
from indexer.ingest import find_sources
from indexer.schema import open_index
from indexer.search import SearchIndex, SearchRequest
from service.cli import main

DOC = """---
title: {title}
date: 2023-04-0{day} 10:00:00 +02:00
tags:
- Cloud
{extra}---

{body}
"""

CONFIG = """title: numerique.gouv.fr
collections:
  communiques:
    output: true
    permalink: /espace-presse/:name/
  evenements:
    output: true
    permalink: /agenda/:year/:name/
  actualites:
    output: true
"""


def _pdf(path: Path, text: str) -> None:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 8, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def make_site(root: Path, uploads: str) -> Path:
    """A small site as the real one is laid out, its uploads in ``uploads`` (a folder name)."""
    _write(root / "_config.yml", CONFIG)
    _write(root / "_communiques" / "cp-cloud.md", DOC.format(
        title="Le cloud de l’État", day=1, body="Le cloud souverain progresse.",
        extra="communique_file: /uploads/cp-cloud.pdf\n"))
    _write(root / "_communiques" / "cp-tchap.markdown", DOC.format(
        title="Tchap grandit", day=2, body="La messagerie des agents.", extra=""))
    _write(root / "_evenements" / "salon-data.md", DOC.format(
        title="Salon de la donnée", day=3, body="Un salon.", extra=""))
    _write(root / "_actualites" / "2023" / "actu-ia.markdown", DOC.format(
        title="IA et services publics", day=4, body="Des prototypes.", extra=""))
    _write(root / "_publications" / "rapport-annuel.md", DOC.format(
        title="Rapport annuel", day=5, body="Le rapport.", extra=""))
    # Not documents: templates, build output, dependencies, pages at the root.
    for other in ("_layouts/default.md", "_includes/footer.md", "_site/espace-presse/x.md",
                  "node_modules/pkg/notes.md", "index.md", "pages/a-propos.md",
                  "_drafts/brouillon.md"):
        _write(root / other, DOC.format(title="Pas un document", day=6, body="gabarit",
                                        extra=""))
    _pdf(root / uploads / "cp-cloud.pdf", "Annexe budgetaire du calorimetre souverain.")
    return root


def _ingest(site: Path, index: Path, capsys: pytest.CaptureFixture) -> tuple[int, dict, str]:
    capsys.readouterr()
    code = main(["ingest", str(site), "--index", str(index), "--json", "--quiet"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


@pytest.mark.parametrize("uploads", ["_uploads", "uploads"])
def test_site_root_is_read_as_jekyll_does(tmp_path: Path, uploads: str,
                                          capsys: pytest.CaptureFixture) -> None:
    site = make_site(tmp_path / "site", uploads)
    code, report, err = _ingest(site, tmp_path / "index", capsys)
    assert code == 0, err
    assert report["added"] == 5 and not report["rejected"], report
    si = SearchIndex(open_index(tmp_path / "index"), preload=False)
    docs = {d: si.document(d) for d in
            ("cp-cloud", "cp-tchap", "salon-data", "actu-ia", "rapport-annuel")}
    assert {d: r["collection"] for d, r in docs.items() if r} == {
        "cp-cloud": "communiques", "cp-tchap": "communiques", "salon-data": "evenements",
        "actu-ia": "actualites", "rapport-annuel": "publications"}
    # permalinks from _config.yml, the defaults where it names none
    assert docs["cp-cloud"]["url"] == "/espace-presse/cp-cloud/"
    assert docs["salon-data"]["url"] == "/agenda/2023/salon-data/"
    assert docs["actu-ia"]["url"] == "/actualites/actu-ia/"
    assert docs["rapport-annuel"]["url"] == "/publications/rapport-annuel/"
    # paths relative to the site root, never the server's
    assert docs["actu-ia"]["path"] == "_actualites/2023/actu-ia.markdown"
    # the attachment was found in the uploads folder without --attachments-root
    assert docs["cp-cloud"]["attachments"][0]["error"] == ""
    hits = si.search(SearchRequest(q="calorimetre")).hits
    assert [h.id for h in hits] == ["cp-cloud"]
    assert si.search(SearchRequest(q="gabarit")).total == 0


def test_permalinks_set_by_the_operator_win(tmp_path: Path, capsys: pytest.CaptureFixture,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMUNIQUES_PERMALINKS", "communiques=/presse/{id}/")
    site = make_site(tmp_path / "site", "uploads")
    assert _ingest(site, tmp_path / "index", capsys)[0] == 0
    si = SearchIndex(open_index(tmp_path / "index"), preload=False)
    assert si.document("cp-cloud")["url"] == "/presse/cp-cloud/"  # type: ignore[index]
    assert si.document("salon-data")["url"] == "/agenda/2023/salon-data/"  # type: ignore[index]


def test_links_outside_and_bad_names_are_refused(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    site = make_site(tmp_path / "site", "_uploads")
    folder = site / "_communiques"
    secret = tmp_path / "secret.md"
    secret.write_text(DOC.format(title="Secret", day=7, body="motdepasse", extra=""))
    os.symlink(secret, folder / "passwd.md")
    os.symlink("/etc/passwd", folder / "etc-passwd.md")
    os.symlink(folder / "cp-tchap.markdown", folder / "alias-interne.md")  # inside: read
    _write(folder / "a\n.md", DOC.format(title="Retour à la ligne", day=8, body="x", extra=""))
    _write(folder / "espace interdit.md", DOC.format(title="Espace", day=8, body="x", extra=""))
    code, report, err = _ingest(site, tmp_path / "index", capsys)
    assert code == 1
    reasons = {Path(r["path"]).name: r["reason"] for r in report["rejected"]}
    assert "outside the folder" in reasons["passwd.md"]
    assert "outside the folder" in reasons["etc-passwd.md"]
    assert "not a valid id" in reasons["a\n.md"]
    assert "not a valid id" in reasons["espace interdit.md"]
    assert report["added"] == 6  # the five documents and the link inside the site
    si = SearchIndex(open_index(tmp_path / "index"), preload=False)
    assert si.search(SearchRequest(q="motdepasse")).total == 0
    assert si.document("alias-interne") is not None
    assert "passwd.md" in err and "outside the folder" in err


def test_a_link_given_directly_is_checked_too(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    os.symlink("/etc/passwd", folder / "passwd.md")
    (source,) = find_sources([folder / "passwd.md"])
    assert source.problem and "outside" in source.problem


def test_plain_folders_are_unchanged(tmp_path: Path) -> None:
    folder = tmp_path / "corpus" / "communiques"
    _write(folder / "un.md", DOC.format(title="Un", day=1, body="x", extra=""))
    _write(folder / "deux.markdown", DOC.format(title="Deux", day=1, body="x", extra=""))
    found = {(s.path.name, s.collection, s.problem) for s in find_sources([tmp_path / "corpus"])}
    assert found == {("un.md", "communiques", None), ("deux.markdown", "communiques", None)}


@pytest.mark.parametrize("name", ["a\n", "a\r", " a", "-a", "a b", "é", "a/b", "", "a" * 256])
def test_invalid_ids(name: str) -> None:
    assert id_problem(name)


@pytest.mark.parametrize("name", ["a", "A.b_c-d", "2023-cp", "a" * 244])
def test_valid_ids(name: str) -> None:
    assert id_problem(name) is None
