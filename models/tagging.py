"""The tagging service: what the HTTP routes, the Annif-compatible routes and the command line
share beside their own protocol.

* the model, loaded once per process and reloaded when its file changes (one ``stat`` per call);
* suggestions for a draft or for a stored document, as JSON-ready dictionaries;
* the vocabulary with each tag's usage count and two example documents;
* the untagged documents with suggestions, cached per index generation and model;
* editors' feedback (accepted, rejected, added by hand) into the log training learns from.

Visibility: drafts (``published: false``) are never shown to callers who may not see them. Every
method reading the index takes ``drafts``; documents are read through
:meth:`indexer.search.SearchIndex.document` and the per-generation arrays of
:meth:`~indexer.search.SearchIndex.engine` (``published`` masks what a caller may see), and a
similar document that is a draft is left out of the reasons shown to such a caller.
"""

from __future__ import annotations

import datetime as dt
import inspect
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.feedback import FeedbackError, FeedbackFull, FeedbackStore  # noqa: F401
from models.store import ModelError, ModelInfo, load_model
from models.suggester import Draft, Suggestion, TagSuggester
from models.vocabulary import tag_key

MAX_K = 20
EXAMPLES = 2
"""Example documents shown for each tag of the vocabulary."""
PROJECT_ID = "communiques-fr"
"""The one project of the Annif-compatible API: this model, in French."""


class TaggingError(Exception):
    """A request the service cannot answer; ``status`` is the HTTP status it maps to."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class NoModel(TaggingError):
    status = 503


class NotFound(TaggingError):
    status = 404


def tag_uri(key: str) -> str:
    """A tag's stable URI: the site's tag address (``COMMUNIQUES_SITE_URL``), else a ``tag:`` URI.

    Built from the canonical key, which does not change when the most used spelling does."""
    slug = re.sub(r"\s+", "-", key.strip())
    site = os.environ.get("COMMUNIQUES_SITE_URL", "").rstrip("/")
    return f"{site}/tags/{slug}/" if site else f"tag:communiques,2026:{slug}"


def _accepts_drafts(method: Any) -> bool:  # noqa: ANN401 - a bound method
    try:
        return "drafts" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


@dataclass
class Loaded:
    stamp: tuple[int, int, int]
    model: TagSuggester
    info: ModelInfo


@dataclass
class _TagView:
    """What the index says about tags, for one generation and one visibility."""

    generation: int
    counts: dict[str, int]
    examples: dict[str, list[dict[str, str]]]
    untagged: list[str]


class TaggingService:
    """One per process (per worker): ``search`` is the worker's
    :class:`~indexer.search.SearchIndex`, the paths come from the settings."""

    def __init__(self, search: Any, model_path: Path, feedback_path: Path,  # noqa: ANN401
                 feedback_max_bytes: int = 20 * 1024 * 1024) -> None:
        self.search = search
        self.model_path = Path(model_path)
        self.feedback_path = Path(feedback_path)
        self.feedback_max_bytes = feedback_max_bytes
        self._loaded: Loaded | None = None
        self._lock = threading.Lock()
        self._cache: dict[tuple[Any, ...], Any] = {}

    # --- the model ----------------------------------------------------------------------------

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int, int] | None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def current(self) -> Loaded | None:
        """The loaded model, reloaded when its file changed; None when there is no file.
        Raises :class:`ModelError` for an unusable file (retried on the next call)."""
        stamp = self._stamp(self.model_path)
        if stamp is None:
            return None
        loaded = self._loaded
        if loaded is not None and loaded.stamp == stamp:
            return loaded
        with self._lock:
            stamp = self._stamp(self.model_path)
            if stamp is None:
                return None
            if self._loaded is None or self._loaded.stamp != stamp:
                model, info = load_model(self.model_path)
                if model.analysis == "full":  # drafts read by spaCy: loaded before the first
                    from indexer.analysis import load_in_background

                    load_in_background()
                self._loaded = Loaded(stamp, model, info)
            return self._loaded

    def require(self) -> Loaded:
        """The model, or :class:`NoModel` saying what to run."""
        path = self.model_path
        try:
            loaded = self.current()
        except ModelError as exc:
            # The server's own paths stay out of responses: the file is named, not its folder.
            detail = str(exc).replace(str(path), path.name)
            raise NoModel(f"tag model unusable: {detail}") from None
        if loaded is None:
            raise NoModel(f"no tag model ({path.name}): run "
                          "`communiques train --corpus PATH --model FILE`")
        return loaded

    @staticmethod
    def model_summary(loaded: Loaded) -> dict[str, Any]:
        return loaded.info.summary()

    # --- the index, as a caller may see it ----------------------------------------------------

    def document(self, doc_id: str, drafts: bool) -> dict[str, Any] | None:
        """A stored document, or None when absent or a draft the caller may not see."""
        method = self.search.document
        if _accepts_drafts(method):
            return method(doc_id, drafts=drafts)
        record = method(doc_id)
        if record is not None and not drafts and record.get("published") is False:
            return None
        return record

    def _view(self, drafts: bool) -> _TagView:
        engine = self.search.engine()
        key = ("view", engine.generation, drafts)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        # A new array: the engine's own columns are shared by every request of the worker.
        visible = self.search.visible(engine, drafts)
        tags = engine.tags.tocsr()
        per_tag = np.asarray(tags[visible].sum(axis=0)).ravel()
        counts = {name: int(per_tag[i]) for i, name in enumerate(engine.tag_names) if per_tag[i]}
        newest = np.argsort(-engine.timestamp, kind="stable")
        examples: dict[str, list[dict[str, str]]] = {}
        csc = tags.tocsc()
        for i, name in enumerate(engine.tag_names):
            rows = csc.indices[csc.indptr[i]:csc.indptr[i + 1]]
            rows = [r for r in rows if visible[r]]
            rows.sort(key=lambda r: -engine.timestamp[r])
            examples[name] = [{"id": engine.ids[r], "title": engine.titles[r],
                               "url": f"/documents/{engine.ids[r]}"} for r in rows[:EXAMPLES]]
        tagged = np.asarray(tags.sum(axis=1)).ravel() > 0
        untagged = [engine.ids[d] for d in newest if visible[d] and not tagged[d]]
        view = _TagView(engine.generation, counts, examples, untagged)
        for k in [k for k in self._cache if k[0] == "view"]:
            self._cache.pop(k, None)
        self._cache[key] = view
        return view

    # --- suggestions --------------------------------------------------------------------------

    @staticmethod
    def _out(suggestions: Iterable[Suggestion], drafts: bool) -> list[dict[str, Any]]:
        out = []
        for s in suggestions:
            d = s.to_dict(drafts=drafts)
            d["uri"] = tag_uri(s.key)
            out.append(d)
        return out

    def suggest(self, title: str, text: str, k: int = 5, drafts: bool = False,
                ) -> dict[str, Any]:
        """The ``k`` best tags for a draft, ranked, with ``confident`` and reasons."""
        loaded = self.require()
        t0 = time.perf_counter()
        suggestions = loaded.model.suggest(title, text, k)
        return {"tags": self._out(suggestions, drafts), "model": self.model_summary(loaded),
                "took_ms": round((time.perf_counter() - t0) * 1000, 2)}

    def suggest_texts(self, texts: list[str], limit: int, threshold: float,
                      ) -> list[list[Suggestion]]:
        """Plain texts (first line as title when it is short), for the Annif-compatible API."""
        loaded = self.require()
        drafts = []
        for text in texts:
            first, _, rest = text.strip().partition("\n")
            if rest and len(first) <= 300:
                drafts.append(Draft(first.strip(), rest.strip()))
            else:
                drafts.append(Draft("", text.strip()))
        return loaded.model.suggest_many(drafts, k=limit, min_score=threshold)

    def suggest_document(self, doc_id: str, k: int = 5, drafts: bool = False) -> dict[str, Any]:
        record = self.document(doc_id, drafts)
        if record is None:
            raise NotFound(f"no document with id {doc_id!r}")
        loaded = self.require()
        t0 = time.perf_counter()
        (suggestions,) = loaded.model.suggest_many([Draft.from_document(record)], k=k)
        return {"id": doc_id, "title": record.get("title", ""),
                "existing": list(record.get("tags", [])),
                "tags": self._out(suggestions, drafts), "model": self.model_summary(loaded),
                "took_ms": round((time.perf_counter() - t0) * 1000, 2)}

    def untagged(self, limit: int = 20, k: int = 5, drafts: bool = False) -> dict[str, Any]:
        """Documents without tags, newest first, with suggestions; cached per index
        generation, model and visibility (one spaCy pass per document)."""
        loaded = self.require()
        view = self._view(drafts)
        key = ("untagged", view.generation, loaded.info.model_id, limit, k, drafts)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        records = [r for r in (self.document(i, drafts) for i in view.untagged[:limit]) if r]
        suggestions = loaded.model.suggest_many([Draft.from_document(r) for r in records], k=k)
        out = {
            "total": len(view.untagged),
            "documents": [
                {"id": r["id"], "title": r.get("title", ""), "url": r.get("url", ""),
                 "date": r.get("date", ""), "collection": r.get("collection", ""),
                 "tags": self._out(s, drafts)}
                for r, s in zip(records, suggestions, strict=True)
            ],
            "model": self.model_summary(loaded),
        }
        for old in [c for c in self._cache if c[0] == "untagged"]:
            self._cache.pop(old, None)
        self._cache[key] = out
        return out

    # --- the vocabulary -----------------------------------------------------------------------

    def vocabulary(self, drafts: bool = False) -> dict[str, Any]:
        """Every tag of the documents a caller may see and of the alias file, most used first,
        with two example documents; ``suggestable`` says whether the model may suggest it."""
        view = self._view(drafts)
        voc = self.search.vocabulary
        aliases: dict[str, list[str]] = {}
        for label, alias_list in voc.aliases.items():
            aliases.setdefault(voc.key(label), []).extend([label, *alias_list])
        try:
            loaded = self.current()
        except ModelError:
            loaded = None
        candidates = set(loaded.model.candidates_) if loaded is not None else None
        rows = []
        for e in voc.entries():
            key = str(e["key"])
            count = view.counts.get(key, 0)
            if count == 0 and key not in aliases:
                continue  # only in drafts this caller may not see
            rows.append({
                "key": key, "label": str(e["label"]), "uri": tag_uri(key), "count": count,
                "variants": list(e["variants"]), "aliases": sorted(set(aliases.get(key, []))),
                "examples": view.examples.get(key, []),
                "suggestable": None if candidates is None else key in candidates,
            })
        rows.sort(key=lambda r: (-r["count"], r["label"].lower()))
        return {"total": len(rows), "tags": rows}

    # --- feedback -----------------------------------------------------------------------------

    def feedback(self, accepted: list[str], rejected: list[str], added: list[str] | None = None,
                 doc_id: str | None = None, title: str = "", text: str = "",
                 drafts: bool = True, source: str = "editor") -> dict[str, Any]:
        """Record an editor's choices. ``added`` are tags the editor gave by hand (from the
        vocabulary or new): learnt from like accepted ones, counted apart."""
        added = list(added or [])
        if doc_id is not None and not (title.strip() or text.strip()) \
                and self.document(doc_id, drafts) is None:
            raise NotFound(f"no document with id {doc_id!r}")
        store = FeedbackStore(self.feedback_path, max_bytes=self.feedback_max_bytes)
        return store.append(accepted, rejected, doc_id, title, text, added=added, source=source)

    # --- Annif-compatible project -------------------------------------------------------------

    def project(self) -> dict[str, Any]:
        """The one project, in the Annif API's terms."""
        try:
            loaded = self.current()
        except ModelError:
            loaded = None
        mtime = None
        if loaded is not None:
            mtime = dt.datetime.fromtimestamp(loaded.stamp[0] / 1e9, dt.UTC).isoformat(
                timespec="seconds")
        return {"project_id": PROJECT_ID, "name": "Étiquettes des communiqués",
                "language": "fr", "backend": {"backend_id": "communiques"},
                "is_trained": loaded is not None, "modification_time": mtime}


def key_of(raw: str) -> str:
    """Normalised key of a tag typed by hand (the vocabulary merges aliases on top)."""
    return tag_key(raw)
