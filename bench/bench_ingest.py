"""Ingest throughput against the floor: bare spaCy lemmatisation of the same texts.

    python -m bench.bench_ingest [--n 600] [--jobs 2]

Generates N synthetic documents (~2,500 characters, the real format), then in the same run:
1. bare spaCy: ``nlp.pipe`` over the same texts (title, chapeau, body), same processes;
2. ``communiques ingest`` into a fresh index (parse, analysis, index, commit);
and prints documents/s, index size and the ratio ingest / bare analysis (target ≤ 1.3).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.synth import generate
from bench.table import print_table
from indexer.analysis import SPACY_MODEL
from indexer.document import parse_file
from indexer.ingest import _texts, find_files, ingest
from indexer.schema import open_index


def bare_spacy(texts: list[str], jobs: int) -> float:
    import spacy

    nlp = spacy.load(SPACY_MODEL, disable=["parser", "ner", "senter"])
    t0 = time.perf_counter()
    for doc in nlp.pipe(texts, batch_size=32, n_process=jobs):
        for tok in doc:
            tok.lemma_  # noqa: B018 - what the analysis reads
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
        bare = bare_spacy(texts, args.jobs)
        ix = open_index(Path(tmp) / "index", create=True)
        t0 = time.perf_counter()
        report = ingest(ix, [corpus], n_process=args.jobs, progress=False)
        full = time.perf_counter() - t0
        assert len(report.added) == args.n, report.summary()
        size = folder_size(Path(tmp) / "index")
    print(f"{args.n} documents, {chars / args.n:,.0f} characters each, {args.jobs} processes")
    print_table(
        ["step", "seconds", "docs/s", "ratio to bare spaCy"],
        [
            ["bare spaCy lemmatisation", f"{bare:.1f}", f"{args.n / bare:.1f}", "1.00"],
            ["communiques ingest", f"{full:.1f}", f"{args.n / full:.1f}", f"{full / bare:.2f}"],
        ],
    )
    print(f"index size: {size / 1e6:.1f} MB ({size / args.n / 1e3:.1f} kB per document)")


if __name__ == "__main__":
    main()
