"""A worker over an index with the lemma table never loads spaCy: queries, completions,
highlights and (table-analysis) tag suggestions all do without it, and its French model is
~230 MB of each worker's memory."""

from __future__ import annotations

import concurrent.futures as cf
import shutil
import time
from pathlib import Path

import httpx

from tests.conftest import start_server


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        out.extend(int(c) for c in children)
    return out


def _maps_module(pid: int, folder: str) -> bool:
    """Whether the process has files of a package's folder mapped (its compiled modules are,
    once imported)."""
    try:
        return folder in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def test_workers_answer_without_loading_spacy(tmp_path: Path, sample_index: Path,
                                              sample_model: Path) -> None:
    """Anonymous searches, completions and suggestions on both workers while a key holder
    writes (the write processes load spaCy; the workers do not)."""
    index = tmp_path / "index"  # written to: a copy of the session's index
    shutil.copytree(sample_index, index)
    key = "worker-memory-key"
    server = start_server(index, {"COMMUNIQUES_MODEL": str(sample_model),
                                  "COMMUNIQUES_FEEDBACK": str(tmp_path / "fb.jsonl"),
                                  "COMMUNIQUES_API_KEY": key,
                                  "COMMUNIQUES_DOCUMENTS": str(tmp_path / "docs")}, workers=2)
    editor = {"Authorization": f"Bearer {key}", "Content-Type": "text/markdown"}

    def write(n: int) -> int:
        body = (f"---\ntitle: Note {n} sur l’identité numérique\ndate: 2024-02-0{n + 1}\n---\n\n"
                f"Texte de la note {n} : l’identité numérique des agents.\n")
        return httpx.put(f"{server.url}/api/documents/note-{n}?collection=communiques",
                         content=body.encode(), headers=editor, timeout=120).status_code

    try:
        health = httpx.get(server.url + "/health", timeout=30).json()
        assert health["status"] == "ok" and health["analysis"] == "full", health
        with cf.ThreadPoolExecutor(1) as pool:
            writes = [pool.submit(write, n) for n in range(4)]
            while not all(w.done() for w in writes):  # both workers, anonymous, meanwhile
                r = httpx.get(server.url + "/api/search", params={"q": "développées"},
                              timeout=30)
                assert r.status_code == 200 and r.json()["total"] > 0
                assert any("<mark>" in h["snippet_html"] for h in r.json()["hits"])
                assert httpx.get(server.url + "/api/autocomplete", params={"q": "numéri"},
                                 timeout=30).status_code == 200
                r = httpx.post(server.url + "/api/tags/suggest", timeout=60, json={
                    "title": "L’État ouvre ses données",
                    "text": "Les données ouvertes sur data.gouv.fr."})
                assert r.status_code == 200 and r.json()["tags"], r.text
            assert all(w.result() in (200, 201) for w in writes)
        # A write is seen at once by its own worker, by the other one at its next look at the
        # index (every 0.25 s) once the new generation is built: poll, the machine is shared.
        deadline = time.monotonic() + 10
        while True:
            found = httpx.get(server.url + "/api/search", params={"q": "note identité"},
                              timeout=30).json()["hits"]
            if sum(h["id"].startswith("note-") for h in found) == 4 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert sum(h["id"].startswith("note-") for h in found) == 4, [h["id"] for h in found]
        # Written through the API, highlighted from their marks, for anonymous callers and key
        # holders alike (the written notes are published: both see them).
        # Polled like the search above: the worker answering may not have caught up yet.
        for headers in ({}, {"Authorization": f"Bearer {key}"}):
            deadline = time.monotonic() + 10
            while True:
                hits = httpx.get(server.url + "/api/search", params={"q": "identités numériques"},
                                 headers=headers, timeout=30).json()["hits"]
                notes = [h for h in hits if h["id"].startswith("note-")]
                if len(notes) == 4 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert len(notes) == 4, [h["id"] for h in hits]
            assert all("l’<mark>identité</mark> <mark>numérique</mark>" in h["snippet_html"]
                       for h in notes), [h["snippet_html"] for h in notes]
        children = _children(server.proc.pid)  # the two workers (and multiprocessing's helper)
        workers = [pid for pid in children if _maps_module(pid, "/numpy/")]
        assert len(workers) == 2, children
        assert not any(_maps_module(pid, "/spacy/") or _maps_module(pid, "/thinc/")
                       for pid in workers)
        # ... while the write processes, which analyse what is written, have it
        assert any(_maps_module(g, "/spacy/") for pid in workers for g in _children(pid))
    finally:
        server.stop()
