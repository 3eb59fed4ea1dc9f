"""Ingest through the command line: bad files rejected by name, incremental runs, pruning."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from service.cli import main
from tests.conftest import GOOD, ROOT, SAMPLE_CORPUS


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    src = tmp_path / "src" / "communiques"
    write(src, "bon-un.md", GOOD.format(title="Le cloud souverain progresse", body="Texte zygomorphe."))
    write(src, "bon-deux.md", GOOD.format(title="Les données ouvertes", body="Texte quinconce."))
    write(src, "yaml-invalide.md", "---\ntitle: 'pas fermé\ndate: 2020-01-01\n---\ncorps\n")
    write(src, "sans-titre.md", "---\ndate: 2020-01-01\n---\ncorps\n")
    write(src, "latin1.md", "---\ntitle: État\ndate: 2020-01-01\n---\n".encode("latin-1"))
    write(src, "binaire.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (src / "illisible.md").symlink_to(src / "nulle-part.md")
    return tmp_path / "src"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args], cwd=ROOT, capture_output=True,
        text=True, timeout=300,
    )


def test_mixed_folder_rejects_each_bad_file_by_name(mixed: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    proc = run_cli("ingest", str(mixed), "--index", str(index), "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["added"] == 2
    reasons = {Path(r["path"]).name: r["reason"] for r in report["rejected"]}
    assert set(reasons) == {"yaml-invalide.md", "sans-titre.md", "latin1.md", "binaire.md", "illisible.md"}
    assert "invalid YAML" in reasons["yaml-invalide.md"]
    assert "field 'title' is missing" in reasons["sans-titre.md"]
    assert "not UTF-8" in reasons["latin1.md"]
    assert "binary" in reasons["binaire.md"]
    assert "unreadable" in reasons["illisible.md"]
    for name in reasons:
        assert f"rejected: {mixed / 'communiques' / name}: " in proc.stderr
    # every good file is searchable
    proc = run_cli("search", "zygomorphe", "--index", str(index), "--json")
    assert [h["id"] for h in json.loads(proc.stdout)] == ["bon-un"]
    proc = run_cli("search", "quinconce", "--index", str(index), "--json")
    assert [h["id"] for h in json.loads(proc.stdout)] == ["bon-deux"]


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run_cli("ingest", str(tmp_path / "absent"), "--index", str(tmp_path / "i")).returncode == 2
    assert run_cli("ingest").returncode == 2


def test_incremental_update_and_prune(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src" / "actualites"
    a = write(src, "a.md", GOOD.format(title="Premier titre", body="alpha"))
    write(src, "b.md", GOOD.format(title="Second titre", body="beta"))
    index = str(tmp_path / "index")

    def ingest(*extra: str) -> dict:
        capsys.readouterr()
        assert main(["ingest", str(tmp_path / "src"), "--index", index, "--json", *extra]) == 0
        return json.loads(capsys.readouterr().out)

    assert ingest()["added"] == 2
    assert ingest()["unchanged"] == 2
    a.write_text(GOOD.format(title="Premier titre modifié", body="gamma"), encoding="utf-8")
    (src / "b.md").unlink()
    report = ingest()
    assert (report["updated"], report["unchanged"], report["pruned"]) == (1, 0, 0)
    assert ingest("--prune")["pruned"] == 1
    capsys.readouterr()
    main(["search", "gamma", "--index", index, "--json"])
    hits = json.loads(capsys.readouterr().out)
    assert [h["title"] for h in hits] == ["Premier titre modifié"]


def test_a_file_that_turns_bad_keeps_its_last_good_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src" / "communiques"
    a = write(src, "a.md", GOOD.format(title="Version saine", body="delta"))
    index = str(tmp_path / "index")
    assert main(["ingest", str(src), "--index", index]) == 0
    a.write_text("---\ntitle: [cassé\n---\n", encoding="utf-8")
    assert main(["ingest", str(src), "--index", index]) == 1
    capsys.readouterr()
    main(["search", "delta", "--index", index, "--json"])
    assert [h["title"] for h in json.loads(capsys.readouterr().out)] == ["Version saine"]


def test_sample_corpus_ingests_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = str(tmp_path / "index")
    assert main(["ingest", str(SAMPLE_CORPUS), "--index", index, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["added"] >= 60 and report["rejected"] == []


def test_real_corpus_all_indexed_then_unchanged(shared_corpus: Path, tmp_path: Path) -> None:
    copy = tmp_path / "corpus"
    shutil.copytree(shared_corpus, copy)
    index = tmp_path / "index"
    first = run_cli("ingest", str(copy), "--index", str(index), "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["added"] == 91
    second = json.loads(run_cli("ingest", str(copy), "--index", str(index), "--json").stdout)
    assert (second["unchanged"], second["added"], second["updated"]) == (91, 0, 0)


def test_optimize_merges_batches_into_one_segment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from indexer.ingest import ingest
    from indexer.schema import open_index
    from indexer.search import SearchIndex, SearchRequest

    src = tmp_path / "src"
    src.mkdir()
    for i in range(12):
        (src / f"doc-{i}.md").write_text(
            GOOD.format(title=f"Communiqué numéro {i}", body=f"Texte {i} sur la souveraineté."),
            encoding="utf-8",
        )
    index = tmp_path / "index"
    ix = open_index(index, create=True)
    ingest(ix, [src], batch_size=3, progress=False)  # four commits: several segments
    reader = ix.reader()
    assert len(reader.leaf_readers()) > 1
    reader.close()
    (src / "doc-0.md").write_text(GOOD.format(title="Communiqué révisé", body="Souveraineté."),
                                  encoding="utf-8")
    assert main(["ingest", str(src), "--index", str(index), "--optimize", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["segments"] == 1 and report["updated"] == 1
    si = SearchIndex(open_index(index), preload=False)
    assert si.search(SearchRequest(q="souveraineté")).total == 12
    assert [h.title for h in si.search(SearchRequest(q="révisé")).hits] == ["Communiqué révisé"]


def test_ingest_consolidates_many_segments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from indexer import ingest as ingest_module
    from indexer.schema import open_index
    from indexer.search import SearchIndex, SearchRequest

    src = tmp_path / "src"
    src.mkdir()
    for i in range(10):
        (src / f"doc-{i}.md").write_text(
            GOOD.format(title=f"Communiqué {i}", body="La plateforme des données publiques."),
            encoding="utf-8",
        )
    ix = open_index(tmp_path / "index", create=True)
    ingest_module.ingest(ix, [src], batch_size=4, progress=False)
    monkeypatch.setattr(ingest_module, "MAX_SEGMENTS", 1)
    for i in range(10, 16):
        (src / f"doc-{i}.md").write_text(
            GOOD.format(title=f"Communiqué {i}", body="La plateforme des données publiques."),
            encoding="utf-8",
        )
    (src / "doc-0.md").unlink()
    report = ingest_module.ingest(ix, [src], batch_size=1, prune=True, progress=False)
    assert report.segments <= 2  # the largest, and every other one merged (or all in one)
    si = SearchIndex(open_index(tmp_path / "index"), preload=False)
    assert si.search(SearchRequest(q="plateforme données")).total == 15
    assert si.document("doc-0") is None and si.document("doc-15") is not None
