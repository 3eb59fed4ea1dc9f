"""Relevance on the shared query sets: MRR@10 and the rank of each query's first relevant
document, for this project and for bare Whoosh (StandardAnalyzer, AND then OR of the words).

Known-item search over every document, drafts included, as an archivist searches (bare
Whoosh has no notion of drafts either); a second column gives this project as an anonymous
visitor searches, where the 15 drafts of the corpus are never shown: a query whose document
is a draft finds nothing there, by design.

```sh
python -m bench.bench_relevance                      # builds both indexes in a temporary folder
python -m bench.bench_relevance --index var/shared   # reuse an index of ../shared/corpus
```
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
QUERY_FILES = ("queries-dev.tsv", "queries-paraphrase-dev.tsv")


def read_queries(path: Path) -> list[tuple[str, str, set[str]]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        qid, query, relevant = line.split("\t")
        out.append((qid, query, set(relevant.split(","))))
    return out


def rank_of(found: list[str], relevant: set[str]) -> int | None:
    for i, doc_id in enumerate(found[:10], 1):
        if doc_id in relevant:
            return i
    return None


def mrr(ranks: list[int | None]) -> float:
    return sum(1 / r for r in ranks if r) / len(ranks) if ranks else 0.0


def ours(index: Path, drafts: bool = True):  # noqa: ANN201 - a search function
    from indexer.schema import open_index
    from indexer.search import SearchIndex, SearchRequest

    si = SearchIndex(open_index(index), preload=False)
    si.warm()

    def run(q: str) -> list[str]:
        req = SearchRequest(q=q + " ", size=10, drafts=drafts)
        return [h.id for h in si.search(req).hits]

    return run


def bare_whoosh(corpus: Path, folder: Path):  # noqa: ANN201 - a search function
    from whoosh import index, qparser
    from whoosh.analysis import StandardAnalyzer
    from whoosh.fields import ID, TEXT, Schema

    from indexer.document import parse_text, read_source
    from indexer.ingest import collection_of, find_files

    schema = Schema(id=ID(stored=True), title=TEXT(analyzer=StandardAnalyzer(), field_boost=3.0),
                    body=TEXT(analyzer=StandardAnalyzer()))
    ix = index.create_in(str(folder), schema)
    writer = ix.writer()
    for path in find_files([corpus]):
        doc = parse_text(read_source(path), path.stem, collection_of(path), str(path))
        writer.add_document(id=doc.id, title=doc.title,
                            body=f"{doc.chapeau}\n{doc.body}")
    writer.commit()
    searcher = ix.searcher()

    def run(q: str) -> list[str]:
        for group in (qparser.AndGroup, qparser.OrGroup):
            parser = qparser.MultifieldParser(["title", "body"], ix.schema, group=group)
            hits = searcher.search(parser.parse(q), limit=10)
            if len(hits):
                return [h["id"] for h in hits]
        return []

    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--index", type=Path, help="an index of ../shared/corpus to reuse")
    ap.add_argument("--corpus", type=Path, default=SHARED / "corpus")
    ap.add_argument("--no-bare", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        index = args.index
        if index is None:
            from indexer.ingest import ingest
            from indexer.schema import open_index

            index = Path(tmp) / "ours"
            ingest(open_index(index, create=True), [args.corpus], progress=False)
        systems = {"communiques": ours(index),
                   "communiques, public (no drafts)": ours(index, drafts=False)}
        if not args.no_bare:
            (Path(tmp) / "bare").mkdir()
            systems["bare Whoosh"] = bare_whoosh(args.corpus, Path(tmp) / "bare")
        for name in QUERY_FILES:
            queries = read_queries(SHARED / name)
            print(f"\n{name}\n")
            print("| qid | query | " + " | ".join(systems) + " |")
            print("|---|---|" + "---|" * len(systems))
            ranks: dict[str, list[int | None]] = {s: [] for s in systems}
            for qid, q, relevant in queries:
                row = []
                for s, run in systems.items():
                    r = rank_of(run(q), relevant)
                    ranks[s].append(r)
                    row.append(str(r or "–"))
                print(f"| {qid} | {q} | " + " | ".join(row) + " |")
            print("| | **MRR@10** | " + " | ".join(f"**{mrr(ranks[s]):.3f}**" for s in systems)
                  + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
