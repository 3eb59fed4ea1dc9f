"""The Annif-compatible API under ``/v1``, through the real ``annif-client`` package (PyPI),
against the running service (2 workers), as a library tool would call it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from annif_client import AnnifClient

from models.tagging import PROJECT_ID
from tests.conftest import SAMPLE_CORPUS, build_index, start_server

KEY = "annif-editor-key"
TEXT = (
    "Intelligence artificielle : l’État ouvre les données d’entraînement de ses modèles\n"
    "La direction interministérielle du numérique publie en open data les jeux de données qui "
    "ont servi à entraîner les modèles d’IA des administrations. Les données ouvertes sont "
    "disponibles sur data.gouv.fr sous licence ouverte."
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sample_model: Path) -> Iterator[tuple[str, Path]]:
    var = tmp_path_factory.mktemp("annif-var")
    index = build_index(tmp_path_factory.mktemp("annif-index"), SAMPLE_CORPUS)
    feedback = var / "feedback.jsonl"
    live = start_server(index, {"COMMUNIQUES_MODEL": str(sample_model),
                                "COMMUNIQUES_FEEDBACK": str(feedback),
                                "COMMUNIQUES_API_KEY": KEY}, workers=2)
    yield live.url, feedback
    live.stop()


@pytest.fixture()
def client(server: tuple[str, Path]) -> AnnifClient:
    return AnnifClient(api_base=server[0] + "/v1/")


def test_projects_and_project(client: AnnifClient) -> None:
    projects = client.projects
    assert [p["project_id"] for p in projects] == [PROJECT_ID]
    project = client.get_project(PROJECT_ID)
    assert project["language"] == "fr" and project["is_trained"] is True
    assert {"project_id", "name", "language", "backend", "is_trained",
            "modification_time"} <= set(project)
    assert client.api_info["title"]
    with pytest.raises(ValueError, match="Project 'nope' not found"):
        client.get_project("nope")


def test_suggest(client: AnnifClient) -> None:
    results = client.suggest(PROJECT_ID, TEXT)
    assert 3 <= len(results) <= 10
    assert results[0]["label"] and results[0]["uri"].startswith("tag:communiques")
    assert any(r["uri"].endswith(":intelligence-artificielle") for r in results), results
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert set(results[0]) == {"uri", "label", "notation", "score"}
    assert len(client.suggest(PROJECT_ID, TEXT, limit=2)) == 2
    high = client.suggest(PROJECT_ID, TEXT, threshold=0.5)
    assert all(r["score"] >= 0.5 for r in high) and len(high) < len(results)
    with pytest.raises(ValueError, match="Project 'other' not found"):
        client.suggest("other", TEXT)


def test_suggest_batch(client: AnnifClient) -> None:
    docs = [{"text": TEXT, "document_id": "a"}, {"text": "FranceConnect pour les collectivités\n"
                                                 "FranceConnect s’ouvre.", "document_id": "b"}]
    out = client.suggest_batch(PROJECT_ID, docs, limit=3)
    assert [d["document_id"] for d in out] == ["a", "b"]
    assert all(len(d["results"]) == 3 for d in out)
    assert out[1]["results"][0]["label"] == "FranceConnect"


def test_learn_needs_the_editor_and_feeds_the_log(client: AnnifClient,
                                                  server: tuple[str, Path]) -> None:
    base, feedback = server
    uri = client.suggest(PROJECT_ID, TEXT, limit=1)[0]["uri"]
    doc = [{"text": TEXT, "subjects": [{"uri": uri, "label": "ignored"},
                                       {"uri": "", "label": "Nouvelle étiquette"}]}]
    r = httpx.post(base + f"/v1/projects/{PROJECT_ID}/learn", json=doc, timeout=30)
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert {"title", "detail"} <= set(r.json())
    client._headers["Authorization"] = f"Bearer {KEY}"
    assert client.learn(PROJECT_ID, doc).status_code == 204
    records = [json.loads(line) for line in feedback.read_text(encoding="utf-8").splitlines()]
    assert records[-1]["source"] == "learn"
    assert records[-1]["added"][1] == "Nouvelle étiquette" and records[-1]["added"][0] != "ignored"


def test_errors_are_problem_json(server: tuple[str, Path]) -> None:
    base = server[0] + f"/v1/projects/{PROJECT_ID}"
    cases = [
        httpx.post(base + "/suggest", data={"text": ""}),
        httpx.post(base + "/suggest", data={"text": "x", "limit": "many"}),
        httpx.post(base + "/suggest", data={"text": "x", "threshold": "2"}),
        httpx.post(base + "/suggest", json={"text": "x"}),
        httpx.post(base + "/suggest-batch", json={"documents": [{"text": "x"}] * 33}),
        httpx.post(base + "/suggest-batch", content=b"{not json",
                   headers={"content-type": "application/json"}),
        httpx.post(base + "/suggest", data={"text": "a" * 100_001}),
        httpx.get(server[0] + "/v1/projects/x"),
        httpx.post(base + "/learn", headers={"Authorization": f"Bearer {KEY}"},
                   json=[{"text": "x", "subjects": [{"uri": ["odd"], "label": 3}]}]),
        httpx.post(base + "/suggest", data={"text": "x", "threshold": "nan"}),
    ]
    for r, status, word in zip(cases, (400, 400, 400, 415, 400, 400, 413, 404, 400, 400), (
            "text", "limit", "threshold", "Content-Type", "32", "JSON", "100,000", "'x'",
            "subjects.0", "threshold"),
            strict=True):
        assert r.status_code == status, (r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert word in r.json()["detail"], r.json()


def test_concurrent_suggest_and_learn(client: AnnifClient, server: tuple[str, Path]) -> None:
    """Reads and writes at the same time on 2 workers: every answer right, nothing lost."""
    base, feedback = server
    before = len(feedback.read_text(encoding="utf-8").splitlines()) if feedback.exists() else 0
    errors: list[str] = []

    def reader() -> None:
        for _ in range(5):
            r = httpx.post(base + f"/v1/projects/{PROJECT_ID}/suggest",
                           data={"text": TEXT, "limit": "3"}, timeout=60)
            if r.status_code != 200 or len(r.json()["results"]) != 3:
                errors.append(r.text)

    def writer() -> None:
        for i in range(5):
            r = httpx.post(base + f"/v1/projects/{PROJECT_ID}/learn", timeout=60,
                           headers={"Authorization": f"Bearer {KEY}"},
                           json=[{"text": f"Texte {i}", "subjects": [{"label": "Cloud"}]}])
            if r.status_code != 204:
                errors.append(r.text)

    threads = [threading.Thread(target=f) for f in (reader, reader, writer, writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert len(feedback.read_text(encoding="utf-8").splitlines()) == before + 10
