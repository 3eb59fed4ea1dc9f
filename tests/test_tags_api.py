"""Tag suggestion over real HTTP: the service under uvicorn on a free loopback port.

Uses the shared ``live_server`` (sample corpus index, model trained on the sample corpus,
``COMMUNIQUES_FEEDBACK`` in a temporary folder) from ``tests/conftest.py``; the no-model and
reload cases start their own server on the same index.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from models.store import MAGIC
from tests.conftest import start_server

DRAFT = {
    "title": "Intelligence artificielle : l’État ouvre les données d’entraînement de ses modèles",
    "text": (
        "La direction interministérielle du numérique publie en open data les jeux de données "
        "qui ont servi à entraîner les modèles d’IA des administrations. Les données ouvertes "
        "sont disponibles sur data.gouv.fr sous licence ouverte."
    ),
}
KNOWN_ID = "cloud-interministeriel-nubo-le-cloud-de-letat-souvre-a-de-nouveaux-ministeres"


EDITOR = {"Authorization": "Bearer test-key-123"}
"""The writers' key of ``live_env``: feedback is for editors only."""


def post(base: str, path: str, body: object, **kwargs: object) -> httpx.Response:
    if path == "/api/tags/feedback":
        kwargs.setdefault("headers", EDITOR)
    return httpx.post(base + path, json=body, timeout=60, **kwargs)


def test_suggest_shape(live_server: str) -> None:
    r = post(live_server, "/api/tags/suggest", {**DRAFT, "k": 5})
    assert r.status_code == 200, r.text
    data = r.json()
    assert set(data) >= {"tags", "model"}
    assert {"version", "trained_at"} <= set(data["model"]) and data["model"]["version"] == 2
    tags = data["tags"]
    assert 1 <= len(tags) <= 5
    for t in tags:
        assert {"tag", "key", "score", "reasons"} <= set(t)
        assert 0 <= t["score"] <= 1
        assert all(w in DRAFT["title"] or w in DRAFT["text"] for w in t["reasons"])
    assert [t["score"] for t in tags] == sorted((t["score"] for t in tags), reverse=True)
    assert tags[0]["key"] == "intelligence artificielle"
    assert "open data" in [t["key"] for t in tags]


def test_k_is_bounded(live_server: str) -> None:
    one = post(live_server, "/api/tags/suggest", {**DRAFT, "k": 1}).json()
    assert len(one["tags"]) == 1
    for k in (0, 21, "beaucoup"):
        r = post(live_server, "/api/tags/suggest", {**DRAFT, "k": k})
        assert r.status_code == 422, (k, r.text)
        assert "k" in [e["field"] for e in r.json()["errors"]]


def test_title_alone_or_text_alone(live_server: str) -> None:
    r = post(live_server, "/api/tags/suggest", {"title": "FranceConnect s’ouvre aux collectivités"})
    assert r.status_code == 200 and r.json()["tags"][0]["key"] == "franceconnect"
    r = post(live_server, "/api/tags/suggest", {"text": DRAFT["text"]})
    assert r.status_code == 200 and r.json()["tags"]


@pytest.mark.parametrize("body", [{}, {"title": "", "text": ""}, {"title": "  ", "text": "\n"}])
def test_empty_draft_is_a_422_naming_the_field(live_server: str, body: dict) -> None:
    r = post(live_server, "/api/tags/suggest", body)
    assert r.status_code == 422, r.text
    assert "text" in [e["field"] for e in r.json()["errors"]]
    assert "empty" in r.json()["detail"]


def test_bad_json_is_a_422(live_server: str) -> None:
    r = httpx.post(live_server + "/api/tags/suggest", content=b"{not json",
                   headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 422


def test_oversized_drafts(live_server: str) -> None:
    r = post(live_server, "/api/tags/suggest", {"title": "t", "text": "a" * 100_001})
    assert r.status_code == 413 and "100,000" in r.json()["detail"]
    huge = httpx.post(live_server + "/api/tags/suggest", content=b"x" * 2_000_000,
                      headers={"content-type": "application/json"}, timeout=30)
    assert huge.status_code == 413
    # just under the limit: answered, and in bounded time (only the start is analysed)
    text = (DRAFT["text"] + "\n\n") * (99_000 // (len(DRAFT["text"]) + 2))
    t0 = time.monotonic()
    r = post(live_server, "/api/tags/suggest", {"title": DRAFT["title"], "text": text})
    assert r.status_code == 200, r.text
    assert time.monotonic() - t0 < 10
    assert "intelligence artificielle" in [t["key"] for t in r.json()["tags"]]


def test_suggest_for_an_indexed_document(live_server: str) -> None:
    r = httpx.get(f"{live_server}/api/documents/{KNOWN_ID}/tags/suggest", params={"k": 3},
                  timeout=30)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["id"] == KNOWN_ID and data["existing"]
    assert 1 <= len(data["tags"]) <= 3 and data["tags"][0]["key"] == "cloud"
    missing = httpx.get(f"{live_server}/api/documents/no-such-doc/tags/suggest", timeout=30)
    assert missing.status_code == 404


def test_vocabulary(live_server: str) -> None:
    r = httpx.get(live_server + "/api/tags", timeout=30)
    assert r.status_code == 200
    data = r.json()
    by_key = {t["key"]: t for t in data["tags"]}
    assert data["total"] == len(data["tags"])
    open_data = by_key["open data"]
    assert open_data["count"] >= 3 and open_data["suggestable"] is True
    assert {"Open Data", "Données ouvertes"} <= set(open_data["variants"])
    assert "opendata" in open_data["aliases"]
    counts = [t["count"] for t in data["tags"]]
    assert counts == sorted(counts, reverse=True)
    # declared in the alias file but used nowhere: listed with a zero count
    assert any(t["count"] == 0 for t in data["tags"])
    assert by_key["tchap"]["suggestable"] is True  # used once: suggestable by its name


def test_untagged_documents_with_suggestions(live_server: str) -> None:
    r = httpx.get(live_server + "/api/tags/untagged", params={"limit": 3}, timeout=60)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["total"] >= 1 and 1 <= len(data["documents"]) <= 3
    dates = [d["date"] for d in data["documents"]]
    assert dates == sorted(dates, reverse=True)
    for d in data["documents"]:
        doc = httpx.get(f"{live_server}/api/documents/{d['id']}", timeout=30).json()
        assert doc["tags"] == []
        assert isinstance(d["tags"], list)
    assert httpx.get(live_server + "/api/tags/untagged", params={"limit": 0},
                     timeout=30).status_code == 422


def test_feedback_is_stored(live_server: str, live_env: dict[str, str]) -> None:
    log = Path(live_env["COMMUNIQUES_FEEDBACK"])
    body = {"doc_id": KNOWN_ID, "accepted": ["Cloud", "Nubo"], "rejected": ["Open data"]}
    r = post(live_server, "/api/tags/feedback", body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["doc_id"] == KNOWN_ID and out["accepted"] == ["Cloud", "Nubo"]
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert out["id"] in [rec["id"] for rec in records]

    draft = post(live_server, "/api/tags/feedback", {**DRAFT, "accepted": ["IA"]})
    assert draft.status_code == 201 and draft.json()["draft"]

    assert post(live_server, "/api/tags/feedback", {"doc_id": "no-such-doc",
                                                     "accepted": ["IA"]}).status_code == 404
    no_tags = post(live_server, "/api/tags/feedback", {"doc_id": KNOWN_ID})
    assert no_tags.status_code == 422 and "rejected" in no_tags.text
    nothing = post(live_server, "/api/tags/feedback", {"accepted": ["IA"]})
    assert nothing.status_code == 422
    assert [e["field"] for e in nothing.json()["errors"]] == ["doc_id"]
    too_long = post(live_server, "/api/tags/feedback",
                    {"title": "t", "text": "a" * 100_001, "accepted": ["IA"]})
    assert too_long.status_code == 413


@pytest.fixture(scope="module")
def modelless(sample_index: Path, sample_model: Path | None,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A service whose model file does not exist yet."""
    assert sample_model is not None
    var = tmp_path_factory.mktemp("modelless")
    model_path = var / "model.pkl"
    server = start_server(sample_index, {
        "COMMUNIQUES_MODEL": str(model_path),
        "COMMUNIQUES_FEEDBACK": str(var / "feedback.jsonl"),
    })
    yield server.url, model_path
    server.stop()


def test_no_model_then_training_then_incompatible(
    modelless: tuple[str, Path], sample_model: Path
) -> None:
    base, model_path = modelless
    r = post(base, "/api/tags/suggest", DRAFT)
    assert r.status_code == 503 and "communiques train" in r.json()["detail"]
    assert httpx.get(f"{base}/api/documents/{KNOWN_ID}/tags/suggest", timeout=30).status_code == 503
    assert httpx.get(f"{base}/api/tags/untagged", timeout=30).status_code == 503
    vocabulary = httpx.get(f"{base}/api/tags", timeout=30)
    assert vocabulary.status_code == 200
    assert all(t["suggestable"] is None for t in vocabulary.json()["tags"])
    search = httpx.get(f"{base}/api/search", params={"q": "cloud"}, timeout=30)
    assert search.status_code == 200  # search does not need the tag model

    # `communiques train` writes the file: the next request picks it up, no restart
    shutil.copyfile(sample_model, model_path)
    r = post(base, "/api/tags/suggest", DRAFT)
    assert r.status_code == 200, r.text
    trained_at = r.json()["model"]["trained_at"]

    # a model file from an incompatible version: refused with the reason, then fixed again
    line, _, rest = sample_model.read_bytes().partition(b"\n")
    header = json.loads(line[len(MAGIC):])
    header["format_version"] = 99
    tmp = model_path.with_suffix(".new")
    tmp.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + rest)
    tmp.replace(model_path)
    r = post(base, "/api/tags/suggest", DRAFT)
    assert r.status_code == 503 and "format version 99" in r.json()["detail"]
    shutil.copyfile(sample_model, tmp)
    tmp.replace(model_path)
    r = post(base, "/api/tags/suggest", DRAFT)
    assert r.status_code == 200 and r.json()["model"]["trained_at"] == trained_at
