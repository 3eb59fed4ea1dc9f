"""Tag suggestion for a draft communiqué: which of the site's tags fit this text, and why.

The site has a few hundred documents and most tags are used a handful of times, so no single
learner is good enough. Three signals that each work with few examples are combined:

* **linear** — one logistic regression per tag over TF-IDF of the shared French analysis' terms
  (folded surface forms, lemmas, stems) plus stem bigrams; the title counts twice;
* **neighbours** — tags voted by the most similar training documents (cosine over the same TF-IDF);
* **label match** — the tag's label, its editors' variants and its aliases found in the draft,
  compared word by word on folded forms and stems (``Données ouvertes`` meets ``donnée ouverte``);
  how often a match really meant the tag is measured on the training documents.

A small logistic *stacker*, shared by every tag, turns those signals into one calibrated score in
[0, 1]. It is trained on out-of-fold signals (inner cross-validation over the training documents)
so it learns how much to trust each signal on documents the base models have not seen — including
tags that are rare or absent in the training part, which is the usual case here. Per-tag thresholds
are tuned on the same out-of-fold scores and shrunk toward a global one, because a tag seen three
times cannot support a threshold of its own.

Every feature comes from :mod:`indexer.analysis` (the index's analysis), so a tag suggested for a
word means the same as a search for that word.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

from indexer.analysis import Word, analyze_many, light_words
from models.vocabulary import Vocabulary, load_aliases

MAX_DRAFT_CHARS = 20_000
"""Only this much of a draft's text is analysed: real communiqués are 1–4 kB, the tags are decided
in the first paragraphs, and it bounds the time a huge paste can take."""

BIGRAM_MARK = " "
"""Bigram terms are two stems joined by a space: never a term of a single word."""

MIN_REASON_SHARE = 0.3
"""A word is shown as a reason when its evidence is at least this share of the best word's:
evidence is spread over hundreds of terms, so only the words standing out are worth showing."""

SIGNALS = (
    "linear", "has_linear", "knn_vote", "knn_max", "match_title", "match_text",
    "match_precision", "prior", "declared",
)
"""The stacker's inputs for one (draft, tag) pair, in column order."""


# --- drafts and their analysis -----------------------------------------------------------------


@dataclass
class Draft:
    """What the suggester reads: a title, a text (chapeau and body) and, for training, raw tags."""

    title: str
    text: str
    tags: list[str] = field(default_factory=list)
    id: str = ""

    @classmethod
    def from_document(cls, doc: Any) -> Draft:  # noqa: ANN401 - Document or index record
        """A parsed :class:`~indexer.document.Document` or an index record (dict)."""
        get = doc.get if isinstance(doc, dict) else lambda k, d="": getattr(doc, k, d)
        text = "\n\n".join(x for x in (get("chapeau", ""), get("body", "")) if x)
        return cls(title=get("title", "") or "", text=text, tags=list(get("tags", []) or []),
                   id=get("id", "") or "")

    def fingerprint(self) -> str:
        """Stable hash of the content (feedback on a draft without id refers to it)."""
        return draft_hash(self.title, self.text)


def draft_hash(title: str, text: str) -> str:
    """sha256 of title and text: identifies an unsaved draft in the feedback log."""
    return hashlib.sha256(f"{title.strip()}\n\n{text.strip()}".encode()).hexdigest()


@dataclass
class AnalysedDraft:
    """A draft with the shared analysis of its title and (truncated) text, computed once.

    Cross-validation analyses the corpus once and refits models many times on these.
    """

    draft: Draft
    title_words: list[Word]
    text_words: list[Word]
    text: str
    """The analysed part of the text (the offsets of ``text_words`` point into it)."""
    analysis: str = "full"
    """Which of :data:`ANALYSES` produced the words."""


ANALYSES = ("full", "light")
"""``full``: the shared spaCy analysis (lemmas, surface forms, stems) — what the index uses.
``light``: the same module's regex path (:func:`indexer.analysis.light_words`: the same folded
surface forms and stems, no lemmas, no spaCy). About 20 times faster per draft and nearly as
accurate for tags (stems already merge inflections), for deployments where the latency of a
first-seen draft matters more than the last point of F1."""


def analyse(drafts: Sequence[Draft], max_chars: int = MAX_DRAFT_CHARS,
            batch_size: int = 32, analysis: str = "full") -> list[AnalysedDraft]:
    """Run the shared French analysis over titles and texts (one batched spaCy pass)."""
    if analysis not in ANALYSES:
        raise ValueError(f"analysis must be one of {', '.join(ANALYSES)}, not {analysis!r}")
    texts: list[str] = []
    for d in drafts:
        texts.extend((d.title or "", (d.text or "")[:max_chars]))
    if analysis == "light":
        words = [list(light_words(t)) for t in texts]
    else:
        words = list(analyze_many(texts, batch_size=batch_size)) if texts else []
    return [
        AnalysedDraft(d, words[2 * i], words[2 * i + 1], texts[2 * i + 1], analysis)
        for i, d in enumerate(drafts)
    ]


def _identity(tokens: list[str]) -> list[str]:
    """TF-IDF analyzer for pre-computed terms (module level so the model pickles)."""
    return tokens


def _word_keys(w: Word) -> frozenset[str]:
    """What a word is compared on for label matching: folded surface and stem, not compound
    parts (``beta.gouv.fr`` must not match every ``fr``)."""
    return frozenset((w.surface, w.stem) if w.stem else (w.surface,))


def _bigram_key(w: Word) -> str:
    return w.stem or w.surface


def draft_terms(ad: AnalysedDraft, title_weight: int = 2, bigrams: bool = True) -> list[str]:
    """Bag of terms of an analysed draft: every analysis term of each word, stem bigrams, the
    title repeated ``title_weight`` times (editors tag what the title announces)."""
    out: list[str] = []
    for words, weight in ((ad.title_words, title_weight), (ad.text_words, 1)):
        terms: list[str] = []
        for w in words:
            terms.extend(w.all_terms())
        if bigrams:
            keys = [_bigram_key(w) for w in words]
            terms.extend(a + BIGRAM_MARK + b for a, b in zip(keys, keys[1:], strict=False))
        out.extend(terms * max(1, weight))
    return out


# --- label matching ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """Where a reason was found: ``field`` is ``title`` or ``text``; offsets in that field."""

    field: str
    start: int
    end: int
    text: str


_GAP_OK = re.compile(r"^[ \t\xa0'’\-]*(?:\w{1,4}[ \t\xa0'’\-]+){0,2}$")
"""What may separate two words of a tag phrase in a draft: blanks on one line, elisions, up to two short
(stop) words — ``transformation numérique de l’État`` — but no punctuation."""

_PHRASE_CACHE: dict[str, tuple[frozenset[str], ...]] = {}
"""Analysed tag phrases: training refits the matcher once per fold on the same few hundred
phrases, and spaCy is the slow part."""


class LabelMatcher:
    """Finds tag labels, variants and aliases in a draft, word by word on folded forms and stems.

    Phrases are analysed with the shared analysis at fit time; matching a draft is a dictionary
    lookup per word, so it costs nothing next to spaCy.
    """

    def __init__(self, phrases: dict[str, list[str]]) -> None:
        flat = [(key, p) for key, ps in phrases.items() for p in dict.fromkeys(ps) if p.strip()]
        todo = list(dict.fromkeys(p for _, p in flat if p not in _PHRASE_CACHE))
        for p, words in zip(todo, analyze_many(todo), strict=True):
            _PHRASE_CACHE[p] = tuple(_word_keys(w) for w in words)
        self.phrases: dict[str, list[tuple[frozenset[str], ...]]] = defaultdict(list)
        self.by_first: dict[str, list[tuple[str, tuple[frozenset[str], ...]]]] = defaultdict(list)
        for key, phrase in flat:
            seq = _PHRASE_CACHE[phrase]
            if not seq:
                continue
            if seq in self.phrases[key]:
                continue
            self.phrases[key].append(seq)
            for k in seq[0]:
                self.by_first[k].append((key, seq))

    def find(self, words: Sequence[Word], source: str) -> dict[str, list[tuple[int, int]]]:
        """``tag key → [(first word index, last word index + 1)]`` of every match in ``words``
        (analysed from ``source``). Consecutive phrase words may only be separated by spaces,
        apostrophes, hyphens or a short dropped stop word: ``données » est ouvert`` is not
        ``données ouvertes``."""
        keys = [_word_keys(w) for w in words]
        joined = [
            bool(_GAP_OK.match(source[a.end:b.start]))
            for a, b in zip(words, words[1:], strict=False)
        ]
        found: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for i, ks in enumerate(keys):
            tried: set[tuple[str, tuple[frozenset[str], ...]]] = set()
            for k in ks:
                for tag, seq in self.by_first.get(k, ()):
                    if (tag, seq) in tried:
                        continue
                    tried.add((tag, seq))
                    n = len(seq)
                    if (i + n <= len(keys) and all(seq[j] & keys[i + j] for j in range(n))
                            and all(joined[i:i + n - 1])):
                        span = (i, i + n)
                        if span not in found[tag]:
                            found[tag].append(span)
        return found


# --- the base signals --------------------------------------------------------------------------


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
                                     max_iter=200)
            clf.fit(X, Y[:, j])
            self.W[j] = clf.coef_[0]
            self.b[j] = clf.intercept_[0]
            self.has_linear[j] = True
        self.Wt = sparse.csr_matrix(self.W.T)

        # Label match: phrases of every candidate, and how often a match meant the tag.
        self.matcher = matcher if matcher is not None else LabelMatcher(phrases)
        matched = np.zeros(len(self.candidates))
        hits = np.zeros(len(self.candidates))
        for i, d in enumerate(drafts):
            found = (set(self.matcher.find(d.title_words, d.draft.title))
                     | set(self.matcher.find(d.text_words, d.text)))
            for k in found:
                j = self.col.get(k)
                if j is not None:
                    matched[j] += 1
                    hits[j] += Y[i, j]
        pooled = (hits.sum() + 1.0) / (matched.sum() + 2.0)
        a = p["match_smoothing"]
        self.match_precision = ((hits + a * pooled) / (matched + a)).astype(np.float32)
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
        for i in range(n):
            row = sims[i]
            top = np.argpartition(-row, k - 1)[:k] if k < row.size else np.arange(row.size)
            w = np.clip(row[top], 0.0, None)
            Yn = self.Y[top]
            out[i, :, 2] = (w @ Yn) / (w.sum() + 1e-6)
            out[i, :, 3] = (w[:, None] * Yn).max(axis=0) if top.size else 0.0
            result.neighbours.append((top, w))
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
        out[:, :, 7] = self.prior
        out[:, :, 8] = declared
        return result


@dataclass
class Signals:
    """What :meth:`_BaseSignals.signals` computed for a batch of drafts, kept for the reasons."""

    values: np.ndarray
    X: sparse.csr_matrix
    title_matches: list[dict[str, list[tuple[int, int]]]] = field(default_factory=list)
    text_matches: list[dict[str, list[tuple[int, int]]]] = field(default_factory=list)
    neighbours: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)


# --- the estimator -----------------------------------------------------------------------------


@dataclass
class Suggestion:
    """One suggested tag: canonical key, display label, calibrated score, and why."""

    key: str
    tag: str
    score: float
    reasons: list[str] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    signals: dict[str, float] = field(default_factory=dict)
    confident: bool = True
    """The score passed the tag's threshold (the set :meth:`TagSuggester.predict` returns)."""

    def to_dict(self) -> dict[str, Any]:
        return {"tag": self.tag, "key": self.key, "score": round(self.score, 4),
                "reasons": list(self.reasons)}


class TagSuggester(BaseEstimator):
    """Suggests canonical tags for a draft; scikit-learn estimator conventions.

    Parameters are only stored by ``__init__`` (so ``clone``/``get_params`` work); everything
    learned ends with ``_``. ``fit`` takes drafts (:class:`Draft`, :class:`AnalysedDraft`, parsed
    documents or index records) and optionally their raw tags.

    Only tags used at least ``min_count`` times, declared in the alias file, or accepted by an
    editor (``forced`` in :meth:`fit`) are ever suggested: a tag used once is as often a typo as a
    topic.
    """

    def __init__(
        self,
        aliases: dict[str, list[str]] | None = None,
        min_count: int = 2,
        title_weight: int = 2,
        bigrams: bool = True,
        min_df: int = 1,
        C: float = 10.0,  # noqa: N803 - scikit-learn's name
        n_neighbors: int = 7,
        match_smoothing: float = 2.0,
        inner_cv: int = 5,
        stacker_C: float = 1.0,  # noqa: N803
        threshold_shrinkage: float = 5.0,
        max_reasons: int = 4,
        max_chars: int = MAX_DRAFT_CHARS,
        analysis: str = "full",
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
        self.threshold_shrinkage = threshold_shrinkage
        self.max_reasons = max_reasons
        self.max_chars = max_chars
        self.analysis = analysis
        self.random_state = random_state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Files pickled before a hyper-parameter existed get its default (same format)."""
        state.setdefault("analysis", "full")
        super().__setstate__(state)

    # --- training ------------------------------------------------------------------------------

    def _analysed(self, X: Sequence[Any]) -> list[AnalysedDraft]:
        """Analyse what is not analysed yet (or was analysed another way), in one batch."""
        drafts = [x if isinstance(x, (Draft, AnalysedDraft)) else Draft.from_document(x)
                  for x in X]
        drafts = [d.draft if isinstance(d, AnalysedDraft) and d.analysis != self.analysis else d
                  for d in drafts]
        todo = [d for d in drafts if isinstance(d, Draft)]
        done = iter(analyse(todo, self.max_chars, analysis=self.analysis)) if todo else iter(())
        return [d if isinstance(d, AnalysedDraft) else next(done) for d in drafts]

    def fit(self, X: Sequence[Any], y: Sequence[Iterable[str]] | None = None,  # noqa: N803
            forced: Iterable[str] = ()) -> TagSuggester:
        """Learn from drafts and their raw tags (``y``; default: each draft's own ``tags``).

        ``forced`` raw tags are suggestable whatever their count (editors accepted them).
        Drafts without any tag are ignored: an untagged document says nothing about tags.
        """
        docs = self._analysed(X)
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
            base = _BaseSignals(params).fit([docs[i] for i in train_idx],
                                            [labels[i] for i in train_idx], candidates,
                                            inner_phrases)
            feats[test_idx] = base.signals([docs[i] for i in test_idx], self.declared_).values
        target = np.array([[k in ls for k in candidates] for ls in labels], dtype=np.int8)
        rows = feats.reshape(-1, len(SIGNALS))
        flat_target = target.reshape(-1)
        self.stacker_ = self._fit_stacker(rows, flat_target)

        # Thresholds on out-of-fold stacked scores (the stacker has nine weights: its own
        # in-sample optimism is negligible next to the base models').
        oof = self._stack(rows).reshape(len(docs), len(candidates))
        self.threshold_, self.thresholds_ = self._tune_thresholds(oof, target)
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
        clf = LogisticRegression(C=self.stacker_C, max_iter=1000)
        clf.fit(rows, target)
        return clf

    def _stack(self, rows: np.ndarray) -> np.ndarray:
        if self.stacker_ is None:
            # Degenerate training set (no positive or no negative pair): average the signals.
            return np.clip((rows[:, 0] + rows[:, 2] + rows[:, 6]) / 3.0, 0.0, 1.0)
        z = rows @ self.stacker_.coef_[0] + self.stacker_.intercept_[0]
        return 1.0 / (1.0 + np.exp(-z))

    def _tune_thresholds(self, scores: np.ndarray, target: np.ndarray,
                         ) -> tuple[float, np.ndarray]:
        """Global threshold maximising the documents' mean F1; per tag, the F1-best threshold
        shrunk toward the global one in proportion to how many examples the tag has."""
        grid = np.linspace(0.05, 0.9, 35)
        best_g, best_f = 0.5, -1.0
        for t in grid:
            pred = scores >= t
            tp = (pred & (target == 1)).sum(axis=1)
            denom = pred.sum(axis=1) + target.sum(axis=1)
            f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0).mean()
            if f1 > best_f + 1e-9:
                best_g, best_f = float(t), f1
        per_tag = np.full(scores.shape[1], best_g, dtype=np.float32)
        m = self.threshold_shrinkage
        for j in range(scores.shape[1]):
            n_pos = int(target[:, j].sum())
            if n_pos < 2:
                continue
            col, tcol = scores[:, j], target[:, j] == 1
            best_t, best_fj = best_g, -1.0
            for t in grid:
                pred = col >= t
                tp = (pred & tcol).sum()
                fj = 2 * tp / max(pred.sum() + tcol.sum(), 1)
                if fj > best_fj + 1e-9:
                    best_t, best_fj = float(t), fj
            per_tag[j] = (n_pos * best_t + m * best_g) / (n_pos + m)
        return best_g, per_tag

    # --- suggesting ----------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "base_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("TagSuggester is not fitted: call fit() or load a model file")

    def scores(self, drafts: Sequence[AnalysedDraft]) -> np.ndarray:
        """Calibrated scores ``(n_drafts, n_candidates)``, columns in :attr:`candidates_` order."""
        self._check_fitted()
        feats = self.base_.signals(self._analysed(drafts), self.declared_).values
        n, m, s = feats.shape
        return self._stack(feats.reshape(-1, s)).reshape(n, m)

    def rank(self, drafts: Sequence[Any]) -> list[list[tuple[str, float]]]:
        """Every candidate tag with its score, best first, for each draft (no threshold):
        what ranking metrics are computed on."""
        analysed = self._analysed(drafts)
        scores = self.scores(analysed)
        out = []
        for row in scores:
            order = np.argsort(-row, kind="stable")
            out.append([(self.candidates_[j], float(row[j])) for j in order])
        return out

    def suggest(self, title: str, text: str, k: int = 5,
                min_score: float | None = None) -> list[Suggestion]:
        """Up to ``k`` tags for one draft, best first, each with the draft's words behind it.

        By default only tags whose score reaches the tag's threshold are returned; pass
        ``min_score`` (e.g. 0) to get the ``k`` best whatever their score.
        """
        (ad,) = analyse([Draft(title or "", text or "")], self.max_chars, analysis=self.analysis)
        return self.suggest_analysed([ad], k, min_score)[0]

    def suggest_many(self, drafts: Sequence[Any], k: int = 5,
                     min_score: float | None = None) -> list[list[Suggestion]]:
        """:meth:`suggest` for many drafts with one batched analysis."""
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
        sig = self.base_.signals(drafts, self.declared_)
        feats = sig.values
        n, m, s = feats.shape
        scores = self._stack(feats.reshape(-1, s)).reshape(n, m)
        floor = self.thresholds_ if min_score is None else np.full(m, min_score)
        results = []
        for i, ad in enumerate(drafts):
            row = scores[i]
            order = [j for j in np.argsort(-row, kind="stable") if row[j] >= floor[j]][:k]
            locator = _TermLocator(ad, self.bigrams) if order else None
            out = []
            for j in order:
                key = self.candidates_[j]
                spans = self._evidence(ad, sig, i, j, locator)
                out.append(Suggestion(
                    key=key, tag=self.vocabulary_.label(key), score=float(row[j]),
                    reasons=_distinct(sp.text for sp in spans), spans=spans,
                    signals={name: round(float(v), 4)
                             for name, v in zip(SIGNALS, feats[i, j], strict=True)},
                    confident=bool(row[j] >= self.thresholds_[j]),
                ))
            results.append(out)
        return results

    def predict(self, X: Sequence[Any]) -> list[list[str]]:  # noqa: N803
        """The tag keys whose score passes their threshold, for each draft (multi-label)."""
        analysed = self._analysed(X)
        scores = self.scores(analysed)
        return [[self.candidates_[j] for j in np.argsort(-row, kind="stable")
                 if row[j] >= self.thresholds_[j]] for row in scores]

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

    # --- reasons -------------------------------------------------------------------------------

    def _evidence(self, ad: AnalysedDraft, sig: Signals, i: int, j: int,
                  locator: _TermLocator | None) -> list[Span]:
        """The draft's words behind tag ``j``: where its label or an alias was found, then the
        words that weighed most in the linear model and in the neighbours carrying the tag."""
        key = self.candidates_[j]
        spans: list[Span] = []
        for fieldname, words, source, found in (
            ("title", ad.title_words, ad.draft.title, sig.title_matches[i].get(key, [])),
            ("text", ad.text_words, ad.text, sig.text_matches[i].get(key, [])),
        ):
            for a, b in found:
                start, end = words[a].start, words[b - 1].end
                spans.append(Span(fieldname, start, end, source[start:end]))
        spans = _outermost(spans)[:2]

        x = sig.X[i]
        if locator is None or not x.nnz:
            return spans[: self.max_reasons]
        weight = np.zeros(x.nnz)
        if self.base_.has_linear[j]:
            contrib = np.clip(self.base_.W[j, x.indices] * x.data, 0.0, None)
            if contrib.sum() > 0:
                weight += contrib / contrib.sum()
        top, w = sig.neighbours[i]
        carrying = top[(self.base_.Y[top, j] > 0) & (w > 0)]
        if carrying.size:
            centroid = np.asarray(self.base_.X[carrying].mean(axis=0)).ravel()
            shared = centroid[x.indices] * x.data
            if shared.sum() > 0:
                weight += shared / shared.sum()
        by_span: dict[Span, float] = defaultdict(float)
        names = self.base_.feature_names()
        for idx in np.flatnonzero(weight > 0):
            span = locator.span(str(names[x.indices[idx]]))
            if span is not None:
                by_span[span] += float(weight[idx])
        ranked = sorted(by_span.items(), key=lambda kv: -kv[1])
        best = ranked[0][1] if ranked else 0.0
        for span, w_span in ranked:
            if len(spans) >= self.max_reasons or w_span < MIN_REASON_SHARE * best:
                break
            if not any(s.field == span.field and s.start <= span.start and span.end <= s.end
                       or s.text.lower() == span.text.lower() for s in spans):
                spans.append(span)
        return spans


def _distinct(texts: Iterable[str]) -> list[str]:
    """Reasons without repeats that differ only by case (title and body spellings)."""
    seen: dict[str, str] = {}
    for t in texts:
        seen.setdefault(t.casefold(), t)
    return list(seen.values())


def _outermost(spans: list[Span]) -> list[Span]:
    """Drop spans inside another one (``panorama des grands projets`` inside ``panorama des
    grands projets numériques de l'État``), keeping document order."""
    return [s for s in spans if not any(
        o is not s and o.field == s.field and o.start <= s.start and s.end <= o.end
        and (o.end - o.start) > (s.end - s.start) for o in spans
    )]


class _TermLocator:
    """Maps an analysis term (or a stem bigram) back to the first draft words producing it."""

    def __init__(self, ad: AnalysedDraft, bigrams: bool) -> None:
        self.first: dict[str, Span] = {}
        for fieldname, words, source in (("title", ad.title_words, ad.draft.title),
                                         ("text", ad.text_words, ad.text)):
            for i, w in enumerate(words):
                for t in w.all_terms():
                    self.first.setdefault(t, Span(fieldname, w.start, w.end, w.text))
                if bigrams and i + 1 < len(words):
                    nxt = words[i + 1]
                    key = _bigram_key(w) + BIGRAM_MARK + _bigram_key(nxt)
                    self.first.setdefault(
                        key, Span(fieldname, w.start, nxt.end, source[w.start:nxt.end])
                    )

    def span(self, term: str) -> Span | None:
        return self.first.get(term)


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
