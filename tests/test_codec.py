"""The index's codec: stored fields written plain, blocks without length statistics, and
indexes written before with Whoosh's codec still read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from whoosh.codec.whoosh3 import W3Codec

from indexer import ingest as ingest_module
from indexer.codec import IndexCodec
from indexer.schema import open_index
from indexer.search import SearchIndex, SearchRequest
from service.cli import main
from tests.conftest import GOOD, SAMPLE_CORPUS

WHOOSH_OPTIONS = {"compound": False, "codec": W3Codec(compression=0)}
"""How the previous version wrote its segments."""


def _write(folder: Path, names: range, word: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in names:
        (folder / f"doc-{i}.md").write_text(
            GOOD.format(title=f"Communiqué {word} {i}", body=f"Texte {i} sur la {word}."),
            encoding="utf-8")


def _codecs(index: Path) -> list[type]:
    ix = open_index(index)
    return [type(segment.codec()) for segment in ix._segments()]  # noqa: SLF001 - the TOC's


def test_new_segments_store_fields_plain_beside_compressed_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    src, index = tmp_path / "src", tmp_path / "index"
    _write(src, range(4), "souveraineté")
    with monkeypatch.context() as m:  # an index written by the previous version
        m.setattr(ingest_module, "WRITER_OPTIONS", WHOOSH_OPTIONS)
        assert main(["ingest", str(src), "--index", str(index)]) == 0
    assert _codecs(index) == [W3Codec]
    _write(src, range(4, 7), "interopérabilité")
    assert main(["ingest", str(src), "--index", str(index)]) == 0
    assert sorted(map(str, _codecs(index))) == sorted(map(str, [W3Codec, IndexCodec]))
    plain = [p for p in index.glob("*._stored.col") if b"interop\xc3\xa9rabilit\xc3\xa9" in p.read_bytes()]
    assert len(plain) == 1, "the new segment's bodies are readable bytes, not zlib streams"

    si = SearchIndex(open_index(index), preload=False)
    old = si.search(SearchRequest(q="souveraineté"))
    new = si.search(SearchRequest(q="interopérabilité"))
    assert (old.total, new.total) == (4, 3)
    assert all("<mark>" in h.snippet_html for h in old.hits + new.hits)

    capsys.readouterr()
    assert main(["ingest", str(src), "--index", str(index), "--optimize", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["segments"] == 1
    assert _codecs(index) == [IndexCodec]
    si = SearchIndex(open_index(index), preload=False)
    titles = {h.title for h in si.search(SearchRequest(q="texte", size=20)).hits}
    assert titles == {f"Communiqué souveraineté {i}" for i in range(4)} | {
        f"Communiqué interopérabilité {i}" for i in range(4, 7)}


def test_same_results_as_with_whoosh_codec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks written without length statistics score exactly as before: the engine scores
    from its posting lists and the field lengths' column, never from Whoosh's block figures."""
    def build(name: str, options: dict) -> SearchIndex:
        index = tmp_path / name
        with monkeypatch.context() as m:
            m.setattr(ingest_module, "WRITER_OPTIONS", options)
            assert main(["ingest", str(SAMPLE_CORPUS), "--index", str(index)]) == 0
        return SearchIndex(open_index(index), preload=False)

    whoosh = build("whoosh", WHOOSH_OPTIONS)
    ours = build("ours", ingest_module.writer_options())
    assert _codecs(tmp_path / "ours") == [IndexCodec]
    for q in ("numérique", "données ouvertes", "identité numérique", "cyber*", "\"service public\"",
              "accessibilite des sites", "agents publics formation"):
        for drafts in (False, True):
            a = whoosh.search(SearchRequest(q=q, size=20, drafts=drafts))
            b = ours.search(SearchRequest(q=q, size=20, drafts=drafts))
            assert a.total == b.total and a.total > 0, q
            assert [(h.id, h.score, h.snippet_html, h.title_html) for h in a.hits] == [
                (h.id, h.score, h.snippet_html, h.title_html) for h in b.hits], q
            assert a.facets == b.facets, q
