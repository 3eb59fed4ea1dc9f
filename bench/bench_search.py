"""Search-box latency at 1k / 10k / 100k documents, against bare Whoosh in the same run.

    python -m bench.bench_search [--sizes 1000,10000] [--queries 300] [--http]

For each size: a synthetic corpus (the real format), indexed for the engine and, separately,
for bare Whoosh (StandardAnalyzer over title/chapeau/body, no prefix or typo handling, facets
by Whoosh's ``groupedby``). The same search-box workload runs against both: whole words,
as-you-type prefixes, typos, and tag / year filters; our side always computes facets, the
snippet and the highlights. Bare Whoosh runs twice: ten titles and the facets only, then the
same page as ours (titles and body snippets highlighted by Whoosh's highlighter). Prints p50/p95/p99 and the ratio of p95s, for our first pass over the requests
(posting lists of words no earlier request used are read from disk) and for the same requests
again (a worker that has served its visitors' words before); with ``--http``, also the
latency seen by a client of ``communiques serve``, the autocomplete latency, the start-up time
and the worker's memory.

Indexes are built with the light analysis (``bench.synth.build_light_index``): spaCy over
100,000 documents would take hours and is measured by ``bench.bench_ingest`` instead.
"""

from __future__ import annotations

import argparse
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.synth import build_light_index, generate
from bench.table import percentile, print_table
from indexer.document import parse_file
from indexer.ingest import find_files
from indexer.schema import open_index
from indexer.search import SearchIndex, SearchRequest

ROOT = Path(__file__).resolve().parents[1]


def workload(docs: list, n: int, seed: int = 3) -> list[dict]:
    """Search-box requests drawn from the corpus' own titles."""
    rng = random.Random(seed)
    out: list[dict] = []
    while len(out) < n:
        doc = rng.choice(docs)
        # What a visitor types: words of a title, without its punctuation.
        title = re.sub(r"[\"()«»:’',;!?]", " ", doc.title)
        words = [w for w in title.split() if len(w) > 3][:3]
        if len(words) < 2:
            continue
        kind = ("words", "prefix", "typo", "filter")[len(out) % 4]
        q = " ".join(words) + " "
        req: dict = {"q": q}
        if kind == "prefix":
            req["q"] = " ".join(words[:-1] + [words[-1][: max(3, len(words[-1]) // 2)]])
        elif kind == "typo":
            i = max(range(len(words)), key=lambda k: len(words[k]))
            w = words[i]
            j = len(w) // 2
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
            req["q"] = " ".join(words) + " "
        elif kind == "filter":
            if doc.tags and rng.random() < 0.5:
                req["tags"] = [doc.tags[0]]
            else:
                req["year"] = doc.date.year
        req["kind"] = kind
        out.append(req)
    return out


def build_bare(docs: list, folder: Path):  # noqa: ANN201 - whoosh Index
    from whoosh import index
    from whoosh.analysis import StandardAnalyzer
    from whoosh.fields import ID, KEYWORD, STORED, TEXT, Schema

    ana = StandardAnalyzer()
    schema = Schema(
        id=ID(stored=True, unique=True), title=TEXT(analyzer=ana, stored=True),
        chapeau=TEXT(analyzer=ana, stored=True), body=TEXT(analyzer=ana, stored=True),
        tag=KEYWORD(commas=True, stored=True), year=ID(stored=True),
        collection=ID(stored=True), url=STORED,
    )
    folder.mkdir(parents=True, exist_ok=True)
    ix = index.create_in(str(folder), schema)
    w = ix.writer(limitmb=256)
    for d in docs:
        w.add_document(id=d.id, title=d.title, chapeau=d.chapeau, body=d.body,
                       tag=",".join(d.tags), year=str(d.date.year), collection=d.collection,
                       url=d.url)
    w.commit()
    return ix


def time_bare(ix, reqs: list[dict], highlights: bool = False) -> list[float]:  # noqa: ANN001
    """Bare Whoosh: the ten best titles and the facets; with ``highlights``, the same page as
    ours (title and body snippet with ``<mark>``, by Whoosh's own highlighter)."""
    from whoosh import highlight
    from whoosh import query as wq
    from whoosh.qparser import MultifieldParser

    parser = MultifieldParser(["title", "chapeau", "body"], ix.schema)
    formatter = highlight.HtmlFormatter(tagname="mark")
    out = []
    with ix.searcher() as s:
        for r in reqs:
            t0 = time.perf_counter()
            q = parser.parse(r["q"])
            filt = None
            if r.get("tags"):
                filt = wq.Term("tag", r["tags"][0])
            elif r.get("year"):
                filt = wq.Term("year", str(r["year"]))
            res = s.search(q, limit=10, filter=filt, groupedby=["tag", "year", "collection"])
            if highlights:
                res.formatter = formatter
                res.fragmenter = highlight.ContextFragmenter(maxchars=200, surround=40)
                [(h.highlights("title", minscore=0) or h["title"], h.highlights("body"))
                 for h in res]
            else:
                [h["title"] for h in res]
            for name in ("tag", "year", "collection"):
                res.groups(name)
            out.append((time.perf_counter() - t0) * 1000)
    return out


def time_ours(si: SearchIndex, reqs: list[dict]) -> list[float]:
    out = []
    for r in reqs:
        req = SearchRequest(q=r["q"], tags=r.get("tags", []), year=r.get("year"))
        t0 = time.perf_counter()
        si.search(req)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def http_run(index: Path, reqs: list[dict]) -> dict[str, float]:
    import httpx

    from bench.net import free_port

    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--index", str(index), "--port", str(port),
         "--log-level", "warning"], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,  # request logs: not measured here
    )
    base = f"http://127.0.0.1:{port}"
    try:
        while True:  # the first answer, whatever it says (503 while spaCy and the longest
            try:       # posting lists load in the background: searches are answered meanwhile)
                httpx.get(base + "/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        startup = time.perf_counter() - t0
        while True:  # measured below: the steady state, spaCy loaded, long lists read ahead
            health = httpx.get(base + "/health", timeout=5).json()
            if health.get("analysis") == "full" and health.get("postings") == "ready":
                break
            time.sleep(0.1)
        lat, auto = [], []
        with httpx.Client(base_url=base, timeout=30) as c:
            for r in reqs[:20]:  # first touch of posting lists, as in-process
                c.get("/api/search", params={"q": r["q"]})
            for r in reqs:
                params = {"q": r["q"], "tag": r.get("tags", []), **({"year": r["year"]} if r.get("year") else {})}
                t = time.perf_counter()
                assert c.get("/api/search", params=params).status_code == 200
                lat.append((time.perf_counter() - t) * 1000)
            for r in reqs:
                prefix = r["q"].strip()[: max(3, len(r["q"].strip()) // 2)]
                t = time.perf_counter()
                assert c.get("/api/autocomplete", params={"q": prefix}).status_code == 200
                auto.append((time.perf_counter() - t) * 1000)

        rss = rss_mb(proc.pid)
        anon = rss_mb(proc.pid, "RssAnon")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return {"startup": startup, "http": lat, "auto": auto, "rss": rss,  # type: ignore[dict-item]
            "rss_anon": anon}


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process; ``RssAnon`` is its own (heap and arrays), the rest being
    pages of mapped files (the index's) that the kernel can drop and that workers share."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def p(values: list[float]) -> str:
    return " / ".join(f"{percentile(values, q):.1f}" for q in (50, 95, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--body-chars", type=int, default=2500)
    parser.add_argument("--http", action="store_true")
    parser.add_argument("--no-bare", action="store_true", help="skip bare Whoosh (e.g. at 100k)")
    parser.add_argument("--commit-every", type=int, default=None, metavar="N",
                        help="build in commits of N documents, as ingest does (several segments)")
    parser.add_argument("--optimize", action="store_true",
                        help="then merge into one segment, as ingest --optimize does")
    args = parser.parse_args()
    rows, http_rows = [], []
    for n in [int(x) for x in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            corpus, index = Path(tmp) / "corpus", Path(tmp) / "index"
            generate(corpus, n, seed=11, body_chars=args.body_chars)
            t0 = time.perf_counter()
            build_light_index(corpus, index, args.commit_every, args.optimize)
            build_s = time.perf_counter() - t0
            docs = [parse_file(path) for path in find_files([corpus])]
            reqs = workload(docs, args.queries)
            si = SearchIndex(open_index(index))
            t0 = time.perf_counter()
            si.warm()
            warm_s = time.perf_counter() - t0
            time_ours(si, reqs[:20])  # first touch of posting lists
            ours = time_ours(si, reqs)
            again = time_ours(si, reqs)  # the same requests: every list they need is read
            auto = []
            for r in reqs:
                t0 = time.perf_counter()
                si.autocomplete(r["q"].strip()[: max(3, len(r["q"].strip()) // 2)])
                auto.append((time.perf_counter() - t0) * 1000)
            if args.no_bare:
                bare = bare_page = [float("nan")]
            else:
                bix = build_bare(docs, Path(tmp) / "bare")
                time_bare(bix, reqs[:10])
                bare = time_bare(bix, reqs)
                bare_page = time_bare(bix, reqs, highlights=True)
            ratio = percentile(bare, 95) / percentile(ours, 95)
            ratio_page = percentile(bare_page, 95) / percentile(ours, 95)
            ratio_again = percentile(bare, 95) / percentile(again, 95)
            by_kind = {
                k: percentile([t for t, r in zip(ours, reqs, strict=True) if r["kind"] == k], 95)
                for k in ("words", "prefix", "typo", "filter")
            }
            segments = len(si.engine().leaves)
            rows.append([
                f"{n:,} ({segments} segment{'s' if segments > 1 else ''})", p(ours), p(bare), f"{ratio:.1f}×", p(bare_page), f"{ratio_page:.1f}×",
                p(again), f"{ratio_again:.1f}×",
                " / ".join(f"{v:.1f}" for v in by_kind.values()), p(auto),
                f"{build_s:.0f} s", f"{warm_s:.1f} s",
            ])
            if args.http:
                h = http_run(index, reqs)
                http_rows.append([f"{n:,}", p(h["http"]), p(h["auto"]), f"{h['startup']:.1f} s",
                                  f"{h['rss']:.0f} MB"])
    print(f"search-box workload: {args.queries} queries (words, prefixes, typos, filters), ms")
    print_table(
        ["documents", "ours p50/p95/p99", "bare Whoosh p50/p95/p99", "bare p95 / ours p95",
         "bare Whoosh + highlights p50/p95/p99", "bare+hl p95 / ours p95",
         "ours again p50/p95/p99", "bare p95 / ours again p95",
         "ours p95 words/prefix/typo/filter", "autocomplete p50/p95/p99", "index build",
         "warm-up"],
        rows,
    )
    if http_rows:
        print()
        print("over HTTP (communiques serve, 1 worker, sequential client), ms")
        print_table(["documents", "search p50/p95/p99", "autocomplete p50/p95/p99",
                     "start-up to first answer", "worker RSS"], http_rows)


if __name__ == "__main__":
    main()
