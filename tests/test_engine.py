"""The array engine's caches: posting lists shared across generations, read ahead, score
arrays reused; and the index layout that keeps a worker's memory small."""

from __future__ import annotations

import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from indexer import engine as engine_module
from indexer.engine import Engine, SegmentPostings
from indexer.ingest import delete_document, upsert_text
from indexer.schema import open_index
from indexer.search import SearchIndex, SearchRequest
from tests.conftest import GOOD


@pytest.fixture
def index_copy(tmp_path: Path, sample_index: Path) -> Path:
    folder = tmp_path / "index"
    shutil.copytree(sample_index, folder)
    return folder


def ids(si: SearchIndex, q: str) -> list[str]:
    return [h.id for h in si.search(SearchRequest(q=q, size=50)).hits]


def test_segments_are_separate_files_not_copied_into_memory(sample_index: Path) -> None:
    """Whoosh copies each file of a compound segment into memory when a reader opens it;
    separate files are read on demand. Opening a searcher must not allocate the postings."""
    assert not list(sample_index.glob("*.seg")), "compound segment written"
    postings = sum(p.stat().st_size for p in sample_index.glob("*.pst"))
    assert postings > 0
    ix = open_index(sample_index)
    tracemalloc.start()
    searcher = ix.searcher()
    allocated, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    searcher.close()
    assert allocated < postings / 2, (allocated, postings)


def test_lists_of_unchanged_segments_are_reused_by_the_next_generation(
    index_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    si = SearchIndex(open_index(index_copy), preload=False)
    before = ids(si, "numérique")
    assert before
    reads: list[tuple[str, str]] = []
    original = Engine._read

    def counting(self, leaf, offset, fieldname, term):  # noqa: ANN001, ANN202
        reads.append((fieldname, term))
        return original(self, leaf, offset, fieldname, term)

    monkeypatch.setattr(Engine, "_read", counting)
    ids(si, "numérique")
    assert reads == [], "a cached list was read again"

    upsert_text(si.ix, GOOD.format(title="Un nouveau service numérique", body="Numérique."),
                "nouveau-numerique", "communiques")
    si.changed()
    after = ids(si, "numérique")
    assert "nouveau-numerique" in after
    assert set(before) <= set(after)
    # Only the new segment was read: one read per (field, term) looked up, not one per segment.
    segments = len(si.engine().leaves)
    assert segments >= 2
    assert len(reads) == len(set(reads)), reads


def test_deleted_documents_never_come_back_from_cached_lists(index_copy: Path) -> None:
    si = SearchIndex(open_index(index_copy), preload=False)
    total = si.search(SearchRequest(q="numérique")).total
    victim = ids(si, "numérique")[0]
    assert delete_document(si.ix, victim)
    si.changed()
    assert victim not in ids(si, "numérique")
    assert victim not in ids(si, "numérique OR cloud")
    assert si.search(SearchRequest(q="numérique")).total == total - 1


def test_scores_are_the_same_from_cold_and_warm_caches(index_copy: Path) -> None:
    cold = SearchIndex(open_index(index_copy), preload=False)
    first = [(h.id, h.score) for h in cold.search(SearchRequest(q="données ouvertes", size=20)).hits]
    again = [(h.id, h.score) for h in cold.search(SearchRequest(q="données ouvertes", size=20)).hits]
    assert first == again and first


def test_score_arrays_are_cached_read_only(index_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "SCORES_MIN_SHARE", 10**9)  # cache every word here
    engine = SearchIndex(open_index(index_copy), preload=False).engine()
    a = engine.score_group([("numerique", 1.0)])
    b = engine.score_group([("numerique", 1.0)])
    assert a is b
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a[0] = 1.0
    assert a.max() > 0


def test_preload_reads_the_longest_lists_ahead(index_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "PRELOAD_MIN_POSTINGS", 5)
    si = SearchIndex(open_index(index_copy))
    si.warm()
    assert si.warmed()
    engine = si.engine()
    assert engine.lexicon.frequent, "no frequent term in the sample corpus"
    field, term = engine.lexicon.frequent[0]
    segid = engine.leaves[0][2]
    assert si._segments.get((segid, field, term)) is not None


def test_preload_stops_when_a_newer_generation_replaces_it(index_copy: Path) -> None:
    ix = open_index(index_copy)
    engine = Engine(ix.searcher(), SegmentPostings())
    assert engine.preload(ix.reader, current=lambda: False) == 0
    assert engine.preloaded.is_set()


def test_segment_cache_stays_within_its_budget() -> None:
    cache = SegmentPostings(budget=10_000)
    for i in range(100):
        cache.put(("seg", "body", f"t{i}"), engine_module.SegmentList(
            np.arange(500, dtype=np.int32), np.ones(500, dtype=np.float32), 100.0))
    assert cache.nbytes <= 10_000
    assert len(cache) >= 1
    assert cache.get(("seg", "body", "t99")) is not None
    assert cache.get(("seg", "body", "t0")) is None


def test_autocomplete_titles_match_the_title(index_copy: Path) -> None:
    si = SearchIndex(open_index(index_copy), preload=False)
    titles = [s for s in si.autocomplete("accessib") if s["kind"] == "title"]
    assert titles
    for s in titles:
        assert "accessib" in s["text"].lower(), s


def _reference(ix) -> dict:  # noqa: ANN001 - a Whoosh index
    """What the engine's arrays must say, read the slow way from every live document."""
    from collections import Counter

    from indexer.snapshot import open_searcher

    with open_searcher(ix) as s:
        docs = {f["id"]: f for f in s.all_stored_fields()}
    return {
        "ids": set(docs),
        "published": {i for i, f in docs.items() if f.get("published", True)},
        "spellings": Counter(t for f in docs.values() for t in f.get("tags", [])),
        "public": Counter(t for f in docs.values() if f.get("published", True)
                          for t in f.get("tags", [])),
        "collections": Counter(f["collection"] for f in docs.values()),
    }


def test_arrays_kept_per_segment_agree_with_every_document(index_copy: Path) -> None:
    """Writes, replacements and deletions over cached segments: the next generation's
    arrays (ids, published flags, tag spellings and counts, collections, titles) are those
    of the live documents, as a fresh read finds them."""
    ix = open_index(index_copy)
    segments = SegmentPostings()
    Engine(ix.searcher(), segments)  # every segment decoded and kept
    draft = GOOD.format(title="Brouillon", body="Texte.").replace(
        "tags:\n- Cloud", "published: false\ntags:\n- Souveraineté\n- cloud")
    upsert_text(ix, draft, "brouillon-colonnes", "communiques")
    upsert_text(ix, GOOD.format(title="Publié", body="Texte."), "publie-colonnes", "actualites")
    upsert_text(ix, GOOD.format(title="Publié 2", body="Texte."), "publie-colonnes", "evenements")
    first = Engine(ix.searcher(), segments).ids
    gone = next(d for d in first if d and d not in ("brouillon-colonnes", "publie-colonnes"))
    assert delete_document(ix, gone)
    engine = Engine(ix.searcher(), segments)
    fresh = Engine(ix.searcher(), SegmentPostings())
    ref = _reference(ix)
    live = set(np.flatnonzero(engine.live).tolist())
    assert {engine.ids[i] for i in live} == ref["ids"] and gone not in engine.id_to_docnum
    assert {engine.ids[i] for i in live if engine.published[i]} == ref["published"]
    assert +engine.spellings == ref["spellings"] and +engine.public_spellings == ref["public"]
    assert "Souveraineté" in engine.spellings and "Souveraineté" not in engine.public_spellings
    colls = np.bincount(engine.collection[engine.live], minlength=len(engine.collection_names))
    assert dict(zip(engine.collection_names, colls.tolist(), strict=True)) == ref["collections"]
    doc = engine.id_to_docnum["publie-colonnes"]
    assert engine.titles[doc] == "Publié 2"
    assert engine.collection_names[engine.collection[doc]] == "evenements"
    for name in ("ids", "titles"):
        assert getattr(engine, name) == getattr(fresh, name)
    for name in ("live", "published", "timestamp", "year", "collection"):
        assert np.array_equal(getattr(engine, name), getattr(fresh, name), equal_nan=True), name
    assert engine.tag_names == fresh.tag_names and engine.collection_names == fresh.collection_names
    assert (engine.tags != fresh.tags).nnz == 0


def test_phrases_read_at_the_candidates_agree_with_whoosh(index_copy: Path) -> None:
    """:meth:`Engine.phrase_docs` (positions read at the candidate documents only) finds the
    same documents as Whoosh's phrase query, across segments, for phrases taken from the
    documents and the same words in reverse order."""
    from whoosh import query as wq

    from indexer.analysis import light_words

    upsert_text(open_index(index_copy), GOOD.format(
        title="Services publics numériques", body="Des services publics numériques."),
        "phrase-nouveau", "communiques")
    si = SearchIndex(open_index(index_copy), preload=False)
    engine = si.engine()
    assert len(engine.leaves) >= 2
    candidates = [d for d in range(engine.n) if engine.live[d]]
    checked = 0
    for docnum in candidates[::7][:12]:
        for fieldname in ("title", "chapeau", "body"):
            words = list(light_words(engine.stored_fields(docnum).get(fieldname, "")))
            for i in range(0, max(0, len(words) - 2), 9):
                for phrase in ([w.surface for w in words[i : i + 2]],
                               [w.stem or w.surface for w in words[i : i + 3]],
                               [w.surface for w in words[i : i + 2]][::-1]):
                    with engine.lock:
                        m = wq.Phrase(fieldname, phrase, slop=1).matcher(engine.searcher)
                        want = []
                        while m.is_active():
                            want.append(m.id())
                            m.next()
                    want = [d for d in want if engine.live[d]]
                    assert engine.phrase_docs(fieldname, phrase, candidates) == want, phrase
                    checked += 1
    assert checked > 20


def test_stored_fields_read_from_the_segments_are_whooshs(index_copy: Path) -> None:
    """A hit's stored fields are read from its segment's column, without Whoosh's filtering
    per field: across several segments they are what Whoosh gives, and a field that left the
    schema is still left out."""
    ix = open_index(index_copy)
    upsert_text(ix, GOOD.format(title="Deuxième segment", body="Texte."), "second-seg", "actualites")
    upsert_text(ix, GOOD.format(title="Troisième segment", body="Texte."), "third-seg", "evenements")
    searcher = ix.searcher()
    engine = Engine(searcher, SegmentPostings())
    assert len(engine.leaves) >= 2 and all(p is not None for p in engine._perdocs)
    for docnum in np.flatnonzero(engine.live).tolist():
        assert engine.stored_fields(docnum) == searcher.stored_fields(docnum), docnum
    assert engine.stored_fields(engine.id_to_docnum["third-seg"])["title"] == "Troisième segment"

    writer = ix.writer()
    writer.remove_field("url")
    writer.commit()
    searcher = ix.searcher()
    engine = Engine(searcher, SegmentPostings())
    for docnum in np.flatnonzero(engine.live).tolist():
        got = engine.stored_fields(docnum)
        assert "url" not in got and got == searcher.stored_fields(docnum), docnum
