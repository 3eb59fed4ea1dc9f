"""What editors saw go wrong with the suggester, on a model trained on the real corpus:
drafts that got nothing, tags named in the text that were not suggested, trigger words taken from
a neighbouring document, a tag nobody uses offered, drafts named to anonymous callers."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.evaluate import load_drafts
from models.explain import Reason
from models.suggester import TagSuggester
from tests.conftest import require_shared

pytestmark = pytest.mark.shared

TCHAP = ("Tchap hébergé sur un cloud qualifié SecNumCloud",
         "La messagerie des agents publics Tchap est désormais hébergée sur une offre de cloud "
         "qualifiée SecNumCloud par l'ANSSI. Les échanges des agents restent chiffrés de bout en "
         "bout et les données sont hébergées en France.")
OPEN_DATA = ("Etalab publie de nouveaux jeux de données sur data.gouv.fr",
             "Etalab, le département de la DINUM chargé de l'ouverture des données publiques, "
             "publie sur data.gouv.fr de nouveaux jeux de données. Cette démarche de "
             "transparence de l'action publique se poursuit avec les ministères.")
FRANCECONNECT = ("FranceConnect franchit un nouveau cap",
                 "Plus de quarante millions de Français utilisent FranceConnect pour accéder à "
                 "leurs démarches en ligne avec un compte qu'ils ont déjà.")


@pytest.fixture(scope="module")
def real_model() -> TagSuggester:
    drafts, _ = load_drafts([require_shared()])
    return TagSuggester(inner_cv=3).fit(drafts)


def test_a_draft_always_gets_a_ranked_list(real_model: TagSuggester) -> None:
    tags = real_model.suggest(*TCHAP, k=20)
    assert len(tags) == 20
    assert [t.score for t in tags] == sorted((t.score for t in tags), reverse=True)
    assert len(real_model.suggest(*TCHAP, k=3)) == 3
    assert "cloud" in [t.key for t in tags[:5]]


def test_tags_named_in_the_draft_are_suggested(real_model: TagSuggester) -> None:
    keys = [t.key for t in real_model.suggest(*OPEN_DATA, k=5)]
    assert {"etalab", "open data", "transparence"} <= set(keys), keys
    first = real_model.suggest(*FRANCECONNECT, k=3)[0]
    assert first.key == "franceconnect" and first.confident


def test_trigger_words_are_the_drafts_own(real_model: TagSuggester) -> None:
    for title, text in (TCHAP, OPEN_DATA, FRANCECONNECT):
        for t in real_model.suggest(title, text, k=8):
            for r in t.explanations:
                assert r.signal in ("label", "linear", "neighbour")
                if r.signal == "neighbour":
                    assert r.doc_id and r.span is None
                    assert r.to_dict()["text"].startswith("comme le document")
                    assert r.to_dict()["url"] == f"/documents/{r.doc_id}"
                else:
                    source = title if r.span.field == "title" else text[:20_000]
                    assert source[r.span.start:r.span.end] == r.text
            assert set(t.reasons) <= {r.text for r in t.explanations}


def test_a_tag_nobody_uses_only_when_named(real_model: TagSuggester) -> None:
    vocab = real_model.vocabulary_
    unused = [k for k, d in zip(real_model.candidates_, real_model.declared_, strict=True)
              if d and vocab.count(k) == 0]
    assert "cybersecurite" in unused
    for title, text in (TCHAP, OPEN_DATA, FRANCECONNECT):
        assert not set(unused) & {t.key for t in real_model.suggest(title, text, k=20)}
    named = real_model.suggest("Cybersécurité : un nouveau parcours pour les collectivités",
                               "Un parcours de cybersécurité est proposé.", k=5)
    assert "cybersecurite" in [t.key for t in named]


def test_drafts_are_not_named_to_anonymous_callers(real_model: TagSuggester,
                                                   tmp_path: Path) -> None:
    draft_reason = Reason("neighbour", "Projet", doc_id="projet", published=False)
    assert not draft_reason.visible(False) and draft_reason.visible(True)
    assert Reason("label", "Etalab").visible(False)
    hidden = set(real_model.base_.doc_ids[i] for i, p in
                 enumerate(real_model.base_.doc_published) if not p)
    assert hidden  # the real corpus has drafts
    seen_public: set[str] = set()
    for d in load_drafts([require_shared()])[0][:40]:
        for s in real_model.suggest(d.title, d.text, k=5):
            for e in s.to_dict(drafts=False)["explanations"]:
                if e["signal"] == "neighbour":
                    seen_public.add(e["doc_id"])
    assert seen_public and not seen_public & hidden
