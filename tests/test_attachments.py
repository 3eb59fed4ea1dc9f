"""PDF attachments: extracted, searchable, highlighted; broken ones reported, never fatal."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fpdf import FPDF

from tests.conftest import ROOT, start_server

DOC = """---
title: {title}
date: 2022-05-10 10:00:00 +02:00
tags:
- Cloud
{attachment}
---

Le corps du communiqué ne parle que de {topic}.
"""


def make_pdf(path: Path, text: str) -> None:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 8, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    docs = root / "communiques"
    docs.mkdir()
    (docs / "avec-pdf.md").write_text(DOC.format(
        title="Un communiqué avec dossier de presse", topic="gouvernance",
        attachment="communique_file: /uploads/cp-avec-pdf.pdf"), encoding="utf-8")
    (docs / "pdf-corrompu.md").write_text(DOC.format(
        title="Un communiqué au PDF abîmé", topic="budget",
        attachment='files:\n- file: "/uploads/corrompu.pdf"\n  nom: Dossier'), encoding="utf-8")
    (docs / "pdf-absent.md").write_text(DOC.format(
        title="Un communiqué au PDF manquant", topic="calendrier",
        attachment="communique_file: uploads/absent.pdf"), encoding="utf-8")
    make_pdf(root / "uploads" / "cp-avec-pdf.pdf",
             "Dossier de presse. La préfiguration du réseau téléphonique sécurisé "
             "s'appuie sur une hyperviseur élégant : l'écosystème évolue.")
    (root / "uploads" / "corrompu.pdf").write_bytes(b"%PDF-1.4\n garbage \x00\x01 not a pdf")
    return root


def ingest(site: Path, index: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "ingest", str(site / "communiques"),
         "--index", str(index), "--attachments-root", str(site), "--json", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def index(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    index = tmp_path_factory.mktemp("att-index")
    proc = ingest(site, index)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["added"] == 3 and report["rejected"] == []
    assert "corrompu.pdf: unreadable PDF" in proc.stderr
    assert "absent.pdf: file not found" in proc.stderr
    return index


@pytest.fixture(scope="module")
def server(index: Path) -> Iterator[str]:
    srv = start_server(index)
    yield srv.url
    srv.stop()


def test_word_only_in_the_pdf_finds_the_communique(server: str) -> None:
    data = httpx.get(server + "/api/search", params={"q": "préfiguration téléphonique "}).json()
    assert [h["id"] for h in data["hits"]] == ["avec-pdf"]
    hit = data["hits"][0]
    assert "<mark>préfiguration</mark>" in hit["attachment_html"]
    assert "<mark>" not in hit["title_html"]


def test_attachment_field_and_accents(server: str) -> None:
    data = httpx.get(server + "/api/search", params={"q": "attachment:ecosysteme"}).json()
    assert [h["id"] for h in data["hits"]] == ["avec-pdf"]


def test_broken_attachments_are_recorded_on_the_document(server: str) -> None:
    doc = httpx.get(server + "/api/documents/pdf-corrompu").json()
    assert doc["attachments"][0]["error"].startswith("unreadable PDF")
    doc = httpx.get(server + "/api/documents/pdf-absent").json()
    assert doc["attachments"][0]["error"] == "file not found"
    assert httpx.get(server + "/api/search", params={"q": "budget "}).json()["total"] == 1


def test_export_lists_attachment_names(server: str) -> None:
    text = httpx.get(server + "/api/export", params={"q": "gouvernance", "format": "csv"}).text
    assert "Communiqué de presse" in text


def test_changed_attachment_reindexes_its_document(site: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    assert ingest(site, index).returncode == 0
    again = json.loads(ingest(site, index).stdout)
    assert again["unchanged"] == 3
    make_pdf(site / "uploads" / "cp-avec-pdf.pdf", "Nouvelle version : calorimètre.")
    changed = json.loads(ingest(site, index).stdout)
    assert changed["updated"] == 1 and changed["unchanged"] == 2
