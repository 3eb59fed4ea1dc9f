"""The alias file belongs to the index: editing it re-keys every document's tags at the next
ingest, without analysing any text again, and searches, ``serve`` and ``train`` follow it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import indexer.ingest as ingest_module
from indexer.ingest import ingest
from indexer.schema import open_index
from indexer.search import SearchIndex, SearchRequest
from indexer.vocabulary import DEFAULT_ALIASES, INDEX_RECORD, AliasFile, index_aliases
from service.cli import main

DOC = """---
title: {title}
date: 2021-03-04 10:00:00 +01:00
tags:
- {tag}
categories:
- Article
---

{title}, un texte sur la messagerie des agents.
"""


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus" / "communiques"
    corpus.mkdir(parents=True)
    (corpus / "tchap.md").write_text(DOC.format(title="Tchap grandit", tag="Tchap"))
    (corpus / "messagerie.md").write_text(
        DOC.format(title="La messagerie des agents", tag="Messagerie instantanée"))
    (corpus / "cloud.md").write_text(DOC.format(title="Le cloud", tag="Cloud"))
    (tmp_path / "aliases.yaml").write_text("Cloud: [nuage]\n", encoding="utf-8")
    return tmp_path


@pytest.fixture()
def spacy_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text handed to the French analysis (spaCy) by ingest."""
    seen: list[str] = []
    real = ingest_module.analyze_many_with

    def counting(items, n_process: int = 1) -> Iterator:  # noqa: ANN001
        def spy() -> Iterator:
            for text, ctx in items:
                seen.append(text)
                yield text, ctx
        return real(spy(), n_process=n_process)

    monkeypatch.setattr(ingest_module, "analyze_many_with", counting)
    return seen


def _ids(index: Path, tag: str) -> set[str]:
    si = SearchIndex(open_index(index), preload=False)
    return {h.id for h in si.search(SearchRequest(q="", tags=[tag], size=50)).hits}


def test_edited_alias_file_rekeys_without_analysis(site: Path, spacy_calls: list[str]) -> None:
    index, aliases = site / "index", site / "aliases.yaml"
    ix = open_index(index, create=True)
    first = ingest(ix, [site / "corpus"], progress=False, alias_file=AliasFile.read(aliases))
    assert len(first.added) == 3 and spacy_calls
    assert _ids(index, "Messagerie instantanée") == {"messagerie"}
    record = index_aliases(index)
    assert record is not None and record["path"] == str(aliases.resolve())

    # The editor maps Tchap onto "Messagerie instantanée" in the same file.
    aliases.write_text("Cloud: [nuage]\nMessagerie instantanée: [Tchap]\n", encoding="utf-8")
    spacy_calls.clear()
    assert main(["ingest", str(site / "corpus"), "--index", str(index), "--quiet",
                 "--json"]) == 0  # no --aliases: the file the index was keyed with
    assert spacy_calls == [], "re-keying must not analyse text again"
    assert _ids(index, "Messagerie instantanée") == {"messagerie", "tchap"}
    assert _ids(index, "Tchap") == {"messagerie", "tchap"}
    assert _ids(index, "nuage") == {"cloud"}
    # Text, other fields and categories survive the copy.
    si = SearchIndex(open_index(index), preload=False)
    assert [h.id for h in si.search(SearchRequest(q="grandit")).hits] == ["tchap"]
    assert si.search(SearchRequest(q="", category="Article")).total == 3
    assert index_aliases(index)["sha256"] == AliasFile.read(aliases).sha256  # type: ignore[index]

    # Unchanged file: nothing re-keyed; the report says so.
    report = ingest(open_index(index), [site / "corpus"], progress=False,
                    alias_file=AliasFile.read(aliases))
    assert report.rekeyed is None and len(report.unchanged) == 3

    # Another file given explicitly: re-keyed back.
    other = site / "other.yaml"
    other.write_text("Cloud: []\n", encoding="utf-8")
    report = ingest(open_index(index), [site / "corpus"], progress=False,
                    alias_file=AliasFile.read(other))
    assert report.rekeyed == 3 and spacy_calls == []
    assert _ids(index, "Tchap") == {"tchap"}


def test_rekey_report_on_the_command_line(site: Path, capsys: pytest.CaptureFixture) -> None:
    index = site / "index"
    args = ["ingest", str(site / "corpus"), "--index", str(index), "--quiet", "--json"]
    assert main([*args, "--aliases", str(site / "aliases.yaml")]) == 0
    capsys.readouterr()
    (site / "aliases.yaml").write_text("Messagerie instantanée: [Tchap]\n", encoding="utf-8")
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rekeyed"] == 3 and out["unchanged"] == 3 and out["added"] == 0


def test_bad_alias_file_is_a_usage_error(site: Path, capsys: pytest.CaptureFixture) -> None:
    bad = site / "bad.yaml"
    bad.write_text("- just\n- a list\n", encoding="utf-8")
    args = ["ingest", str(site / "corpus"), "--index", str(site / "index"), "--quiet"]
    assert main([*args, "--aliases", str(bad)]) == 2
    assert "bad.yaml" in capsys.readouterr().err
    assert main([*args, "--aliases", str(site / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err
    assert not (site / "index" / INDEX_RECORD).exists()


def test_packaged_alias_file_is_the_default(site: Path) -> None:
    assert DEFAULT_ALIASES.is_file()
    assert DEFAULT_ALIASES.parent.name == "indexer"
    index = site / "index"
    assert main(["ingest", str(site / "corpus"), "--index", str(index), "--quiet"]) == 0
    assert index_aliases(index)["path"] == str(DEFAULT_ALIASES.resolve())  # type: ignore[index]


def test_train_uses_the_index_alias_file(site: Path) -> None:
    import argparse

    commands = pytest.importorskip("models.commands")
    index = site / "index"
    (site / "aliases.yaml").write_text("Messagerie instantanée: [Tchap]\n", encoding="utf-8")
    assert main(["ingest", str(site / "corpus"), "--index", str(index), "--quiet",
                 "--aliases", str(site / "aliases.yaml")]) == 0
    chosen = commands._aliases(argparse.Namespace(aliases=None, index=index))
    assert chosen == {"Messagerie instantanée": ["Tchap"]}


def test_indexer_imports_nothing_from_models() -> None:
    root = Path(__file__).resolve().parents[1] / "indexer"
    for path in root.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "from models" not in text and "import models" not in text, path


def test_serve_aliases_rekeys_before_serving(site: Path) -> None:
    import argparse

    from service.cli import _serve_aliases

    index = site / "index"
    assert main(["ingest", str(site / "corpus"), "--index", str(index), "--quiet",
                 "--aliases", str(site / "aliases.yaml")]) == 0
    mapped = site / "mapped.yaml"
    mapped.write_text("Messagerie instantanée: [Tchap]\n", encoding="utf-8")
    args = argparse.Namespace(index=index, aliases=mapped)
    assert _serve_aliases(args) == 0
    assert _ids(index, "Tchap") == {"messagerie", "tchap"}
    assert _serve_aliases(argparse.Namespace(index=index, aliases=site / "absent.yaml")) == 2


def test_service_follows_a_rekey_while_serving(site: Path) -> None:
    """Two workers answer tag-filtered searches while an ingest re-keys the index: no error,
    and the new keys are served once the ingest is done."""
    import subprocess
    import sys
    import threading

    import httpx

    from tests.conftest import ROOT, start_server

    index = site / "index"
    assert main(["ingest", str(site / "corpus"), "--index", str(index), "--quiet",
                 "--aliases", str(site / "aliases.yaml")]) == 0
    server = start_server(index, {"COMMUNIQUES_DOCUMENTS": str(site / "documents")}, workers=2)
    statuses: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                r = client.get(server.url + "/api/search", params={"tag": "Tchap"})
                statuses.append(r.status_code)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        (site / "aliases.yaml").write_text("Messagerie instantanée: [Tchap]\n", encoding="utf-8")
        proc = subprocess.run(
            [sys.executable, "-m", "service.cli", "ingest", str(site / "corpus"), "--index",
             str(index), "--quiet", "--json"], cwd=ROOT, capture_output=True, text=True,
            timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["rekeyed"] == 3
        import time

        deadline = time.monotonic() + 10
        found: set[str] = set()
        while time.monotonic() < deadline and found != {"messagerie", "tchap"}:
            hits = httpx.get(server.url + "/api/search", params={"tag": "Tchap"}).json()["hits"]
            found = {h["id"] for h in hits}
        assert found == {"messagerie", "tchap"}
    finally:
        stop.set()
        for t in threads:
            t.join()
        server.stop()
    assert statuses and all(s == 200 for s in statuses), sorted(set(statuses))


def test_rekey_skips_deleted_documents(site: Path, spacy_calls: list[str]) -> None:
    from indexer.ingest import delete_document, rekey_tags
    from indexer.vocabulary import Vocabulary

    index = site / "index"
    ix = open_index(index, create=True)
    ingest(ix, [site / "corpus"], progress=False, alias_file=AliasFile.read(site / "aliases.yaml"))
    assert delete_document(ix, "cloud")
    spacy_calls.clear()
    assert rekey_tags(ix, Vocabulary({"Messagerie instantanée": ["Tchap"]})) == 2
    assert spacy_calls == []
    si = SearchIndex(open_index(index), aliases={"Messagerie instantanée": ["Tchap"]},
                     preload=False)
    hits = si.search(SearchRequest(q="", tags=["Tchap"], size=10)).hits
    assert {h.id for h in hits} == {"messagerie", "tchap"}
    assert si.document("cloud") is None and si.engine().doc_count == 2
