"""Security: escaping everywhere, the API key, body and rate limits, headers, no stack traces,
JSON logs without secrets."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.context import Settings
from service.logging import JsonFormatter, Redactor
from tests.conftest import ROOT, free_port, start_server

KEY = {"Authorization": "Bearer test-key-123"}  # the live server's key (conftest.live_env)
PAYLOADS = ['<script>alert("t")</script>', '<img src=x onerror=alert(1)>',
            '"><svg onload=alert(2)>', "javascript:alert(3)", "';alert(4)//"]
XSS_DOC = f"""---
title: {json.dumps(f"Zorglubxss {PAYLOADS[1]} et {PAYLOADS[2]} {PAYLOADS[4]}")}
date: 2024-01-02 10:00:00 +01:00
tags:
- {json.dumps(PAYLOADS[0])}
- {json.dumps(PAYLOADS[2])}
categories:
- {json.dumps(PAYLOADS[1])}
chapeau-text: {json.dumps(f"Chapeau zorglubxss {PAYLOADS[0]} {PAYLOADS[3]}")}
---

Le corps zorglubxss contient <script>alert(5)</script>, <a href="javascript:alert(6)">un lien</a>,
&lt;img src=x onerror=alert(7)&gt; et <iframe src="https://exemple.invalid"></iframe>.
"""
TAG = re.compile(r"<\s*(script|img|svg|iframe|a\s|body|object|embed)", re.IGNORECASE)


def _no_markup_but_mark(html: str) -> None:
    rest = html.replace("<mark>", "").replace("</mark>", "")
    assert "<" not in rest and ">" not in rest, html


def _no_live_payload(page: str) -> None:
    """No payload as live markup: an injected tag or attribute would appear unescaped."""
    for bad in ("<script>alert", "<img src=x", "<svg onload", "<iframe src=\"https://exemple",
                'href="javascript:', "onerror=alert(1)>", '"><svg'):
        assert bad not in page, bad
    for m in re.finditer(r"<script[^>]*>", page):  # only the pages' own scripts
        assert 'src="/static/' in m.group(0) or 'src="/dsfr/' in m.group(0), m.group(0)


@pytest.fixture
def xss_doc(live_server: str) -> Iterator[str]:
    url = live_server + "/api/documents/zorglub-xss"
    # a first write waits for its worker's write process to start (seconds on a busy machine)
    r = httpx.put(url, content=XSS_DOC.encode(), headers={**KEY, "Content-Type": "text/markdown"},
                  timeout=60)
    assert r.status_code == 200, r.text
    yield "zorglub-xss"
    httpx.delete(url, headers=KEY, timeout=60)


def test_documents_with_xss_payloads_come_back_escaped(live_server: str, xss_doc: str) -> None:
    data = httpx.get(live_server + "/api/search", params={"q": "zorglubxss "}).json()
    hit = next(h for h in data["hits"] if h["id"] == xss_doc)
    for html in (hit["title_html"], hit["snippet_html"], hit["attachment_html"]):
        _no_markup_but_mark(html)
    assert "<mark>" in hit["title_html"] + hit["snippet_html"]
    for q in ("zorglubx", "<script>alert(1)</script>", '"><img src=x>'):
        r = httpx.get(live_server + "/api/autocomplete", params={"q": q})
        assert r.status_code < 500 and r.headers["content-type"].startswith("application/json")
    pages = [
        httpx.get(live_server + "/", params={"q": "zorglubxss"}),
        httpx.get(live_server + "/archives", params={"q": "zorglubxss"}),
        httpx.get(live_server + f"/documents/{xss_doc}"),
        httpx.get(live_server + "/", params={"tag": PAYLOADS[0]}),
    ]
    for page in pages:
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        _no_live_payload(page.text)
    assert "Zorglubxss" in pages[2].text and "&lt;img src=x onerror=alert(1)&gt;" in pages[2].text


@pytest.mark.parametrize("q", PAYLOADS + ['" onmouseover="alert(8)', "</title><script>x</script>",
                                          "{{7*7}}", "${7*7}"])
def test_queries_with_xss_payloads_are_escaped_in_pages(live_server: str, q: str) -> None:
    for path in ("/", "/archives"):
        r = httpx.get(live_server + path, params={"q": q, "collection": q, "year": q,
                                                  "date_from": q, "category": q})
        assert r.status_code in (200, 400)
        _no_live_payload(r.text)
        assert '" onmouseover="' not in r.text
        assert "</title><script>" not in r.text
        assert "49" not in re.findall(r"value=\"([^\"]*)\"", r.text)  # no template evaluation
    r = httpx.get(live_server + "/documents/" + q)
    assert r.status_code in (307, 404, 422)  # 307: a path ending in "/" loses it
    assert r.headers.get("location", "/").startswith(("/", live_server))
    _no_live_payload(r.text)


# --- the API key ---------------------------------------------------------------------------------


def test_writes_need_the_right_key(live_server: str) -> None:
    url = live_server + "/api/documents/cle-test"
    body = XSS_DOC.replace("zorglubxss", "cletest").encode()
    md = {"Content-Type": "text/markdown"}
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer test-key-124"},
                    {"Authorization": "Bearer test-key-12"}, {"Authorization": "test-key-123"},
                    {"Authorization": "Basic dGVzdC1rZXktMTIz"},
                    {"Authorization": "Bearer test-key-1234"}):
        assert httpx.put(url, content=body, headers={**md, **headers}).status_code == 401
        assert httpx.delete(url, headers=headers).status_code == 401
    assert httpx.put(url, content=body, headers={**md, **KEY}).status_code == 200
    assert httpx.delete(url, headers=KEY).status_code == 200


def _client(tmp_path: Path, sample_index: Path, **settings: object) -> TestClient:
    from service.app import create_app

    s = Settings(index_dir=sample_index, documents_dir=tmp_path / "docs", **settings)
    return TestClient(create_app(s), raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("given", "role"),
    [
        ("cle-ecriture-0123456789", "writer"),
        ("cle-lecture-0123456789a", "reader"),
        ("cle-ecriture-0123456788", None),  # same length, last character wrong
        ("cle-ecriture-012345678", None),  # a prefix of the write key
        ("cle-ecriture-0123456789-", None),  # the key and more
        ("cle-lecture-", None),  # a prefix of the read key
        ("CLE-ECRITURE-0123456789", None),
        ("", None),
    ],
)
def test_role_for_key(given: str, role: str | None) -> None:
    from service.auth import ROLE_NAMES, role_for_key

    settings = Settings(api_key="cle-ecriture-0123456789", read_key="cle-lecture-0123456789a")
    found = role_for_key(settings, given)
    assert (ROLE_NAMES[found] if found is not None else None) == role


def test_unset_keys_grant_nothing() -> None:
    from service.auth import Role, role_for_key

    assert role_for_key(Settings(api_key="", read_key=""), "") is None
    only_read = Settings(api_key="", read_key="lecture-seule-123")
    assert role_for_key(only_read, "") is None
    assert role_for_key(only_read, "lecture-seule-123") is Role.READER
    same = Settings(api_key="une-seule-cle-123", read_key="une-seule-cle-123")
    assert role_for_key(same, "une-seule-cle-123") is Role.WRITER


def test_keys_over_http(tmp_path: Path, sample_index: Path) -> None:
    client = _client(tmp_path, sample_index, api_key="une-cle-secrete", read_key="une-cle-lecture")
    for wrong in ("faux", "une-cle-secret", "une-cle-secretf", "une-cle-secrete-"):
        r = client.delete("/api/documents/absent", headers={"Authorization": f"Bearer {wrong}"})
        assert r.status_code == 401, wrong
    r = client.delete("/api/documents/absent", headers={"Authorization": "Bearer une-cle-lecture"})
    assert r.status_code == 403 and "read" in r.json()["detail"]
    r = client.delete("/api/documents/absent", headers={"Authorization": "Bearer une-cle-secrete"})
    assert r.status_code == 404
    disabled = _client(tmp_path, sample_index, api_key="")
    assert disabled.delete("/api/documents/absent").status_code == 403


# --- body size and rate limits ---------------------------------------------------------------------


def test_body_size_limit_is_413(tmp_path: Path, sample_index: Path) -> None:
    client = _client(tmp_path, sample_index, api_key="k" * 16, max_body_bytes=1000)
    headers = {"Authorization": "Bearer " + "k" * 16, "Content-Type": "text/markdown"}
    r = client.put("/api/documents/gros", content=b"x" * 5000, headers=headers)
    assert r.status_code == 413 and "too large" in r.json()["detail"]
    r = client.put("/api/documents/gros", content=(b"y" * 100 for _ in range(50)), headers=headers)
    assert r.status_code == 413
    assert r.headers["x-content-type-options"] == "nosniff"
    assert client.post("/editeur", content=b"t=" + b"z" * 2000).status_code == 413
    assert client.get("/api/search", params={"q": "cloud"}).status_code == 200


@pytest.fixture(scope="module")
def limited_server(sample_index: Path) -> Iterator[str]:
    """Low limits, to see them (the shared live server has generous ones)."""
    server = start_server(sample_index, {
        "COMMUNIQUES_RATE_EXPORT": "3/60", "COMMUNIQUES_RATE_SUGGEST": "3/60",
        "COMMUNIQUES_RATE_WRITE": "3/60", "COMMUNIQUES_API_KEY": "",
    })
    yield server.url
    server.stop()


def test_expensive_endpoints_are_rate_limited(limited_server: str) -> None:
    base = limited_server

    def calls(method: str, path: str, n: int, **kw: object) -> list[httpx.Response]:
        return [httpx.request(method, base + path, timeout=30, **kw) for _ in range(n)]

    export = calls("GET", "/api/export", 5, params={"q": "cloud"})
    assert [r.status_code for r in export[:3]] == [200, 200, 200]
    for r in export[3:]:
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1
        assert "export" in r.json()["detail"]
        assert r.headers["x-frame-options"] == "DENY"
    suggest = calls("POST", "/api/tags/suggest", 5, json={"title": "Cloud", "text": "Le cloud."})
    assert all(r.status_code != 429 for r in suggest[:3])
    assert [r.status_code for r in suggest[3:]] == [429, 429]
    writes = calls("PUT", "/api/documents/essai", 5, content=b"---\n")
    assert [r.status_code for r in writes] == [403, 403, 403, 429, 429]  # key-less too
    # searching is not limited
    assert all(r.status_code == 200 for r in calls("GET", "/api/search", 30, params={"q": "x"}))


# The limiter's own tests (shared storage, moving window, settings): tests/test_rate_limits.py


# --- headers, errors, logs -------------------------------------------------------------------------

SECURITY = {"x-content-type-options": "nosniff", "x-frame-options": "DENY",
            "referrer-policy": "same-origin"}


def test_security_headers_on_pages_and_api(live_server: str) -> None:
    doc = httpx.get(live_server + "/api/search", params={"q": "cloud"}).json()["hits"][0]["id"]
    pages = ["/", "/?q=cloud", "/archives", "/editeur", f"/documents/{doc}", "/documents/absent"]
    for path in pages:
        r = httpx.get(live_server + path)
        for k, v in SECURITY.items():
            assert r.headers.get(k) == v, (path, k)
        csp = r.headers.get("content-security-policy", "")
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert "unsafe-inline" not in csp
    for path in ("/api/search?q=cloud", "/api/documents/absent", "/api/search?size=0", "/nulle"):
        r = httpx.get(live_server + path)
        for k, v in SECURITY.items():
            assert r.headers.get(k) == v, (path, k)


def test_no_stack_traces_in_responses(tmp_path: Path, sample_index: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    client = _client(tmp_path, sample_index)
    ctx = client.app.state.ctx  # type: ignore[attr-defined]

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("detail-interne-secret /etc/passwd")

    ctx.search.search = boom
    ctx.search.export = boom
    ctx.search.run = boom
    for path in ("/api/search?q=x", "/api/export?q=x", "/?q=x", "/api/autocomplete?q=cloud"):
        r = client.get(path)
        assert r.status_code == 500, path
        assert r.json() == {"detail": "internal error"}
        assert "Traceback" not in r.text and "detail-interne" not in r.text
        assert r.headers["x-content-type-options"] == "nosniff"
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    errors = [e for e in logged if e["level"] == "error"]
    assert errors and "Traceback" in errors[0]["exc"] and "detail-interne" in errors[0]["exc"]


def test_logs_are_json_lines_without_secrets(tmp_path: Path, sample_index: Path) -> None:
    secret = "s3cr3t-Key-Value-0987654321"
    log = tmp_path / "service.log"
    port = free_port()
    index = tmp_path / "index"  # it writes: a copy, never the session's shared index
    shutil.copytree(sample_index, index)
    env = {"COMMUNIQUES_INDEX": str(index), "COMMUNIQUES_API_KEY": secret,
           "COMMUNIQUES_DOCUMENTS": str(tmp_path / "docs"), "COMMUNIQUES_LOG_LEVEL": "INFO",
           "PATH": "/usr/bin:/bin"}
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory", "--host",
             "127.0.0.1", "--port", str(port), "--log-level", "info"],
            cwd=ROOT, env=env, stderr=err, stdout=err,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)  # 503 while loading
        auth = {"Authorization": f"Bearer {secret}", "Content-Type": "text/markdown"}
        httpx.put(base + "/api/documents/journal", content=b"---\ntitle: x\n---\n", headers=auth, timeout=30)
        httpx.put(base + "/api/documents/journal", content=b"x", headers={
            "Authorization": f"Bearer {secret}-faux"}, timeout=30)
        httpx.get(base + "/api/search", params={"q": "cloud", "api_key": secret, "token": secret}, timeout=30)
        httpx.get(base + f"/api/documents/{secret}", headers={"Cookie": f"session={secret}"}, timeout=30)
        httpx.get(base + "/api/export", params={"q": "x", "key": secret}, timeout=30)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    text = log.read_text()
    assert secret not in text
    lines = [line for line in text.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is a JSON object
    assert any(r.get("msg") == "request" and r.get("route") for r in records)
    assert any(r.get("logger") == "uvicorn.access" for r in records)
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)


def test_redactor() -> None:
    redact = Redactor(["ma-cle-secrete"])
    assert "ma-cle-secrete" not in redact("clé ma-cle-secrete ici")
    assert redact("Authorization: Bearer abcdef123456") == "Authorization: [redacted]"
    assert "abcdef" not in redact("GET /api/x?q=1&api_key=abcdef&token=zzz HTTP/1.1")
    assert "q=1" in redact("GET /api/x?q=1&api_key=abcdef")
    assert redact.value({"authorization": "x", "n": 1}) == {"authorization": "[redacted]", "n": 1}
    import logging

    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/api/search?key=abcdef", "1.1", 200), None)
    out = json.loads(JsonFormatter(redact).format(record))
    assert out["path"] == "/api/search?key=[redacted]" and out["status"] == 200
