"""The editor page in headless Chromium: paste a real communiqué, see a ranked list with the
confident tags pre-selected and the other possibilities, add tags by hand (one of the vocabulary
through the autocomplete, one new), dismiss one, accept and reject, and send the choices."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_CORPUS, build_index, require_shared, start_server
from tests.test_browser import Tab, _real_communique, browser  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser
KEY = "editor-browser-key"


@pytest.fixture(scope="module")
def editor_server(tmp_path_factory: pytest.TempPathFactory,
                  sample_model: Path) -> Iterator[tuple[str, Path]]:
    var = tmp_path_factory.mktemp("editor-var")
    index = build_index(tmp_path_factory.mktemp("editor-index"), SAMPLE_CORPUS)
    live = start_server(index, {"COMMUNIQUES_MODEL": str(sample_model),
                                "COMMUNIQUES_FEEDBACK": str(var / "feedback.jsonl"),
                                "COMMUNIQUES_API_KEY": KEY})
    yield live.url, var / "feedback.jsonl"
    live.stop()


def test_editor_ranks_adds_and_records(browser: object,  # noqa: F811
                                       editor_server: tuple[str, Path]) -> None:
    base, log = editor_server
    title, text = _real_communique(require_shared())
    tab = Tab(browser, base, extra_http_headers={"Authorization": f"Bearer {KEY}"})
    page = tab.page
    page.goto("/editeur")
    page.locator("#ed-title").fill(title)
    page.locator("#ed-text").fill(text)
    page.locator("#ed-k").fill("6")
    page.get_by_role("button", name="Suggérer des étiquettes").click()
    page.locator("#editor-status").filter(has_text="suggérée").wait_for()
    sure = page.locator("#tag-suggestions li")
    other = page.locator("#other-suggestions li")
    assert sure.count() + other.count() == 6  # always the k best, ranked
    assert sure.count() >= 1, page.locator("#editor-status").inner_text()
    for i in range(sure.count()):  # confident ones are pre-selected
        assert sure.nth(i).get_by_role("button", name="Accepter").get_attribute(
            "aria-pressed") == "true"
    for i in range(other.count()):
        assert other.nth(i).get_by_role("button", name="Accepter").get_attribute(
            "aria-pressed") == "false"
    assert "Employée dans" in sure.first.inner_text()
    first_tag = sure.first.locator(".tag-name").inner_text()
    rejected = other.first.locator(".tag-name").inner_text()
    other.first.get_by_role("button", name="Refuser").click()

    # By hand: a tag of the vocabulary typed by an alias (the autocomplete knows it), a new one.
    options = page.locator("#tag-vocabulary option")
    page.wait_for_function("() => document.querySelectorAll('#tag-vocabulary option').length > 10")
    assert options.count() > 10
    page.locator("#ed-add-tag").fill("RGAA")
    page.get_by_role("button", name="Ajouter", exact=True).click()
    page.locator("#ed-add-tag").fill("Étiquette inédite")
    page.locator("#ed-add-tag").press("Enter")
    page.locator("#ed-add-tag").fill("Tag à retirer")
    page.locator("#ed-add-tag").press("Enter")
    added = page.locator("#added-tags button")
    assert added.count() == 3
    assert "(nouvelle)" in added.nth(1).inner_text()
    page.get_by_role("button", name="Retirer Tag à retirer").click()
    assert added.count() == 2
    yaml = page.locator("#yaml-output").inner_text()
    assert first_tag in yaml and "Étiquette inédite" in yaml and "Tag à retirer" not in yaml
    tab.shot("editor-ranked-and-added")
    with page.expect_response("**/api/tags/feedback") as response:
        page.get_by_role("button", name="Enregistrer mes choix").click()
    assert response.value.status == 201, response.value.text()
    page.locator("#feedback-status").filter(has_text="enregistrés").wait_for()
    record = json.loads(log.read_text(encoding="utf-8").splitlines()[-1])
    assert first_tag in record["accepted"] and rejected in record["rejected"]
    assert "Étiquette inédite" in record["added"] and len(record["added"]) == 2
    tab.context.close()
    assert not tab.problems, tab.problems


@pytest.mark.parametrize("width", [375, 1280])
def test_editor_shows_the_words_of_a_name_found_apart(browser: object,  # noqa: F811
                                                      editor_server: tuple[str, Path],
                                                      width: int) -> None:
    """A title saying a tag's name in other order gets the tag, and the reasons name the words
    of the name the page found ("mots de son nom"), as the API gives them; on a phone too,
    without widening the page."""
    base, _ = editor_server
    tab = Tab(browser, base, extra_http_headers={"Authorization": f"Bearer {KEY}"})
    page = tab.page
    page.set_viewport_size({"width": width, "height": 900})
    page.goto("/editeur")
    page.locator("#ed-title").fill("Un environnement numérique pour le travail des agents")
    page.locator("#ed-text").fill("Les agents de l'État disposeront d'outils pour collaborer : "
                                  "messagerie, visioconférence et documents partagés.")
    page.get_by_role("button", name="Suggérer des étiquettes").click()
    page.locator("#editor-status").filter(has_text="suggérée").wait_for()
    first = page.locator("#tag-suggestions li").first
    assert "Environnement de travail numérique" in first.locator(".tag-name").inner_text()
    words = first.locator(".reason-name_words")
    assert words.inner_text().startswith("mots de son nom : ")
    assert words.locator(".reason").all_inner_texts() == ["environnement", "travail", "numérique"]
    assert page.evaluate("document.documentElement.scrollWidth - "
                         "document.documentElement.clientWidth") <= 0
    box = first.bounding_box()  # room for its rank (« 1. ») left of the card, inside the page
    assert box is not None and box["x"] >= 36, box
    tab.shot(f"editor-name-words-{width}")
    tab.context.close()
    assert not tab.problems, tab.problems
