"""Signing in, in a real headless Chromium: the public never sees a draft; an archivist who
signs in with the read key sees them, marked « Brouillon »; the session is an HttpOnly,
SameSite=Strict cookie and the key never appears in an address."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_CORPUS, build_index, start_server
from tests.test_browser import Tab, browser  # noqa: F401 - the shared Chromium fixture

pytestmark = pytest.mark.browser

READ_KEY = "archiviste-cle-de-test-42"
DRAFT_ID = "design-des-services-publics-cinq-principes-pour-des-formulaires-plus-clairs"


@pytest.fixture(scope="module")
def signin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    index = build_index(tmp_path_factory.mktemp("signin-index"), SAMPLE_CORPUS)
    server = start_server(index, {"COMMUNIQUES_READ_KEY": READ_KEY,
                                  "COMMUNIQUES_API_KEY": "editeur-cle-de-test-42"}, workers=2)
    yield server.url
    server.stop()


def open_menu(page: object, width: int) -> None:
    if width < 992:
        page.get_by_role("button", name="Menu").click()  # type: ignore[attr-defined]
        page.locator("#menu-principal").wait_for(state="visible")  # type: ignore[attr-defined]


@pytest.mark.parametrize("width", [375, 1280])
def test_archivist_signs_in_and_sees_drafts(browser: object, signin_server: str,  # noqa: F811
                                            width: int) -> None:
    tab = Tab(browser, signin_server)
    page = tab.page
    page.set_viewport_size({"width": width, "height": 812})
    try:
        page.goto("/?q=formulaires%20plus%20clairs")
        assert DRAFT_ID not in page.content()
        assert page.locator(".badge-draft").count() == 0
        tab.shot(f"signin-public-{width}")

        open_menu(page, width)  # on phones the account block is in the DSFR's menu
        page.get_by_role("link", name="Se connecter").click()
        page.wait_for_url("**/connexion**")
        page.get_by_label("Clé d’accès").fill("une-mauvaise-cle")
        page.get_by_role("button", name="Se connecter").click()
        assert "pas reconnue" in page.locator(".alert-error").inner_text()
        page.get_by_label("Clé d’accès").fill(READ_KEY)
        page.get_by_role("button", name="Se connecter").click()
        page.goto("/?q=formulaires%20plus%20clairs")
        assert READ_KEY not in page.url
        hit = page.locator(f'#results a[href="/documents/{DRAFT_ID}"]')
        hit.wait_for()
        assert page.locator(".badge-draft").first.text_content().strip() == "Brouillon"
        open_menu(page, width)
        assert "Connecté : archiviste" in page.locator(".account").filter(visible=True).inner_text()
        if width < 992:
            page.keyboard.press("Escape")  # close the menu
            page.locator("#menu-principal").wait_for(state="hidden")
        tab.shot(f"signin-archivist-{width}")
        (cookie,) = [c for c in tab.context.cookies() if c["name"] == "communiques_session"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert READ_KEY not in cookie["value"]

        hit.click()
        page.wait_for_url(f"**/documents/{DRAFT_ID}")
        assert "Brouillon" in page.locator(".kicker").text_content()

        open_menu(page, width)
        page.get_by_role("button", name="Se déconnecter").click()
        page.goto("/?q=formulaires%20plus%20clairs")
        assert DRAFT_ID not in page.content()
        assert not tab.problems, tab.problems
        width_used = page.evaluate("document.documentElement.scrollWidth")
        assert width_used <= width, f"the page scrolls sideways at {width} px"
    finally:
        tab.context.close()


def test_signin_page_has_labels(browser: object, signin_server: str) -> None:  # noqa: F811
    tab = Tab(browser, signin_server)
    try:
        tab.page.goto("/connexion")
        field = tab.page.get_by_label("Clé d’accès")
        assert field.get_attribute("type") == "password"
        assert field.get_attribute("autocomplete") == "current-password"
        tab.shot("signin-form")
    finally:
        tab.context.close()
    assert Path(SAMPLE_CORPUS).is_dir()
