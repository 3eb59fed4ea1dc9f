"""The base signals of the tag suggester, fitted on a set of training drafts.

* **linear** — one logistic regression per tag over TF-IDF of the draft's terms;
* **neighbours** — tags voted by the most similar training documents (cosine over the same TF-IDF);
* **label match** — the tag's label, variants and aliases found in the draft (in the title, in the
  text, in the text's opening words), with how often such a match meant the tag in the training
  documents.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from indexer.analysis import Word
from models.draft import AnalysedDraft, _identity, _word_keys, draft_terms
from models.labels import LabelMatcher

SIGNALS = (
    "linear", "has_linear", "knn_vote", "knn_max", "match_title", "match_text",
    "match_precision", "prior", "declared", "log_count", "matched", "cooc", "linear_rank",
    "match_lead", "name_words_text", "name_words_title", "title_precision",
)
"""The stacker's inputs for one (draft, tag) pair, in column order. ``log_count`` and
``matched`` let the stacker trust a name found in the text more for a rare tag (whose linear
model has one or two examples) than for a frequent one; ``cooc`` is the pull of the tags whose
name the draft contains (editors give ``Etalab`` with ``Open data``); ``linear_rank`` is
1 / rank of the tag among the linear scores (the scores of rare tags are not comparable);
``match_lead`` is 1 when the name is in the text's first :data:`LEAD_WORDS` words (the chapeau
announces what the communiqué is about; a name met further down is often a side mention);
``name_words_text`` and ``name_words_title`` are the share of the words of a tag's name of two
words or more found anywhere in the text and in the title, not necessarily side by side (*un
environnement numérique pour le travail des agents* is evidence for ``Environnement de travail
numérique`` although the name is not in it); ``title_precision`` is, for a name found in the title, how often such a
title meant the tag in the training documents (a general name such as ``Numérique`` is in many
titles and means the tag in few; a name found in the title is otherwise the strongest sign)."""

LEAD_WORDS = 60
"""How many words of the text count as its opening (about the chapeau's first two sentences)."""


class _BaseSignals:
    """The three signals, fitted on one set of training drafts, for a fixed list of candidates.

    Fitted many times during training (once per inner fold, once on everything), so it must be
    cheap: a TF-IDF, one small liblinear fit per tag, and the label matcher.
    """

    def __init__(self, params: dict[str, Any]) -> None:
        self.p = params

    def fit(self, drafts: Sequence[AnalysedDraft], labels: Sequence[set[str]],
            candidates: Sequence[str], phrases: dict[str, list[str]],
            matcher: LabelMatcher | None = None) -> _BaseSignals:
        p = self.p
        self.candidates = list(candidates)
        self.col = {k: i for i, k in enumerate(self.candidates)}
        n_docs = len(drafts)
        self.vectorizer = TfidfVectorizer(
            analyzer=_identity, sublinear_tf=True, min_df=p["min_df"], norm="l2"
        )
        X = self.vectorizer.fit_transform(
            [draft_terms(d, p["title_weight"], p["bigrams"]) for d in drafts]
        ).tocsr()
        self.X = X
        Y = np.zeros((n_docs, len(self.candidates)), dtype=np.float32)
        for i, ls in enumerate(labels):
            for k in ls:
                if k in self.col:
                    Y[i, self.col[k]] = 1.0
        self.Y = Y
        counts = Y.sum(axis=0)
        self.counts = counts
        self.log_count = np.log1p(counts).astype(np.float32)
        # P(tag | other tag) from the training documents, for the co-occurrence signal.
        together = Y.T @ Y
        np.fill_diagonal(together, 0.0)
        self.cooc = (together / np.maximum(counts, 1.0)[:, None]).astype(np.float32)
        self.doc_ids = [d.draft.id for d in drafts]
        self.doc_titles = [d.draft.title for d in drafts]
        self.doc_published = np.array([d.draft.published for d in drafts], dtype=bool)
        self.prior = np.log((counts + 0.5) / (n_docs + 1.0)).astype(np.float32)

        # Linear: one balanced logistic regression per tag with a positive and a negative.
        n_feat = X.shape[1]
        self.W = np.zeros((len(self.candidates), n_feat), dtype=np.float32)
        self.b = np.zeros(len(self.candidates), dtype=np.float32)
        self.has_linear = np.zeros(len(self.candidates), dtype=bool)
        for j in range(len(self.candidates)):
            pos = int(counts[j])
            if pos == 0 or pos == n_docs:
                continue
            clf = LogisticRegression(C=p["C"], class_weight="balanced", solver="liblinear", dual=True,
                                     max_iter=200, random_state=0)
            clf.fit(X, Y[:, j])
            self.W[j] = clf.coef_[0]
            self.b[j] = clf.intercept_[0]
            self.has_linear[j] = True
        self.Wt = sparse.csr_matrix(self.W.T)

        # Label match: phrases of every candidate, and how often a match meant the tag.
        self.matcher = matcher if matcher is not None else LabelMatcher(phrases)
        matched = np.zeros(len(self.candidates))
        hits = np.zeros(len(self.candidates))
        title_matched = np.zeros(len(self.candidates))
        title_hits = np.zeros(len(self.candidates))
        for i, d in enumerate(drafts):
            in_title = set(self.matcher.find(d.title_words, d.draft.title))
            for k in in_title | set(self.matcher.find(d.text_words, d.text)):
                j = self.col.get(k)
                if j is not None:
                    matched[j] += 1
                    hits[j] += Y[i, j]
                    if k in in_title:
                        title_matched[j] += 1
                        title_hits[j] += Y[i, j]
        a = p["match_smoothing"]
        self.match_precision = _smoothed(hits, matched, a)
        self.title_precision = _smoothed(title_hits, title_matched, a)
        # Names of two words or more, for the share of their words found apart.
        self.long_names = [(self.col[key], seq) for key, seqs in self.matcher.phrases.items()
                           if key in self.col for seq in seqs if len(seq) > 1]
        return self

    def transform(self, drafts: Sequence[AnalysedDraft]) -> sparse.csr_matrix:
        p = self.p
        return self.vectorizer.transform(
            [draft_terms(d, p["title_weight"], p["bigrams"]) for d in drafts]
        ).tocsr()

    def feature_names(self) -> np.ndarray:
        """Term of each TF-IDF column (built on first use: the reasons need it, training not)."""
        names = getattr(self, "_names", None)
        if names is None:
            names = self._names = self.vectorizer.get_feature_names_out()
        return names

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_names", None)
        return state

    def signals(self, drafts: Sequence[AnalysedDraft], declared: np.ndarray,
                X: sparse.csr_matrix | None = None) -> Signals:
        """Signals ``(n_drafts, n_candidates, len(SIGNALS))`` with what produced them."""
        X = self.transform(drafts) if X is None else X
        n, m = len(drafts), len(self.candidates)
        out = np.zeros((n, m, len(SIGNALS)), dtype=np.float32)
        linear = (X @ self.Wt).toarray() + self.b
        out[:, :, 0] = np.where(self.has_linear, 1.0 / (1.0 + np.exp(-linear)), 0.0)
        out[:, :, 1] = self.has_linear
        sims = (X @ self.X.T).toarray()
        k = min(self.p["n_neighbors"], self.X.shape[0])
        result = Signals(out, X)
        title_precision = getattr(self, "title_precision", None)  # None: an older model file
        for i in range(n):
            row = sims[i]
            top = np.argpartition(-row, k - 1)[:k] if k < row.size else np.arange(row.size)
            w = np.clip(row[top], 0.0, None)
            Yn = self.Y[top]
            out[i, :, 2] = (w @ Yn) / (w.sum() + 1e-6)
            out[i, :, 3] = (w[:, None] * Yn).max(axis=0) if top.size else 0.0
            result.neighbour_rows.append((top, w))
            tm = self.matcher.find(drafts[i].title_words, drafts[i].draft.title)
            xm = self.matcher.find(drafts[i].text_words, drafts[i].text)
            result.title_matches.append(tm)
            result.text_matches.append(xm)
            for key in set(tm) | set(xm):
                j = self.col.get(key)
                if j is None:
                    continue
                out[i, j, 4] = min(len(tm.get(key, ())), 2)
                out[i, j, 5] = math.log1p(len(xm.get(key, ())))
                out[i, j, 6] = self.match_precision[j]
                out[i, j, 10] = 1.0
                out[i, j, 13] = float(any(a < LEAD_WORDS for a, _ in xm.get(key, ())))
                if key in tm and title_precision is not None:
                    out[i, j, 16] = title_precision[j]
            self._name_words(drafts[i], out[i])
        out[:, :, 7] = self.prior
        out[:, :, 8] = declared
        out[:, :, 9] = self.log_count
        # Co-occurrence: tags named in the draft pull the tags editors give with them.
        strength = out[:, :, 10] * out[:, :, 6]
        out[:, :, 11] = np.clip(strength @ self.cooc, 0.0, 1.0)
        ranks = np.argsort(np.argsort(-np.where(self.has_linear, linear, -np.inf), axis=1), axis=1)
        out[:, :, 12] = np.where(self.has_linear, 1.0 / (1.0 + ranks), 0.0)
        return result

    def _name_words(self, d: AnalysedDraft, row: np.ndarray) -> None:
        """Fill ``name_words_text`` and ``name_words_title`` of one draft's ``row``: for each
        tag, the best share of the words of one of its long names found in the text, the title."""
        found = (_keys_of(d.text_words), _keys_of(d.title_words))
        # A model file pickled before these signals has no long names: the columns stay 0.
        for j, seq in getattr(self, "long_names", ()):
            for col, keys in zip((14, 15), found, strict=True):
                share = sum(1 for ws in seq if not ws.isdisjoint(keys)) / len(seq)
                if share > row[j, col]:
                    row[j, col] = share


def _keys_of(words: Sequence[Word]) -> set[str]:
    """Every key (folded form, stem) the words can be matched on."""
    keys: set[str] = set()
    for w in words:
        keys.update(_word_keys(w))
    return keys


def _smoothed(hits: np.ndarray, matched: np.ndarray, a: float) -> np.ndarray:
    """Per-tag precision of a kind of match, shrunk toward the pooled one by ``a`` examples
    (a tag matched twice says little on its own)."""
    pooled = (hits.sum() + 1.0) / (matched.sum() + 2.0)
    return ((hits + a * pooled) / (matched + a)).astype(np.float32)


@dataclass
class Signals:
    """What :meth:`_BaseSignals.signals` computed for a batch of drafts, kept for the reasons."""

    values: np.ndarray
    X: sparse.csr_matrix
    title_matches: list[dict[str, list[tuple[int, int]]]] = field(default_factory=list)
    text_matches: list[dict[str, list[tuple[int, int]]]] = field(default_factory=list)
    neighbour_rows: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    """Per draft: the training rows of its nearest documents and their similarities."""
