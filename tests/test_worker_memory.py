"""A worker over an index with the lemma table never loads spaCy: queries, completions,
highlights and (table-analysis) tag suggestions all do without it, and its French model is
~230 MB of each worker's memory."""

from __future__ import annotations

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
    server = start_server(sample_index, {"COMMUNIQUES_MODEL": str(sample_model),
                                         "COMMUNIQUES_FEEDBACK": str(tmp_path / "fb.jsonl")},
                          workers=2)
    try:
        health = httpx.get(server.url + "/health", timeout=30).json()
        assert health["status"] == "ok" and health["analysis"] == "full", health
        for _ in range(6):  # both workers: searches (lemmas matched), completions, suggestions
            r = httpx.get(server.url + "/api/search", params={"q": "développées"}, timeout=30)
            assert r.status_code == 200 and r.json()["total"] > 0
            assert httpx.get(server.url + "/api/autocomplete", params={"q": "numéri"},
                             timeout=30).status_code == 200
            r = httpx.post(server.url + "/api/tags/suggest", timeout=60, json={
                "title": "L’État ouvre ses données", "text": "Les données ouvertes sur data.gouv.fr."})
            assert r.status_code == 200 and r.json()["tags"], r.text
        children = _children(server.proc.pid)  # the two workers (and multiprocessing's helper)
        workers = [pid for pid in children if _maps_module(pid, "/numpy/")]
        assert len(workers) == 2, children
        assert not any(_maps_module(pid, "/spacy/") or _maps_module(pid, "/thinc/")
                       for pid in workers)
    finally:
        server.stop()
