"""HTTP hygiene against ``serve --workers 2``: on-site redirects whatever the ``Host``, API docs
without a CDN under the pages' CSP, ``HEAD`` of every page, the editor form's rate limit."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.middleware import relative_location
from service.routes.pages import CSP
from tests.conftest import start_server


@pytest.fixture(scope="module")
def server(sample_index: Path) -> Iterator[str]:
    server = start_server(sample_index, {"COMMUNIQUES_RATE_EDITOR": "3/60"}, workers=2)
    yield server.url
    server.stop()


@pytest.mark.parametrize("path", ["/api/search/?q=cloud", "/api/stats/", "/api/tags/"])
def test_redirects_never_name_the_requested_host(server: str, path: str) -> None:
    r = httpx.get(server + path, headers={"Host": "evil.example"}, follow_redirects=False)
    assert 300 <= r.status_code < 400, r.status_code
    location = r.headers["location"]
    assert location.startswith("/") and not location.startswith("//"), location
    assert "evil.example" not in location
    # and it still leads somewhere on this site
    assert httpx.get(server + location).status_code == 200


def test_relative_location() -> None:
    assert relative_location("http://evil.example/api/search?q=x") == "/api/search?q=x"
    assert relative_location("https://evil.example") == "/"
    assert relative_location("//evil.example/x") == "/x"
    assert relative_location("/\\evil.example/x") == "/evil.example/x"
    assert relative_location("/documents/a#b") == "/documents/a#b"
    assert relative_location("suite?page=2") == "suite?page=2"


def _scripts(html: str) -> list[str]:
    tags = re.findall(r"<script\b[^>]*>", html, flags=re.IGNORECASE)
    assert tags
    sources = []
    for tag in tags:
        m = re.search(r'\bsrc="([^"]+)"', tag)
        assert m, f"inline script: {tag}"
        sources.append(m.group(1))
    return sources


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_api_docs_load_nothing_from_elsewhere_under_the_csp(server: str, path: str) -> None:
    r = httpx.get(server + path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    if path == "/docs":
        assert csp == CSP
    else:  # ReDoc's own <style> elements carry this response's nonce, nothing else is relaxed
        nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
        assert csp == CSP.replace("style-src 'self'", f"style-src 'self' 'nonce-{nonce}'")
        assert f'data-nonce="{nonce}"' in r.text
        assert nonce not in httpx.get(server + path).headers["content-security-policy"]
    assert "cdn" not in r.text.lower() and "http" not in r.text.replace("http-equiv", "")
    links = _scripts(r.text) + re.findall(r'<link[^>]+href="([^"]+)"', r.text)
    for src in links:
        assert src.startswith("/docs/assets/"), src
        asset = httpx.get(server + src)
        assert asset.status_code == 200 and asset.content, src
        assert asset.headers["content-security-policy"] == CSP
    assert httpx.get(server + "/docs/assets/..%2Fapp.py").status_code == 404
    assert httpx.get(server + "/openapi.json").status_code == 200


@pytest.mark.parametrize("path", ["/", "/?q=cloud", "/archives", "/editeur", "/docs", "/redoc",
                                  "/static/site.css", "/api/search?q=cloud", "/health"])
def test_head_answers_like_get_without_a_body(server: str, path: str) -> None:
    get = httpx.get(server + path)
    head = httpx.head(server + path)
    assert head.status_code == get.status_code == 200, (head.status_code, get.status_code)
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["x-content-type-options"] == "nosniff"
    if path.startswith("/") and not path.startswith(("/api", "/health", "/static")):
        assert head.headers["content-security-policy"].startswith("default-src 'self'")


def test_head_of_a_document_page_and_a_missing_one(server: str) -> None:
    doc_id = httpx.get(server + "/api/search", params={"q": "cloud"}).json()["hits"][0]["id"]
    assert httpx.head(server + f"/documents/{doc_id}").status_code == 200
    missing = httpx.head(server + "/documents/nulle-part")
    assert missing.status_code == 404 and missing.content == b""
    # a route that only takes POST still says so
    assert httpx.head(server + "/api/tags/feedback").status_code == 405


def test_editor_form_is_rate_limited(server: str) -> None:
    codes = []
    for _ in range(5):
        with httpx.Client(timeout=30) as client:  # new connections: both workers answer
            codes.append(client.post(server + "/editeur",
                                     data={"title": "Cloud", "text": "Le cloud."}).status_code)
    assert codes == [200, 200, 200, 429, 429], codes
    # the page itself is not limited
    assert all(httpx.get(server + "/editeur").status_code == 200 for _ in range(5))


@pytest.mark.browser
def test_api_docs_render_in_a_browser_under_the_csp(server: str) -> None:
    """The viewers really start under the CSP: no script error, nothing fetched elsewhere."""
    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, _unavailable

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (scripts/install-browser.sh)")
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (scripts/install-browser.sh)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                    headless=True)
        try:
            for path, ready in (("/docs", ".opblock"), ("/redoc", "h1:has-text('communiques')")):
                page = browser.new_page()
                errors: list[str] = []
                elsewhere: list[str] = []
                page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
                # fetched from another host (ReDoc's own logo link is blocked by the CSP)
                page.on("requestfinished", lambda r, out=elsewhere: out.append(r.url)
                        if not r.url.startswith(server) else None)
                page.goto(server + path)
                page.wait_for_selector(ready, timeout=20_000)
                assert errors == [], (path, errors)
                assert elsewhere == [], (path, elsewhere)
                page.close()
        finally:
            browser.close()
