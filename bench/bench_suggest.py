"""Latency of one tag suggestion for a 3,000-character draft, model beside the baseline.

    PYTHONPATH=. python bench/bench_suggest.py [--train corpus] [--drafts ../shared/corpus]

The model is trained on one corpus and timed on drafts from another (the real one when present),
so the drafts are unseen. Each draft is a real document's title and text, topped up to 3,000
characters with the next document's text when shorter. Timings are per draft, one at a time (an
editor's request), after spaCy is loaded:

* ``cold`` — spaCy's lemmatizer cache empty (a worker's very first texts): worst case;
* ``fresh`` — the cache holds another corpus' words (a running service), the drafts are new:
  the realistic case for an editor's new draft;
* ``warm`` — the same drafts again.

``analysis only`` is the shared spaCy analysis alone (common to the full model and the
baseline), ``table analysis only`` the regex words with the model's form → lemma table; the
other rows are the whole request: analysis + scoring (+ reasons for the model). ``model, full
analysis`` reads each draft with spaCy (``--analysis full``); ``model, table analysis`` (the
default) is trained on the same full analysis and reads drafts with the regex tokenizer and its
form → lemma table (no spaCy at suggestion time); ``model, light analysis`` is trained with
``--analysis light`` (no spaCy at all). For those two the columns differ only by the analysis'
own word and stem caches.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.analysis import analyze  # noqa: E402
from models.evaluate import TfidfLogReg, load_drafts  # noqa: E402
from models.suggester import Draft, TagSuggester, analyse  # noqa: E402
from models.vocabulary import Vocabulary  # noqa: E402

DRAFT_CHARS = 3_000


def make_drafts(docs: list[Draft], n: int) -> list[Draft]:
    """``n`` drafts of about 3,000 characters of real text (title + text)."""
    out = []
    for i, d in enumerate(docs):
        if len(out) >= n:
            break
        text = d.text
        j = i + 1
        while len(d.title) + len(text) < DRAFT_CHARS and j < i + len(docs):
            text += "\n\n" + docs[j % len(docs)].text
            j += 1
        out.append(Draft(d.title, text[: max(0, DRAFT_CHARS - len(d.title))]))
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def clear_lemmatizer_cache() -> None:
    """Forget spaCy's memoised lemmas and the analysis' own word and stem caches (a
    benchmark-only reach into the analysis' pipeline): what a new worker starts with."""
    from indexer import analysis

    analysis._pipeline.nlp.get_pipe("lemmatizer").cache.clear()
    analysis._word_parts.cache_clear()
    analysis.stem.cache_clear()


def timed(fn, drafts: list[Draft]) -> list[float]:  # noqa: ANN001 - a callable
    times = []
    for d in drafts:
        t0 = time.perf_counter()
        fn(d)
        times.append(time.perf_counter() - t0)
    return times


def main() -> int:
    shared = ROOT.parent / "shared" / "corpus"
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train", type=Path, default=ROOT / "corpus")
    p.add_argument("--drafts", type=Path, default=shared if shared.is_dir() else None)
    p.add_argument("-n", type=int, default=50)
    args = p.parse_args()

    train_docs, _ = load_drafts([args.train])
    if args.drafts is not None:
        draft_docs, _ = load_drafts([args.drafts])
        source = str(args.drafts)
    else:  # no second corpus: train on half, time the other half
        draft_docs, train_docs = train_docs[::2], train_docs[1::2]
        source = f"{args.train} (held-out half)"
    drafts = make_drafts(draft_docs, args.n)

    t0 = time.perf_counter()
    analyze("Chargement de spaCy.")
    print(f"spaCy loaded in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    analysed = analyse(train_docs)
    model = TagSuggester(analysis="full").fit(analysed)
    table = TagSuggester(analysis="table").fit(analysed)
    light = TagSuggester(analysis="light").fit(analysed)
    vocab = Vocabulary()
    tagged = [a for a in analysed if vocab.keys(a.draft.tags)]
    baseline = TfidfLogReg().fit(tagged, [set(vocab.keys(a.draft.tags)) for a in tagged])
    print(f"trained on {len(train_docs)} documents of {args.train} in "
          f"{time.perf_counter() - t0:.1f} s; timing {len(drafts)} drafts from {source}, "
          f"{statistics.mean(len(d.title) + len(d.text) for d in drafts):.0f} characters "
          "on average")

    systems = {
        "analysis only": lambda d: analyse([d]),
        "table analysis only": lambda d: analyse([d], analysis="table", lemmas=table.lemmas_),
        "model, full analysis": lambda d: model.suggest(d.title, d.text, k=5),
        "model, table analysis": lambda d: table.suggest(d.title, d.text, k=5),
        "model, light analysis": lambda d: light.suggest(d.title, d.text, k=5),
        "baseline tfidf+logreg": lambda d: baseline.rank(analyse([d]))[0][:5],
    }
    header = "".join(f"{c + ' ' + q:>11}" for c in ("cold", "fresh", "warm") for q in ("p50", "p95"))
    print(f"\n{'':24}{header}  (ms)")
    # spaCy's lemmatizer memoises (word, POS) → lemma for the life of the process; the three
    # columns differ only by what that cache holds when the drafts arrive.
    results: dict[str, list[list[float]]] = {name: [] for name in systems}
    for name, fn in systems.items():
        clear_lemmatizer_cache()  # cold: nothing analysed yet in this process
        results[name].append(timed(fn, drafts))
    for name, fn in systems.items():
        clear_lemmatizer_cache()  # fresh: other texts seen (the training corpus), not these
        analyse(train_docs)
        analyse(train_docs, analysis="table", lemmas=table.lemmas_)
        results[name].append(timed(fn, drafts))
    for name, fn in systems.items():
        results[name].append(timed(fn, drafts))  # warm: these drafts seen before
    for name, runs in results.items():
        print(f"{name:<24}" + "".join(f"{pct(r, q):>11.1f}" for r in runs for q in (.5, .95)))
    analysed_drafts = analyse(drafts)
    scoring = timed(lambda d: model.suggest_analysed([d], k=5), analysed_drafts)  # type: ignore[arg-type]
    base_scoring = timed(lambda d: baseline.rank([d]), analysed_drafts)  # type: ignore[arg-type]
    print(f"\nscoring only (analysis excluded): model p50 {pct(scoring, .5):.1f} ms, "
          f"p95 {pct(scoring, .95):.1f} ms; baseline p50 {pct(base_scoring, .5):.1f} ms, "
          f"p95 {pct(base_scoring, .95):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
