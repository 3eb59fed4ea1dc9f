"""The API's ``published`` filter, and the untagged list following writes (its cache is per
worker and per index generation: every worker must drop a list a write made stale)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from indexer.document import parse_file
from indexer.ingest import find_files
from indexer.search import REFRESH_SECONDS
from tests.conftest import SAMPLE_CORPUS, build_index, start_server

KEY = {"Authorization": "Bearer test-key-123"}  # conftest.live_env's write key
MD = {"Content-Type": "text/markdown"}


def _export_ids(base: str, **params: object) -> dict[str, bool]:
    """``id → published`` of every match (the export has no page limit)."""
    r = httpx.get(base + "/api/export", params={"format": "jsonl", "fields": "id,published",
                                                 **params}, headers=KEY, timeout=60)
    assert r.status_code == 200, r.text
    return {row["id"]: row["published"] for row in map(json.loads, r.text.splitlines())}


def _total(base: str, **params: object) -> int:
    r = httpx.get(base + "/api/search", params=params, headers=KEY, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["total"]


DRAFT = """---
title: Brouillon confidentiel sur le quokka numérique
date: 2024-06-01 10:00:00 +02:00
published: false
---

Le quokka numérique n'est pas encore annoncé.
"""


def test_published_filter(live_server: str) -> None:
    drafts = {d.id for d in map(parse_file, find_files([SAMPLE_CORPUS])) if not d.published}
    assert drafts  # the sample corpus holds drafts
    everything = _export_ids(live_server)
    assert drafts <= set(everything)
    published = _export_ids(live_server, published="true")
    unpublished = _export_ids(live_server, published="false")
    assert set(unpublished) == drafts and not any(unpublished.values())
    assert set(published) == set(everything) - drafts and all(published.values())
    # the search agrees with the export, with a query as without
    assert _total(live_server, published="false") == len(drafts)
    for q in ("", "numérique"):
        assert (_total(live_server, q=q, published="true")
                + _total(live_server, q=q, published="false")) == _total(live_server, q=q)
    # a draft written through the API is filtered the same way
    url = live_server + "/api/documents/brouillon-quokka"
    assert httpx.put(url, content=DRAFT, headers={**MD, **KEY}, timeout=60).status_code == 200
    try:
        assert "brouillon-quokka" in _export_ids(live_server, q="quokka", published="false")
        assert _export_ids(live_server, q="quokka", published="true") == {}
    finally:
        assert httpx.delete(url, headers=KEY, timeout=60).status_code == 200


# --- the untagged list --------------------------------------------------------------------------

UNTAGGED = """---
title: Le quokka numérique arrive dans les administrations
date: 2030-01-01 10:00:00 +01:00
{tags}---

Un communiqué sur le cloud et les données ouvertes, sans étiquette au départ.
"""


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory,
                live_env: dict[str, str]) -> Iterator[str]:
    if "COMMUNIQUES_MODEL" not in live_env:
        pytest.skip("no tag model: the tag commands are not available")
    index = build_index(tmp_path_factory.mktemp("untagged-index"), SAMPLE_CORPUS)
    var = tmp_path_factory.mktemp("untagged-var")
    server = start_server(index, {**live_env, "COMMUNIQUES_DOCUMENTS": str(var / "documents")},
                          workers=2)
    yield server.url
    server.stop()


def _untagged_lists(base: str, n: int = 8) -> list[list[str]]:
    """The untagged list as ``n`` requests in a row see it (new connections: any worker)."""
    out = []
    for _ in range(n):
        r = httpx.get(base + "/api/tags/untagged", params={"limit": 100}, headers=KEY, timeout=120)
        assert r.status_code == 200, r.text
        data = r.json()
        ids = [d["id"] for d in data["documents"]]
        assert data["total"] == len(ids)
        out.append(ids)
    return out


def test_untagged_list_follows_writes_in_every_worker(two_workers: str) -> None:
    before = _untagged_lists(two_workers)  # cached now, in whichever workers answered
    assert all(ids == before[0] for ids in before)
    url = two_workers + "/api/documents/quokka-sans-etiquette"
    r = httpx.put(url, content=UNTAGGED.format(tags=""), headers={**MD, **KEY}, timeout=60)
    assert r.status_code == 200, r.text
    time.sleep(REFRESH_SECONDS * 2)  # other workers look for a new generation this often
    for ids in _untagged_lists(two_workers):
        assert ids == ["quokka-sans-etiquette", *before[0]]  # newest first
    tagged = UNTAGGED.format(tags="tags:\n- Cloud\n")
    assert httpx.put(url, content=tagged, headers={**MD, **KEY}, timeout=60).status_code == 200
    time.sleep(REFRESH_SECONDS * 2)
    assert _untagged_lists(two_workers) == [before[0]] * 8
    assert httpx.delete(url, headers=KEY, timeout=60).status_code == 200


def test_sample_corpus_has_untagged_documents() -> None:
    """The test above needs some untagged documents to begin with."""
    untagged = [d.id for d in map(parse_file, find_files([SAMPLE_CORPUS])) if not d.tags]
    assert untagged, Path(SAMPLE_CORPUS)
