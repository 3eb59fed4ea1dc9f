"""Drafts never reach the public: every route, as each kind of caller sees it.

A small corpus holds published documents and drafts whose words, tags and year exist nowhere
else, so that any leak (a hit, a count, a facet, a completion, a suggestion, a link) shows.
The service runs as operators start it (``serve --workers 2``) with a read key and a write key,
and a writer keeps adding drafts while anonymous callers search (every worker must hide them).
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import build_index, start_server

WRITE_KEY = "editor-key-0123456789"
READ_KEY = "archivist-key-0123456789"
WRITER = {"Authorization": f"Bearer {WRITE_KEY}"}
READER = {"Authorization": f"Bearer {READ_KEY}"}

PUBLISHED = """---
title: {title}
date: 2022-0{month}-10 10:00:00 +01:00
tags:
- Cloud
- {tag}
---

{body}
"""
DRAFT = """---
title: {title}
date: 2019-05-10 10:00:00 +01:00
published: false
tags:
- Projet Zorglub
---

{body}
"""
SECRET = "zorglub"
DRAFT_IDS = ["annonce-zorglub-confidentielle", "zorglub-calendrier-interne"]


def _corpus(root: Path) -> Path:
    folder = root / "communiques"
    folder.mkdir(parents=True)
    for i, (title, tag) in enumerate([
        ("Le cloud interministériel s’ouvre aux collectivités", "Collectivités"),
        ("Un cloud souverain pour les administrations", "Souveraineté"),
        ("Les données ouvertes du cloud public", "Données ouvertes"),
    ], start=1):
        (folder / f"cloud-public-{i}.md").write_text(PUBLISHED.format(
            title=title, month=i, tag=tag,
            body="Le cloud de l’État accueille de nouveaux services numériques publics."),
            encoding="utf-8")
    for doc_id in DRAFT_IDS:
        (folder / f"{doc_id}.md").write_text(DRAFT.format(
            title=f"Zorglub, le cloud secret de {doc_id}",
            body="Le programme Zorglub confidentiel prépare un cloud zorglubien. Le "
                 "Zorglubien Lunaire Galactique (ZLG) en sera le premier service."),
            encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory,
            sample_model: Path | None) -> Iterator[tuple[str, Path]]:
    base = tmp_path_factory.mktemp("visibility")
    index = build_index(base / "index", _corpus(base / "corpus"))
    env = {
        "COMMUNIQUES_API_KEY": WRITE_KEY,
        "COMMUNIQUES_READ_KEY": READ_KEY,
        "COMMUNIQUES_FEEDBACK": str(base / "feedback.jsonl"),
        "COMMUNIQUES_FEEDBACK_MAX_MB": "0.05",
        "COMMUNIQUES_DOCUMENTS": str(base / "documents"),
        "COMMUNIQUES_RATE_WRITE": "off",
        "COMMUNIQUES_RATE_EXPORT": "off",
    }
    if sample_model is not None:
        env["COMMUNIQUES_MODEL"] = str(sample_model)
    server = start_server(index, env, workers=2)
    yield server.url, base
    server.stop()


def get(url: str, path: str, **kwargs: object) -> httpx.Response:
    return httpx.get(url + path, timeout=30, **kwargs)


LEAK_MARKERS = [*DRAFT_IDS, "zorglubien", "projet zorglub", "cloud secret"]
"""What only the drafts hold: their ids, a word of their bodies, their only tag, a title's
words (their year is checked in the facets; the query word itself may be echoed back, e.g. « Aucun résultat pour »)."""


def leaks(response: httpx.Response) -> bool:
    """Whether a response betrays the drafts."""
    text = response.text.lower()
    return any(marker in text for marker in LEAK_MARKERS)


ANONYMOUS_ROUTES = [
    "/api/search?q=zorglub",
    "/api/search?q=cloud&size=50",
    "/api/search?q=",
    "/api/search?q=zorglubb",
    "/api/search?q=cloud%20zorglub",
    "/api/search?q=title:zorglub",
    "/api/search?q=tag:%22Projet%20Zorglub%22",
    "/api/autocomplete?q=zorg",
    "/api/search?q=ZLG",
    "/api/search?q=cloud%20ZLG",
    "/api/autocomplete?q=cloud%20zor",
    "/api/export?q=cloud&format=csv",
    "/api/export?q=&format=jsonl",
    "/api/stats",
    "/api/tags",
    "/api/tags/untagged?limit=100",
    "/api/documents/cloud-public-1/similar?limit=20",
    "/?q=zorglub",
    "/?q=cloud",
    "/archives?q=cloud",
    "/archives?q=zorglub",
    "/documents/cloud-public-1",
    "/sitemap.xml",
]


@pytest.mark.parametrize("path", ANONYMOUS_ROUTES)
def test_anonymous_never_sees_a_draft(service: tuple[str, Path], path: str) -> None:
    url, _ = service
    r = get(url, path)
    assert r.status_code in (200, 503), (path, r.status_code, r.text[:300])
    assert not leaks(r), (path, r.text[:500])


def test_anonymous_counts_only_published(service: tuple[str, Path]) -> None:
    url, _ = service
    everything = get(url, "/api/search", params={"q": "", "size": 50}).json()
    assert everything["total"] == 3
    years = {f["value"]: f["count"] for f in everything["facets"]["year"]}
    assert years == {"2022": 3}  # the drafts' year (2019) is not even a bucket
    assert {f["value"]: f["count"] for f in everything["facets"]["collection"]} == {
        "communiques": 3}
    stats = get(url, "/api/stats").json()
    assert stats["documents"] == 3 and set(stats["per_year"]) == {"2022"}
    assert get(url, "/health").json()["documents"] == 3
    for q in ("zorg", "zorglub", "cloud zorg"):
        completions = get(url, "/api/autocomplete", params={"q": q}).json()["completions"]
        assert not any(SECRET in c["text"].lower() for c in completions), (q, completions)
    assert get(url, "/api/search", params={"q": "zorglubb"}).json()["suggestion"] is None


@pytest.mark.parametrize("doc_id", DRAFT_IDS)
def test_a_draft_is_as_unknown_as_a_missing_document(service: tuple[str, Path],
                                                     doc_id: str) -> None:
    url, _ = service
    for path in (f"/api/documents/{doc_id}", f"/api/documents/{doc_id}/similar",
                 f"/api/documents/{doc_id}/tags/suggest"):
        draft = get(url, path)
        missing = get(url, path.replace(doc_id, "no-such-document-here"))
        assert draft.status_code == missing.status_code == 404, (path, draft.text)
        assert draft.json()["detail"].replace(doc_id, "X") == \
            missing.json()["detail"].replace("no-such-document-here", "X")
    page = get(url, f"/documents/{doc_id}")
    missing_page = get(url, "/documents/no-such-document-here")
    assert page.status_code == missing_page.status_code == 404
    assert page.text.replace(doc_id, "X") == missing_page.text.replace("no-such-document-here", "X")


@pytest.mark.parametrize("headers", [READER, WRITER], ids=["reader", "writer"])
def test_key_holders_see_drafts(service: tuple[str, Path], headers: dict[str, str]) -> None:
    url, _ = service
    found = get(url, "/api/search", params={"q": "zorglub"}, headers=headers).json()
    assert {h["id"] for h in found["hits"]} >= set(DRAFT_IDS)
    assert all(h["published"] is False for h in found["hits"] if h["id"] in DRAFT_IDS)
    doc = get(url, f"/api/documents/{DRAFT_IDS[0]}", headers=headers)
    assert doc.status_code == 200 and doc.json()["published"] is False
    exported = get(url, "/api/export", params={"q": "zorglub", "format": "csv"}, headers=headers)
    rows = list(csv.DictReader(io.StringIO(exported.text.lstrip("\ufeff"))))  # Excel's BOM
    assert {r["id"] for r in rows} >= set(DRAFT_IDS)
    assert get(url, "/api/stats", headers=headers).json()["documents"] >= 5
    done = get(url, "/api/autocomplete", params={"q": "zorg"}, headers=headers).json()
    assert any(SECRET in c["text"].lower() for c in done["completions"])


def test_a_wrong_key_is_refused_not_ignored(service: tuple[str, Path]) -> None:
    url, _ = service
    r = get(url, "/api/search", params={"q": "zorglub"},
            headers={"Authorization": "Bearer " + READ_KEY[:-1] + "x"})
    assert r.status_code == 401 and not leaks(r)


def test_reader_may_not_write(service: tuple[str, Path]) -> None:
    url, _ = service
    r = httpx.put(url + "/api/documents/lecteur-essai", headers={**READER,
                  "Content-Type": "text/markdown"},
                  content=PUBLISHED.format(title="Essai", month=1, tag="X", body="texte"),
                  timeout=60)
    assert r.status_code == 403, r.text
    feedback = httpx.post(url + "/api/tags/feedback", headers=READER,
                          json={"doc_id": "cloud-public-1", "accepted": ["Cloud"]}, timeout=30)
    assert feedback.status_code == 403


def test_sign_in_turns_a_key_into_a_session(service: tuple[str, Path]) -> None:
    url, _ = service
    with httpx.Client(base_url=url, timeout=30) as browser:
        form = browser.get("/connexion")
        assert form.status_code == 200 and 'type="password"' in form.text
        wrong = browser.post("/connexion", data={"key": "not-a-key", "next": "/"})
        assert wrong.status_code == 401 and "pas reconnue" in wrong.text
        assert "communiques_session" not in wrong.headers.get("set-cookie", "")
        r = browser.post("/connexion", data={"key": READ_KEY, "next": "/?q=zorglub"})
        assert r.status_code == 303 and r.headers["location"] == "/?q=zorglub"
        assert READ_KEY not in r.headers["location"]
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert "secure" not in cookie.replace("communiques_session", "")  # plain HTTP here
        assert READ_KEY.lower() not in cookie
        page = browser.get("/?q=zorglub")
        assert DRAFT_IDS[0] in page.text and "Brouillon" in page.text
        assert "Connecté : archiviste" in page.text
        doc = browser.get(f"/documents/{DRAFT_IDS[0]}")
        assert doc.status_code == 200 and "Brouillon" in doc.text
        assert browser.get("/api/stats").json()["documents"] >= 5
        # an archivist's session does not write
        assert browser.post("/api/tags/feedback", json={
            "doc_id": "cloud-public-1", "accepted": ["Cloud"]}).status_code == 403
        out = browser.post("/deconnexion")
        assert out.status_code == 303
        browser.cookies.clear()
        browser.cookies.update({k: v for k, v in out.cookies.items() if v})
        assert DRAFT_IDS[0] not in browser.get("/?q=zorglub").text
    # A forged or tampered cookie is just an anonymous visitor.
    forged = get(url, "/?q=zorglub", cookies={"communiques_session": '{"role":"writer"}'})
    assert forged.status_code == 200 and not leaks(forged)
    # Off-site "next" targets are ignored.
    r = httpx.post(url + "/connexion", data={"key": READ_KEY, "next": "//evil.example/x"})
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_drafts_written_meanwhile_stay_hidden(service: tuple[str, Path]) -> None:
    """A writer adds drafts while anonymous callers search, on both workers."""
    url, _ = service
    stop = threading.Event()
    written: list[str] = []
    errors: list[str] = []

    def writer() -> None:
        with httpx.Client(base_url=url, timeout=60, headers=WRITER) as client:
            for i in range(6):
                doc_id = f"zorglub-nouveau-{i}"
                r = client.put(f"/api/documents/{doc_id}",
                               headers={"Content-Type": "text/markdown"},
                               content=DRAFT.format(title=f"Zorglub {i}", body="Zorglub."))
                if r.status_code in (200, 201):
                    written.append(doc_id)
                else:
                    errors.append(f"PUT {r.status_code} {r.text[:200]}")
        stop.set()

    def reader() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while not stop.is_set():
                for path in ("/api/search?q=zorglub", "/api/autocomplete?q=zorg",
                             "/api/search?q=", "/?q=zorglub"):
                    r = client.get(path)
                    if r.status_code != 200 or leaks(r):
                        errors.append(f"{path}: {r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader)
                                                   for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not errors, errors[:5]
    assert len(written) == 6
    # The worker that did not write opens the new generation a moment after the commit.
    deadline = time.monotonic() + 15
    while True:
        found = get(url, "/api/search", params={"q": "zorglub", "size": 50},
                    headers=WRITER).json()
        if set(written) <= {h["id"] for h in found["hits"]} or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert set(written) <= {h["id"] for h in found["hits"]}


# --- what the tag model learns comes from editors only -----------------------------------------


def _feedback(url: str, **kwargs: object) -> httpx.Response:
    return httpx.post(url + "/api/tags/feedback", timeout=30, **kwargs)


def test_feedback_needs_an_editor(service: tuple[str, Path]) -> None:
    url, base = service
    log = base / "feedback.jsonl"
    before = log.read_bytes() if log.exists() else b""
    poison = {"doc_id": "cloud-public-1", "accepted": ["Faux tag"], "rejected": ["Cloud"]}
    for _ in range(10):
        assert _feedback(url, json=poison).status_code == 401
    assert (log.read_bytes() if log.exists() else b"") == before
    assert _feedback(url, json=poison, headers=WRITER).status_code == 201


def test_feedback_refuses_cross_site_forms(service: tuple[str, Path]) -> None:
    url, _ = service
    body = json.dumps({"doc_id": "cloud-public-1", "accepted": ["Cloud"]})
    as_text = _feedback(url, content=body,
                        headers={**WRITER, "Content-Type": "text/plain"})
    assert as_text.status_code == 415 and "application/json" in as_text.json()["detail"]
    as_form = _feedback(url, data={"x": body}, headers=WRITER)
    assert as_form.status_code == 415
    foreign = _feedback(url, content=body, headers={
        **WRITER, "Content-Type": "application/json", "Origin": "https://evil.example"})
    assert foreign.status_code == 403 and "Origin" in foreign.json()["detail"]
    own = _feedback(url, content=body, headers={
        **WRITER, "Content-Type": "application/json", "Origin": url})
    assert own.status_code == 201, own.text


def test_feedback_log_is_bounded(service: tuple[str, Path]) -> None:
    """Each record keeps a bounded text; past the configured size, a clear refusal."""
    url, base = service
    log = base / "feedback.jsonl"
    big = {"title": "Brouillon", "text": "mot " * 24_000, "accepted": ["Cloud"]}
    statuses = []
    for _ in range(12):
        statuses.append(_feedback(url, json=big, headers=WRITER).status_code)
    assert 201 in statuses and statuses[-1] == 507, statuses
    assert log.stat().st_size <= 0.05 * 1024 * 1024
    r = _feedback(url, json=big, headers=WRITER)
    assert r.status_code == 507 and "train" in r.json()["detail"]
    assert str(base) not in r.text  # no server path in a response
