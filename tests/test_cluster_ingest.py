"""Ingest on a Dask cluster (``--cluster``): the same index as a local ingest, incremental,
retried, crash-safe. One ``LocalCluster`` of 2 single-threaded worker processes serves the
module (starting it and loading spaCy in each worker is the fixed cost)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import distributed
import pytest

from bench import crash
from indexer.ingest import IngestReport, ingest
from indexer.locking import INGEST_LOCK, WRITE_LOCK, lock_status
from indexer.schema import open_index
from tests.conftest import GOOD, ROOT, SAMPLE_CORPUS, require_shared
from tests.test_ingest import write
from tests.test_plain_postings import assert_arrays_complete

QUERIES = ["numérique", "cloud souverain", "données ouvertes", "identité numérique",
           "agents publics", "tchap"]


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    from indexer.cluster import local_cluster

    with local_cluster(2) as cluster, distributed.Client(cluster) as c:
        yield c


def _ingest(index: Path, sources: list[Path], **kw: object) -> IngestReport:
    return ingest(open_index(index, create=True), sources, progress=False, **kw)


def _stored(index: Path) -> dict[str, dict]:
    with open_index(index).searcher() as s:
        return {f["id"]: f for f in s.all_stored_fields()}


def _results(index: Path) -> list[tuple[int, list[tuple[float, str]]]]:
    """Each query's total and hits, best first; documents of equal scores by id (the order
    of ties follows the segments' order, which differs with the batches)."""
    from indexer.search import SearchIndex, SearchRequest

    si = SearchIndex(open_index(index), preload=False)
    out = []
    for q in QUERIES:
        result = si.search(SearchRequest(q=q, size=100))
        out.append((result.total, sorted((-round(h.score, 4), h.id) for h in result.hits)))
    return out


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """Good files, bad ones of every kind, an id two files share, a refused file name."""
    src = tmp_path / "mixed"
    for k in range(30):
        write(src / "communiques", f"bon-{k:02d}.md",
               GOOD.format(title=f"Le cloud souverain, étape {k}", body=f"Texte numéro {k}."))
    write(src / "communiques", "yaml-invalide.md", "---\ntitle: 'pas fermé\n---\ncorps\n")
    write(src / "communiques", "sans-titre.md", "---\ndate: 2020-01-01\n---\ncorps\n")
    write(src / "communiques", "latin1.md", "---\ntitle: État\n---\n".encode("latin-1"))
    write(src / "communiques", "binaire.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    write(src / "communiques", "Nom Refusé.md", GOOD.format(title="Refusé", body="x"))
    # the same id twice: the first file does not parse, so the second one is indexed
    write(src / "actualites", "double.md", "---\ntitle: [\n---\n")
    write(src / "communiques", "double.md", GOOD.format(title="Le bon double", body="y"))
    return src


def _same_index(cluster_index: Path, local_index: Path) -> None:
    assert _stored(cluster_index) == _stored(local_index)
    assert _results(cluster_index) == _results(local_index)


@pytest.mark.parametrize("corpus", ["sample", "shared"])
def test_same_index_as_a_local_ingest(client: object, tmp_path: Path, corpus: str,
                                      request: pytest.FixtureRequest) -> None:
    """Same documents, stored fields and search results as ``--jobs 1`` (the session's
    index of the same corpus, built by ``ingest()`` without a cluster, nothing rejected)."""
    source = SAMPLE_CORPUS if corpus == "sample" else require_shared()
    local = request.getfixturevalue(f"{corpus}_index")
    remote = _ingest(tmp_path / "cluster", [source], cluster=client)
    assert remote.rejected == [] and remote.updated == remote.unchanged == []
    assert sorted(remote.added) == sorted(_stored(local)) and len(remote.added) > 50
    assert remote.cluster["workers"] == 2 and remote.cluster["batches"] >= 2
    _same_index(tmp_path / "cluster", local)


def test_rejected_files_reported_the_same(client: object, tmp_path: Path, mixed: Path) -> None:
    local = _ingest(tmp_path / "local", [mixed])
    remote = _ingest(tmp_path / "cluster", [mixed], cluster=client, batch_size=8)
    assert remote.rejected == local.rejected
    assert {Path(p).name for p, _ in remote.rejected} == {
        "yaml-invalide.md", "sans-titre.md", "latin1.md", "binaire.md", "Nom Refusé.md",
        "double.md"}
    assert remote.added == local.added and "double" in remote.added
    assert remote.cluster["batches"] >= 4  # several batches, parsed on the workers
    _same_index(tmp_path / "cluster", tmp_path / "local")


def _attach(doc: object) -> str:
    """A ``prepare`` as the attachment reader's: a text read beside the file, in the hash."""
    from indexer.document import Attachment

    text = f"Dossier de presse de {doc.id} : souveraineté numérique."
    doc.attachments.append(Attachment(path=f"/uploads/{doc.id}.pdf", name="Dossier",
                                      text=text, type="pdf", size=len(text)))
    return text


def test_prepared_documents_are_parsed_here(client: object, tmp_path: Path,
                                            mixed: Path) -> None:
    """With ``prepare`` (attachments, whose files are on the ingesting machine), documents
    are parsed and prepared here and sent whole: same index as a local ingest."""
    local = _ingest(tmp_path / "local", [mixed], prepare=_attach)
    remote = _ingest(tmp_path / "cluster", [mixed], cluster=client, prepare=_attach,
                     batch_size=8)
    assert remote.to_dict() | {"cluster": None, "segments": None} == \
        local.to_dict() | {"cluster": None, "segments": None}
    assert remote.cluster["files"] == len(remote.added) == 31
    _same_index(tmp_path / "cluster", tmp_path / "local")
    from indexer.search import SearchIndex, SearchRequest

    si = SearchIndex(open_index(tmp_path / "cluster"), preload=False)
    assert si.search(SearchRequest(q="dossier de presse souveraineté")).total == 31


def test_reingest_is_incremental(client: object, tmp_path: Path, mixed: Path) -> None:
    """Unchanged files are skipped by content hash (not sent: only the two files that did
    not parse are, again), a changed one replaces its old version, a removed one is pruned."""
    index = tmp_path / "index"
    first = _ingest(index, [mixed], cluster=client, batch_size=8)
    assert first.cluster["files"] == 31 + 2
    again = _ingest(index, [mixed], cluster=client, batch_size=8)
    assert again.added == again.updated == [] and again.unchanged == first.added
    assert again.rejected == first.rejected
    assert again.cluster["files"] == 2
    write(mixed / "communiques", "bon-03.md",
           GOOD.format(title="Le cloud souverain, étape révisée", body="Texte zygomorphe."))
    (mixed / "communiques" / "bon-04.md").unlink()
    changed = _ingest(index, [mixed], cluster=client, batch_size=8, prune=True)
    assert changed.updated == ["bon-03"] and changed.added == [] and changed.pruned == ["bon-04"]
    stored = _stored(index)
    assert len(stored) == len(first.added) - 1  # the old version is gone, not beside the new
    assert stored["bon-03"]["title"] == "Le cloud souverain, étape révisée"
    from indexer.search import SearchIndex, SearchRequest

    si = SearchIndex(open_index(index), preload=False)
    assert [h.id for h in si.search(SearchRequest(q="zygomorphe")).hits] == ["bon-03"]


def test_many_batches_merge_on_the_workers(client: object, tmp_path: Path, mixed: Path) -> None:
    """Tiny batches: segments of like sizes are merged (on the workers) as they accumulate,
    and the index ends with few segments and every document once."""
    report = _ingest(tmp_path / "index", [mixed], cluster=client, batch_size=2)
    assert report.cluster["batches"] >= 15 and report.cluster["merges"] >= 2
    assert report.segments <= 6
    local = _ingest(tmp_path / "local", [mixed])
    _same_index(tmp_path / "index", tmp_path / "local")
    # Each segment's posting arrays are written where it is built, and travel with it.
    assert_arrays_complete(tmp_path / "index")
    optimized = _ingest(tmp_path / "opt", [mixed], cluster=client, batch_size=2, optimize=True)
    assert optimized.segments == 1 and optimized.added == local.added


class FailOnce(distributed.WorkerPlugin):
    """Makes the first batch analysed in the cluster fail (a marker file says it did)."""

    name = "fail-once"

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def setup(self, worker: object) -> None:  # noqa: ARG002
        import indexer.cluster as cluster

        self.original = cluster.analyse_stream
        marker = self.marker

        def analyse_stream(*args: object, **kw: object) -> object:
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                return self.original(*args, **kw)
            os.close(fd)
            raise RuntimeError("injected failure")

        cluster.analyse_stream = analyse_stream

    def teardown(self, worker: object) -> None:  # noqa: ARG002
        import indexer.cluster as cluster

        cluster.analyse_stream = self.original


def test_a_failed_batch_is_retried(client: object, tmp_path: Path, mixed: Path) -> None:
    marker = tmp_path / "failed-once"
    client.register_plugin(FailOnce(str(marker)))
    try:
        report = _ingest(tmp_path / "index", [mixed], cluster=client, batch_size=8)
    finally:
        client.unregister_worker_plugin(FailOnce.name)
    assert marker.exists(), "no batch failed: the test did not test anything"
    assert len(report.added) == 31 and len(_stored(tmp_path / "index")) == 31


def test_a_lost_worker_batches_run_on_another(client: object, tmp_path: Path,
                                              mixed: Path) -> None:
    """A worker killed (SIGKILL) while it analyses: Dask runs its batch again elsewhere."""
    pids = client.run(os.getpid)
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["report"] = _ingest(tmp_path / "index", [mixed], cluster=client,
                                       batch_size=4)
        except BaseException as exc:  # noqa: BLE001 - reported below
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and thread.is_alive() and time.monotonic() < deadline:
        for address, keys in client.processing().items():
            if any(str(k).startswith("analyse-") for k in keys) and address in pids:
                os.kill(pids[address], signal.SIGKILL)
                killed = address
                break
        time.sleep(0.02)
    thread.join(timeout=180)
    assert killed is not None, "no batch was seen running"
    assert "error" not in result, result.get("error")
    assert len(result["report"].added) == 31
    assert len(_stored(tmp_path / "index")) == 31
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it, for the next tests


def test_kill_9_during_a_cluster_ingest_leaves_the_last_good_index(client: object,
                                                                   tmp_path: Path) -> None:
    """The ingesting process killed right after its first commit (on the module's cluster,
    reached by its address): the index opens, each document old or new, the locks free; the
    next ingest completes."""
    corpus, index, base = crash.setup(tmp_path, n=40, body_chars=400, seed=5)
    crash.write_version(corpus, base, 0, 0)
    _ingest(index, [corpus], cluster=client)
    old, problems = crash.index_state(index)
    assert not problems and len(old) == 40
    new = crash.write_version(corpus, base, 1, 3)
    since = crash.generation(index)
    log = tmp_path / "child-stderr.txt"
    with open(log, "wb") as err:
        proc = subprocess.Popen(crash.child_command(index, corpus, 1, 4,
                                                    cluster=client.scheduler.address),
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
    crash.wait_for_commit(index, since, proc, 120)
    assert proc.poll() is None, log.read_text()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert [lock_status(index / n).state for n in (WRITE_LOCK, INGEST_LOCK)] == ["free"] * 2
    state, problems = crash.index_state(index)
    assert not problems
    in_new, problems = crash.check_states(state, old, new)
    assert not problems
    assert 1 <= in_new < len(new)  # killed between commits: some batches are in
    again = _ingest(index, [corpus], cluster=client)
    assert len(again.added) + len(again.updated) == len(new) - in_new
    assert crash.index_state(index) == (new, [])


def test_cli_cluster_local(tmp_path: Path) -> None:
    """``communiques ingest --cluster local:2`` end to end; its worker processes end with it."""
    corpus = tmp_path / "corpus"
    for k in range(6):
        write(corpus / "communiques", f"cli-{k}.md",
               GOOD.format(title=f"Le cloud souverain, étape {k}", body="Texte quinconce."))
    index = tmp_path / "index"
    cmd = [sys.executable, "-m", "service.cli", "ingest", str(corpus), "--index", str(index),
           "--cluster", "local:2", "--json", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    watcher = crash.ChildWatcher(proc.pid)
    watcher.start()
    out, err = proc.communicate(timeout=300)
    watcher.stop()
    assert proc.returncode == 0, err[-3000:]
    report = json.loads(out)
    assert report["added"] == 6 and report["cluster"]["workers"] == 2
    assert len(watcher.seen) >= 2 and crash.survivors(watcher.seen, wait=5.0) == []
    from indexer.search import SearchIndex, SearchRequest

    si = SearchIndex(open_index(index), preload=False)
    assert sorted(h.id for h in si.search(SearchRequest(q="quinconce")).hits) == \
        [f"cli-{k}" for k in range(6)]
    proc = subprocess.run(cmd + ["--jobs", "2"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "not allowed with" in proc.stderr


def test_unreachable_scheduler_is_a_usage_error(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.net import free_port
    from indexer import cluster
    from indexer.ingest import IngestError

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 2.0)

    with pytest.raises(IngestError, match="cannot reach the scheduler"):
        _ingest(tmp_path / "index", [SAMPLE_CORPUS], cluster=f"tcp://127.0.0.1:{free_port()}")



class _Seg:
    def __init__(self, n: int) -> None:
        self.n = n

    def doc_count_all(self) -> int:
        return self.n


def test_consolidation_groups() -> None:
    """At most 6 segments are left; past 20,000 documents to merge, the merge is split into
    groups of like sizes (one per worker, up to 5) merged at once."""
    from indexer.cluster import consolidation_groups

    assert consolidation_groups([_Seg(100)] * 6, 4) == []
    small = [_Seg(5000), *[_Seg(100)] * 9]
    assert [len(g) for g in consolidation_groups(small, 4)] == [9]  # all but the largest
    big = [_Seg(50_000), *[_Seg(12_000)] * 15]
    groups = consolidation_groups(big, 4)
    assert [len(g) for g in groups] == [3, 3, 3, 3, 3]
    assert all(s.n == 12_000 for g in groups for s in g)
    assert len(consolidation_groups(big, 50)) == 5  # the largest and 5 merged: 6 left


def test_no_consolidation_merge_is_bigger_than_a_worker_can_hold() -> None:
    """Seen at 300,000 documents (100,000, then 200,000 in 27 segments, 2 workers): two merges
    of 100,000 documents each, ~8 GB on each worker and in the ingesting process: killed for
    want of memory. No merge may write more than ``MERGE_MAX_DOCS`` documents."""
    from indexer.cluster import MERGE_MAX_DOCS, consolidation_groups

    segments = [_Seg(100_000), *[_Seg(10_000) for _ in range(9)], *[_Seg(7_000) for _ in range(18)]]
    groups = consolidation_groups(segments, 2)
    assert all(sum(s.n for s in g) <= MERGE_MAX_DOCS for g in groups)
    merged = {id(s) for g in groups for s in g}
    assert len(merged) == 27 and id(segments[0]) not in merged  # all but the largest
    # a segment past the bound is left as it is
    groups = consolidation_groups([_Seg(200_000), _Seg(80_000), *[_Seg(10)] * 6], 2)
    assert [[s.n for s in g] for g in groups] == [[10] * 6]


def test_a_worker_segment_bigger_than_the_writer_memory_spills_to_disk() -> None:
    """A big merge on a worker outgrows the writer's memory limit: Whoosh then writes sorted
    runs of postings to the temporary storage and reads them back. In Whoosh's in-memory
    storage those runs were never kept (``NameError: ….run`` at 2,000 documents); the
    worker's temporary folder is a private one on its disk, removed at the end."""
    import tempfile

    from indexer.cluster import _memory_index, _remove_temporary
    from indexer.segments import _finish_segment
    from indexer.snapshot import SafeSegmentWriter

    ix = _memory_index("MAIN")
    writer = SafeSegmentWriter(ix, _lk=False, limitmb=0.05)  # spills every ~50 kB
    for n in range(300):
        writer.add_document(id=f"d{n}", title=f"Titre {n}",
                            body=" ".join(f"mot{(n * 7 + k) % 997}" for k in range(60)))
    segment = _finish_segment(writer)
    made = list(ix.storage.temporary)  # its own folders (other workers may have theirs)
    _remove_temporary(ix)
    assert segment is not None and segment.doc_count_all() == 300
    assert made and all(Path(folder).parent == Path(tempfile.gettempdir()) for folder in made)
    assert not any(Path(folder).exists() for folder in made)
