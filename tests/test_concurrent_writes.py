"""Writes while reading: readers that outlive merges, writes that never freeze a worker,
"created" decided once, the source rule, an empty index served, and a short soak of writes,
reads and an ingest against ``serve --workers 2`` (the 60 s version: bench/concurrent_writes.py).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from whoosh.fields import ID, STORED, Schema
from whoosh.index import create_in

from indexer.engine import encode_meta
from indexer.ingest import ingest, open_writer
from indexer.locking import write_lock
from indexer.schema import open_index
from indexer.snapshot import PinnedStorage, open_reader, open_searcher
from tests.conftest import GOOD, ROOT, start_server

KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "text/markdown"}


# --- readers against merges (in process, no analysis) ---------------------------------------


def _tiny_index(folder: Path, batches: int = 4, per_batch: int = 20) -> None:
    """An index of several segments of small documents (stored fields and the meta column,
    the files Whoosh opens lazily)."""
    schema = Schema(id=ID(stored=True, unique=True), body=STORED, path=STORED)
    ix = create_in(str(folder), schema)
    n = 0
    for _ in range(batches):
        writer = open_writer(ix)
        for _ in range(per_batch):
            writer.add_document(id=f"d{n}", body="x" * 200, path=f"p{n}")
            n += 1
        writer.commit(merge=False)


def _merge_everything(folder: Path) -> None:
    from whoosh.index import open_dir

    writer = open_writer(open_dir(str(folder)))
    writer.commit(optimize=True)


def test_whoosh_alone_loses_the_files_a_reader_opens_late(tmp_path: Path) -> None:
    """The cause, pinned down: Whoosh's own reader opens stored fields on first use, and a
    merge by another writer deletes them first."""
    from whoosh.index import open_dir

    _tiny_index(tmp_path)
    searcher = open_dir(str(tmp_path)).searcher()
    _merge_everything(tmp_path)
    with pytest.raises((TypeError, OSError)):
        for docnum in range(searcher.doc_count_all()):
            searcher.stored_fields(docnum)


def test_a_pinned_reader_outlives_merges_by_another_writer(tmp_path: Path) -> None:
    from whoosh.index import open_dir

    _tiny_index(tmp_path)
    ix = open_dir(str(tmp_path))
    searcher = open_searcher(ix)
    _merge_everything(tmp_path)
    assert len([n for n in os.listdir(tmp_path) if n.endswith(".trm")]) == 1
    ids = {searcher.stored_fields(d)["id"] for d in range(searcher.doc_count_all())}
    assert ids == {f"d{i}" for i in range(80)}
    assert not searcher.up_to_date()
    fresh = open_searcher(ix)
    assert fresh.up_to_date() and fresh.doc_count() == 80


def test_a_generation_deleted_while_being_opened_is_retried(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A merge lands between reading the TOC and opening the files: the reader notices (the
    TOC it read is gone) and opens the new generation instead, whole."""
    from whoosh.index import open_dir

    _tiny_index(tmp_path)
    ix = open_dir(str(tmp_path))
    original = PinnedStorage.pin.__func__
    calls = []

    def pin_after_a_merge(cls, base, names):  # noqa: ANN001, ANN202
        names = list(names)
        if not calls:
            _merge_everything(tmp_path)  # the listing is now stale
        calls.append(len(names))
        return original(cls, base, names)

    monkeypatch.setattr(PinnedStorage, "pin", classmethod(pin_after_a_merge))
    reader = open_reader(ix)
    assert len(calls) == 2, calls
    assert reader.generation() == ix.latest_generation()
    assert sorted(f["id"] for f in reader.all_stored_fields()) == sorted(f"d{i}" for i in range(80))


# --- an empty index ---------------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], cwd=ROOT,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


def test_an_empty_index_is_searched_and_counted(tmp_path: Path) -> None:
    """A new index, as a first ingest killed before its first commit leaves it."""
    index = tmp_path / "index"
    open_index(index, create=True)
    stats = _cli("stats", "--index", str(index), "--json")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["documents"] == 0
    found = _cli("search", "numérique", "--index", str(index), "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout) == []


def test_an_empty_index_is_served_and_filled_by_the_first_write(tmp_path: Path) -> None:
    index = tmp_path / "index"
    env = {"COMMUNIQUES_API_KEY": KEY, "COMMUNIQUES_DOCUMENTS": str(tmp_path / "documents")}
    server = start_server(index, env, workers=2)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(4):  # both workers
                assert client.get("/health").json()["documents"] == 0
                r = client.get("/api/search", params={"q": "numérique"})
                assert r.status_code == 200 and r.json()["total"] == 0, r.text
                assert client.get("/api/stats").json()["documents"] == 0
            doc = GOOD.format(title="Premier communiqué numérique", body="Le numérique.")
            r = client.put("/api/documents/premier", content=doc.encode(), headers=AUTH)
            assert r.status_code == 200 and r.json()["status"] == "created", r.text
            deadline = time.monotonic() + 10
            seen = 0
            while seen < 4 and time.monotonic() < deadline:
                seen = seen + 1 if client.get(
                    "/api/search", params={"q": "numérique"}).json()["total"] == 1 else 0
            assert seen == 4
    finally:
        server.stop()


# --- writes through the API, against serve --workers 2 ----------------------------------------


@pytest.fixture()
def writable(tmp_path: Path, sample_index: Path):  # noqa: ANN201
    """A copy of the sample index served by 2 workers, with its documents folder."""
    import shutil

    index = tmp_path / "index"
    shutil.copytree(sample_index, index)
    documents = tmp_path / "documents"
    env = {"COMMUNIQUES_API_KEY": KEY, "COMMUNIQUES_DOCUMENTS": str(documents),
           "COMMUNIQUES_WRITE_WAIT": "8", "COMMUNIQUES_RATE_WRITE": "off"}
    server = start_server(index, env, workers=2)
    try:
        yield server.url, index, documents
    finally:
        server.stop()


def _doc(title: str) -> bytes:
    return GOOD.format(title=title, body=f"{title}, numérique.").encode()


def test_parallel_puts_of_a_new_id_create_it_once(writable) -> None:  # noqa: ANN001
    url, _, documents = writable

    def put(i: int) -> tuple[int, str]:
        r = httpx.put(f"{url}/api/documents/tout-nouveau", content=_doc(f"Version {i}"),
                      headers=AUTH, timeout=60)
        return r.status_code, r.json().get("status", r.text)

    with cf.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(put, range(20)))
    assert all(code == 200 for code, _ in answers), answers
    statuses = [s for _, s in answers]
    assert statuses.count("created") == 1, statuses
    assert statuses.count("updated") == 19, statuses
    path = documents / "communiques" / "tout-nouveau.md"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]


def test_an_id_is_matched_whole(writable) -> None:  # noqa: ANN001
    url, _, documents = writable
    r = httpx.put(f"{url}/api/documents/a%0A", content=_doc("Saut de ligne"), headers=AUTH)
    assert r.status_code == 422 and "id" in r.json()["detail"], r.text
    r = httpx.delete(f"{url}/api/documents/a%0A", headers=AUTH)
    assert r.status_code == 422, r.text
    assert not documents.exists() or not list(documents.rglob("a\n.md"))


def test_moving_a_document_removes_its_old_file(writable, tmp_path: Path) -> None:  # noqa: ANN001
    url, _, documents = writable
    for coll in ("communiques", "actualites"):
        r = httpx.put(f"{url}/api/documents/demenage", params={"collection": coll},
                      content=_doc(f"Dans {coll}"), headers=AUTH, timeout=120)
        assert r.status_code == 200, r.text
    assert sorted(p.relative_to(documents).as_posix() for p in documents.rglob("*.md")) == [
        "actualites/demenage.md"]
    rebuilt = open_index(tmp_path / "rebuilt", create=True)
    report = ingest(rebuilt, [documents], progress=False)
    assert not report.rejected and report.added == ["demenage"]
    r = httpx.delete(f"{url}/api/documents/demenage", headers=AUTH)
    assert r.status_code == 200 and not list(documents.rglob("*.md"))


def test_api_edits_win_over_another_folder(writable, tmp_path: Path) -> None:  # noqa: ANN001
    """The source rule: an ingest of the corpus never replaces what was written through the
    API, and says so; an ingest of the API's own folder is fine."""
    url, index, documents = writable
    corpus = tmp_path / "corpus" / "communiques"
    corpus.mkdir(parents=True)
    (corpus / "edite.md").write_bytes(_doc("Version du dépôt"))
    (corpus / "autre.md").write_bytes(_doc("Un autre communiqué"))
    ix = open_index(index)
    first = ingest(ix, [corpus.parent], progress=False)
    assert sorted(first.added) == ["autre", "edite"]
    r = httpx.put(f"{url}/api/documents/edite", content=_doc("Version éditée en ligne"),
                  headers=AUTH, timeout=120)
    assert r.status_code == 200 and r.json()["status"] == "updated", r.text
    (corpus / "edite.md").write_bytes(_doc("Version du dépôt, retouchée"))
    again = ingest(ix, [corpus.parent], progress=False)
    assert again.updated == [] and [p for p, _ in again.rejected] == [str(corpus / "edite.md")]
    assert "written through the API" in again.rejected[0][1]
    with open_searcher(ix) as s:
        assert s.document(id="edite")["title"] == "Version éditée en ligne"
    own = ingest(ix, [documents], progress=False)
    assert not own.rejected and own.unchanged == ["edite"]
    # The CLI reports the conflict as a rejected file: exit 1, the reason on stderr.
    cli = _cli("ingest", str(corpus.parent), "--index", str(index), "--quiet")
    assert cli.returncode == 1 and "written through the API" in cli.stderr, cli.stderr


def test_a_write_waiting_for_the_lock_never_freezes_its_worker(writable) -> None:  # noqa: ANN001
    """The write lock held (as an ingest's batch holds it): writes wait in threads, reads are
    answered meanwhile by both workers, and writes that cannot get the lock answer 503 with
    Retry-After."""
    url, index, _ = writable
    for _ in range(8):  # both workers warm (the first search of a worker builds its caches)
        httpx.get(f"{url}/api/search", params={"q": "numérique"}, timeout=60)
    lock = write_lock(index).acquire()
    try:
        with cf.ThreadPoolExecutor(8) as pool:
            t0 = time.monotonic()
            puts = [pool.submit(httpx.put, f"{url}/api/documents/attend-{i}",
                                content=_doc(f"Attente {i}"), headers=AUTH, timeout=120)
                    for i in range(4)]
            deletes = [pool.submit(httpx.delete, f"{url}/api/documents/attend-x",
                                   headers=AUTH, timeout=120)]
            time.sleep(0.3)
            slowest = (0.0, "")
            with httpx.Client(base_url=url, timeout=10) as client:
                while not all(f.done() for f in puts):
                    for path, params in (("/health", {}), ("/api/search", {"q": "numérique"})):
                        t = time.perf_counter()
                        assert client.get(path, params=params).status_code == 200
                        took = time.perf_counter() - t
                        if took > slowest[0]:
                            slowest = (took, f"{path} at {t - t0:.1f} s")
            waited = time.monotonic() - t0
        answers = [f.result() for f in puts + deletes]
    finally:
        lock.release()
    assert waited >= 6, "the writes did not wait for the lock"
    assert slowest[0] < 5.0, f"a read took {slowest[0]:.2f} s while writes waited ({slowest[1]})"
    for r in answers:
        assert r.status_code == 503 and r.headers.get("retry-after"), (r.status_code, r.text)
        assert "locked" in r.json()["detail"]
    r = httpx.put(f"{url}/api/documents/attend-0", content=_doc("Attente 0"), headers=AUTH,
                  timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "created", r.text


# --- the short soak ----------------------------------------------------------------------------


def test_writes_reads_and_an_ingest_at_once(tmp_path: Path, sample_index: Path) -> None:
    """10 s of the soak that ``make reliability`` runs for 60 s: PUT and DELETE threads, four
    reading threads, a CLI ingest meanwhile, against serve --workers 2."""
    from bench.concurrent_writes import run

    figures = run(seconds=10, workdir=tmp_path, base_index=sample_index, ingest_docs=30)
    assert figures["errors"] == [], figures["errors"][:5]
    assert figures["5xx"] == 0
    assert figures["requests"] > 50
    assert figures["writes_acknowledged"] > 5
    assert figures["writes_missing"] == [], figures["writes_missing"][:5]
    # lot after lot of 30 new documents while the soak lasts: at least the first, each whole
    assert figures["ingest_exit"] in (0, 1), figures
    assert figures["ingest_added"] >= 30 and figures["ingest_added"] % 30 == 0, figures
    assert figures["max_ms"] < 10_000  # generous: the targets are checked by the bench


def test_meta_column_of_a_tiny_index_is_read(tmp_path: Path) -> None:
    """The engine reads the meta column the ingest writes (smoke test for the pinned files)."""
    from indexer.engine import Engine

    schema = Schema(id=ID(stored=True, unique=True), path=STORED)
    from whoosh.columns import VarBytesColumn
    from whoosh.fields import COLUMN

    schema.add("meta", COLUMN(VarBytesColumn()))
    ix = create_in(str(tmp_path), schema)
    writer = open_writer(ix)
    writer.add_document(id="a", path="p", meta=encode_meta(
        id="a", ts=0.0, year=2020, coll="communiques", tags=[], raw_tags=[], cats=[], pub=True,
        title="A", lens=[1, 0, 0, 0]))
    writer.commit()
    engine = Engine(open_searcher(ix))
    _merge_everything(tmp_path)
    assert engine.ids == ["a"] and engine.stored_fields(0)["id"] == "a"
