"""The pages as a State website, in a real headless Chromium at 375 px and 1,280 px.

Design system (DSFR) header, footer and themes; the combobox typed letter by letter; the first
result in the first screen of a phone; the folded filters; nothing scrolling sideways at 320 px;
the pages without JavaScript; document and event pages; and the axe-core audit of every page,
light and dark, phone and desktop (0 serious or critical violations). Screenshots go to
``screenshots/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_browser import SCREENSHOTS, Tab, browser  # noqa: F401 - the shared Chromium

pytestmark = pytest.mark.browser

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
LINKED_DOC = "franceconnect-de-nouveaux-comptes-pour-prouver-son-identite-en-ligne"
ATTACHED_DOC = "cybersecurite-des-parcours-de-securisation-pour-les-administrations-finances-par-france"
EVENT_DOC = "atelier-ecoconcevoir-un-service-public-numerique-avec-le-rgesn"
PAGES = [
    "/", "/?q=cloud", "/?q=num%C3%A9rique&tag=cloud", f"/documents/{LINKED_DOC}",
    f"/documents/{EVENT_DOC}", f"/documents/{ATTACHED_DOC}", "/archives",
    "/archives?q=cloud&date_from=2019-01-01", "/editeur", "/connexion", "/documents/inconnu",
    "/accessibilite", "/mentions-legales", "/donnees-personnelles", "/plan-du-site",
    "/?q=cloud&page=999", "/?q=cloud&date_from=2024-01-01&date_to=2020-01-01",
]


@pytest.fixture
def phone(browser: object, live_server: str) -> Iterator[Tab]:  # noqa: F811
    t = Tab(browser, live_server, is_mobile=True, has_touch=True)
    t.page.set_viewport_size({"width": 375, "height": 812})
    yield t
    t.context.close()
    assert not t.problems, t.problems


@pytest.fixture
def desk(browser: object, live_server: str) -> Iterator[Tab]:  # noqa: F811
    t = Tab(browser, live_server)
    yield t
    t.context.close()
    assert not t.problems, t.problems


def name_of(path: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in path.strip("/"))[:60] or "accueil"


def type_slowly(tab: Tab, text: str) -> None:
    box = tab.page.locator("#q")
    box.click()
    for ch in text:
        box.press_sequentially(ch)
        tab.page.wait_for_timeout(40)


def wait_rendered(tab: Tab, q: str) -> None:
    tab.page.wait_for_function(
        "q => new URLSearchParams(location.search).get('q') === q && "
        "document.getElementById('result-count').textContent.includes(q)", arg=q)


def test_dsfr_header_footer_and_assets_come_from_the_service(desk: Tab) -> None:
    page = desk.page
    page.goto("/")
    logo = page.locator("header.fr-header .fr-logo").first.text_content()
    assert "".join(logo.split()).lower() == "républiquefrançaise"  # the block, on two lines
    assert page.locator(".fr-header__service-title").inner_text().strip() == "Communiqués"
    links = page.locator(".fr-footer__bottom-link").all_inner_texts()
    for wanted in ("Plan du site", "Accessibilité : partiellement conforme", "Mentions légales",
                   "Données personnelles"):
        assert wanted in links, links
    # every stylesheet and script is served by the service itself (no CDN)
    sources = page.evaluate("""() => [...document.querySelectorAll('link[href], script[src]')]
        .map(e => e.href || e.src)""")
    assert all(s.startswith(desk.base) for s in sources), sources
    assert page.evaluate("getComputedStyle(document.body).fontFamily").startswith("Marianne")
    assert page.locator('link[rel="search"]').get_attribute("href") == "/opensearch.xml"
    # the theme: dark from the display settings, kept by the DSFR
    page.get_by_role("button", name="Paramètres d’affichage").click()
    page.locator('label[for="fr-radios-theme-dark"]').click()
    page.wait_for_function("document.documentElement.getAttribute('data-fr-theme') === 'dark'")
    desk.shot("dsfr-theme-dark-1280")


def test_combobox_letter_by_letter(desk: Tab) -> None:
    page = desk.page
    page.goto("/")
    box = page.locator("#q")
    assert box.get_attribute("role") == "combobox"
    assert box.get_attribute("aria-expanded") == "false"
    type_slowly(desk, "accessib")
    listbox = page.locator("#q-listbox")
    listbox.wait_for(state="visible")
    assert box.get_attribute("aria-expanded") == "true"
    assert box.get_attribute("aria-controls") == "q-listbox"
    options = page.locator("#q-listbox [role=option]")
    texts = options.all_inner_texts()
    assert texts and any("accessib" in t.lower() for t in texts), texts
    wait_rendered(desk, "accessib")
    assert page.locator("#results .result-title").count() > 0
    desk.shot("combobox-open-1280")
    # ↓ ↓ ↑: aria-activedescendant follows, one option selected
    box.press("ArrowDown")
    first = options.nth(0).get_attribute("id")
    assert box.get_attribute("aria-activedescendant") == first
    box.press("ArrowDown")
    if options.count() > 1:
        assert box.get_attribute("aria-activedescendant") == options.nth(1).get_attribute("id")
    box.press("ArrowUp")
    assert box.get_attribute("aria-activedescendant") == first
    assert page.locator('#q-listbox [aria-selected="true"]').count() == 1
    # Escape closes the list and keeps the text
    box.press("Escape")
    assert listbox.is_hidden() and box.get_attribute("aria-expanded") == "false"
    assert box.input_value() == "accessib"
    assert box.get_attribute("aria-activedescendant") is None
    # Enter on a word completion puts it in the box and searches it
    box.press("ArrowDown")
    chosen = options.nth(0)
    kind_term = "combo-option--term" in (chosen.get_attribute("class") or "")
    text = chosen.inner_text()
    box.press("Enter")
    if kind_term:
        page.wait_for_function("t => document.getElementById('q').value === t", arg=text)
        wait_rendered(desk, text)
    else:
        page.wait_for_url("**/documents/**")


def test_results_follow_typing_and_older_requests_are_dropped(desk: Tab) -> None:
    page = desk.page
    page.goto("/")
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if "/fragments/recherche" in r.url else None)
    page.locator("#q").click()
    page.keyboard.type("cloud souverain", delay=5)  # faster than any answer
    wait_rendered(desk, "cloud souverain")
    assert len(seen) >= 5, "a request per key, not one after a pause"
    assert "cloud souverain" in page.locator("#result-count").inner_text()
    assert page.url.endswith("/?q=cloud+souverain")
    # the count stays the same live region element (screen readers hear each new count)
    assert page.locator("#result-count").get_attribute("aria-live") == "polite"


def test_phone_first_result_in_first_screen_and_folded_filters(phone: Tab) -> None:
    page = phone.page
    page.goto("/")
    type_slowly(phone, "numérique")
    wait_rendered(phone, "numérique")
    page.locator("#q").press("Escape")
    title = page.locator("#results .result-title").first
    box = title.bounding_box()
    assert box is not None and box["y"] + box["height"] <= 812, box
    phone.shot("phone-first-result-375")
    # facets folded in a panel; opened, a tag becomes a dismissible active filter
    toggle = page.get_by_role("button", name="Filtrer les résultats")
    assert toggle.get_attribute("aria-expanded") == "false"
    assert page.locator("#facets-panel .facet-link").first.is_hidden()
    toggle.click()
    tag = page.locator('#facets-panel .facet[data-facet="tag"] .facet-link').first
    tag.wait_for(state="visible")
    tag.click()
    chip = page.locator("#active-filters .chip")
    chip.wait_for(state="visible")
    assert chip.count() == 1 and "fr-tag--dismiss" in chip.get_attribute("class")
    phone.shot("phone-filter-active-375")
    chip.click()
    page.wait_for_function("!document.querySelector('#active-filters .chip')")


@pytest.mark.parametrize("path", PAGES)
def test_nothing_scrolls_sideways_at_320(browser: object, live_server: str, path: str) -> None:  # noqa: F811
    tab = Tab(browser, live_server)
    try:
        tab.page.set_viewport_size({"width": 320, "height": 700})
        tab.page.goto(path)
        overflow = tab.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path}: {overflow} px sideways"
    finally:
        tab.context.close()


def test_search_works_without_javascript(browser: object, live_server: str) -> None:  # noqa: F811
    tab = Tab(browser, live_server, java_script_enabled=False)
    try:
        page = tab.page
        page.goto("/")
        page.locator("#q").fill("cloud")
        page.locator("#q").press("Enter")
        page.wait_for_url("**/?q=cloud*")
        assert page.locator("#results .result-title").count() > 0
        facet = page.locator('.facet[data-facet="year"] .facet-link').first
        assert facet.is_visible(), "the facets are open without script"
        facet.click()
        assert page.locator("#active-filters .chip").count() == 1
        tab.shot("nojs-search-1280")
    finally:
        tab.context.close()


def test_document_page_renders_the_markdown(desk: Tab) -> None:
    page = desk.page
    page.goto(f"/documents/{LINKED_DOC}")
    assert page.locator(".doc-body h2").count() >= 2
    link = page.locator('.doc-body a[href^="https://franceconnect.gouv.fr"]')
    assert link.count() == 1
    assert "noopener" in link.get_attribute("rel")
    assert link.get_attribute("target") == "_blank" and "nouvelle fenêtre" in link.get_attribute("title")
    assert "{:" not in page.locator(".doc-body").inner_text()
    canonical = page.locator('link[rel="canonical"]').get_attribute("href")
    assert canonical.startswith("https://") and LINKED_DOC in canonical
    public = page.locator(".doc-facts a")
    assert public.get_attribute("href") == canonical
    desk.shot("document-markdown-1280")
    page.goto(f"/documents/{ATTACHED_DOC}")
    download = page.locator(".attachments a.fr-link--download").first
    assert download.get_attribute("download") is not None
    assert download.get_attribute("href").startswith("https://")
    assert download.locator(".fr-link__detail").inner_text().startswith("PDF")
    desk.shot("document-attachment-1280")


def test_event_page_shows_the_event(phone: Tab) -> None:
    page = phone.page
    page.goto(f"/documents/{EVENT_DOC}")
    assert page.locator(".event-date").inner_text().startswith("6 juin 2024 à 9 h 30")
    assert page.locator(".event-place").inner_text() == "Le lieu de la DITP"
    assert "75015 Paris" in page.locator(".event-address").inner_text()
    assert page.locator(".doc-body h3").count() >= 1
    phone.shot("event-375")


def test_french_messages_for_visitors(desk: Tab) -> None:
    page = desk.page
    page.goto("/?q=cloud&date_from=2024-01-01&date_to=2020-01-01")
    text = page.locator("#search-error").inner_text()
    assert "postérieure" in text and "must not" not in text
    page.goto("/?q=cloud&page=999")
    past = page.locator("#past-last")
    assert "n’existe pas" in past.inner_text()
    past.get_by_role("link").click()
    page.locator("#results .result").first.wait_for()  # no string evaluation under the CSP
    desk.shot("past-last-page-1280")


def _axe_run(page: object) -> list[dict]:
    page.add_script_tag(path=str(AXE))  # type: ignore[attr-defined]
    result = page.evaluate(  # type: ignore[attr-defined]
        "async () => JSON.stringify((await axe.run(document, {resultTypes: ['violations']})).violations)")
    return [v for v in json.loads(result) if v.get("impact") in ("serious", "critical")]


AUDIT: dict[str, list[str]] = {}


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [375, 1280])
def test_axe_core_audit(browser: object, live_server: str, width: int, scheme: str) -> None:  # noqa: F811
    if not AXE.exists():
        pytest.skip("node_modules/axe-core is missing: run `npm ci`")
    # axe is injected as a script: this context alone bypasses the CSP to let it in
    ctx = browser.new_context(base_url=live_server, viewport={"width": width, "height": 900},  # type: ignore[attr-defined]
                              color_scheme=scheme, bypass_csp=True, locale="fr-FR")
    failures: list[str] = []
    try:
        page = ctx.new_page()
        for path in PAGES:
            page.goto(path)
            # The design system marks the page as started, then applies the scheme's theme.
            page.wait_for_function("document.documentElement.hasAttribute('data-fr-js') && "
                                   "document.documentElement.hasAttribute('data-fr-theme')")
            theme = page.evaluate("document.documentElement.getAttribute('data-fr-theme')")
            assert theme == scheme, (path, theme)
            for v in _axe_run(page):
                nodes = [n["target"] for n in v["nodes"][:3]]
                failures.append(f"{path} [{v['impact']}] {v['id']}: {v['help']} {nodes}")
        page.goto("/?q=cloud")
        page.screenshot(path=str(SCREENSHOTS / f"axe-search-{width}-{scheme}.png"), full_page=True)
    finally:
        ctx.close()
    Path(SCREENSHOTS / f"axe-{width}-{scheme}.txt").write_text("\n".join(failures) or "0 serious/critical")
    assert not failures, "\n".join(failures)
