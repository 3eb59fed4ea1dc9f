"""Query analysis from the index's lemma table against spaCy on the query, in the same run.

    python -m bench.bench_query_analysis --index var/shared [--queries FILE.tsv ...]
    python -m bench.bench_query_analysis --synthetic 10000 [--queries-count 300]
    python -m bench.bench_query_analysis --index INDEX --corpus CORPUS [--queries-count 300]

Both readings search the same index through the same :class:`~indexer.search.SearchIndex`;
only the analysis of the query differs: the lemma each word took in the documents
(:meth:`indexer.engine.Lexicon.lemma`, no spaCy), or spaCy's lemma for the query alone
(the behaviour of an index without the table). The two run interleaved, query by query, and
the CPU time of each search is measured (``time.process_time``: the machine's other jobs do
not count). Also printed: how often the two readings give the same ten hits in the same
order, and with query files (``qid<TAB>query<TAB>relevant ids``), MRR@10 and the rank of each
query's first relevant document under both.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.bench_relevance import SHARED, mrr, rank_of, read_queries
from bench.table import percentile
from indexer import engine as engine_module
from indexer.analysis import _analyze_query, analyze
from indexer.schema import open_index
from indexer.search import SearchIndex, SearchRequest


@contextmanager
def spacy_queries() -> Iterator[None]:
    """Within this block, queries are analysed by spaCy, as for an index without the table."""
    prop = engine_module.Lexicon.lemma_of
    engine_module.Lexicon.lemma_of = property(lambda self: None)  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        engine_module.Lexicon.lemma_of = prop  # type: ignore[method-assign]


def run(si: SearchIndex, req: SearchRequest, spacy: bool) -> tuple[list[str], float]:
    """Hit ids and CPU seconds of one search (spaCy's query cache emptied first: a new query)."""
    _analyze_query.cache_clear()
    if spacy:
        with spacy_queries():
            t0 = time.process_time()
            result = si.search(req)
            cpu = time.process_time() - t0
    else:
        t0 = time.process_time()
        result = si.search(req)
        cpu = time.process_time() - t0
    return [h.id for h in result.hits], cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", type=Path, help="an index to search (built with spaCy)")
    ap.add_argument("--corpus", type=Path,
                    help="with --index: the search-box workload is drawn from this corpus")
    ap.add_argument("--synthetic", type=int, metavar="N",
                    help="else: a synthetic corpus of N documents, light analysis (bench.synth)")
    ap.add_argument("--queries", type=Path, nargs="*",
                    default=[SHARED / "queries-dev.tsv", SHARED / "queries-paraphrase-dev.tsv"])
    ap.add_argument("--queries-count", type=int, default=300,
                    help="search-box workload drawn from the titles (bench.bench_search)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        index = args.index
        docs = []
        corpus = args.corpus
        if index is None:
            from bench.synth import build_light_index, generate

            corpus, index = Path(tmp) / "corpus", Path(tmp) / "index"
            generate(corpus, args.synthetic or 1000, seed=11)
            build_light_index(corpus, index)
        if corpus is not None:
            from indexer.document import parse_file
            from indexer.ingest import find_files

            docs = [parse_file(p) for p in find_files([corpus])]
        si = SearchIndex(open_index(index), preload=False)
        si.warm()
        analyze("Chargement.")
        requests: list[tuple[str, SearchRequest, set[str]]] = []
        if docs:
            from bench.bench_search import workload

            for r in workload(docs, args.queries_count):
                requests.append((r["kind"], SearchRequest(
                    q=r["q"], tags=r.get("tags", []), year=r.get("year")), set()))
        else:
            for path in args.queries:
                for qid, q, relevant in read_queries(path):
                    requests.append((qid, SearchRequest(q=q + " ", size=10), relevant))
            # As typed: every prefix of each query too, from three letters on.
            for qid, req, _ in list(requests):
                text = req.q.strip()
                for end in range(3, len(text)):
                    if text[end - 1] != " ":
                        requests.append((qid + "…", SearchRequest(q=text[:end]), set()))
        for _, req, _ in requests[:20]:  # first touch of posting lists, both ways
            run(si, req, False)
            run(si, req, True)
        cpu: dict[bool, list[float]] = {False: [], True: []}
        same = 0
        ranks: dict[bool, list[int | None]] = {False: [], True: []}
        rows = []
        for round_ in range(args.rounds):
            for qid, req, relevant in requests:
                found = {}
                for spacy in ((False, True) if round_ % 2 == 0 else (True, False)):
                    found[spacy], seconds = run(si, req, spacy)
                    cpu[spacy].append(seconds * 1000)
                if round_ == 0:
                    same += found[False] == found[True]
                    if relevant:
                        r = {s: rank_of(found[s], relevant) for s in found}
                        for s in found:
                            ranks[s].append(r[s])
                        rows.append((qid, req.q.strip(), r[True], r[False]))
        if rows:
            print("| qid | query | spaCy on the query | lemma table |")
            print("|---|---|---|---|")
            for qid, q, a, b in rows:
                print(f"| {qid} | {q} | {a or '–'} | {b or '–'} |")
            print(f"| | **MRR@10** | **{mrr(ranks[True]):.3f}** | **{mrr(ranks[False]):.3f}** |")
            print()
        n = len(requests)
        print(f"{n} searches × {args.rounds} rounds, interleaved; same ten hits in the same "
              f"order: {same}/{n}")
        print("| query analysis | CPU ms p50 | p95 | p99 | mean |")
        print("|---|---|---|---|---|")
        for spacy, name in ((True, "spaCy on the query"), (False, "lemma table")):
            v = cpu[spacy]
            print(f"| {name} | {percentile(v, 50):.2f} | {percentile(v, 95):.2f} | "
                  f"{percentile(v, 99):.2f} | {statistics.mean(v):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
