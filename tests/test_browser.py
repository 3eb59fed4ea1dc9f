"""The pages in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Skipped with the reason when Chromium or playwright is missing, except under CI=true where that
is a failure (``scripts/install-browser.sh`` installs both). Each test writes screenshots to
``screenshots/`` at the repository root.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.conftest import ROOT, require_shared

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOTS = ROOT / "screenshots"
KEY = {"Authorization": "Bearer test-key-123"}
TIMEOUT_MS = 10_000


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} — required under CI=true (run scripts/install-browser.sh)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (scripts/install-browser.sh)")
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (scripts/install-browser.sh installs Debian's chromium)")
    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class Tab:
    """A page plus what went wrong in it: script errors and CSP violations."""

    def __init__(self, browser: object, base: str, **options: object) -> None:
        self.context = browser.new_context(  # type: ignore[attr-defined]
            base_url=base, viewport={"width": 1280, "height": 900}, locale="fr-FR", **options,
        )
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.base = base
        self.problems: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("pageerror", lambda exc: self.problems.append(f"script error: {exc}"))
        self.page.on("console", self._console)
        self.page.on("dialog", self._dialog)

    def _console(self, msg: object) -> None:
        text = msg.text  # type: ignore[attr-defined]
        if msg.type == "error" and "Content Security Policy" in text:  # type: ignore[attr-defined]
            self.problems.append(f"CSP violation: {text}")

    def _dialog(self, dialog: object) -> None:
        self.dialogs.append(dialog.message)  # type: ignore[attr-defined]
        dialog.dismiss()  # type: ignore[attr-defined]

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def count_text(self) -> str:
        return self.page.locator("#result-count").inner_text()


@pytest.fixture
def tab(browser: object, live_server: str) -> Iterator[Tab]:
    t = Tab(browser, live_server)
    yield t
    t.context.close()
    assert not t.problems, t.problems


def api_search(base: str, **params: object) -> dict:
    r = httpx.get(base + "/api/search", params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def wait_for_count(tab: Tab, pattern: str) -> None:
    tab.page.wait_for_function(
        "p => new RegExp(p).test(document.getElementById('result-count').textContent)",
        arg=pattern,
    )


def test_typing_shows_highlighted_results(tab: Tab, live_server: str) -> None:
    page = tab.page
    page.goto("/")
    tab.shot("search-home")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/fragments/recherche" in r.url else None)
    page.locator("#q").click()
    page.keyboard.type("cloud nubo", delay=25)
    wait_for_count(tab, "pour « cloud nubo »")
    api = api_search(live_server, q="cloud nubo")
    assert tab.count_text() == f"{api['total']} résultat{'s' if api['total'] > 1 else ''} pour « cloud nubo »"
    assert page.locator("#result-count").get_attribute("aria-live") == "polite"
    titles = page.locator("#results .result-title a")
    assert titles.count() == len(api["hits"])
    assert titles.first.inner_text() == api["hits"][0]["title"]
    assert page.locator("#results mark").count() > 0
    assert page.locator("#results .result-title mark").first.inner_text().lower() in ("cloud", "nubo")
    # at most one request per keystroke (older ones aborted), and the address follows the query
    assert 1 <= len(requests) <= len("cloud nubo")
    assert parse_qs(urlparse(page.url).query)["q"] == ["cloud nubo"]
    tab.shot("search-typing")

    # a misspelt word offers "Essayez avec …" as a link that searches it
    page.locator("#q").fill("clodu souverain ")
    page.locator("#suggestion a").wait_for()
    page.locator("#q").blur()  # close the completions list
    assert page.locator("#suggestion").inner_text().strip() == "Essayez avec cloud souverain"
    page.locator("#suggestion a").click()
    wait_for_count(tab, "pour « cloud souverain »")
    assert page.locator("#q").input_value().strip() == "cloud souverain"


def test_clicking_a_facet_filters_the_results(tab: Tab, live_server: str) -> None:
    from models.vocabulary import Vocabulary

    page = tab.page
    page.goto("/")
    page.locator("#q").fill("numérique")
    wait_for_count(tab, "pour « numérique »")
    page.locator("#q").blur()  # close the completions list
    before = tab.count_text()
    facet = page.locator('.facet[data-facet="tag"] .facet-link').first
    key = facet.get_attribute("data-focus-id").removeprefix("tag:")
    expected = int(facet.locator(".facet-count").inner_text().split()[0])
    facet.click()
    wait_for_count(tab, f"^{expected} résultat")
    assert tab.count_text() != before
    assert parse_qs(urlparse(page.url).query)["tag"] == [key]
    active = page.locator(f'.facet-link[data-focus-id="tag:{key}"]')
    assert active.get_attribute("aria-current") == "true"
    assert page.locator("#active-filters .chip").count() == 1
    voc = Vocabulary()
    ids = [h.removeprefix("/documents/")
           for h in page.locator("#results .result-title a").evaluate_all("els => els.map(e => e.getAttribute('href'))")]
    assert ids and len(ids) == min(expected, 10)
    for doc_id in ids:
        doc = httpx.get(f"{live_server}/api/documents/{doc_id}", timeout=30).json()
        assert key in {voc.key(t) for t in doc["tags"]}, doc_id
    tab.shot("search-facet")

    # the year facet narrows further; the chip removes the tag again
    year = page.locator('.facet[data-facet="year"] .facet-link').first
    year_value = year.get_attribute("data-focus-id").removeprefix("year:")
    year_count = int(year.locator(".facet-count").inner_text().split()[0])
    year.click()
    wait_for_count(tab, f"^{year_count} résultat")
    dates = page.locator("#results time").evaluate_all("els => els.map(e => e.getAttribute('datetime'))")
    assert dates and all(d.startswith(year_value) for d in dates)
    page.locator("#active-filters .chip").first.click()
    page.wait_for_function("() => !new URL(location.href).searchParams.has('tag')")
    api = api_search(live_server, q="numérique", year=year_value)
    wait_for_count(tab, f"^{api['total']} résultat")


def test_without_javascript_the_form_and_facets_still_work(browser: object, live_server: str) -> None:
    tab = Tab(browser, live_server, java_script_enabled=False)
    try:
        page = tab.page
        page.goto("/")
        page.locator("#q").fill("cloud")
        page.locator("#q").press("Enter")
        page.wait_for_url(re.compile(r"/\?q=cloud"))
        assert page.locator("#results .result-title mark").count() > 0
        facet = page.locator('.facet[data-facet="year"] .facet-link').first
        year = facet.get_attribute("data-focus-id").removeprefix("year:")
        expected = int(facet.locator(".facet-count").inner_text().split()[0])
        facet.click()
        page.wait_for_url(re.compile(rf"year={year}"))
        assert tab.count_text().startswith(f"{expected} résultat")
        page.locator("#sort").select_option("date")
        page.get_by_role("button", name="Rechercher", exact=True).click()
        page.wait_for_url(re.compile(r"sort=date"))
        assert parse_qs(urlparse(page.url).query)["year"] == [year], "the filter is kept"
        tab.shot("search-no-js")
    finally:
        tab.context.close()
    assert not tab.problems, tab.problems


def test_the_keyboard_alone_reaches_and_opens_a_result(tab: Tab, live_server: str) -> None:
    page = tab.page
    page.goto("/?q=cloud")
    page.locator("body").focus()
    seen: list[str] = []
    for _ in range(80):
        page.keyboard.press("Tab")
        info = page.evaluate(
            """() => { const e = document.activeElement;
                 return { cls: e.className || '', href: e.getAttribute('href') || '',
                          inResult: !!e.closest('.result-title'),
                          outline: getComputedStyle(e).outlineStyle } }"""
        )
        seen.append(info["href"] if info["href"].startswith("#") else info["cls"] or info["href"])
        if info["inResult"]:
            break
    else:
        pytest.fail(f"no result reached with Tab; focus went through {seen}")
    assert seen[0] == "#contenu", "the skip link comes first"
    assert any("facet-link" in s for s in seen), "facets are reachable by keyboard"
    assert info["outline"] != "none", "the focused link shows a focus ring"
    tab.shot("search-keyboard-focus")
    title = page.evaluate("() => document.activeElement.textContent")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/documents/"))
    assert page.locator("h1").inner_text() == title
    assert page.locator(".similar-list a").count() > 0
    tab.shot("document")

    # the facet links work from the keyboard too (Enter on a focused facet)
    page.goto("/?q=cloud")
    page.locator('.facet[data-facet="collection"] .facet-link').first.focus()
    page.keyboard.press("Enter")
    page.wait_for_function("() => new URL(location.href).searchParams.has('collection')")
    wait_for_count(tab, "pour « cloud »")


def _real_communique(corpus: Path) -> tuple[str, str]:
    import frontmatter

    path = next(corpus.glob("*/communiques/fonds-pour-la-transformation-de-l-action-publique-*.md"))
    post = frontmatter.loads(path.read_text(encoding="utf-8"))
    return html.unescape(str(post["title"])).replace("\xa0", " "), post.content


def _sign_in_as_editor(tab: Tab, base: str) -> None:
    """The signed session cookie an editor gets by signing in (feedback is for editors)."""
    from service.auth import SESSION_COOKIE, Role, session_token
    from service.context import Settings

    token = session_token(Settings(api_key=KEY["Authorization"].removeprefix("Bearer "),
                                   read_key=""), Role.WRITER)
    tab.context.add_cookies([{"name": SESSION_COOKIE, "value": token, "url": base}])


def test_the_editor_suggests_tags_for_a_real_communique(
    tab: Tab, live_server: str, sample_model: Path | None
) -> None:
    if sample_model is None:  # the live server is given the sample model whenever one exists
        _unavailable("no tag model could be trained for the live server")
    title, text = _real_communique(require_shared())
    _sign_in_as_editor(tab, live_server)
    page = tab.page
    tab.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    page.goto("/editeur")
    page.locator("#ed-title").fill(title)
    page.locator("#ed-text").fill(text)
    page.get_by_role("button", name="Suggérer des étiquettes").click()
    page.wait_for_function(
        "() => document.querySelector('#tag-suggestions li') || "
        "document.getElementById('editor-status').classList.contains('is-error')"
    )
    if page.locator("#tag-suggestions li").count() == 0:  # a model is served: an error is one
        tab.shot("editor-unavailable")
        pytest.fail("no suggestion; the editor says: "
                    + page.locator("#editor-status").inner_text())
    tab.shot("editor-suggestions")
    items = page.locator("#tag-suggestions li")
    first = items.first
    tag = first.locator(".tag-name").inner_text()
    meter = first.locator("meter")
    assert meter.count() == 1 and 0 <= float(meter.get_attribute("value") or "0") <= 100
    assert re.search(r"\d+ %", first.locator(".confidence").inner_text())
    assert first.locator(".reasons").inner_text()
    if first.get_by_role("button", name="Accepter").get_attribute("aria-pressed") != "true":
        first.get_by_role("button", name="Accepter").click()  # confident ones are pre-selected
    assert first.get_by_role("button", name="Accepter").get_attribute("aria-pressed") == "true"
    if items.count() > 1:
        items.nth(1).get_by_role("button", name="Refuser").click()
    yaml = page.locator("#yaml-output").inner_text()
    assert yaml.startswith("tags:\n- ") and tag in yaml.splitlines()[1]
    page.get_by_role("button", name="Copier le YAML").click()
    page.locator("#copy-status").filter(has_text="copié").wait_for()
    assert page.evaluate("() => navigator.clipboard.readText()") == yaml
    with page.expect_response("**/api/tags/feedback") as response:
        page.get_by_role("button", name="Enregistrer mes choix").click()
    assert response.value.status == 201
    page.locator("#feedback-status").filter(has_text="enregistrés").wait_for()
    tab.shot("editor")


HOSTILE = r"""---
title: 'Alerte <img src=x onerror=alert(1)> quetzalcoatl'
date: 2024-03-04 10:00:00 +01:00
tags:
- <img src=x onerror=alert(2)>
---

Le corps quetzalcoatl contient &lt;img src=x onerror=alert(3)&gt; et &lt;script&gt;alert(4)&lt;/script&gt;.
"""


def test_a_hostile_title_is_shown_as_text_and_runs_nothing(tab: Tab, live_server: str) -> None:
    url = f"{live_server}/api/documents/browser-hostile-quetzalcoatl"
    r = httpx.put(url, content=HOSTILE, headers={"Content-Type": "text/markdown", **KEY}, timeout=30)
    assert r.status_code == 200, r.text
    literal = "<img src=x onerror=alert(1)>"
    try:
        assert httpx.get(url, timeout=30).json()["title"] == f"Alerte {literal} quetzalcoatl"
        page = tab.page
        page.goto("/")
        page.locator("#q").fill("quetzalcoatl")
        wait_for_count(tab, "pour « quetzalcoatl »")
        assert literal in page.locator("#results .result-title").first.inner_text()
        assert "alert(3)" in page.locator("#results .result-snippet").first.inner_text()
        assert page.locator("img").count() == 0 and page.locator("script:not([src])").count() == 0
        tab.shot("hostile-search")
        page.goto("/?q=quetzalcoatl")  # the same, rendered by the server
        assert literal in page.locator("#results .result-title").first.inner_text()
        page.locator("#results .result-title a").first.click()
        page.wait_for_url(re.compile(r"/documents/browser-hostile-quetzalcoatl"))
        assert page.locator("h1").inner_text() == f"Alerte {literal} quetzalcoatl"
        assert page.locator("img[src=x]").count() == 0 and page.locator("img").count() == 0
        page.wait_for_timeout(300)  # time for an onerror handler to fire, were there one
        tab.shot("hostile-document")
        assert tab.dialogs == []
    finally:
        assert httpx.delete(url, headers=KEY, timeout=30).status_code == 200


def test_archives_and_not_found_pages(tab: Tab, live_server: str) -> None:
    page = tab.page
    page.goto("/archives")
    page.locator("#aq").fill('"cloud interne" OR nubo')
    page.locator("#date_from").fill("2019-01-01")
    page.locator("#asort").select_option("-date")
    page.get_by_role("button", name="Rechercher dans les archives").click()
    page.wait_for_url(re.compile(r"/archives\?q="))
    api = api_search(live_server, q='"cloud interne" OR nubo', date_from="2019-01-01")
    assert tab.count_text().startswith(f"{api['total']} résultat")
    csv_link = page.get_by_role("link", name=re.compile("^CSV :"))
    params = parse_qs(urlparse(csv_link.get_attribute("href")).query)
    assert params["q"] == ['"cloud interne" OR nubo'] and params["date_from"] == ["2019-01-01"]
    assert params["format"] == ["csv"] and params["sort"] == ["-date"]
    tab.shot("archives")
    page.goto("/documents/n-existe-pas")
    assert "introuvable" in page.locator("h1").inner_text()
    tab.shot("not-found")
