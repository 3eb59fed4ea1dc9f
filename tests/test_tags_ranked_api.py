"""The tag API as editors and visitors meet it: a ranked list with ``confident``, reasons by
signal, neighbours that are never drafts for anonymous callers, usage counts with examples, and
feedback with tags added by hand (2 workers, reads and writes at once)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import SAMPLE_CORPUS, build_index, start_server

KEY = "ranked-editor-key"
EDITOR = {"Authorization": f"Bearer {KEY}"}
DRAFT = {
    "title": "Le cloud de l’État s’ouvre aux collectivités",
    "text": "Le cloud interministériel Nubo accueille de nouveaux ministères et les collectivités "
            "territoriales. Les données restent hébergées en France, sur une offre qualifiée.",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           sample_model: Path) -> Iterator[tuple[str, Path]]:
    var = tmp_path_factory.mktemp("ranked-var")
    index = build_index(tmp_path_factory.mktemp("ranked-index"), SAMPLE_CORPUS)
    live = start_server(index, {"COMMUNIQUES_MODEL": str(sample_model),
                                "COMMUNIQUES_FEEDBACK": str(var / "feedback.jsonl"),
                                "COMMUNIQUES_API_KEY": KEY}, workers=2)
    yield live.url, var / "feedback.jsonl"
    live.stop()


def test_ranked_list_with_confident_and_reasons(server: tuple[str, Path]) -> None:
    base = server[0]
    r = httpx.post(base + "/api/tags/suggest", json={**DRAFT, "k": 8}, timeout=60)
    assert r.status_code == 200, r.text
    tags = r.json()["tags"]
    assert len(tags) == 8
    assert tags[0]["key"] == "cloud" and tags[0]["confident"] is True
    assert any(not t["confident"] for t in tags)
    for t in tags:
        assert t["uri"] and t["count"] >= 0
        for e in t["explanations"]:
            if e["signal"] == "neighbour":
                assert e["text"].startswith("comme le document") and e["url"]
                doc = httpx.get(f"{base}/api/documents/{e['doc_id']}", timeout=30)
                assert doc.status_code == 200 and doc.json()["published"] is not False
            else:
                assert e["text"] in DRAFT[e["field"]]


def test_vocabulary_shows_usage_and_examples(server: tuple[str, Path]) -> None:
    data = httpx.get(server[0] + "/api/tags", timeout=30).json()
    cloud = next(t for t in data["tags"] if t["key"] == "cloud")
    assert cloud["count"] >= 2 and len(cloud["examples"]) == 2
    assert all(e["url"] == f"/documents/{e['id']}" for e in cloud["examples"])


def test_feedback_with_added_tags_while_suggesting(server: tuple[str, Path]) -> None:
    base, log = server
    anonymous = httpx.post(base + "/api/tags/feedback", json={**DRAFT, "added": ["Nubo"]},
                           timeout=30)
    assert anonymous.status_code == 401
    errors: list[str] = []

    def write(i: int) -> None:
        r = httpx.post(base + "/api/tags/feedback", headers=EDITOR, timeout=60, json={
            **DRAFT, "accepted": ["Cloud"], "rejected": ["IA"], "added": [f"Nubo {i}"]})
        if r.status_code != 201 or r.json()["added"] != [f"Nubo {i}"]:
            errors.append(r.text)

    def read() -> None:
        r = httpx.post(base + "/api/tags/suggest", json={**DRAFT, "k": 3}, timeout=60)
        if r.status_code != 200 or len(r.json()["tags"]) != 3:
            errors.append(r.text)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    threads += [threading.Thread(target=read) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    records = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["added"][0] for r in records) == [f"Nubo {i}" for i in range(6)]
    only_added = httpx.post(base + "/api/tags/feedback", headers=EDITOR, timeout=30,
                            json={**DRAFT, "added": ["Souveraineté"]})
    assert only_added.status_code == 201
    nothing = httpx.post(base + "/api/tags/feedback", headers=EDITOR, timeout=30,
                         json={**DRAFT, "added": [" "]})
    assert nothing.status_code == 422
