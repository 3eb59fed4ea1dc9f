"""The search core that the command line and the HTTP service both call.

:class:`SearchIndex` owns one Whoosh index and, per index generation, one
:class:`~indexer.engine.Engine` (its searcher and its arrays): search-box queries are scored,
filtered, ordered and counted in numpy; archivist syntax runs through Whoosh's matchers; hits
are highlighted without spaCy.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from whoosh import query as wq
from whoosh.index import Index
from whoosh.reading import TermNotFound
from whoosh.searching import Searcher

from indexer.analysis import (
    STOP_WORDS,
    analyze_query,
    fold,
    light_words,
    load_in_background,
)
from indexer.engine import Engine, SegmentPostings
from indexer.export import public_path
from indexer.highlight import MatchSet, highlight, snippet, snippet_text
from indexer.query import (
    LOWERCASE_OPERATORS,
    Concept,
    ParsedQuery,
    QueryError,
    concept_note,
    lemma_table,
    parse_query,
    typo_distance,
)
from indexer.schema import LEMMA_FIELD, MARKS_FIELD, PHRASE_FIELDS, TEXT_FIELDS, open_index
from indexer.snapshot import open_reader, open_searcher
from indexer.synonyms import Thesaurus, ThesaurusSource
from indexer.vocabulary import Vocabulary, aliases_of_index, index_aliases_stamp

SORTS = ("relevance", "date", "-date")
MAX_PAGE_SIZE = 100
REFRESH_SECONDS = 0.25
"""How often a request checks whether an ingest committed a new index generation."""
MIN_COMPLETE = 5
"""Below this many documents holding every word, documents holding some of them are shown too."""
TAG_FACETS_SHOWN = 30
"""Tag facets shown at first on the pages; the others are behind "voir plus"."""
MAX_TAG_FACETS = 500
"""Tag facets returned at most (a bound on the response, far above the site's vocabulary)."""
KEY_TERMS = 25
"""Words of a document that "similar" searches for."""
KEY_TERMS_CACHED = 4096
"""Documents whose key terms (for "similar") a worker keeps (a few KB each)."""
MAX_WINDOW = 10_000
"""page × size may not reach past this: deep pages are for the export."""
WARM_TEXTS = 2_000
"""The newest documents whose words highlighting analyses ahead, after start-up (a hit's
words analysed for the first time were most of its snippet's cost)."""


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
    drafts: bool = False
    """Whether drafts (``published: false``) may be seen at all: only for readers and writers.
    Off, a draft is in no hit, total, facet, completion or suggestion (see :meth:`visible`)."""

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
    published: bool = True
    tags_canonical: list[str] = field(default_factory=list)
    """The tags as the vocabulary's labels (one spelling per tag, aliases merged)."""


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


@dataclass
class Matches:
    """Every match of a request: ``docs`` and ``scores`` side by side, ``order`` the positions
    into them in display order (possibly only the first page's worth)."""

    engine: Engine
    parsed: ParsedQuery
    docs: np.ndarray
    scores: np.ndarray
    order: np.ndarray
    notes: list[str]


def _day_start(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


class SearchIndex:
    """Searches one index; safe to share between threads.

    Every request works on one :class:`~indexer.engine.Engine`: the arrays *and* the Whoosh
    searcher of a single index generation, so document numbers always agree. When an ingest
    commits, the next request (checked at most every :data:`REFRESH_SECONDS`) builds the new
    generation's engine; requests already running finish on the old one.
    """

    def __init__(self, ix: Index, aliases: dict[str, list[str]] | None = None,
                 path: Path | None = None, preload: bool = True) -> None:
        self.ix = ix
        self.aliases = aliases
        self.path = path
        """The index's folder or published link: when the link is repointed to another index
        (``communiques publish``), the next check opens that one."""
        self._target = os.path.realpath(path) if path is not None else None
        self._lock = threading.Lock()
        self._segments = SegmentPostings()
        self.preload = preload
        """Read the longest posting lists ahead in a background thread after each new
        generation (off for one-shot command-line searches)."""
        self._engine: Engine | None = None
        self._vocabulary: Vocabulary | None = None
        self._public_vocabulary: Vocabulary | None = None
        self._aliases_stamp: tuple[int, int] | None = None
        self._base_vocabulary: Vocabulary | None = None
        self._key_terms_cache: OrderedDict[tuple[str, str], list[tuple[str, float]]] = OrderedDict()
        self._key_terms_lock = threading.Lock()
        """The aliases' tables, read once per alias file (each generation counts its own tags
        into a copy)."""
        self._checked = 0.0

    # --- state -------------------------------------------------------------------------------

    def engine(self) -> Engine:
        """The current generation's engine, rebuilt when an ingest has committed since."""
        engine = self._engine
        now = time.monotonic()
        if engine is not None and now - self._checked < REFRESH_SECONDS:
            return engine
        # While another thread checks or builds the next generation, requests go on with this
        # one (no stall at each commit of an ingest), unless this process has just written.
        if not self._lock.acquire(blocking=engine is None or self._checked == 0.0):
            return engine  # type: ignore[return-value]
        try:
            engine = self._engine
            self._checked = time.monotonic()
            swapped = False
            if self.path is not None:
                target = os.path.realpath(self.path)
                if target != self._target:
                    self.ix = open_index(Path(target))
                    self._target, swapped = target, True
            stamp = index_aliases_stamp(self._folder())
            if (swapped or engine is None or not engine.up_to_date()
                    or stamp != self._aliases_stamp):
                # A new searcher, not ``refresh()``: refresh reuses segment readers and so
                # keeps their old deletion sets (a deleted document would still be found).
                # Pinned: this generation's files stay readable whatever later commits delete
                # (see :mod:`indexer.snapshot`).
                engine = Engine(open_searcher(self.ix), self._segments)
                vocabulary = self._new_vocabulary(stamp)
                public = self._new_vocabulary(stamp)
                vocabulary.add_counts(engine.spellings)
                public.add_counts(engine.public_spellings)
                # Built before requests see the new engine, so none of them waits for it.
                engine.lexicon  # noqa: B018
                engine.display  # noqa: B018
                self._engine, self._vocabulary = engine, vocabulary
                self._public_vocabulary = public
                self._preload(engine)
        finally:
            self._lock.release()
        return engine

    def _folder(self) -> str | None:
        return getattr(self.ix.storage, "folder", None)

    def _new_vocabulary(self, stamp: tuple[int, int] | None) -> Vocabulary:
        """The vocabulary tags are read with: the aliases given, else those the index's
        documents were keyed with (recorded in the index folder, see
        :mod:`indexer.vocabulary`), so that filters and labels agree with the stored keys."""
        if self._base_vocabulary is None or stamp != self._aliases_stamp:
            self._base_vocabulary = Vocabulary(
                self.aliases if self.aliases is not None else aliases_of_index(self._folder()))
        self._aliases_stamp = stamp
        return self._base_vocabulary.empty_copy()

    def _preload(self, engine: Engine) -> None:
        """Read the longest posting lists in the background (see :meth:`Engine.preload`)."""
        if not self.preload:
            engine.preloaded.set()
            return
        threading.Thread(
            target=engine.preload,
            args=(partial(open_reader, self.ix), lambda: self._engine is engine, WARM_TEXTS),
            name="postings-preload", daemon=True,
        ).start()

    def changed(self) -> None:
        """Say that this process just committed: the next request looks for the new generation
        at once instead of waiting for the periodic check (a write is visible to its writer)."""
        self._checked = 0.0

    def searcher(self) -> Searcher:
        """The current generation's Whoosh searcher (use under ``engine().lock``)."""
        return self.engine().searcher

    @property
    def vocabulary(self) -> Vocabulary:
        """The tag vocabulary of every indexed document (drafts' spellings included)."""
        self.engine()
        assert self._vocabulary is not None
        return self._vocabulary

    def vocabulary_for(self, drafts: bool) -> Vocabulary:
        """The vocabulary a caller may see: without drafts, spellings and counts come from
        published documents only (a spelling used by a draft alone would betray it)."""
        self.engine()
        voc = self._vocabulary if drafts else self._public_vocabulary
        assert voc is not None
        return voc

    @staticmethod
    def visible(engine: Engine, drafts: bool) -> np.ndarray:
        """The documents a caller may see: every live one with ``drafts``, else the published.

        Every read path starts from this mask, so that an anonymous caller can neither see a
        draft nor count one (totals, facets, statistics, completions)."""
        return engine.live.copy() if drafts else engine.live & engine.published

    def warm(self, wait_for_model: bool = True) -> None:
        """Build the arrays, the lexicon and the completion forms before the first visitor
        needs them, and read the longest posting lists and, on an index without the lemma
        table, load spaCy (or, with ``wait_for_model=False``, start both in the background)."""
        if self.needs_spacy():
            thread = load_in_background()
            if wait_for_model:
                thread.join()
        self.search(SearchRequest(q="numérique"))
        engine = self.engine()
        engine.lexicon  # noqa: B018 - built on first access
        engine.display  # noqa: B018
        if wait_for_model:
            engine.preloaded.wait()

    def needs_spacy(self, engine: Engine | None = None) -> bool:
        """Whether queries need spaCy: only on an index written before the lemma table (see
        :func:`~indexer.analysis.analyze_query`). A worker over an index with the table never
        loads it: spaCy's French model is ~230 MB of each worker's memory and seconds of its
        start, for nothing a search, a completion or a highlight uses.

        Read from the current generation's pinned reader, never from ``ix.schema``: that reads
        the newest table of contents from disk, which a writer may delete meanwhile."""
        return LEMMA_FIELD not in (engine or self.engine()).searcher.schema

    def warmed(self) -> bool:
        """True once the current generation's longest posting lists are in memory."""
        engine = self._engine
        return engine is not None and engine.preloaded.is_set()

    # --- search ------------------------------------------------------------------------------

    def _mask(self, engine: Engine, req: SearchRequest) -> np.ndarray:
        voc = self.vocabulary
        mask = engine.filter_mask(
            tag_keys=[voc.key(t) for t in req.tags if t.strip()],
            collection=req.collection,
            category_key=voc.key(req.category) if req.category else None,
            year=req.year,
            published=req.published,
            ts_from=_day_start(req.date_from) if req.date_from else None,
            ts_to=_day_start(req.date_to) + 86_400 if req.date_to else None,  # 9999-12-31 too
        )
        return mask if req.drafts else mask & engine.published

    def thesaurus(self) -> Thesaurus:
        """Synonyms and the index's acronyms, reloaded when either file changes."""
        folder = getattr(self.ix.storage, "folder", None)
        folder = Path(folder) if folder else None
        source = _THESAURI.get(self)
        if source is None or source.index_folder != folder:
            source = ThesaurusSource(folder)
            _THESAURI[self] = source
        return source.get()

    def _box(self, engine: Engine, parsed: ParsedQuery, mask: np.ndarray,
             notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """AND first, relaxed when AND finds too little.

        Each word's score is its own match or, for a run of words another reading covers
        (synonym, acronym, compound), its best alternative's (see :func:`_concept_scores`).
        Documents holding every word come first. When fewer than :data:`MIN_COMPLETE` do,
        documents holding some of the words join them, their score scaled by the square of
        the share of the query's *importance* they hold (a word's importance is its inverse
        document frequency, so the rare words of a query count for more than the frequent
        ones): Lucene's coordination factor, weighted by idf.
        """
        n = len(parsed.groups)
        per_word = [engine.score_group(g.alternatives, g.fields) for g in parsed.groups]
        used = []
        for concept in parsed.concepts:
            alt = _concept_scores(engine, concept, mask)
            if alt is None:
                continue
            used.append(concept)
            # A compound is the words typed; another reading weighs as one word, whatever
            # the number of words it stands for.
            share = alt if concept.source == "compound" else alt / (concept.end - concept.start)
            for k in range(concept.start, concept.end):
                per_word[k] = np.maximum(per_word[k], share)
        if used:
            note = concept_note(used)
            if note:
                notes.append(note)
        # Documents holding every word, found first with two passes over the documents a
        # word (most queries stop here); the relaxed scores below take six.
        complete_mask = mask.copy()
        for scores in per_word:
            complete_mask &= scores > 0
        complete = np.flatnonzero(complete_mask)
        if len(complete) >= MIN_COMPLETE or n == 1:
            total = per_word[0][complete]
            for scores in per_word[1:]:
                total = total + scores[complete]
            return complete, total
        total = np.zeros(engine.n, dtype=np.float32)
        coverage = np.zeros(engine.n, dtype=np.int32)
        held = np.zeros(engine.n, dtype=np.float32)
        whole = np.float32(0)
        live = max(1, int(engine.live.sum()))
        for scores in per_word:
            hit = scores > 0
            importance = np.float32(np.log1p(live / (1 + np.count_nonzero(hit))))
            total += scores
            coverage += hit
            held += hit * importance
            whole += importance
        coverage[~mask] = 0
        share = held / max(whole, np.float32(1e-6))
        kept = np.flatnonzero(coverage > 0)
        if len(kept) > len(complete):
            parsed.mode = "or"
            notes.append("peu de documents contiennent tous les mots : résultats approchants")
        return kept, total[kept] * share[kept].astype(np.float32) ** 2

    def _advanced(self, engine: Engine, q: wq.Query,
                  mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        try:
            matched, scores = engine.evaluate(q)
        except (TermNotFound, ValueError, TypeError) as exc:
            raise QueryError(f"q: this query cannot be run ({exc})") from None
        docs = np.flatnonzero(matched & mask)
        return docs, scores[docs]

    def run(self, req: SearchRequest, paged: bool = True, limit: int | None = None,
            fields: dict[str, float] | None = None) -> Matches:
        """Parse, match, filter and order: everything but the page (shared with the export).

        With ``limit``, only the first ``limit`` matches are put in order (a page needs no more).
        With ``fields``, search-box words are looked for in those fields only.
        """
        req.validate(paged=paged)
        engine = self.engine()
        parsed = parse_query(engine.lexicon, req.q, self.vocabulary.key, self.thesaurus())
        if fields is not None:
            alternatives = [g for c in parsed.concepts for a in c.alternatives for g in a.groups]
            for group in [*parsed.groups, *alternatives]:
                group.fields = dict(fields)
        notes = list(parsed.notes)
        mask = self._mask(engine, req)
        if parsed.mode == "all":
            docs = np.flatnonzero(mask)
            scores = np.zeros(len(docs), dtype=np.float32)
        elif parsed.mode == "box" and parsed.groups:
            docs, scores = self._box(engine, parsed, mask, notes)
        elif parsed.query is not None:
            docs, scores = self._advanced(engine, parsed.query, mask)
        else:
            docs, scores = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        order = engine.order(np.arange(len(docs)), scores, docs, req.sort, limit)
        return Matches(engine, parsed, docs, scores, order, notes)

    def search(self, req: SearchRequest) -> SearchResult:
        t0 = time.perf_counter()
        start = (req.page - 1) * req.size
        m = self.run(req, limit=start + req.size)
        page = m.order[start : start + req.size].tolist()
        hits = [
            self._hit(m.engine, int(m.docs[i]), float(m.scores[i]), m.parsed.match) for i in page
        ]
        return SearchResult(
            total=len(m.docs),
            took_ms=round((time.perf_counter() - t0) * 1000, 2),
            page=req.page,
            size=req.size,
            hits=hits,
            facets=self._facets(m.engine, m.docs, req.drafts),
            suggestion=self._suggest(m.engine, req, m.parsed),
            mode=m.parsed.mode,
            notes=m.notes,
        )

    def export(self, req: SearchRequest) -> Iterator[dict[str, Any]]:
        """Every match in order, as plain records, produced lazily (no page limit).

        The query is read and run here, at once: a refused query raises before the HTTP
        response starts (a 400), not in the middle of a streamed 200.
        """
        m = self.run(req, paged=False)
        return (
            self._record(m.engine.stored_fields(int(m.docs[i])), float(m.scores[i]))
            for i in m.order.tolist()
        )

    # --- hits --------------------------------------------------------------------------------

    def _record(self, f: dict[str, Any], score: float | None = None) -> dict[str, Any]:
        """A document as every output shows it: ``tags`` as the editors wrote them and
        ``tags_canonical`` as the vocabulary's labels; the source path relative to the corpus
        root (never the server's path)."""
        raw_tags = list(f.get("tags", []))
        voc = self.vocabulary
        collection = f.get("collection", "")
        out = {
            "id": f["id"],
            "path": public_path(f.get("path", ""), collection),
            "url": f.get("url", ""),
            "title": f.get("title", ""),
            "date": f.get("date_iso", ""),
            "tags": raw_tags,
            "tags_canonical": [voc.label(k) for k in voc.keys(raw_tags)],
            "categories": list(f.get("categories", [])),
            "collection": collection,
            "published": bool(f.get("published", True)),
            "attachments": list(f.get("attachments", [])),
            "attachment_urls": [a.get("url") or a.get("path", "")
                                for a in f.get("attachments", [])],
        }
        if score is not None:
            out["score"] = round(float(score), 4)
        return out

    def _hit(self, engine: Engine, docnum: int, score: float, match: MatchSet) -> Hit:
        f = engine.hit_fields(docnum)
        text = snippet_text(f.get("chapeau", ""), f.get("body", ""))
        marks = f.get(MARKS_FIELD)
        hashes = match.hashes(engine.lexicon.starting) if marks is not None and match else None
        snip, _ = snippet(text, match, marks=marks, hashes=hashes)
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
            published=rec["published"],
            tags_canonical=rec["tags_canonical"],
        )

    def _facets(self, engine: Engine, docnums: np.ndarray,
                drafts: bool = False) -> dict[str, list[FacetValue]]:
        """Facet counts; every tag of the matches (the pages show the first
        :data:`TAG_FACETS_SHOWN` and the rest behind "voir plus"), as its canonical label."""
        raw = engine.facets(docnums, tag_limit=MAX_TAG_FACETS)
        voc = self.vocabulary_for(drafts)
        return {
            "tag": [FacetValue(k, voc.label(k), c) for k, c in raw["tag"]],
            "collection": [FacetValue(k, k, c) for k, c in raw["collection"]],
            "year": [FacetValue(k, year_label(k), c) for k, c in raw["year"]],
        }

    # --- did you mean ------------------------------------------------------------------------

    def _suggest(self, engine: Engine, req: SearchRequest, parsed: ParsedQuery) -> str | None:
        """A corrected query ("Essayez avec…") when a word is in no document at all and the
        closest frequent indexed word makes the query find something."""
        if parsed.mode not in ("box", "or") or not req.q.strip():
            return None
        lexicon = engine.lexicon
        text = parsed.read_as if parsed.read_as is not None else req.q
        typing = parsed.read_as is None and not req.q.endswith(" ")
        words = list(analyze_query(text.strip(), lemma_table(lexicon)))
        corrected = text
        changed = False
        for i, w in enumerate(words):
            if typing and i == len(words) - 1 and lexicon.prefix(w.surface, 1):
                continue
            if w.text.lower() in LOWERCASE_OPERATORS:
                continue  # "cloud and nubo" is no typo for "cloud an nubo"
            if any(lexicon.doc_frequency(t) for t in w.terms):
                continue
            candidates = lexicon.fuzzy(w.surface, max(1, typo_distance(w.surface)), 1)
            if not candidates:
                continue
            better = engine.display.get(candidates[0], candidates[0])
            corrected = corrected.replace(w.text, better, 1)
            changed = True
        if not changed:
            return None
        alt = SearchRequest(**{**asdict(req), "q": corrected, "page": 1, "size": 1})
        return corrected if len(self.run(alt, limit=1).docs) else None

    # --- documents ---------------------------------------------------------------------------

    def document(self, doc_id: str, drafts: bool = False) -> dict[str, Any] | None:
        """One document's record and texts; None when unknown, or a draft and not ``drafts``
        (the same answer: a caller who may not see drafts cannot tell one exists)."""
        engine = self.engine()
        docnum = engine.id_to_docnum.get(doc_id)
        if docnum is None or not (drafts or engine.published[docnum]):
            return None
        f = engine.stored_fields(docnum)
        rec = self._record(f)
        rec.update(chapeau=f.get("chapeau", ""), body=f.get("body", ""),
                   attachment_text=f.get("attachment", ""))
        return rec

    def source_file(self, doc_id: str, drafts: bool = False) -> str | None:
        """The server's path of a document's markdown file (for rendering its page), never
        shown to a caller; None when unknown or hidden from this caller."""
        engine = self.engine()
        docnum = engine.id_to_docnum.get(doc_id)
        if docnum is None or not (drafts or engine.published[docnum]):
            return None
        path = engine.stored_fields(docnum).get("path", "")
        return path[4:] if path.startswith("api:") else path

    def similar(self, doc_id: str, limit: int = 5,
                drafts: bool = False) -> list[dict[str, Any]] | None:
        """More like this: the document's most distinctive analysed terms, searched in the
        others the caller may see."""
        engine = self.engine()
        docnum = engine.id_to_docnum.get(doc_id)
        if docnum is None or not (drafts or engine.published[docnum]):
            return None
        f = engine.stored_fields(docnum)
        key_terms = self._key_terms(engine, doc_id, f)
        scores = np.zeros(engine.n, dtype=np.float32)
        for term, weight in key_terms:
            if term not in STOP_WORDS:
                scores += engine.score_group([(term, float(weight))])
        own_tags = set(self.vocabulary.keys(f.get("tags", [])))
        for key in own_tags:
            code = engine.tag_code.get(key)
            if code is not None:
                scores += engine.tags[:, code].toarray().ravel().astype(np.float32) * 3.0
        scores[docnum] = 0
        scores[~self.visible(engine, drafts)] = 0
        best = np.argsort(-scores, kind="stable")[:limit]
        return [
            self._record(engine.stored_fields(int(d)), float(scores[d]))
            for d in best
            if scores[d] > 0
        ]

    def _key_terms(self, engine: Engine, doc_id: str, f: dict) -> list[tuple[str, float]]:
        """The document's most distinctive words, weighted as Whoosh's key terms (the Bo1
        model: frequent in the document, rare in the index), from its folded surface forms
        (the light analysis: no spaCy) and the lexicon's document frequencies (no lookup per
        segment). Kept per document version: they hardly move when other documents are
        written, while writes make new generations and pages ask for them at each visit."""
        key = (doc_id, f.get("hash") or f.get("title", ""))
        with self._key_terms_lock:
            found = self._key_terms_cache.get(key)
            if found is not None:
                self._key_terms_cache.move_to_end(key)
                return found
        text = " ".join([f.get("title", "")] * 2 + [f.get("chapeau", ""), f.get("body", "")])
        counts: dict[str, int] = {}
        for w in light_words(text):
            if w.surface not in STOP_WORDS:
                counts[w.surface] = counts.get(w.surface, 0) + 1
        lexicon, n = engine.lexicon, max(1, engine.doc_count)
        scored: list[tuple[float, str]] = []
        for term, tf in counts.items():
            df = lexicon.doc_frequency(term)
            if df:
                share = df / n
                scored.append((tf * math.log2((1 + share) / share) + math.log2(1 + share), term))
        scored.sort(key=lambda x: (-x[0], x[1]))
        top = scored[0][0] if scored else 1.0
        found = [(term, score / top) for score, term in scored[:KEY_TERMS]]
        with self._key_terms_lock:
            self._key_terms_cache[key] = found
            while len(self._key_terms_cache) > KEY_TERMS_CACHED:
                self._key_terms_cache.popitem(last=False)
        return found

    def autocomplete(self, text: str, limit: int = 8,
                     drafts: bool = False) -> list[dict[str, str]]:
        """Completions of the word being typed (frequent words), then matching titles; without
        ``drafts``, only words and titles of published documents."""
        if len(text) > 200:
            raise QueryError("q: too long for autocomplete (limit 200 characters)")
        m = re.search(r"([\w’'\-.]+)$", text)
        if not text.strip() or not m:
            return []
        engine = self.engine()
        head, last = text[: m.start()], fold(m.group(1))
        out: list[dict[str, str]] = []
        seen: set[str] = set()
        display = engine.display
        shown = self.visible(engine, drafts)
        for term in engine.lexicon.prefix(last, limit * 3):
            if term in STOP_WORDS or len(term) < 3 or term not in display:
                continue
            if not drafts and not self._in_any(engine, term, shown):
                continue  # a word found in drafts only
            completion = head + display[term]
            if completion.lower() in seen:
                continue
            seen.add(completion.lower())
            out.append({"text": completion, "kind": "term"})
            if len(out) >= limit // 2 + 1:
                break
        # Titles holding the words typed, in the search's order, without what a dropdown does
        # not show (bodies, snippets, facets, "did you mean").
        m = self.run(SearchRequest(q=text, size=limit, drafts=drafts), limit=limit,
                     fields={"title": 1.0})
        for i in m.order[: limit - len(out)].tolist():
            docnum = int(m.docs[i])
            url = m.engine.hit_fields(docnum).get("url", "")  # kept: asked again next keystroke
            out.append({"text": m.engine.titles[docnum], "kind": "title",
                        "id": m.engine.ids[docnum], "url": url})
        return out[:limit]

    @staticmethod
    def _in_any(engine: Engine, term: str, mask: np.ndarray) -> bool:
        """Whether ``term`` occurs in any document of ``mask`` (in any analysed field)."""
        for fname in engine.lengths:
            p = engine.postings(fname, term)
            if p is not None and mask[p.docnums].any():
                return True
        return False

    def stats(self, drafts: bool = False) -> dict[str, Any]:
        """Documents per year, per collection, per tag (first and last use), untagged share,
        over the documents the caller may see."""
        engine = self.engine()
        shown = self.visible(engine, drafts)
        live = np.flatnonzero(shown)
        voc = self.vocabulary_for(drafts)
        tag_matrix = engine.tags.tocsc()
        tags = []
        for code, key in enumerate(engine.tag_names):
            docs = tag_matrix.indices[tag_matrix.indptr[code] : tag_matrix.indptr[code + 1]]
            docs = docs[shown[docs]]
            if not len(docs):
                continue
            ts = engine.timestamp[docs]
            ts = ts[~np.isnan(ts)]  # documents without a date
            tags.append({
                "tag": voc.label(key), "key": key, "count": len(docs),
                "first": _day(float(ts.min())) if len(ts) else "",
                "last": _day(float(ts.max())) if len(ts) else "",
                "variants": sorted(voc.variants.get(key, {})),
            })
        tags.sort(key=lambda t: (-t["count"], t["tag"]))
        tagged = np.asarray(engine.tags.sum(axis=1)).ravel() > 0
        untagged = int((~tagged[live]).sum())
        years = np.bincount(engine.year[live]) if len(live) else np.zeros(0, dtype=np.int64)
        colls = np.bincount(engine.collection[live], minlength=len(engine.collection_names))
        n = len(live)
        return {
            "documents": n,
            "per_year": {year_label(str(y)): int(years[y])  # "sans date" last
                         for y in [*range(1, len(years)), 0] if len(years) and years[y]},
            "per_collection": dict(sorted(
                ((engine.collection_names[i], int(c)) for i, c in enumerate(colls) if c),
                key=lambda x: -x[1])),
            "tags": tags,
            "untagged": untagged,
            "untagged_share": round(untagged / n, 4) if n else 0.0,
        }


UNDATED = "sans date"
"""The year facet's label (its value is ``0``, the ``year`` filter for documents without a
date) and the statistics' key for documents without a date."""


def year_label(value: str) -> str:
    return UNDATED if value == "0" else value


_THESAURI: weakref.WeakKeyDictionary[SearchIndex, ThesaurusSource] = weakref.WeakKeyDictionary()
_PHRASES: weakref.WeakKeyDictionary[Engine, dict] = weakref.WeakKeyDictionary()
"""Per index generation and phrase, the documents already checked and those holding it: the
synonym file's phrases recur from query to query, and reading positions is the costly part."""
_PHRASES_LOCK = threading.Lock()
MAX_PHRASES = 512
PHRASE_CANDIDATES = 20
"""Documents whose positions are read for one phrase in one query, best first: reading
positions costs ~0.1 ms a document in Whoosh, and a common phrase is in thousands."""


def _phrase_mask(engine: Engine, phrase: tuple[tuple[str, ...], ...], fields: dict[str, float],
                 candidates: np.ndarray) -> np.ndarray:
    """Which of ``candidates`` (document numbers, best first) hold the phrase in one of the
    fields. Only the first :data:`PHRASE_CANDIDATES` are looked at; the others do not match."""
    key = (phrase, tuple(fields))
    with _PHRASES_LOCK:
        cache = _PHRASES.setdefault(engine, {})
        if key not in cache:
            if len(cache) >= MAX_PHRASES:
                cache.clear()
            cache[key] = (np.zeros(engine.n, dtype=bool), np.zeros(engine.n, dtype=bool))
        checked, holds = cache[key]
    todo = sorted(int(d) for d in candidates[:PHRASE_CANDIDATES] if not checked[d])
    if todo:
        found = np.zeros(engine.n, dtype=bool)
        with engine.lock:
            for words in phrase:
                for f in [f for f in fields if f in PHRASE_FIELDS] or list(fields):
                    # Only the candidates holding every word in this field: building a
                    # matcher costs milliseconds, and most fields hold none of them.
                    here = np.zeros(engine.n, dtype=bool)
                    here[todo] = True
                    for w in words:
                        p = engine.postings(f, w)
                        held = np.zeros(engine.n, dtype=bool)
                        if p is not None:
                            held[p.docnums] = True
                        here &= held
                    field_todo = [d for d in todo if here[d] and not found[d]]
                    if field_todo:
                        found[engine.phrase_docs(f, words, field_todo)] = True
        with _PHRASES_LOCK:
            holds[todo] = found[todo]
            checked[todo] = True
    out = np.zeros(engine.n, dtype=bool)
    out[candidates[:PHRASE_CANDIDATES]] = holds[candidates[:PHRASE_CANDIDATES]]
    return out


def _concept_scores(engine: Engine, concept: Concept, mask: np.ndarray) -> np.ndarray | None:
    """Per document, what each word of the concept's run scores through its best
    alternative: the mean score of the alternative's words (all required, standing together
    when several), times the concept's weight, so that "IA" read as "intelligence
    artificielle" weighs one word, not two. None when no alternative matches."""
    best: np.ndarray | None = None
    for alt in concept.alternatives:
        fields = alt.groups[0].fields if alt.groups else TEXT_FIELDS
        scores = [engine.score_group(g.alternatives, g.fields) for g in alt.groups]
        if not scores:
            continue
        found = np.logical_and.reduce([s > 0 for s in scores]) & mask
        if not found.any():
            continue
        mean = np.sum(scores, axis=0, dtype=np.float32) / np.float32(len(scores))
        if alt.phrase:
            docs = np.flatnonzero(found)
            if len(docs) > PHRASE_CANDIDATES:
                top = np.argpartition(-mean[docs], PHRASE_CANDIDATES - 1)[:PHRASE_CANDIDATES]
                docs = docs[top]
            docs = docs[np.argsort(-mean[docs], kind="stable")]
            found = _phrase_mask(engine, alt.phrase, fields, docs)
            if not found.any():
                continue
        total = mean * np.float32(concept.weight) * found
        best = total if best is None else np.maximum(best, total)
    return best


def _day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).date().isoformat()
