"""Synthetic indexes (tests and benchmarks) are built by the real ``ingest()``."""

from __future__ import annotations

from pathlib import Path

from bench.synth import build_light_index, generate, light_analysis
from indexer import analysis
from indexer.document import content_hash, read_source
from indexer.ingest import find_files
from indexer.schema import open_index


def test_light_index_is_an_ingest_of_the_generated_files(tmp_path: Path) -> None:
    paths = generate(tmp_path / "corpus", 24, seed=2, body_chars=300)
    before = analysis._pipeline._nlp
    assert build_light_index(tmp_path / "corpus", tmp_path / "index", commit_every=5) == 24
    assert analysis._pipeline._nlp is before  # the usual analysis is back
    with open_index(tmp_path / "index").searcher() as s:
        stored = {f["id"]: f for f in s.all_stored_fields()}
    # what ingest records: each file's content hash, path and collection
    assert sorted(stored) == sorted(p.stem for p in paths)
    for path in find_files([tmp_path / "corpus"]):
        doc = stored[path.stem]
        assert doc["hash"] == content_hash(read_source(path))
        assert doc["path"] == str(path) and doc["collection"] == path.parent.name
    # incremental like ingest: nothing changed, nothing written; one edit, one rewrite
    assert build_light_index(tmp_path / "corpus", tmp_path / "index") == 0
    paths[3].write_text(paths[3].read_text(encoding="utf-8") + "\nAjout.\n", encoding="utf-8")
    assert build_light_index(tmp_path / "corpus", tmp_path / "index") == 1


def test_light_analysis_keeps_forms_and_stems_without_lemmas() -> None:
    with light_analysis():
        words = analysis.analyze("Les services numériques développés")
    assert [w.text for w in words] == ["services", "numériques", "développés"]
    numeriques = words[1]
    assert numeriques.terms == ("numeriques",) and numeriques.stem == "~numer"
