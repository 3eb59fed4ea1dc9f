"""Cross-validated evaluation of the tag suggester against two baselines, in the same folds.

Without baselines a score means nothing: on a corpus where a handful of tags cover most documents,
"always suggest the most frequent tags" is already decent, and a plain TF-IDF + logistic
regression is what anyone would try first. The model has to beat both to earn its complexity.

The corpus is analysed once (spaCy is the slow part) and every fold reuses the analysed drafts.
Only documents with at least one tag count, as training and as test documents. Gold tags are
canonical keys through the same :class:`~models.vocabulary.Vocabulary` (alias file) for every
system, so a system is not rewarded for guessing one spelling over another. Everything the model
tunes (stacker, thresholds) is tuned inside the training folds.

Ranking metrics at k (mean over test documents): P@k = hits in the top k / k; R@k = hits / gold
tags; F1@k = per-document harmonic mean of those two; hit@k = at least one hit; NDCG@k with
binary gains. The model's *confident* tags among its top 3 (what an editor sees pre-selected)
are scored as a set: F1@3 of the confident tags (an empty set scores 0), per fold and overall,
beside hit@3. Annif (``tfidf`` and ``omikuji`` backends, spaCy analyzer) joins the same folds when
its command is available (:mod:`models.annif_baseline`).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import MultiLabelBinarizer

from indexer.analysis import terms_of
from indexer.document import DocumentError, parse_file
from indexer.ingest import find_files
from models.suggester import AnalysedDraft, Draft, TagSuggester, _identity, analyse
from models.vocabulary import Vocabulary, load_aliases

KS = (1, 3, 5)
METRICS = ("P", "R", "F1", "hit", "NDCG")
SYSTEMS = ("model", "most-frequent", "tfidf+logreg")
ANNIF_SYSTEMS = ("annif-tfidf", "annif-omikuji")
CONFIDENT_K = 3


def load_drafts(paths: Sequence[Path]) -> tuple[list[Draft], list[tuple[str, str]]]:
    """Parse every markdown file under ``paths``; bad files are returned as (path, reason)."""
    drafts: list[Draft] = []
    rejected: list[tuple[str, str]] = []
    for path in find_files([Path(p) for p in paths]):
        if path.name.lower() == "readme.md":
            continue
        try:
            drafts.append(Draft.from_document(parse_file(path)))
        except DocumentError as exc:
            rejected.append((exc.path, exc.reason))
    return drafts, rejected


# --- baselines ---------------------------------------------------------------------------------


class MostFrequent:
    """Baseline: the training set's most used tags, the same ranking for every document."""

    def fit(self, drafts: Sequence[AnalysedDraft], labels: Sequence[set[str]]) -> MostFrequent:
        counts = Counter(k for ls in labels for k in ls)
        self.ranking = [k for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        return self

    def rank(self, drafts: Sequence[AnalysedDraft]) -> list[list[str]]:
        return [list(self.ranking) for _ in drafts]


class TfidfLogReg:
    """Baseline: TF-IDF of the shared analysis' terms, one-vs-rest logistic regression.

    Same analysed words as the model (so the comparison is about the method, not the tokenizer);
    no bigrams, no title weighting, no label matching, no neighbours, no stacking. ``C=10`` with
    balanced class weights was the strongest of a small grid (C 1/10/100, balanced or not) on the
    sample corpus: the baseline is meant to be a fair competitor, not a straw man.
    """

    def __init__(self, C: float = 10.0, class_weight: str | None = "balanced") -> None:  # noqa: N803
        self.C = C
        self.class_weight = class_weight

    @staticmethod
    def _terms(d: AnalysedDraft) -> list[str]:
        return terms_of(d.title_words) + terms_of(d.text_words)

    def fit(self, drafts: Sequence[AnalysedDraft], labels: Sequence[set[str]]) -> TfidfLogReg:
        self.vectorizer = TfidfVectorizer(analyzer=_identity, sublinear_tf=True)
        X = self.vectorizer.fit_transform([self._terms(d) for d in drafts])  # noqa: N806
        self.binarizer = MultiLabelBinarizer()
        Y = self.binarizer.fit_transform([sorted(ls) for ls in labels])  # noqa: N806
        self.clf = OneVsRestClassifier(
            LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=1000)
        )
        self.clf.fit(X, Y)
        return self

    def rank(self, drafts: Sequence[AnalysedDraft]) -> list[list[str]]:
        proba = self.clf.predict_proba(self.vectorizer.transform([self._terms(d) for d in drafts]))
        classes = list(self.binarizer.classes_)
        return [[classes[j] for j in np.argsort(-row, kind="stable")] for row in proba]


# --- metrics -----------------------------------------------------------------------------------


def ranking_metrics(ranked: Sequence[str], gold: set[str], k: int) -> dict[str, float]:
    """P, R, F1, hit and NDCG at ``k`` for one document."""
    top = list(ranked[:k])
    gains = [1.0 if t in gold else 0.0 for t in top]
    hits = sum(gains)
    p = hits / k
    r = hits / len(gold)
    f1 = 2 * p * r / (p + r) if hits else 0.0
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    idcg = sum(1 / math.log2(i + 2) for i in range(min(k, len(gold))))
    return {"P": p, "R": r, "F1": f1, "hit": 1.0 if hits else 0.0, "NDCG": dcg / idcg}


def set_metrics(predicted: Sequence[str], gold: set[str]) -> dict[str, float]:
    """Example-based P, R, F1 of a predicted tag set (an empty prediction has P = 0)."""
    hits = sum(1 for t in predicted if t in gold)
    p = hits / len(predicted) if predicted else 0.0
    r = hits / len(gold)
    return {"P": p, "R": r, "F1": 2 * p * r / (p + r) if hits else 0.0, "n": len(predicted)}


@dataclass
class Report:
    """Mean metrics per system and k, plus what the run was about."""

    n_documents: int
    n_tagged: int
    n_tags: int
    n_tags_2plus: int
    cv: int
    seed: int
    results: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)
    thresholded: dict[str, float] = field(default_factory=dict)
    confident: dict[str, float] = field(default_factory=dict)
    """The model's confident tags among its top 3: P, R, F1, hit, n (tags per document)."""
    folds: list[dict[str, float]] = field(default_factory=list)
    """Per fold: documents, each system's hit@3 and F1@3, the model's confident F1@3."""
    systems: tuple[str, ...] = SYSTEMS
    annif_error: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "documents": self.n_documents, "tagged_documents": self.n_tagged,
            "tags": self.n_tags, "tags_used_twice_or_more": self.n_tags_2plus,
            "cv": self.cv, "seed": self.seed,
            "results": {s: {f"@{k}": {m: round(v, 4) for m, v in r.items()} for k, r in ks.items()}
                        for s, ks in self.results.items()},
            "model_thresholded": {m: round(v, 4) for m, v in self.thresholded.items()},
            "model_confident_at_3": {m: round(v, 4) for m, v in self.confident.items()},
            "folds": [{m: round(v, 4) for m, v in f.items()} for f in self.folds],
            "annif_error": self.annif_error or None,
            "seconds": {s: round(v, 2) for s, v in self.seconds.items()},
            "rejected": [{"path": p, "reason": r} for p, r in self.rejected],
        }


def report_from_dict(data: dict[str, Any]) -> Report:
    """The :class:`Report` of a ``communiques evaluate --json`` output (to print its table)."""
    results = {s: {int(k.lstrip("@")): r for k, r in ks.items()}
               for s, ks in data["results"].items()}
    return Report(
        n_documents=data["documents"], n_tagged=data["tagged_documents"], n_tags=data["tags"],
        n_tags_2plus=data["tags_used_twice_or_more"], cv=data["cv"], seed=data["seed"],
        results=results, thresholded=data["model_thresholded"],
        confident=data["model_confident_at_3"], folds=data["folds"],
        systems=tuple(results), annif_error=data.get("annif_error") or "",
        seconds=data["seconds"],
    )


def cross_validate(
    drafts: Sequence[Draft | AnalysedDraft],
    aliases: dict[str, list[str]] | None = None,
    cv: int = 5,
    ks: Sequence[int] = KS,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    annif: str | Path | None = None,
) -> Report:
    """k-fold cross-validation of the model and the baselines on the same folds.

    ``annif``: the ``annif`` executable (see :mod:`models.annif_baseline`); when given and it
    fails, the Annif rows are left out and :attr:`Report.annif_error` says why."""
    from models.annif_baseline import BACKENDS, AnnifBaseline, AnnifError
    aliases = load_aliases() if aliases is None else aliases
    vocab = Vocabulary(aliases)
    todo = [d for d in drafts if isinstance(d, Draft)]
    done = iter(analyse(todo))
    analysed = [d if isinstance(d, AnalysedDraft) else next(done) for d in drafts]
    tagged = [d for d in analysed if vocab.keys(d.draft.tags)]
    gold = [set(vocab.keys(d.draft.tags)) for d in tagged]
    counts = Counter(k for g in gold for k in g)
    if len(tagged) < cv or cv < 2:
        raise ValueError(f"{len(tagged)} tagged documents: too few for {cv}-fold cross-validation")
    report = Report(n_documents=len(analysed), n_tagged=len(tagged), n_tags=len(counts),
                    n_tags_2plus=sum(1 for c in counts.values() if c >= 2), cv=cv, seed=seed)
    systems = SYSTEMS + (ANNIF_SYSTEMS if annif else ())
    report.systems = systems
    ks = sorted(set(ks) | {CONFIDENT_K})
    per_doc: dict[str, dict[int, list[dict[str, float]]]] = {
        s: {k: [] for k in ks} for s in systems
    }
    thresholded: list[dict[str, float]] = []
    confident: list[dict[str, float]] = []
    seconds: Counter[str] = Counter()
    folds = KFold(n_splits=cv, shuffle=True, random_state=seed)
    for train_idx, test_idx in folds.split(tagged):
        train = [tagged[i] for i in train_idx]
        test = [tagged[i] for i in test_idx]
        train_gold = [gold[i] for i in train_idx]
        test_gold = [gold[i] for i in test_idx]

        t0 = time.perf_counter()
        model = TagSuggester(aliases=aliases, random_state=seed, **(params or {}))
        model.fit(train, [d.draft.tags for d in train])
        ranked = {"model": [[k for k, _ in r] for r in model.rank(test)]}
        predicted = model.predict(test)
        sure = [[s.key for s in row if s.confident]
                for row in model.suggest_analysed(test, k=CONFIDENT_K)]
        seconds["model"] += time.perf_counter() - t0

        others: list[tuple[str, Any]] = [("most-frequent", MostFrequent()),
                                         ("tfidf+logreg", TfidfLogReg())]
        if annif and not report.annif_error:
            others += [(f"annif-{b}", AnnifBaseline(b, Path(annif))) for b in BACKENDS]
        for name, system in others:
            t0 = time.perf_counter()
            try:
                ranked[name] = system.fit(train, train_gold).rank(test)
            except AnnifError as exc:
                report.annif_error = str(exc)
                continue
            seconds[name] += time.perf_counter() - t0

        fold: dict[str, float] = {"documents": float(len(test))}
        for name, ranks in ranked.items():
            rows = [ranking_metrics(r, g, CONFIDENT_K) for r, g in zip(ranks, test_gold,
                                                                        strict=True)]
            fold[f"{name} hit@3"] = float(np.mean([r["hit"] for r in rows]))
            fold[f"{name} F1@3"] = float(np.mean([r["F1"] for r in rows]))
            for r, g in zip(ranks, test_gold, strict=True):
                for k in ks:
                    per_doc[name][k].append(ranking_metrics(r, g, k))
        sure_rows = [set_metrics(p, g) for p, g in zip(sure, test_gold, strict=True)]
        fold["model confident F1@3"] = float(np.mean([r["F1"] for r in sure_rows]))
        report.folds.append(fold)
        confident.extend(sure_rows)
        thresholded.extend(set_metrics(p, g) for p, g in zip(predicted, test_gold, strict=True))

    if report.annif_error:
        report.systems = SYSTEMS
    report.results = {
        s: {k: {m: float(np.mean([d[m] for d in rows])) for m in METRICS}
            for k, rows in ks_rows.items()}
        for s, ks_rows in per_doc.items() if s in report.systems
    }
    report.confident = {m: float(np.mean([d[m] for d in confident]))
                        for m in ("P", "R", "F1", "n")}
    report.confident["hit"] = float(np.mean([d["P"] > 0 for d in confident]))
    report.thresholded = {m: float(np.mean([d[m] for d in thresholded]))
                          for m in ("P", "R", "F1", "n")}
    report.seconds = dict(seconds)
    return report


def format_report(report: Report) -> str:
    """The table printed by ``communiques evaluate``."""
    lines = [
        f"{report.cv}-fold cross-validation (seed {report.seed}) on {report.n_tagged} tagged "
        f"documents of {report.n_documents}; {report.n_tags} distinct tags, "
        f"{report.n_tags_2plus} used twice or more",
        "",
    ]
    header = f"{'':4}{'system':<16}" + "".join(f"{m:>8}" for m in METRICS)
    for k in sorted(next(iter(report.results.values()))):
        lines.append(f"@{k}" + header[2:])
        for s in report.systems:
            row = report.results[s][k]
            lines.append(f"{'':4}{s:<16}" + "".join(f"{row[m]:>8.3f}" for m in METRICS))
        lines.append("")
    t = report.thresholded
    lines.append(
        f"model, thresholded predictions: P {t['P']:.3f}  R {t['R']:.3f}  F1 {t['F1']:.3f}  "
        f"({t['n']:.1f} tags per document)"
    )
    c = report.confident
    lines.append(
        f"model, confident tags among its top 3: P {c['P']:.3f}  R {c['R']:.3f}  "
        f"F1@3 {c['F1']:.3f}  ({c['n']:.1f} tags per document; hit {c['hit']:.3f})"
    )
    lines.append("")
    names = [n for n in report.systems]
    lines.append("per fold   docs  " + "  ".join(f"{n + ' hit@3/F1@3':>26}" for n in names)
                 + "  model confident F1@3")
    for i, f in enumerate(report.folds, 1):
        lines.append(f"fold {i:<5}{int(f['documents']):>5}  " + "  ".join(
            f"{f.get(n + ' hit@3', float('nan')):>17.3f} / {f.get(n + ' F1@3', float('nan')):.3f}"
            for n in names) + f"  {f['model confident F1@3']:>20.3f}")
    if report.annif_error:
        lines.append(f"annif: left out: {report.annif_error}")
    lines.append("time (all folds): " + ", ".join(f"{s} {v:.1f} s" for s, v in report.seconds.items()))
    return "\n".join(lines)
