"""Writes off the serving worker, and connections without Nagle's delay: the two causes of
slow reads under writes (see service/write_process.py and service/tcp.py)."""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
import threading
from pathlib import Path

import httpx
import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from indexer.document import DocumentError
from service.tcp import HTTP_PROTOCOL, NoDelayH11Protocol
from service.write_process import WriteProcess, WriteProcessLost
from tests.conftest import start_server

KEY = "test-key-123"


def _die() -> None:
    os._exit(3)


def _pid() -> int:
    return os.getpid()


def _refuse() -> None:
    raise DocumentError("doc.md", "field 'title' is missing")


def test_a_refusal_in_the_write_process_arrives_whole() -> None:
    """The API names the field from the error the write process raised (it is pickled)."""
    again = pickle.loads(pickle.dumps(DocumentError("a.md", "field 'date': out of range")))
    assert (again.path, again.reason) == ("a.md", "field 'date': out of range")
    writes = WriteProcess(nice=0)
    try:
        with pytest.raises(DocumentError) as caught:
            asyncio.run(writes.run(_refuse))
        assert caught.value.reason == "field 'title' is missing"
    finally:
        writes.close()


def test_a_dead_write_process_fails_its_write_and_is_replaced() -> None:
    writes = WriteProcess(nice=0)
    try:
        first = asyncio.run(writes.run(_pid))
        assert first != os.getpid()  # not this process
        with pytest.raises(WriteProcessLost):
            asyncio.run(writes.run(_die))
        second = asyncio.run(writes.run(_pid))
        assert second not in (first, os.getpid())
    finally:
        writes.close()


def test_the_write_process_runs_at_a_lower_priority() -> None:
    if os.nice(0) > 15:  # a niced test run (CI): no lower priority left to observe
        pytest.skip(f"this test run is already at nice {os.nice(0)}")
    writes = WriteProcess(nice=4)
    try:
        assert asyncio.run(writes.run(os.nice, 0)) == os.nice(0) + 4
    finally:
        writes.close()


def test_every_connection_gets_tcp_nodelay() -> None:
    """uvicorn's own listening socket (``--workers N``) has protocol number 0, so asyncio
    leaves Nagle's algorithm on; the protocol turns it off on each accepted connection."""
    listener = socket.socket(family=socket.AF_INET)  # as uvicorn binds it
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    try:
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0

        class Transport:
            def get_extra_info(self, name: str, default: object = None) -> object:
                return conn if name == "socket" else default

        config = Config(app=lambda scope, receive, send: None, http=HTTP_PROTOCOL)
        config.load()
        loop = asyncio.new_event_loop()
        try:
            protocol = NoDelayH11Protocol(config, ServerState(), app_state={}, _loop=loop)
            protocol.connection_made(Transport())  # type: ignore[arg-type]
        finally:
            loop.close()
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        for s in (client, conn, listener):
            s.close()


def test_serve_uses_that_protocol(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import uvicorn

    from service.cli import main

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
    saved = dict(os.environ)  # serve sets variables for its workers
    try:
        assert main(["serve", "--index", str(tmp_path / "index"), "--workers", "2"]) == 0
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert seen["http"] == HTTP_PROTOCOL and seen["workers"] == 2


def test_writes_are_answered_while_reads_go_on(sample_index: Path, tmp_path: Path) -> None:
    """Through ``serve --workers 2``: writes (done in each worker's write process), reads of
    what was written, a refusal naming its field, all at once."""
    import shutil

    index = tmp_path / "index"
    shutil.copytree(sample_index, index)
    env = {"COMMUNIQUES_API_KEY": KEY, "COMMUNIQUES_DOCUMENTS": str(tmp_path / "docs"),
           "COMMUNIQUES_RATE_WRITE": "off", "COMMUNIQUES_WRITE_WARM": "1"}
    server = start_server(index, env=env, workers=2)
    auth = {"Authorization": f"Bearer {KEY}", "Content-Type": "text/markdown"}
    errors: list[str] = []
    stop = threading.Event()

    def read() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not stop.is_set():
                r = client.get("/api/search", params={"q": "numérique"})
                if r.status_code != 200:
                    errors.append(f"search {r.status_code}")

    readers = [threading.Thread(target=read) for _ in range(2)]
    try:
        for t in readers:
            t.start()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for n in range(8):
                body = (f"---\ntitle: Écrit en parallèle {n}\ndate: 2024-03-0{n + 1}\n---\n"
                        f"Corps du document {n}.\n")
                r = client.put(f"/api/documents/parallele-{n}", content=body.encode(),
                               headers=auth)
                assert r.status_code == 200, r.text
                assert r.json()["status"] == "created"
                # The writer's worker sees its write at once; the other a moment later.
            bad = client.put("/api/documents/sans-titre", content=b"---\ndate: 2024-01-01\n"
                             b"---\nPas de titre.\n", headers=auth)
            assert bad.status_code == 422 and "title" in bad.json()["detail"]
            gone = client.delete("/api/documents/parallele-0", headers=auth)
            assert gone.status_code == 200
    finally:
        stop.set()
        for t in readers:
            t.join()
        server.stop()
    assert not errors
    from indexer.schema import open_index
    from indexer.snapshot import open_searcher

    with open_searcher(open_index(index)) as searcher:
        ids = {f["id"] for f in searcher.all_stored_fields()}
    assert {f"parallele-{n}" for n in range(1, 8)} <= ids
    assert "parallele-0" not in ids and "sans-titre" not in ids


def test_opening_an_index_whose_newest_generation_was_just_replaced(
        sample_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ingest started while the API writes: the table of contents Whoosh listed is gone
    when it reads it (another commit replaced it); the index opens at the next listing."""
    from whoosh import index as whoosh_index

    from indexer import schema

    real = whoosh_index.open_dir
    failures = iter([FileNotFoundError("_MAIN_180.toc"), FileNotFoundError("_MAIN_181.toc")])

    def flaky(path: str, *args: object, **kwargs: object):  # noqa: ANN202
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real(path, *args, **kwargs)

    monkeypatch.setattr(schema.whoosh_index, "open_dir", flaky)
    assert schema.open_index(sample_index).doc_count() > 0
