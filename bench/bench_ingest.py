"""Ingest throughput against the floor: bare spaCy lemmatisation of the same texts.

    python -m bench.bench_ingest [--n 600] [--jobs 2]

Generates N synthetic documents (~2,500 characters, the real format), then in the same run:
1. spaCy alone: ``nlp.pipe`` over the same texts (title, chapeau, body), same processes, model
   loaded beforehand; the references extract each token's lemma in the workers (the analysis
   alone) and deliver either the Docs or, strictly, only the lemmas (as ingest's own component
   delivers only its words); a floor only delivers the documents;
2. ``communiques ingest`` into a fresh index (read, parse, analysis, index, commit), loading
   spaCy on the way as the command does; then again into another fresh index, spaCy now loaded
   (as the references have it): like for like;
3. spaCy alone again; the faster runs are kept;
and prints documents/s, index size and the ratios ingest / bare analysis (target ≤ 1.3).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.synth import generate
from bench.table import print_table
from indexer.analysis import SPACY_MODEL, without_msgpack_plugins
from indexer.document import parse_file
from indexer.ingest import _texts, find_files, ingest
from indexer.schema import open_index


def _lemmas(doc):  # noqa: ANN001, ANN202 - the bare consumer's whole job: (text, offset, lemma)
    doc.user_data["lemmas"] = [(t.text, t.idx, t.lemma_) for t in doc]
    return doc


def _lemmas_only(doc):  # noqa: ANN001, ANN202 - the same, delivered without the Doc
    from spacy.tokens import Doc

    slim = Doc(doc.vocab, words=[])
    slim.user_data["lemmas"] = [(t.text, t.idx, t.lemma_) for t in doc]
    slim._context = doc._context
    return slim


def bare_spacy(texts: list[str], jobs: int, read_lemmas: bool = True, slim: bool = False) -> float:
    """spaCy alone over the texts, model loaded beforehand. With ``read_lemmas``, a component
    extracts every token's lemma (in the worker processes, as ingest's own component does):
    "the French analysis alone"; with ``slim`` too, only those lemmas travel back to the main
    process, not the Doc (as ingest's component does: the strict reference). Without
    ``read_lemmas``, documents are only delivered."""
    import spacy
    from spacy.language import Language

    without_msgpack_plugins()  # as ingest does: the reference gets spaCy at its fastest too
    nlp = spacy.load(SPACY_MODEL, disable=["parser", "ner", "senter"])
    if read_lemmas:
        name = "bare_lemmas_only" if slim else "bare_lemmas"
        if not Language.has_factory(name):
            Language.component(name, func=_lemmas_only if slim else _lemmas)
        nlp.add_pipe(name, last=True)
    t0 = time.perf_counter()
    for doc in nlp.pipe(texts, batch_size=64, n_process=jobs):
        doc.user_data.get("lemmas")
    return time.perf_counter() - t0


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        generate(corpus, args.n, seed=7)
        docs = [parse_file(p) for p in find_files([corpus])]
        texts = [t for d in docs for t in _texts(d)]
        chars = sum(len(t) for t in texts)
        # bare, ingest, bare again: the faster bare runs are the reference (noise favours bare)
        floor_1, bare_1 = bare_spacy(texts, args.jobs, False), bare_spacy(texts, args.jobs)
        strict_1 = bare_spacy(texts, args.jobs, slim=True)
        ix = open_index(Path(tmp) / "index", create=True)
        t0 = time.perf_counter()
        report = ingest(ix, [corpus], n_process=args.jobs, progress=False)
        full = time.perf_counter() - t0
        # The same ingest into a new index, the model now loaded in this process: like the
        # references, which load it before their clock starts (the first run counts the load).
        again = open_index(Path(tmp) / "again", create=True)
        t0 = time.perf_counter()
        ingest(again, [corpus], n_process=args.jobs, progress=False)
        loaded = time.perf_counter() - t0
        bare = min(bare_1, bare_spacy(texts, args.jobs))
        strict = min(strict_1, bare_spacy(texts, args.jobs, slim=True))
        floor = min(floor_1, bare_spacy(texts, args.jobs, False))
        assert len(report.added) == args.n, report.summary()
        size = folder_size(Path(tmp) / "index")
    print(f"{args.n} documents, {chars / args.n:,.0f} characters each, {args.jobs} processes")
    print_table(
        ["step", "seconds", "docs/s", "ratio to spaCy lemmatisation", "ratio to lemmas only"],
        [
            ["spaCy, documents only", f"{floor:.1f}", f"{args.n / floor:.1f}",
             f"{floor / bare:.2f}", f"{floor / strict:.2f}"],
            ["spaCy lemmatisation (Docs delivered)", f"{bare:.1f}", f"{args.n / bare:.1f}",
             "1.00", f"{bare / strict:.2f}"],
            ["spaCy lemmatisation (lemmas only delivered)", f"{strict:.1f}",
             f"{args.n / strict:.1f}", f"{strict / bare:.2f}", "1.00"],
            ["communiques ingest (loading spaCy included)", f"{full:.1f}", f"{args.n / full:.1f}",
             f"{full / bare:.2f}", f"{full / strict:.2f}"],
            ["communiques ingest, spaCy loaded beforehand", f"{loaded:.1f}",
             f"{args.n / loaded:.1f}", f"{loaded / bare:.2f}", f"{loaded / strict:.2f}"],
        ],
    )
    print(f"index size: {size / 1e6:.1f} MB ({size / args.n / 1e3:.1f} kB per document)")


if __name__ == "__main__":
    main()
