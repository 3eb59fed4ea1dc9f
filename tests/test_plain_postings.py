"""Each segment's posting arrays (``<segment>.cqp``): written with every segment, by every
path that makes one (an ingest's batches, merges, API writes), the same postings as
Whoosh's own, the same search results as reading Whoosh's blocks, and never a failure when
the file is missing or damaged."""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from indexer import plain_postings
from indexer.ingest import ingest, upsert_text
from indexer.schema import PHRASE_FIELDS, TEXT_FIELDS, WordPositions, open_index
from indexer.search import SearchIndex, SearchRequest
from tests.conftest import SAMPLE_CORPUS

QUERIES = ["numérique", "cloud souverain", "données ouvertes", "IA", "France Connect",
           "agents publics", "tchap", "\"service public\"", "administraton", "identi"]


def segment_ids(index: Path) -> list[str]:
    return [seg.segment_id() for seg in open_index(index)._segments()]  # noqa: SLF001


def assert_arrays_complete(index: Path) -> None:
    """Every segment of the newest generation has its arrays file, none is left of other
    segments, and each holds exactly Whoosh's postings: documents, frequencies, positions."""
    ix = open_index(index)
    ids = segment_ids(index)
    files = {p.name for p in index.iterdir() if p.name.endswith("." + plain_postings.EXTENSION)}
    assert files == {plain_postings.file_name(s) for s in ids}
    reader = ix.reader()
    try:
        for leaf, _ in reader.leaf_readers():
            arrays = plain_postings.open_for(ix.storage, leaf.segment().segment_id())
            assert arrays is not None
            for field in TEXT_FIELDS:
                if not leaf.field_length(field):
                    assert not arrays.has(field)
                    continue
                for tbytes in leaf.lexicon(field):
                    term = tbytes.decode()
                    m = leaf.postings(field, term)
                    m = getattr(m, "child", m)
                    docs, tfs, positions = [], [], {}
                    while m.is_active():
                        docs.append(m.id())
                        tfs.append(m.weight())
                        positions[m.id()] = m.value_as("positions")
                        m.next()
                    got = arrays.postings(field, term)
                    assert got is not None, (field, term)
                    assert got[0].tolist() == docs and np.allclose(got[1], tfs), (field, term)
                    if field in PHRASE_FIELDS:
                        at = arrays.positions(field, term, docs)
                        assert at == positions, (field, term)
                        # Some documents (and one without the term): read in one block of
                        # the term's positions, and one read per document.
                        some = [*docs[::3], 10**6]
                        for span in (0, 10**9):
                            with pytest.MonkeyPatch.context() as mp:
                                mp.setattr(plain_postings, "POSITIONS_SPAN_READ", span)
                                got_some = arrays.positions(field, term, some)
                            assert got_some == {d: positions[d] for d in docs[::3]}, (field, term)
                assert arrays.postings(field, "zzzz-absent") is None
    finally:
        reader.close()


def _results(index: Path) -> list[tuple]:
    si = SearchIndex(open_index(index), preload=False)
    out = []
    for q in QUERIES:
        r = si.search(SearchRequest(q=q, size=50, drafts=True))
        out.append((q, r.total, [(h.id, round(h.score, 5), h.title_html, h.snippet_html) for h in r.hits]))
    return out


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded corpus, ingested in small batches (several segments, merged)."""
    path = tmp_path_factory.mktemp("plain") / "index"
    ingest(open_index(path, create=True), [SAMPLE_CORPUS], progress=False, batch_size=7)
    return path


def test_every_segment_has_its_arrays_and_they_are_whooshs_postings(index: Path) -> None:
    assert len(segment_ids(index)) >= 1
    assert_arrays_complete(index)


def test_same_results_without_the_arrays_and_with_a_damaged_file(
        index: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Reading Whoosh's blocks (no file) and the arrays give the same hits, scores,
    titles and snippets; a damaged file is logged and the segment read through Whoosh."""
    expected = _results(index)
    bare = tmp_path / "bare"
    shutil.copytree(index, bare)
    for p in bare.glob("*." + plain_postings.EXTENSION):
        p.unlink()
    assert _results(bare) == expected
    damaged = tmp_path / "damaged"
    shutil.copytree(index, damaged)
    for p in damaged.glob("*." + plain_postings.EXTENSION):
        p.write_bytes(b"not an arrays file")
    with caplog.at_level(logging.WARNING, logger="communiques.postings"):
        assert _results(damaged) == expected
    assert "unreadable" in caplog.text
    # A later ingest writes the missing files of an index of an earlier version.
    assert plain_postings.add_missing(open_index(bare)) == len(segment_ids(bare))
    assert_arrays_complete(bare)
    # Read back from Whoosh's blocks or taken from the postings as they were written: the
    # same file, byte for byte.
    for p in index.glob("*." + plain_postings.EXTENSION):
        assert (bare / p.name).read_bytes() == p.read_bytes(), p.name
    assert plain_postings.add_missing(open_index(bare)) == 0


def test_api_writes_and_deletes_keep_the_arrays_whole(tmp_path: Path) -> None:
    """Each write through the API makes a small segment, merged later: every segment has
    its arrays, none outlives its segment, and a new version's words are found at once."""
    path = tmp_path / "index"
    ingest(open_index(path, create=True), [SAMPLE_CORPUS], progress=False)
    ix = open_index(path)
    for k in range(12):
        text = (f"---\ntitle: Note {k} sur la messagerie Zorglub\ndate: 2024-03-0{k % 9 + 1}\n"
                f"tags: [Tchap]\n---\nLa messagerie Zorglub numéro {k} des agents publics.\n")
        upsert_text(ix, text, f"zorglub-{k}", collection="communiques")
    for thread in threading.enumerate():  # the merges that follow API writes
        if thread.name == "merge-segments":
            thread.join(timeout=60)
    assert_arrays_complete(path)
    si = SearchIndex(open_index(path), preload=False)
    result = si.search(SearchRequest(q="\"messagerie zorglub\"", size=50))
    assert result.total == 12


def test_positions_of_every_width_are_parsed() -> None:
    """Position deltas of 1, 2 and 4 bytes (pickle's three int opcodes), single and many,
    the trailing stop byte present or not, and any other shape unpickled one by one."""
    fmt = WordPositions()
    lists = [[0], [3], [300], [70_000], [1, 2, 3], [5, 400, 70_000, 8], list(range(0, 3000, 7)),
             [65_535, 65_536]]
    values = [fmt.encode(p) for p in lists]
    values[1] = values[1][:-1]  # Whoosh may drop the stop byte
    count, deltas = plain_postings._parse_positions(values)  # noqa: SLF001
    assert count.tolist() == [len(p) for p in lists]
    expected = [d for p in lists for d in np.diff([0, *p]).tolist()]
    assert deltas.tolist() == expected
    import pickle

    odd = [b"\x00\x00\x00\x02" + pickle.dumps([4, 5], protocol=4)]
    count, deltas = plain_postings._parse_positions(odd)  # noqa: SLF001
    assert count.tolist() == [2] and deltas.tolist() == [4, 5]
