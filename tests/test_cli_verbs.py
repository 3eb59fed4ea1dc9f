"""The command line has what the service has: the same fields as the API's search, and verbs
for export, one document, similar documents, untagged documents and the tag vocabulary, with
the filters (category, published or drafts, page)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.cli import main
from tests.conftest import start_server


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def sample_server(sample_index: Path) -> Iterator[str]:
    """A service over the very index the command line reads. The session's ``live_server``
    serves a copy that other tests write to: its ranking moves with their documents."""
    server = start_server(sample_index)
    yield server.url
    server.stop()


def test_search_json_has_the_api_fields(sample_index: Path, sample_server: str,
                                        capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "search", "cloud", "--index", str(sample_index), "--json",
                       "--published", "--limit", "5")
    assert code == 0
    cli_hits = json.loads(out)
    api = httpx.get(sample_server + "/api/search",
                    params={"q": "cloud", "published": "true", "size": 5}, timeout=30).json()
    assert [h["id"] for h in cli_hits] == [h["id"] for h in api["hits"]]
    for cli_hit, api_hit in zip(cli_hits, api["hits"], strict=True):
        assert set(cli_hit) == set(api_hit)
        assert cli_hit["snippet_html"] == api_hit["snippet_html"]
        assert cli_hit["tags_canonical"] == api_hit["tags_canonical"]
        assert not cli_hit["path"].startswith("/")
    code, out, _ = run(capsys, "search", "cloud", "--index", str(sample_index), "--full",
                       "--published", "--limit", "5")
    full = json.loads(out)
    assert set(full) == set(api) and full["total"] == api["total"]
    assert full["facets"] == api["facets"]


def test_filters_and_pages(sample_index: Path, capsys: pytest.CaptureFixture) -> None:
    index = ["--index", str(sample_index)]

    def ids(*args: str) -> list[str]:
        code, out, err = run(capsys, "search", *args, *index, "--json")
        assert code == 0, err
        return [h["id"] for h in json.loads(out)]

    every = ids("numérique", "--limit", "100")
    drafts = ids("numérique", "--drafts", "--limit", "100")
    published = ids("numérique", "--published", "--limit", "100")
    assert drafts, "the sample corpus has drafts matching 'numérique'"
    assert set(drafts).isdisjoint(published) and set(drafts) | set(published) == set(every)
    assert ids("numérique", "--no-drafts", "--limit", "100") == published
    assert ids("numérique", "--limit", "3", "--page", "2") == every[3:6]
    articles = ids("numérique", "--category", "Article", "--limit", "100")
    assert articles and set(articles) < set(every)
    with pytest.raises(SystemExit) as stopped:
        main(["search", "x", *index, "--drafts", "--published"])
    assert stopped.value.code == 2


def test_export_verb_writes_every_format(sample_index: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    from openpyxl import load_workbook

    index = ["--index", str(sample_index)]
    code, out, _ = run(capsys, "search", "cloud", *index, "--full", "--limit", "1")
    total = json.loads(out)["total"]
    target = tmp_path / "out.csv"
    assert run(capsys, "export", "cloud", *index, "-o", str(target))[0] == 0
    raw = target.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(rows) == total and {"tags", "tags_canonical"} <= set(rows[0])
    assert {r["published"] for r in rows} <= {"true", "false"}
    xlsx = tmp_path / "out.xlsx"
    assert run(capsys, "export", "cloud", *index, "--format", "xlsx", "-o", str(xlsx))[0] == 0
    sheet = list(load_workbook(xlsx, read_only=True).active.iter_rows(values_only=True))
    assert len(sheet) == total + 1
    code, out, _ = run(capsys, "export", "cloud", *index, "--format", "jsonl",
                       "--fields", "id,title")
    assert [set(json.loads(x)) for x in out.splitlines()] == [{"id", "title"}] * total
    code, _, err = run(capsys, "export", "cloud", *index, "--fields", "id,secret")
    assert code == 2 and "fields" in err


def test_document_similar_untagged_tags(sample_index: Path, sample_model: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    index = ["--index", str(sample_index)]
    doc_id = "cloud-interministeriel-nubo-le-cloud-de-letat-souvre-a-de-nouveaux-ministeres"
    code, out, _ = run(capsys, "document", doc_id, *index, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["id"] == doc_id and doc["body"]
    assert doc["path"] == f"communiques/{doc_id}.md"
    assert run(capsys, "document", "inconnu", *index)[0] == 1
    code, out, _ = run(capsys, "similar", doc_id, *index, "--json", "--limit", "3")
    similar = json.loads(out)
    assert code == 0 and 0 < len(similar) <= 3 and doc_id not in [s["id"] for s in similar]
    code, out, _ = run(capsys, "untagged", *index, "--model", str(sample_model), "--json")
    untagged = json.loads(out)
    assert code == 0 and untagged["total"] >= 1
    for row in untagged["documents"]:
        code, out, _ = run(capsys, "document", row["id"], *index, "--json")
        assert json.loads(out)["tags"] == []
    code, out, _ = run(capsys, "tags", *index, "--json")
    vocabulary = json.loads(out)
    labels = [t["label"] for t in vocabulary["tags"]]
    assert code == 0 and "État plateforme" in labels and "Etat plateforme" not in labels
