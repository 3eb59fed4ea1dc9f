"""Exports open cleanly in a spreadsheet: formula-like cells neutralised, UTF-8 with BOM,
``csv-excel`` with ``;``, XLSX, ``true``/``false``, ISO dates, canonical tags beside raw ones,
and no server path in any response (read back with the standard readers)."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from indexer.export import cell, public_path, spreadsheet_safe, stream
from tests.conftest import build_index, get_eventually, start_server

DOC = """---
title: "{title}"
date: 2022-05-0{day} 10:00:00 +02:00
tags:
{tags}
---

Le numérique intègre {body}.
"""

HOSTILE = {
    "formule": '=HYPERLINK(\\"http://evil.example\\",\\"cliquez\\")',
    "plus": "+33 1 23 45 67 89 appelez",
    "moins": "-2+3 une formule",
    "arobase": "@SUM(A1:A2) une autre",
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("export-site")
    folder = root / "corpus" / "communiques"
    folder.mkdir(parents=True)
    for day, (doc_id, title) in enumerate(HOSTILE.items(), start=1):
        tags = "- Cloud\n- cloud\n" if day % 2 else "- Cloud\n- =cmd|' /C calc'!A0\n"
        (folder / f"{doc_id}.md").write_text(
            DOC.format(title=title, day=day, tags=tags, body="intègre"), encoding="utf-8")
    (folder / "accents.md").write_text(
        DOC.format(title="L’État intègre ses données", day=9, tags="- Cloud\n", body="données"),
        encoding="utf-8")
    index = build_index(root / "index", root / "corpus")
    server = start_server(index, {"COMMUNIQUES_MODEL": str(root / "no-model.pkl"),
                                  "COMMUNIQUES_DOCUMENTS": str(root / "documents"),
                                  "COMMUNIQUES_API_KEY": "k-123"}, workers=2)
    try:
        yield server.url, root
    finally:
        server.stop()


def _get(url: str, path: str, **params: object) -> httpx.Response:
    r = httpx.get(url + path, params=params, timeout=30)
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return r


def test_csv_is_utf8_with_bom_and_neutralised(served: tuple[str, Path]) -> None:
    url, _ = served
    raw = _get(url, "/api/export", q="", format="csv").content
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(rows) == 5
    titles = {r["id"]: r["title"] for r in rows}
    assert titles["formule"] == "'" + '=HYPERLINK("http://evil.example","cliquez")'
    assert titles["plus"].startswith("'+") and titles["moins"].startswith("'-")
    assert titles["arobase"].startswith("'@")
    assert titles["accents"] == "L’État intègre ses données"
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), row
        assert row["published"] == "true"
        assert row["date"].startswith("2022-05-0") and "T10:00:00+02:00" in row["date"]
        assert row["path"] == f"communiques/{row['id']}.md"
        assert row["tags_canonical"] in ("Cloud", "Cloud | =cmd|' /C calc'!A0")


def test_csv_excel_uses_semicolons(served: tuple[str, Path]) -> None:
    url, _ = served
    raw = _get(url, "/api/export", q="intègre", format="csv-excel",
               fields="id,title,published").content
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    assert text.splitlines()[0] == "id;title;published"
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert {r[0] for r in rows[1:]} >= {"accents", "formule"}
    assert all(len(r) == 3 for r in rows)


def test_xlsx_opens_with_openpyxl(served: tuple[str, Path]) -> None:
    from openpyxl import load_workbook

    url, _ = served
    r = _get(url, "/api/export", q="", format="xlsx")
    assert r.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    assert 'filename="communiques-export.xlsx"' in r.headers["content-disposition"]
    wb = load_workbook(io.BytesIO(r.content), read_only=True)
    rows = list(wb.active.iter_rows(values_only=True))
    header, data = rows[0], rows[1:]
    assert "tags_canonical" in header and "path" in header
    assert len(data) == 5
    by_id = {row[header.index("id")]: row for row in data}
    formula = by_id["formule"][header.index("title")]
    assert formula.startswith("'=")  # text, not a formula (openpyxl reads formulas as "=...")
    for row in data:
        for value in row:
            assert not (isinstance(value, str) and value.startswith(("=", "+", "-", "@"))), row
        assert row[header.index("published")] == "true"
        assert isinstance(row[header.index("score")], (int, float))


def test_jsonl_keeps_values(served: tuple[str, Path]) -> None:
    url, _ = served
    lines = _get(url, "/api/export", q="", format="jsonl").text.splitlines()
    records = [json.loads(line) for line in lines]
    assert {r["published"] for r in records} == {True}
    assert all(r["path"] == f"communiques/{r['id']}.md" for r in records)
    first = next(r for r in records if r["id"] == "formule")
    assert first["tags"] == ["Cloud", "cloud"] and first["tags_canonical"] == ["Cloud"]


def test_export_refuses_unknown_fields_and_formats(served: tuple[str, Path]) -> None:
    url, _ = served
    r = httpx.get(url + "/api/export", params={"fields": "id,secret"}, timeout=10)
    assert r.status_code == 400 and "fields" in r.text
    r = httpx.get(url + "/api/export", params={"format": "xls"}, timeout=10)
    assert r.status_code == 422 and "format" in r.text


def test_no_server_path_in_any_response(served: tuple[str, Path]) -> None:
    url, root = served
    secret = str(root)
    key = {"Authorization": "Bearer k-123"}
    gets = [
        "/", "/?q=intègre", "/archives?q=intègre", "/documents/formule", "/health",
        "/api/search?q=intègre", "/api/documents/formule", "/api/documents/formule/similar",
        "/api/stats", "/api/tags", "/api/tags/untagged", "/api/autocomplete?q=int",
        "/api/documents/formule/tags/suggest", "/api/documents/nope",
        *(f"/api/export?format={f}" for f in ("csv", "csv-excel", "jsonl")),
    ]
    for headers in ({}, key):
        for path in gets:
            r = httpx.get(url + path, headers=headers, timeout=30)
            assert r.status_code < 500 or r.status_code == 503, (path, r.status_code)
            assert secret not in r.text, (path, r.text[:500])
        r = httpx.post(url + "/api/tags/suggest", json={"title": "Le cloud"}, headers=headers,
                       timeout=30)
        assert secret not in r.text, r.text
    r = httpx.put(url + "/api/documents/nouveau?collection=communiques", headers={
        **key, "Content-Type": "text/markdown"}, content="---\ntitle: Nouveau\ndate: 2022-01-01\n---\n\nTexte.\n",
        timeout=30)
    assert r.status_code in (200, 201), r.text
    assert secret not in r.text
    doc = get_eventually(url + "/api/documents/nouveau", headers=key).json()
    assert doc["path"] == "communiques/nouveau.md"
    r = httpx.put(url + "/api/documents/casse?collection=communiques", headers={
        **key, "Content-Type": "text/markdown"}, content="pas de front matter", timeout=30)
    assert r.status_code == 422 and secret not in r.text


# --- the rule itself, in one place --------------------------------------------------------------


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1+2", "@A1", "\t=1", "\r=1",
                                   "=HYPERLINK(\"x\")"])
def test_formula_like_cells_are_prefixed(value: str) -> None:
    assert spreadsheet_safe(value) == "'" + value


@pytest.mark.parametrize("value", ["Cloud", "L’État", "2022-05-01", "", "a=b", "'déjà"])
def test_other_cells_are_unchanged(value: str) -> None:
    assert spreadsheet_safe(value) == value


def test_cells_booleans_numbers_lists() -> None:
    assert cell(True) == "true" and cell(False) == "false"
    assert cell(1.5) == 1.5 and cell(None) == ""
    assert cell(["=a", "b"]) == "'=a | b"
    assert cell([{"path": "/uploads/x.pdf", "name": "X"}]) == "X"
    assert cell([{"path": "/uploads/x.pdf"}]) == "/uploads/x.pdf"
    assert cell([{"path": "/uploads/x.pdf", "name": ""}]) == "/uploads/x.pdf"


def test_stream_writes_false_and_neutralises_every_format() -> None:
    from openpyxl import load_workbook

    records = [{"id": "a", "title": "-1+1", "published": False, "score": -2.5}]
    fields = ["id", "title", "published", "score"]
    text = b"".join(stream(records, "csv", fields)).decode("utf-8-sig")
    assert list(csv.reader(io.StringIO(text)))[1] == ["a", "'-1+1", "false", "-2.5"]
    wb = load_workbook(io.BytesIO(b"".join(stream(records, "xlsx", fields))))
    assert list(wb.active.iter_rows(values_only=True))[1] == ("a", "'-1+1", "false", -2.5)
    xl = b"".join(stream([{"id": "a", "title": "\x01=1"}], "xlsx", ["id", "title"]))
    assert list(load_workbook(io.BytesIO(xl)).active.iter_rows(values_only=True))[1][1] == "'=1"


@pytest.mark.parametrize(("path", "collection", "expected"), [
    ("/srv/site/_communiques/a.md", "communiques", "_communiques/a.md"),
    ("/srv/site/_communiques/2020/a.md", "communiques", "_communiques/2020/a.md"),
    ("/home/x/corpus/actualites/b.md", "actualites", "actualites/b.md"),
    ("api:communiques/c.md", "communiques", "communiques/c.md"),
    ("/var/lib/x/d.md", "communiques", "d.md"),
    ("", "communiques", ""),
])
def test_public_path(path: str, collection: str, expected: str) -> None:
    assert public_path(path, collection) == expected


def test_exports_while_documents_are_written(served: tuple[str, Path]) -> None:
    """Exports keep opening cleanly while a writer adds documents (2 workers)."""
    import threading

    from openpyxl import load_workbook

    url, _ = served
    key = {"Authorization": "Bearer k-123", "Content-Type": "text/markdown"}
    written: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        with httpx.Client(timeout=30) as client:
            for i in range(8):
                if stop.is_set():
                    return
                body = f'---\ntitle: "=Formule {i}"\ndate: 2022-02-0{i + 1}\n---\n\nÉcrit {i}.\n'
                r = client.put(f"{url}/api/documents/ecrit-{i}?collection=communiques",
                               headers=key, content=body.encode())
                written.append(r.status_code)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for fmt in ("csv", "xlsx", "csv-excel", "xlsx", "csv"):
            r = _get(url, "/api/export", q="", format=fmt)
            if fmt == "xlsx":
                rows = list(load_workbook(io.BytesIO(r.content)).active.iter_rows(values_only=True))
                titles = [row[1] for row in rows[1:]]
            else:
                text = r.content.decode("utf-8-sig")
                delimiter = ";" if fmt == "csv-excel" else ","
                titles = [row["title"] for row in csv.DictReader(io.StringIO(text),
                                                                  delimiter=delimiter)]
            assert len(titles) >= 5
            assert all(not t.startswith(("=", "+", "-", "@")) for t in titles), titles
    finally:
        stop.set()
        thread.join()
    assert written and all(code == 200 for code in written), written
    # The worker that did not write opens the new index generation within a moment of the
    # commit: wait for it, as a reader would.
    wanted = {f"ecrit-{i}" for i in range(len(written))}
    deadline = time.monotonic() + 15
    while True:
        r = _get(url, "/api/export", q="", format="csv", fields="id,title")
        rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
        if wanted <= {row["id"] for row in rows} or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert wanted <= {row["id"] for row in rows}
    assert all(row["title"] == "'=Formule " + row["id"][-1] for row in rows
               if row["id"].startswith("ecrit-"))


def test_tags_shown_one_way_on_pages_and_api(served: tuple[str, Path]) -> None:
    url, _ = served
    html = _get(url, "/", q="intègre").text
    chips = re.findall(r'class="fr-tag fr-tag--sm tag">([^<]*)<', html)  # the hits' tags
    assert "Cloud" in chips and "cloud" not in chips
    api = _get(url, "/api/search", q="intègre", size=20).json()
    assert all(h["tags_canonical"].count("Cloud") == 1 for h in api["hits"])
    assert [f["label"] for f in api["facets"]["tag"]][0] == "Cloud"
    doc = _get(url, "/documents/plus").text
    assert ">Cloud</a>" in doc and ">cloud</a>" not in doc
