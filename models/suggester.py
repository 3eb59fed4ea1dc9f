"""Tag suggestion for a draft communiqué: which of the site's tags fit this text, and why.

The site has a few hundred documents and most tags are used a handful of times, so no single
learner is good enough. Signals that each work with few examples (:mod:`models.signals`: a linear
model per tag, the tags of the nearest documents, the tag's name found in the text by
:mod:`models.labels`, co-occurring tags) are combined by a small logistic *stacker*, shared by
every tag, into one calibrated score in [0, 1]. It is trained on out-of-fold signals (inner
cross-validation over the training documents) so it learns how much to trust each signal on
documents the base models have not seen — including tags that are rare or absent in the training
part, which is the usual case here. Per-tag thresholds are tuned on the same out-of-fold scores
and shrunk toward a global one, because a tag seen three times cannot support a threshold of its
own; a second, relative threshold (a share of the draft's best score, tuned on the same scores)
keeps a weak runner-up from being pre-selected beside a strong first tag: a suggestion above both
is ``confident``.

A suggestion is always a ranked list of the ``k`` best tags (an editor reading "autres
possibilités" loses less than one given nothing). A tag no training document uses is only ranked
when its name is in the draft, and only if the alias file declares it (a curated tag). The
module layout: :mod:`models.draft` (features), :mod:`models.labels` (label matching),
:mod:`models.signals` (base signals), this module (the estimator), :mod:`models.explain`
(reasons).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

from models.draft import (  # noqa: F401 - re-exported: the names callers and old files use
    ANALYSES,
    MAX_DRAFT_CHARS,
    TRAINED_ON,
    AnalysedDraft,
    Draft,
    _identity,
    analyse,
    draft_hash,
    draft_terms,
    learn_lemmas,
)
from models.explain import Reason, _TermLocator, explain, linear_terms, reason_words
from models.labels import LabelMatcher, Span  # noqa: F401
from models.signals import SIGNALS, Signals, _BaseSignals  # noqa: F401
from models.vocabulary import Vocabulary, load_aliases

# --- the estimator -----------------------------------------------------------------------------

RELATIVE_GRID = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
"""Relative thresholds tried: a confident tag scores at least this share of the draft's best."""


@dataclass
class Suggestion:
    """One suggested tag: canonical key, display label, calibrated score, and why."""

    key: str
    tag: str
    score: float
    reasons: list[str] = field(default_factory=list)
    """The draft's words behind the tag (label found, linear model's weights)."""
    explanations: list[Reason] = field(default_factory=list)
    """Every reason with the signal it came from, similar documents included."""
    signals: dict[str, float] = field(default_factory=dict)
    confident: bool = True
    """The score passed the tag's threshold (the set :meth:`TagSuggester.predict` returns)."""
    count: int = 0
    """Training documents carrying the tag."""

    @property
    def spans(self) -> list[Span]:
        """Where the draft's words behind the tag are (field, offsets)."""
        return [r.span for r in self.explanations if r.span is not None]

    def to_dict(self, drafts: bool = True) -> dict[str, Any]:
        """JSON form; ``drafts=False`` leaves out similar documents that are drafts."""
        return {"tag": self.tag, "key": self.key, "score": round(self.score, 4),
                "confident": self.confident, "count": self.count,
                "reasons": list(self.reasons),
                "explanations": [r.to_dict() for r in self.explanations if r.visible(drafts)]}


class TagSuggester(BaseEstimator):
    """Suggests canonical tags for a draft; scikit-learn estimator conventions.

    Parameters are only stored by ``__init__`` (so ``clone``/``get_params`` work); everything
    learned ends with ``_``. ``fit`` takes drafts (:class:`Draft`, :class:`AnalysedDraft`, parsed
    documents or index records) and optionally their raw tags.

    Only tags used at least ``min_count`` times, declared in the alias file, or accepted by an
    editor (``forced`` in :meth:`fit`) are ever suggested; a declared tag no document uses only
    when its name is in the draft.

    ``analysis`` (one of :data:`~models.draft.ANALYSES`) is how drafts are read at suggestion
    time; by default ``table``: no spaCy, each regex word given the lemma its form took in the
    training documents (:attr:`lemmas_`), so a draft's terms are those the model was trained on.
    """

    def __init__(
        self,
        aliases: dict[str, list[str]] | None = None,
        min_count: int = 1,
        title_weight: int = 2,
        bigrams: bool = True,
        min_df: int = 1,
        C: float = 10.0,  # noqa: N803 - scikit-learn's name
        n_neighbors: int = 7,
        match_smoothing: float = 2.0,
        inner_cv: int = 5,
        stacker_C: float = 1.0,  # noqa: N803
        stacker: str = "logistic",
        threshold_shrinkage: float = 5.0,
        max_reasons: int = 4,
        max_chars: int = MAX_DRAFT_CHARS,
        analysis: str = "table",
        random_state: int = 0,
    ) -> None:
        self.aliases = aliases
        self.min_count = min_count
        self.title_weight = title_weight
        self.bigrams = bigrams
        self.min_df = min_df
        self.C = C
        self.n_neighbors = n_neighbors
        self.match_smoothing = match_smoothing
        self.inner_cv = inner_cv
        self.stacker_C = stacker_C
        self.stacker = stacker
        self.threshold_shrinkage = threshold_shrinkage
        self.max_reasons = max_reasons
        self.max_chars = max_chars
        self.analysis = analysis
        self.random_state = random_state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Files pickled before a hyper-parameter existed get its default (same format); a
        file from before ``analysis`` (and its lemma table) reads drafts the full way."""
        state.setdefault("analysis", "full")
        super().__setstate__(state)

    # --- training ------------------------------------------------------------------------------

    def _analysed(self, X: Sequence[Any], analysis: str | None = None,
                  lemmas: dict[str, str] | None = None) -> list[AnalysedDraft]:
        """Analyse what is not analysed yet (or was analysed another way), in one batch:
        ``analysis`` (default: how this model reads drafts) with ``lemmas`` (default: the
        model's table) for the ``table`` analysis."""
        analysis = analysis or self.analysis
        if analysis == "table" and lemmas is None:
            lemmas = getattr(self, "lemmas_", None)
        drafts = [x if isinstance(x, (Draft, AnalysedDraft)) else Draft.from_document(x)
                  for x in X]
        drafts = [d.draft if isinstance(d, AnalysedDraft) and d.analysis != analysis else d
                  for d in drafts]
        todo = [d for d in drafts if isinstance(d, Draft)]
        done = (iter(analyse(todo, self.max_chars, analysis=analysis, lemmas=lemmas)) if todo
                else iter(()))
        return [d if isinstance(d, AnalysedDraft) else next(done) for d in drafts]

    def _trained_on(self) -> str:
        """The analysis of the training documents: ``full``, or ``light`` for that analysis."""
        if self.analysis not in ANALYSES:
            raise ValueError(f"analysis must be one of {', '.join(ANALYSES)}, "
                             f"not {self.analysis!r}")
        return TRAINED_ON[self.analysis]

    def fit(self, X: Sequence[Any], y: Sequence[Iterable[str]] | None = None,  # noqa: N803
            forced: Iterable[str] = ()) -> TagSuggester:
        """Learn from drafts and their raw tags (``y``; default: each draft's own ``tags``).

        ``forced`` raw tags are suggestable whatever their count (editors accepted them).
        Drafts without any tag are ignored: an untagged document says nothing about tags.

        Training documents get the full analysis whatever ``analysis`` says (``light``
        excepted): ``analysis`` is how drafts are read at suggestion time. The form → lemma
        table of the ``table`` analysis (:attr:`lemmas_`) is learnt from every draft given
        here; inside training, the out-of-fold documents the stacker and thresholds learn from
        are read the suggestion-time way, with a table learnt from their inner training part
        only.
        """
        docs = self._analysed(X, self._trained_on())
        self.lemmas_ = learn_lemmas(docs) if self._trained_on() == "full" else {}
        raw_labels = ([[t] if isinstance(t, str) else list(t) for t in y] if y is not None
                      else [d.draft.tags for d in docs])
        if len(raw_labels) != len(docs):
            raise ValueError(f"{len(docs)} drafts but {len(raw_labels)} label lists")
        aliases = self.aliases if self.aliases is not None else load_aliases()
        vocab = Vocabulary(aliases)
        pairs = [(d, r) for d, r in zip(docs, raw_labels, strict=True) if vocab.keys(r)]
        if len(pairs) < 2:
            raise ValueError("need at least 2 tagged documents to learn tags")
        docs = [d for d, _ in pairs]
        for _, r in pairs:
            vocab.add(r)
        labels = [set(vocab.keys(r)) for _, r in pairs]
        forced_keys = set(vocab.keys(forced))
        declared = {vocab.key(lbl) for lbl in aliases}
        counts = Counter(k for ls in labels for k in ls)
        candidates = sorted(
            k for k in set(counts) | declared | forced_keys
            if counts[k] >= self.min_count or k in declared or k in forced_keys
        )
        phrases = self._phrases(vocab, aliases, candidates)
        params = self._base_params()
        self.vocabulary_ = vocab
        self.candidates_ = candidates
        self.labels_ = sorted(counts)
        self.declared_ = np.array([k in declared for k in candidates], dtype=np.float32)
        self.forced_ = sorted(forced_keys)
        self.n_documents_ = len(docs)
        self.corpus_hash_ = _corpus_hash(docs, [sorted(ls) for ls in labels])

        # Out-of-fold signals: what the base models say about documents they did not see.
        matcher = LabelMatcher(phrases)
        n_splits = max(2, min(self.inner_cv, len(docs)))
        folds = KFold(n_splits=n_splits, shuffle=True, random_state=self.random_state)
        feats = np.zeros((len(docs), len(candidates), len(SIGNALS)), dtype=np.float32)
        for train_idx, test_idx in folds.split(docs):
            inner_phrases = self._phrases(_sub_vocabulary(aliases, [pairs[i][1] for i in train_idx]),
                                          aliases, candidates)
            inner = [docs[i] for i in train_idx]
            base = _BaseSignals(params).fit(inner, [labels[i] for i in train_idx], candidates,
                                            inner_phrases)
            held_out = [docs[i] for i in test_idx]
            if self.analysis == "table":  # as a draft is read: with the table of `inner` only
                held_out = self._analysed(held_out, "table", learn_lemmas(inner))
            feats[test_idx] = base.signals(held_out, self.declared_).values
        target = np.array([[k in ls for k in candidates] for ls in labels], dtype=np.int8)
        rows = feats.reshape(-1, len(SIGNALS))
        flat_target = target.reshape(-1)
        self.stacker_ = self._fit_stacker(rows, flat_target)

        # Thresholds on out-of-fold stacked scores (the stacker has a dozen weights: its own
        # in-sample optimism is negligible next to the base models').
        oof = self._masked(feats, self._stack(rows).reshape(len(docs), len(candidates)))
        self.threshold_, self.thresholds_, self.ratio_ = self._tune_thresholds(oof, target)
        self.base_ = _BaseSignals(params).fit(docs, labels, candidates, phrases, matcher)
        return self

    def _base_params(self) -> dict[str, Any]:
        return {"title_weight": self.title_weight, "bigrams": self.bigrams, "min_df": self.min_df,
                "C": self.C, "n_neighbors": self.n_neighbors,
                "match_smoothing": self.match_smoothing}

    @staticmethod
    def _phrases(vocab: Vocabulary, aliases: dict[str, list[str]],
                 candidates: Sequence[str]) -> dict[str, list[str]]:
        """Words that name each candidate: its label, the variants editors used, its aliases."""
        phrases: dict[str, list[str]] = {k: [vocab.label(k), k] for k in candidates}
        for key, variants in vocab.variants.items():
            if key in phrases:
                phrases[key].extend(variants)
        for label, alias_list in aliases.items():
            key = vocab.key(label)
            if key in phrases:
                phrases[key].extend([label, *alias_list])
        return phrases

    def _fit_stacker(self, rows: np.ndarray, target: np.ndarray) -> LogisticRegression | None:
        if target.min() == target.max():
            return None
        if self.stacker == "boosting":
            from sklearn.ensemble import HistGradientBoostingClassifier

            clf = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05,
                                                 max_leaf_nodes=15, min_samples_leaf=20,
                                                 l2_regularization=1.0,
                                                 random_state=self.random_state)
        else:
            clf = LogisticRegression(C=self.stacker_C, max_iter=1000)
        clf.fit(rows, target)
        return clf

    def _stack(self, rows: np.ndarray) -> np.ndarray:
        if self.stacker_ is None:
            # Degenerate training set (no positive or no negative pair): average the signals.
            return np.clip((rows[:, 0] + rows[:, 2] + rows[:, 6]) / 3.0, 0.0, 1.0)
        # A model file trained before a signal was added ignores it (its stacker has fewer inputs).
        rows = rows[:, : getattr(self.stacker_, "n_features_in_", rows.shape[1])]
        if not isinstance(self.stacker_, LogisticRegression):
            return self.stacker_.predict_proba(rows)[:, 1]
        z = rows @ self.stacker_.coef_[0] + self.stacker_.intercept_[0]
        return 1.0 / (1.0 + np.exp(-z))

    def _tune_thresholds(self, scores: np.ndarray, target: np.ndarray,
                         ) -> tuple[float, np.ndarray, float]:
        """Global threshold and relative threshold (share of the draft's best score) maximising
        the documents' mean F1 of the confident top 3; per tag, the F1-best threshold shrunk
        toward the global one in proportion to how many examples the tag has."""
        grid = np.linspace(0.05, 0.9, 35)
        best_g, best_f = 0.5, -1.0
        # Only the top 3 of a draft are shown as confident: tune for that.
        top = np.zeros_like(scores, dtype=bool)
        if scores.shape[1]:
            idx = np.argsort(-scores, axis=1, kind="stable")[:, :3]
            np.put_along_axis(top, idx, True, axis=1)
        top &= scores > 0
        peak = scores.max(axis=1, keepdims=True) if scores.shape[1] else scores
        best_r = 0.0
        for r in RELATIVE_GRID:
            for t in grid:
                pred = (scores >= t) & top & (scores >= r * peak)
                tp = (pred & (target == 1)).sum(axis=1)
                denom = pred.sum(axis=1) + target.sum(axis=1)
                f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0).mean()
                if f1 > best_f + 1e-9:
                    best_g, best_f, best_r = float(t), f1, float(r)
        top &= scores >= best_r * peak  # per-tag thresholds are tuned under the relative one
        per_tag = np.full(scores.shape[1], best_g, dtype=np.float32)
        m = self.threshold_shrinkage
        for j in range(scores.shape[1]):
            n_pos = int(target[:, j].sum())
            if n_pos < 2:
                continue
            col, tcol = scores[:, j], target[:, j] == 1
            best_t, best_fj = best_g, -1.0
            for t in grid:
                pred = (col >= t) & top[:, j]
                tp = (pred & tcol).sum()
                fj = 2 * tp / max(pred.sum() + tcol.sum(), 1)
                if fj > best_fj + 1e-9:
                    best_t, best_fj = float(t), fj
            per_tag[j] = (n_pos * best_t + m * best_g) / (n_pos + m)
        return best_g, per_tag, best_r

    def _confident(self, scores: np.ndarray) -> np.ndarray:
        """Which scores pass both their tag's threshold and the draft's relative one."""
        peak = scores.max(axis=1, keepdims=True) if scores.size else scores
        return (scores >= self.thresholds_) & (scores >= getattr(self, "ratio_", 0.0) * peak)

    # --- suggesting ----------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "base_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("TagSuggester is not fitted: call fit() or load a model file")

    @staticmethod
    def _masked(feats: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Scores with the tags that may not be suggested set to 0: a tag no training document
        uses is only a candidate when its name is in the draft."""
        eligible = (feats[:, :, SIGNALS.index("log_count")] > 0) | (
            feats[:, :, SIGNALS.index("matched")] > 0)
        return np.where(eligible, scores, 0.0)

    def _scored(self, drafts: Sequence[AnalysedDraft]) -> tuple[Signals, np.ndarray]:
        sig = self.base_.signals(drafts, self.declared_)
        n, m, s = sig.values.shape
        return sig, self._masked(sig.values, self._stack(sig.values.reshape(-1, s)).reshape(n, m))

    def scores(self, drafts: Sequence[Any]) -> np.ndarray:
        """Calibrated scores ``(n_drafts, n_candidates)``, columns in :attr:`candidates_` order
        (0 for a tag that may not be suggested for that draft)."""
        self._check_fitted()
        return self._scored(self._analysed(drafts))[1]

    def rank(self, drafts: Sequence[Any]) -> list[list[tuple[str, float]]]:
        """The suggestable tags with their scores, best first, for each draft (no threshold):
        what ranking metrics are computed on."""
        scores = self.scores(drafts)
        out = []
        for row in scores:
            order = [j for j in np.argsort(-row, kind="stable") if row[j] > 0]
            out.append([(self.candidates_[j], float(row[j])) for j in order])
        return out

    def suggest(self, title: str, text: str, k: int = 5,
                min_score: float | None = None) -> list[Suggestion]:
        """The ``k`` best tags for one draft, ranked, each marked ``confident`` when its score
        reaches the tag's threshold, each with its reasons. ``min_score`` drops tags below it."""
        self._check_fitted()  # before the analysis: the table analysis reads the model's table
        (ad,) = self._analysed([Draft(title or "", text or "")])
        return self.suggest_analysed([ad], k, min_score)[0]

    def suggest_many(self, drafts: Sequence[Any], k: int = 5,
                     min_score: float | None = None) -> list[list[Suggestion]]:
        """:meth:`suggest` for many drafts with one batched analysis."""
        self._check_fitted()
        return self.suggest_analysed(self._analysed(drafts), k, min_score)

    def suggest_analysed(self, drafts: Sequence[AnalysedDraft], k: int = 5,
                         min_score: float | None = None) -> list[list[Suggestion]]:
        """:meth:`suggest` for drafts already analysed (the batched path)."""
        if k < 1:
            raise ValueError("k must be at least 1")
        self._check_fitted()
        if not drafts:
            return []
        if any(d.analysis != self.analysis for d in drafts):
            drafts = self._analysed(drafts)
        sig, scores = self._scored(drafts)
        sure = self._confident(scores)
        floor = 0.0 if min_score is None else min_score
        results = []
        for i, ad in enumerate(drafts):
            row = scores[i]
            if not (ad.title_words or ad.text_words):
                results.append([])  # nothing to base a suggestion on
                continue
            order = [j for j in np.argsort(-row, kind="stable")[: k + 8]
                     if row[j] > 0 and row[j] >= floor][:k]
            wanted = {t for j in order for t, _ in linear_terms(self.base_, sig, i, j)}
            locator = _TermLocator(ad, self.bigrams, wanted) if order else None
            out = []
            for j in order:
                key = self.candidates_[j]
                reasons = explain(self.base_, ad, sig, i, j, locator, self.max_reasons)
                out.append(Suggestion(
                    key=key, tag=self.vocabulary_.label(key), score=float(row[j]),
                    reasons=reason_words(reasons), explanations=reasons,
                    signals={name: round(float(v), 4)
                             for name, v in zip(SIGNALS, sig.values[i, j], strict=True)},
                    confident=bool(sure[i, j]),
                    count=int(self.base_.counts[j]),
                ))
            results.append(out)
        return results

    def predict(self, X: Sequence[Any]) -> list[list[str]]:  # noqa: N803
        """The confident tag keys (tag and relative thresholds passed), for each draft."""
        scores = self.scores(X)
        sure = self._confident(scores)
        return [[self.candidates_[j] for j in np.argsort(-row, kind="stable")
                 if row[j] > 0 and ok[j]] for row, ok in zip(scores, sure, strict=True)]

    def score(self, X: Sequence[Any], y: Sequence[Iterable[str]] | None = None,  # noqa: N803
              k: int = 3) -> float:
        """Mean F1@k of the ranking against raw tags (scikit-learn's ``score`` hook)."""
        analysed = self._analysed(X)
        raw = [list(t) for t in y] if y is not None else [d.draft.tags for d in analysed]
        ranks = self.rank(analysed)
        f1s = []
        for ranked, tags in zip(ranks, raw, strict=True):
            gold = set(self.vocabulary_.keys(tags))
            if not gold:
                continue
            hits = sum(1 for key, _ in ranked[:k] if key in gold)
            f1s.append(2 * hits / (k + len(gold)))
        return float(np.mean(f1s)) if f1s else 0.0

# --- helpers -----------------------------------------------------------------------------------


def _sub_vocabulary(aliases: dict[str, list[str]], raw_labels: Iterable[list[str]]) -> Vocabulary:
    vocab = Vocabulary(aliases)
    for r in raw_labels:
        vocab.add(r)
    return vocab


def _corpus_hash(docs: Sequence[AnalysedDraft], labels: Sequence[list[str]]) -> str:
    """sha256 over the training drafts and their keys, in a stable order."""
    h = hashlib.sha256()
    items = sorted((d.draft.id, d.draft.title, d.draft.text, "\x1f".join(ls))
                   for d, ls in zip(docs, labels, strict=True))
    for item in items:
        h.update("\x1e".join(item).encode())
        h.update(b"\x1d")
    return h.hexdigest()
