"""Attachments beyond PDF: DOCX, ODT, ODS, XLSX and PPTX text searchable like PDF text; broken
or unsupported ones recorded, never fatal; an unchanged site's attachments are not read again
(the extracted text is cached beside the index); pages link each attachment and the export
gives its URL.

Every attachment is made here, with the library that writes its format.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from indexer import attachments as att_module
from indexer.attachments import AttachmentReader, extract_text
from indexer.ingest import ingest
from indexer.schema import open_index
from indexer.search import SearchIndex, SearchRequest
from tests.conftest import ROOT, start_server

SITE_URL = "https://www.exemple.gouv.fr"

WORDS = {
    "pdf": "okapi", "docx": "quetzal", "odt": "ornithorynque", "ods": "kangourou",
    "xlsx": "pangolin", "pptx": "axolotl",
}
"""A word found only in the attachment of each format."""


def make_pdf(path: Path, text: str) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 8, text)
    pdf.output(str(path))


def make_docx(path: Path, text: str) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Dossier de presse", level=1)
    document.add_paragraph("Un paragraphe d’introduction.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Cellule"
    table.rows[0].cells[1].text = text
    document.save(str(path))


def make_odt(path: Path, text: str) -> None:
    from odf.opendocument import OpenDocumentText
    from odf.text import H, P

    document = OpenDocumentText()
    document.text.addElement(H(outlinelevel=1, text="Dossier de presse"))
    document.text.addElement(P(text=text))
    document.save(str(path))


def make_ods(path: Path, text: str) -> None:
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    document = OpenDocumentSpreadsheet()
    table = Table(name="Budget")
    for values in (["Poste", "Montant"], [text, "12"]):
        row = TableRow()
        for value in values:
            cell = TableCell(valuetype="string")
            cell.addElement(P(text=value))
            row.addElement(cell)
        table.addElement(row)
    document.spreadsheet.addElement(table)
    document.save(str(path))


def make_xlsx(path: Path, text: str) -> None:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Calendrier"
    sheet.append(["Étape", "Date"])
    sheet.append([text, 2024])
    workbook.save(str(path))


def make_pptx(path: Path, text: str) -> None:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = "Présentation"
    box = slide.shapes.add_textbox(Inches(1), Inches(2), Inches(6), Inches(1))
    box.text_frame.text = text
    deck.save(str(path))


MAKERS = {"pdf": make_pdf, "docx": make_docx, "odt": make_odt, "ods": make_ods,
          "xlsx": make_xlsx, "pptx": make_pptx}

DOC = """---
title: {title}
date: 2022-05-10 10:00:00 +02:00
{attachment}
---

Le corps du communiqué parle de {topic}.
"""


def build_site(root: Path) -> Path:
    """A site: one communiqué per format, plus broken and unsupported attachments."""
    docs = root / "communiques"
    uploads = root / "uploads"
    docs.mkdir(parents=True)
    uploads.mkdir()
    for fmt, word in WORDS.items():
        name = f"Dossier {fmt}.{fmt}"
        MAKERS[fmt](uploads / name, f"Annexe : le programme {word} démarre.")
        quoted = name.replace(" ", "%20")
        (docs / f"avec-{fmt}.md").write_text(DOC.format(
            title=f"Communiqué avec pièce jointe {fmt}", topic="gouvernance",
            attachment=f'files:\n- file: "/uploads/{quoted}"\n  nom: Annexe {fmt}'),
            encoding="utf-8")
    (uploads / "abime.docx").write_bytes(b"PK\x03\x04 pas vraiment un docx")
    (uploads / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0 une image")
    (docs / "pieces-abimees.md").write_text(DOC.format(
        title="Communiqué aux pièces abîmées", topic="budget",
        attachment='files:\n- file: "/uploads/abime.docx"\n- file: "/uploads/photo.jpg"\n'
                   '- file: "/uploads/absente.odt"'), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_site(tmp_path_factory.mktemp("office-site"))


def run_ingest(site: Path, index: Path) -> tuple[dict, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "service.cli", "ingest", str(site / "communiques"),
         "--index", str(index), "--attachments-root", str(site), "--json", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "COMMUNIQUES_SITE_URL": SITE_URL},
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout), proc.stderr


@pytest.fixture(scope="module")
def index(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    index = tmp_path_factory.mktemp("office-index")
    report, stderr = run_ingest(site, index)
    assert report["added"] == len(WORDS) + 1 and report["rejected"] == []
    assert report["attachments"]["extracted"] == len(WORDS) + 2  # the broken docx, the jpg
    assert "abime.docx: unreadable DOCX" in stderr
    assert "photo.jpg: unsupported attachment type '.jpg'" in stderr
    assert "absente.odt: file not found" in stderr
    return index


@pytest.mark.parametrize("fmt", list(WORDS))
def test_each_format_is_extracted(site: Path, fmt: str) -> None:
    text = extract_text(site / "uploads" / f"Dossier {fmt}.{fmt}")
    assert WORDS[fmt] in text


@pytest.mark.parametrize("fmt", list(WORDS))
def test_attachment_text_is_searchable(index: Path, fmt: str) -> None:
    si = SearchIndex(open_index(index), preload=False)
    result = si.search(SearchRequest(q=WORDS[fmt]))
    assert [h.id for h in result.hits] == [f"avec-{fmt}"]
    assert "<mark>" in result.hits[0].attachment_html
    advanced = si.search(SearchRequest(q=f"attachment:{WORDS[fmt]}"))
    assert [h.id for h in advanced.hits] == [f"avec-{fmt}"]


def test_broken_and_unsupported_are_recorded_on_the_document(index: Path) -> None:
    doc = SearchIndex(open_index(index), preload=False).document("pieces-abimees")
    assert doc is not None
    errors = {Path(a["path"]).name: a["error"] for a in doc["attachments"]}
    assert errors["abime.docx"].startswith("unreadable DOCX")
    assert errors["photo.jpg"] == "unsupported attachment type '.jpg'"
    assert errors["absente.odt"] == "file not found"


def test_zip_bomb_is_refused_before_opening(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(att_module, "MAX_UNPACKED_BYTES", 1_000_000)
    bomb = tmp_path / "bombe.xlsx"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/workbook.xml", b"\0" * 2_000_000)
    with pytest.raises(att_module.AttachmentError, match="would unpack"):
        extract_text(bomb)


def test_unchanged_attachments_are_not_read_again(tmp_path: Path) -> None:
    """The cache lives beside the index, not in one reader object: a second ingest (a new
    reader, as a new run of the command) extracts and even hashes nothing."""
    site = build_site(tmp_path / "site")
    ix = open_index(tmp_path / "index", create=True)
    cache = tmp_path / "index" / att_module.CACHE_FILE

    first = AttachmentReader(site, cache=cache)
    report = ingest(ix, [site / "communiques"], progress=False, prepare=first)
    first.close()
    assert first.extracted == len(WORDS) + 2 and len(report.added) == len(WORDS) + 1

    second = AttachmentReader(site, cache=cache)
    report = ingest(ix, [site / "communiques"], progress=False, prepare=second)
    second.close()
    assert (second.extracted, second.hashed) == (0, 0)
    assert len(report.unchanged) == len(WORDS) + 1 and not report.updated
    assert len(second.problems) == 3  # still reported on every run

    MAKERS["odt"](site / "uploads" / "Dossier odt.odt", "Annexe : le programme tatou démarre.")
    third = AttachmentReader(site, cache=cache)
    report = ingest(ix, [site / "communiques"], progress=False, prepare=third)
    third.close()
    assert third.extracted == 1 and report.updated == ["avec-odt"]
    si = SearchIndex(open_index(tmp_path / "index"), preload=False)
    assert [h.id for h in si.search(SearchRequest(q="tatou")).hits] == ["avec-odt"]
    assert si.search(SearchRequest(q=WORDS["odt"])).total == 0


def test_second_cli_ingest_extracts_nothing(site: Path, index: Path) -> None:
    report, _ = run_ingest(site, index)
    assert report["attachments"]["extracted"] == 0
    assert report["unchanged"] == len(WORDS) + 1


# --- over HTTP -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(index: Path) -> Iterator[str]:
    live = start_server(index, {"COMMUNIQUES_RATE_EXPORT": "off"}, workers=2)
    try:
        yield live.url
    finally:
        live.stop()


def test_document_page_links_each_attachment(server: str, site: Path) -> None:
    page = httpx.get(f"{server}/documents/avec-docx", timeout=30)
    assert page.status_code == 200
    size = (site / "uploads" / "Dossier docx.docx").stat().st_size
    assert f'href="{SITE_URL}/uploads/Dossier%20docx.docx"' in page.text
    assert "Annexe docx" in page.text and "Dossier docx.docx" in page.text
    assert "DOCX" in page.text and f"{round(size / 1024)} Ko" in page.text
    api = httpx.get(f"{server}/api/documents/avec-docx", timeout=30).json()
    (attachment,) = api["attachments"]
    assert attachment["url"] == f"{SITE_URL}/uploads/Dossier%20docx.docx"
    assert attachment["type"] == "DOCX" and attachment["size"] == size
    broken = httpx.get(f"{server}/documents/pieces-abimees", timeout=30)
    assert broken.status_code == 200 and "Texte non lu" in broken.text


def test_export_gives_attachment_urls(server: str) -> None:
    r = httpx.get(f"{server}/api/export", params={"q": WORDS["pptx"], "format": "csv",
                                                  "fields": "id,attachments,attachment_urls"},
                  timeout=30)
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert rows[0]["attachments"] == "Annexe pptx"
    assert rows[0]["attachment_urls"] == f"{SITE_URL}/uploads/Dossier%20pptx.pptx"
    r = httpx.get(f"{server}/api/export", params={"q": WORDS["ods"], "format": "jsonl"},
                  timeout=30)
    (line,) = r.text.splitlines()
    record = json.loads(line)
    assert record["attachments"][0]["url"] == f"{SITE_URL}/uploads/Dossier%20ods.ods"
    assert record["attachment_urls"] == [f"{SITE_URL}/uploads/Dossier%20ods.ods"]


def test_searches_meanwhile_find_attachment_text(server: str) -> None:
    """Both workers answer from attachment text (each answer comes from either)."""
    with httpx.Client(base_url=server, timeout=30) as client:
        for _ in range(3):
            for fmt, word in WORDS.items():
                hits = client.get("/api/search", params={"q": word}).json()["hits"]
                assert [h["id"] for h in hits] == [f"avec-{fmt}"]
