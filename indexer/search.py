"""The search core that the command line and the HTTP service both call.

:class:`SearchIndex` owns one Whoosh index: a searcher per thread, refreshed when an ingest
commits, and per index generation a :class:`DocTable` (dates, years, collections, tag keys of
every document in arrays) so that filters, facets, date sorting and the recency tie-break never
touch stored fields of the whole result set.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from whoosh import query as wq
from whoosh.index import Index
from whoosh.reading import TermNotFound
from whoosh.searching import Searcher

from indexer.analysis import STOP_WORDS, analyze, analyze_query, fold, light_words
from indexer.highlight import MatchSet, highlight, snippet
from indexer.query import ParsedQuery, QueryError, fuzzy_terms, parse_query, prefix_terms
from indexer.schema import TEXT_FIELDS
from models.vocabulary import Vocabulary

SORTS = ("relevance", "date", "-date")
MAX_PAGE_SIZE = 100
MIN_COMPLETE = 5
"""Below this many documents holding every word, documents missing one word are shown too."""
MAX_WINDOW = 10_000
"""page × size may not reach past this: deep pages are for the export."""


class SearchError(ValueError):
    """A request refused with a reason naming the parameter (the service answers 400)."""


@dataclass
class SearchRequest:
    """Everything a search can ask for; the same object for the CLI, the API and the export."""

    q: str = ""
    page: int = 1
    size: int = 10
    sort: str = "relevance"
    tags: list[str] = field(default_factory=list)
    collection: str | None = None
    category: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    year: int | None = None
    published: bool | None = None

    def validate(self, paged: bool = True) -> None:
        if self.sort not in SORTS:
            raise SearchError(f"sort: must be one of {', '.join(SORTS)}, not {self.sort!r}")
        if paged:
            if self.page < 1:
                raise SearchError("page: must be 1 or more")
            if not 1 <= self.size <= MAX_PAGE_SIZE:
                raise SearchError(f"size: must be between 1 and {MAX_PAGE_SIZE}")
            if self.page * self.size > MAX_WINDOW:
                raise SearchError(
                    f"page × size: must stay within {MAX_WINDOW}; use the export for more"
                )
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise SearchError("date_from: must not be after date_to")


@dataclass
class Hit:
    id: str
    path: str
    url: str
    title: str
    title_html: str
    snippet_html: str
    date: str
    tags: list[str]
    collection: str
    score: float
    attachment_html: str = ""
    attachments: list[dict[str, str]] = field(default_factory=list)


@dataclass
class FacetValue:
    value: str
    label: str
    count: int


@dataclass
class SearchResult:
    total: int
    took_ms: float
    page: int
    size: int
    hits: list[Hit]
    facets: dict[str, list[FacetValue]]
    suggestion: str | None = None
    mode: str = "box"
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DocTable:
    """Per-generation arrays over every live document, indexed by Whoosh document number."""

    def __init__(self, searcher: Searcher, aliases: dict[str, list[str]] | None = None) -> None:
        reader = searcher.reader()
        self.generation = reader.generation()
        self.vocabulary = Vocabulary(aliases)
        self.docnums: list[int] = []
        self.ids: dict[str, int] = {}
        self.timestamp: dict[int, float] = {}
        self.year: dict[int, str] = {}
        self.collection: dict[int, str] = {}
        self.tag_keys: dict[int, tuple[str, ...]] = {}
        self.category_keys: dict[int, tuple[str, ...]] = {}
        self.published: dict[int, bool] = {}
        display: dict[str, Counter[str]] = {}
        for docnum in reader.all_doc_ids():
            f = reader.stored_fields(docnum)
            self.docnums.append(docnum)
            self.ids[f["id"]] = docnum
            self.timestamp[docnum] = f["date"].replace(tzinfo=dt.UTC).timestamp()
            self.year[docnum] = f.get("year", "")
            self.collection[docnum] = f.get("collection", "")
            self.tag_keys[docnum] = tuple(k for k in f.get("tag", "").split(",") if k)
            self.category_keys[docnum] = tuple(k for k in f.get("category", "").split(",") if k)
            self.published[docnum] = bool(f.get("published", True))
            self.vocabulary.add(f.get("tags", []))
            for w in light_words(f.get("title", "") + "\n" + f.get("chapeau", "")):
                display.setdefault(w.surface, Counter())[w.text.lower()] += 1
        self.display = {k: c.most_common(1)[0][0] for k, c in display.items()}

    def passes(self, docnum: int, req: SearchRequest, tag_keys: list[str],
               category_key: str | None, ts_from: float | None, ts_to: float | None) -> bool:
        if req.collection and self.collection.get(docnum) != req.collection:
            return False
        if req.year and self.year.get(docnum) != str(req.year):
            return False
        if req.published is not None and self.published.get(docnum) != req.published:
            return False
        if tag_keys and not set(tag_keys) <= set(self.tag_keys.get(docnum, ())):
            return False
        if category_key and category_key not in self.category_keys.get(docnum, ()):
            return False
        ts = self.timestamp.get(docnum, 0.0)
        if ts_from is not None and ts < ts_from:
            return False
        return not (ts_to is not None and ts >= ts_to)


def _day_start(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


class SearchIndex:
    """Searches one index; safe to share between threads (each gets its own Whoosh searcher)."""

    def __init__(self, ix: Index, aliases: dict[str, list[str]] | None = None) -> None:
        self.ix = ix
        self.aliases = aliases
        self._local = threading.local()
        self._lock = threading.Lock()
        self._table: DocTable | None = None

    # --- state -------------------------------------------------------------------------------

    def searcher(self) -> Searcher:
        """This thread's searcher, refreshed if an ingest committed since it was opened."""
        s: Searcher | None = getattr(self._local, "searcher", None)
        if s is None:
            s = self.ix.searcher()
        elif not s.up_to_date():
            # A new searcher, not ``refresh()``: refresh reuses segment readers and so keeps
            # their old deletion sets, and a deleted document would still be found. The old
            # one is left to the garbage collector: an export may still be streaming from it.
            s = self.ix.searcher()
        self._local.searcher = s
        return s

    def table(self, searcher: Searcher) -> DocTable:
        gen = searcher.reader().generation()
        table = self._table
        if table is None or table.generation != gen:
            with self._lock:
                table = self._table
                if table is None or table.generation != gen:
                    table = DocTable(searcher, self.aliases)
                    self._table = table
        return table

    def tag_key(self, raw: str) -> str:
        return self.table(self.searcher()).vocabulary.key(raw)

    # --- search ------------------------------------------------------------------------------

    def _matches(self, searcher: Searcher, table: DocTable, q: wq.Query,
                 req: SearchRequest) -> list[tuple[int, float]]:
        tag_keys = [table.vocabulary.key(t) for t in req.tags if t.strip()]
        category_key = table.vocabulary.key(req.category) if req.category else None
        ts_from = _day_start(req.date_from) if req.date_from else None
        ts_to = _day_start(req.date_to + dt.timedelta(days=1)) if req.date_to else None
        if q is wq.NullQuery:
            return []
        try:
            results = searcher.search(q, limit=None)
        except (TermNotFound, ValueError, TypeError) as exc:
            raise QueryError(f"q: this query cannot be run ({exc})") from None
        return [
            (docnum, score)
            for score, docnum in results.top_n
            if table.passes(docnum, req, tag_keys, category_key, ts_from, ts_to)
        ]

    def _order(self, table: DocTable, docs: list[tuple[int, float]], sort: str) -> list[tuple[int, float]]:
        ts = table.timestamp
        if sort == "-date":
            return sorted(docs, key=lambda d: (-ts.get(d[0], 0), -d[1]))
        if sort == "date":
            return sorted(docs, key=lambda d: (ts.get(d[0], 0), -d[1]))
        top = max((s for _, s in docs), default=1.0) or 1.0
        # Scores within 0.1 % of the best one's scale count as a tie: the newest wins.
        return sorted(docs, key=lambda d: (-round(d[1] / top, 3), -ts.get(d[0], 0)))

    def run(self, req: SearchRequest, paged: bool = True) -> tuple[Searcher, DocTable, ParsedQuery, list[tuple[int, float]], list[str]]:
        """Parse, match, filter and order: everything but the page (shared with the export)."""
        req.validate(paged=paged)
        searcher = self.searcher()
        table = self.table(searcher)
        parsed = parse_query(searcher.reader(), req.q, table.vocabulary.key)
        notes = list(parsed.notes)
        fallback = parsed.fallback_or()
        if fallback is None:
            docs = self._matches(searcher, table, parsed.query, req)
        else:
            docs, complete = self._by_coverage(searcher, table, parsed, fallback, req)
            if not complete and docs:
                parsed.mode = "or"
                notes.append("peu de documents contiennent tous les mots : résultats approchants")
        return searcher, table, parsed, self._order(table, docs, req.sort), notes

    def _by_coverage(self, searcher: Searcher, table: DocTable, parsed: ParsedQuery,
                     any_word: wq.Query, req: SearchRequest) -> tuple[list[tuple[int, float]], bool]:
        """AND first, OR when AND finds too little.

        Documents holding every word come first. When fewer than :data:`MIN_COMPLETE` do, the
        documents missing one word (or, for two words, any word) join them, their score scaled
        by the share of words they hold, like Lucene's coordination factor. Returns the matches
        and whether they all hold every word.
        """
        n = len(parsed.groups)
        scored = self._matches(searcher, table, any_word, req)
        if not scored:
            return [], True
        coverage: Counter[int] = Counter()
        for group in parsed.groups:
            coverage.update(set(searcher.docs_for_query(group)))
        complete = [(d, s) for d, s in scored if coverage[d] == n]
        if len(complete) >= MIN_COMPLETE:
            return complete, True
        floor = n - 1 if n >= 3 else (1 if not complete else n)
        kept = [(d, s * (coverage[d] / n) ** 2) for d, s in scored if coverage[d] >= floor]
        return kept, len(kept) == len(complete)

    def search(self, req: SearchRequest) -> SearchResult:
        t0 = time.perf_counter()
        searcher, table, parsed, docs, notes = self.run(req)
        start = (req.page - 1) * req.size
        hits = [self._hit(searcher, d, s, parsed.match) for d, s in docs[start : start + req.size]]
        suggestion = self._suggest(searcher, table, req, parsed)
        return SearchResult(
            total=len(docs),
            took_ms=round((time.perf_counter() - t0) * 1000, 2),
            page=req.page,
            size=req.size,
            hits=hits,
            facets=self._facets(table, [d for d, _ in docs]),
            suggestion=suggestion,
            mode=parsed.mode,
            notes=notes,
        )

    def export(self, req: SearchRequest) -> Iterator[dict[str, Any]]:
        """Every match in order, as plain records, produced lazily (no page limit)."""
        searcher, _, _, docs, _ = self.run(req, paged=False)
        reader = searcher.reader()
        for docnum, score in docs:
            yield self._record(reader.stored_fields(docnum), score)

    # --- hits --------------------------------------------------------------------------------

    @staticmethod
    def _record(f: dict[str, Any], score: float | None = None) -> dict[str, Any]:
        out = {
            "id": f["id"],
            "path": f.get("path", ""),
            "url": f.get("url", ""),
            "title": f.get("title", ""),
            "date": f.get("date_iso", ""),
            "tags": list(f.get("tags", [])),
            "categories": list(f.get("categories", [])),
            "collection": f.get("collection", ""),
            "published": bool(f.get("published", True)),
            "attachments": list(f.get("attachments", [])),
        }
        if score is not None:
            out["score"] = round(float(score), 4)
        return out

    def _hit(self, searcher: Searcher, docnum: int, score: float, match: MatchSet) -> Hit:
        f = searcher.stored_fields(docnum)
        text = "\n\n".join(x for x in (f.get("chapeau", ""), f.get("body", "")) if x)
        snip, _ = snippet(text, match)
        attachment_html = ""
        attachment = f.get("attachment", "")
        if attachment and match:
            att_snip, n = snippet(attachment, match)
            attachment_html = att_snip if n else ""
        rec = self._record(f, score)
        return Hit(
            id=rec["id"], path=rec["path"], url=rec["url"], title=rec["title"],
            title_html=highlight(rec["title"], match), snippet_html=snip, date=rec["date"],
            tags=rec["tags"], collection=rec["collection"], score=rec["score"],
            attachment_html=attachment_html, attachments=rec["attachments"],
        )

    def _facets(self, table: DocTable, docnums: list[int]) -> dict[str, list[FacetValue]]:
        tags: Counter[str] = Counter()
        collections: Counter[str] = Counter()
        years: Counter[str] = Counter()
        for d in docnums:
            tags.update(table.tag_keys.get(d, ()))
            collections[table.collection.get(d, "")] += 1
            years[table.year.get(d, "")] += 1
        voc = table.vocabulary
        return {
            "tag": [FacetValue(k, voc.label(k), c) for k, c in tags.most_common(30)],
            "collection": [FacetValue(k, k, c) for k, c in collections.most_common()],
            "year": [FacetValue(k, k, c) for k, c in sorted(years.items(), reverse=True)],
        }

    # --- did you mean ------------------------------------------------------------------------

    def _suggest(self, searcher: Searcher, table: DocTable, req: SearchRequest,
                 parsed: ParsedQuery) -> str | None:
        """A corrected query ("Essayez avec…") when a word is in no document at all and the
        closest frequent indexed word makes the query find something."""
        if parsed.mode not in ("box", "or") or not req.q.strip():
            return None
        reader = searcher.reader()
        typing = not req.q.endswith(" ")
        words = list(analyze_query(req.q.strip()))
        corrected = req.q
        changed = False
        for i, w in enumerate(words):
            if typing and i == len(words) - 1 and prefix_terms(reader, w.surface, 1):
                continue
            if any(reader.doc_frequency(f, t) for f in TEXT_FIELDS for t in w.terms):
                continue
            candidates = fuzzy_terms(reader, w.surface, 1)
            if not candidates:
                continue
            better = table.display.get(candidates[0], candidates[0])
            corrected = corrected.replace(w.text, better, 1)
            changed = True
        if not changed:
            return None
        alt = SearchRequest(**{**asdict(req), "q": corrected, "page": 1})
        _, _, _, docs, _ = self.run(alt)
        return corrected if docs else None

    # --- documents ---------------------------------------------------------------------------

    def document(self, doc_id: str) -> dict[str, Any] | None:
        searcher = self.searcher()
        docnum = self.table(searcher).ids.get(doc_id)
        if docnum is None:
            return None
        f = searcher.stored_fields(docnum)
        rec = self._record(f)
        rec.update(chapeau=f.get("chapeau", ""), body=f.get("body", ""),
                   attachment_text=f.get("attachment", ""))
        return rec

    def similar(self, doc_id: str, limit: int = 5) -> list[dict[str, Any]] | None:
        """More like this: the document's most distinctive analysed terms, searched in the others."""
        searcher = self.searcher()
        table = self.table(searcher)
        docnum = table.ids.get(doc_id)
        if docnum is None:
            return None
        f = searcher.stored_fields(docnum)
        text = " ".join([f.get("title", "")] * 2 + [f.get("chapeau", ""), f.get("body", "")])
        words = analyze(text)
        key_terms = searcher.key_terms_from_text(
            "body", " ".join(w.surface for w in words), numterms=25
        )
        alts = [
            wq.Term(fname, term, boost=fb * weight)
            for term, weight in key_terms
            if term not in STOP_WORDS
            for fname, fb in TEXT_FIELDS.items()
        ]
        alts += [wq.Term("tag", k, boost=3.0) for k in table.tag_keys.get(docnum, ())]
        if not alts:
            return []
        results = searcher.search(wq.Or(alts), limit=limit + 1)
        return [
            self._record(searcher.stored_fields(d), s)
            for s, d in results.top_n
            if d != docnum
        ][:limit]

    def autocomplete(self, text: str, limit: int = 8) -> list[dict[str, str]]:
        """Completions of the word being typed (frequent terms), then matching titles."""
        if len(text) > 200:
            raise QueryError("q: too long for autocomplete (limit 200 characters)")
        searcher = self.searcher()
        table = self.table(searcher)
        m = re.search(r"([\w’'\-.]+)$", text)
        if not text.strip() or not m:
            return []
        head, last = text[: m.start()], fold(m.group(1))
        out: list[dict[str, str]] = []
        seen: set[str] = set()
        for term in prefix_terms(searcher.reader(), last, limit=limit * 3):
            if term in STOP_WORDS or len(term) < 3 or term not in table.display:
                continue
            completion = head + table.display[term]
            if completion.lower() in seen:
                continue
            seen.add(completion.lower())
            out.append({"text": completion, "kind": "term"})
            if len(out) >= limit // 2 + 1:
                break
        titles = self.search(SearchRequest(q=text, size=limit))
        for h in titles.hits:
            if len(out) >= limit:
                break
            out.append({"text": h.title, "kind": "title", "id": h.id, "url": h.url})
        return out[:limit]

    def stats(self) -> dict[str, Any]:
        """Documents per year, per collection, per tag (first and last use), untagged share."""
        searcher = self.searcher()
        table = self.table(searcher)
        years: Counter[str] = Counter(table.year.values())
        collections: Counter[str] = Counter(table.collection.values())
        first: dict[str, float] = {}
        last: dict[str, float] = {}
        counts: Counter[str] = Counter()
        untagged = 0
        for d in table.docnums:
            keys = table.tag_keys.get(d, ())
            if not keys:
                untagged += 1
            ts = table.timestamp[d]
            for k in keys:
                counts[k] += 1
                first[k] = min(first.get(k, ts), ts)
                last[k] = max(last.get(k, ts), ts)

        def day(ts: float) -> str:
            return dt.datetime.fromtimestamp(ts, dt.UTC).date().isoformat()

        n = len(table.docnums)
        return {
            "documents": n,
            "per_year": dict(sorted(years.items())),
            "per_collection": dict(collections.most_common()),
            "tags": [
                {"tag": table.vocabulary.label(k), "key": k, "count": c,
                 "first": day(first[k]), "last": day(last[k]),
                 "variants": sorted(table.vocabulary.variants.get(k, {}))}
                for k, c in counts.most_common()
            ],
            "untagged": untagged,
            "untagged_share": round(untagged / n, 4) if n else 0.0,
        }
