"""Tag suggestion over HTTP: suggest for a draft or an indexed document, the vocabulary, the
untagged documents with suggestions, and editors' feedback.

The model file is loaded once per worker and cached in ``ctx.cache``; each request compares the
file's modification stamp (one ``stat``) and reloads after a ``communiques train``. With no model
file, or one made by an incompatible version, suggestion endpoints answer 503 saying what to run:
search keeps working without a model.

Request bodies are read by hand (with a size limit) rather than by FastAPI, so that an oversized
draft is refused with 413 before being parsed, and a text over the limit is a 413, not a 422.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator

from indexer.ids import ID_RE
from models.feedback import MAX_TEXT_CHARS, FeedbackError, FeedbackFull, FeedbackStore
from models.store import ModelError, ModelInfo, load_model
from models.suggester import Draft, TagSuggester
from service.auth import Caller, Writer, require_json
from service.context import AppContext, get_context

router = APIRouter(tags=["tags"])

MAX_K = 20
MAX_TITLE_CHARS = 1_000
MAX_BODY_BYTES = 4 * MAX_TEXT_CHARS + 64 * 1024
"""A 100,000-character text in UTF-8 with JSON escapes, plus the other fields."""
CACHE_KEY = "tags.model"
ID_PATTERN = f"^{ID_RE.pattern}$"


# --- request and response models ---------------------------------------------------------------


class SuggestIn(BaseModel):
    """A draft: a title and/or a text (chapeau and body), and how many tags to suggest."""

    title: str = Field("", max_length=MAX_TITLE_CHARS)
    text: str = Field("", validate_default=True)
    k: int = Field(5, ge=1, le=MAX_K)

    @field_validator("text")
    @classmethod
    def _not_both_empty(cls, text: str, info: ValidationInfo) -> str:
        if "title" not in info.data:
            return text  # the title is invalid already: that error is the one to report
        if not text.strip() and not info.data["title"].strip():
            raise ValueError("title and text are both empty: give at least one of them")
        return text


class TagOut(BaseModel):
    tag: str = Field(description="display label (the spelling editors use most)")
    key: str = Field(description="canonical key, the same for every spelling of the tag")
    score: float = Field(ge=0, le=1, description="calibrated confidence")
    reasons: list[str] = Field(description="words of the draft that triggered the tag")


class ModelOut(BaseModel):
    version: int = Field(description="model file format version")
    id: str
    trained_at: str
    documents: int


class SuggestOut(BaseModel):
    tags: list[TagOut]
    model: ModelOut
    took_ms: float


class DocumentSuggestOut(SuggestOut):
    id: str
    title: str
    existing: list[str] = Field(description="the tags the document already has")


class VocabularyEntry(BaseModel):
    key: str
    label: str
    count: int = Field(description="indexed documents with this tag")
    variants: list[str] = Field(description="spellings used in the indexed documents")
    aliases: list[str] = Field(description="spellings declared in the alias file")
    suggestable: bool | None = Field(
        None, description="the current model may suggest it (null: no model)"
    )


class VocabularyOut(BaseModel):
    total: int
    tags: list[VocabularyEntry]


class UntaggedDocument(BaseModel):
    id: str
    title: str
    url: str
    date: str
    collection: str
    tags: list[TagOut]


class UntaggedOut(BaseModel):
    total: int = Field(description="indexed documents without any tag")
    documents: list[UntaggedDocument]
    model: ModelOut


class FeedbackIn(BaseModel):
    """Which suggested tags an editor accepted or rejected, for a document or a draft."""

    doc_id: str | None = Field(None, pattern=ID_PATTERN)
    title: str = Field("", max_length=MAX_TITLE_CHARS)
    text: str = ""
    accepted: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list,
                                                                  max_length=50)
    rejected: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=50, validate_default=True
    )

    @field_validator("rejected")
    @classmethod
    def _some_tag(cls, rejected: list[str], info: ValidationInfo) -> list[str]:
        accepted = info.data.get("accepted") or []
        if not any(t.strip() for t in [*accepted, *rejected]):
            raise ValueError("accepted and rejected are both empty: give at least one tag")
        return rejected


class FeedbackOut(BaseModel):
    id: str
    at: str
    doc_id: str | None
    draft: str | None = Field(description="hash of the draft's title and text (no doc_id)")
    accepted: list[str]
    rejected: list[str]


# --- the model, once per worker ----------------------------------------------------------------


@dataclass
class _Loaded:
    stamp: tuple[int, int, int]
    model: TagSuggester
    info: ModelInfo


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def current_model(ctx: AppContext) -> _Loaded | None:
    """The loaded model, reloaded when its file changed; None when there is no model file.

    Raises :class:`ModelError` for an unusable file (it is retried on the next request, so
    retraining fixes the service without a restart).
    """
    path = ctx.settings.model_path
    stamp = _stamp(path)
    if stamp is None:
        return None
    loaded: _Loaded | None = ctx.cache.get(CACHE_KEY)
    if loaded is not None and loaded.stamp == stamp:
        return loaded
    lock: threading.Lock = ctx.cache.setdefault(CACHE_KEY + ".lock", threading.Lock())
    with lock:
        loaded = ctx.cache.get(CACHE_KEY)
        stamp = _stamp(path)
        if stamp is None:
            return None
        if loaded is None or loaded.stamp != stamp:
            model, info = load_model(path)
            loaded = _Loaded(stamp, model, info)
            ctx.cache[CACHE_KEY] = loaded
    return loaded


def require_model(ctx: AppContext) -> _Loaded:
    """The model, or 503 with what to run."""
    path = ctx.settings.model_path
    try:
        loaded = current_model(ctx)
    except ModelError as exc:
        # The server's own paths stay out of responses: the file is named, not its folder.
        detail = str(exc).replace(str(path), path.name)
        raise HTTPException(status_code=503, detail=f"tag model unusable: {detail}") from None
    if loaded is None:
        raise HTTPException(
            status_code=503,
            detail=f"no tag model ({path.name}): run `communiques train --corpus PATH --model FILE`",
        )
    return loaded


def _model_out(info: ModelInfo) -> ModelOut:
    return ModelOut(**info.summary())


def _tags_out(suggestions: list[Any]) -> list[TagOut]:
    return [TagOut(tag=s.tag, key=s.key, score=round(s.score, 4), reasons=s.reasons)
            for s in suggestions]


# --- what the index knows about tags ----------------------------------------------------------


@dataclass
class _IndexView:
    generation: int
    counts: dict[str, int]
    """Tag key → live documents carrying it."""
    untagged: list[str]
    """Ids of live documents without any tag, newest first."""
    drafts: bool = False


def _index_view(ctx: AppContext, drafts: bool) -> _IndexView:
    """Tag counts and untagged documents from the search engine's per-generation arrays (the
    one place this module touches the index's internals), over what the caller may see."""
    engine = ctx.search.engine()
    live = np.asarray(ctx.search.visible(engine, drafts), dtype=bool)
    tags = engine.tags.tocsr()
    per_tag = np.asarray(tags[live].sum(axis=0)).ravel()
    counts = {name: int(per_tag[i]) for i, name in enumerate(engine.tag_names) if per_tag[i]}
    tagged = np.asarray(tags.sum(axis=1)).ravel() > 0
    docnums = np.flatnonzero(live & ~tagged)
    docnums = docnums[np.argsort(-engine.timestamp[docnums], kind="stable")]
    return _IndexView(engine.generation, counts, [engine.ids[d] for d in docnums], drafts)


# --- bodies ------------------------------------------------------------------------------------


async def _read_json(request: Request, model: type[BaseModel]) -> Any:  # noqa: ANN401
    """Parse and validate a JSON body of at most :data:`MAX_BODY_BYTES` (413 beyond)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPException(status_code=413, detail=f"body larger than {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HTTPException(status_code=413, detail=f"body larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e.get("loc", ()))} for e in exc.errors(include_url=False)]
        ) from None


def _check_text(text: str) -> None:
    if len(text) > MAX_TEXT_CHARS:
        raise HTTPException(
            status_code=413,
            detail=f"text: {len(text):,} characters, the limit is {MAX_TEXT_CHARS:,}",
        )


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": model.model_json_schema()}}}}


# --- endpoints ---------------------------------------------------------------------------------


@router.post("/api/tags/suggest", response_model=SuggestOut,
             openapi_extra=_body_schema(SuggestIn),
             responses={413: {"description": "text over 100,000 characters"},
                        422: {"description": "invalid request; the detail names the field"},
                        503: {"description": "no usable tag model: run `communiques train`"}})
async def suggest(request: Request,
                  ctx: Annotated[AppContext, Depends(get_context)]) -> SuggestOut:
    """Suggest tags for a draft (``{title, text, k}``), each with the words behind it."""
    body: SuggestIn = await _read_json(request, SuggestIn)
    _check_text(body.text)
    loaded = require_model(ctx)
    t0 = time.perf_counter()
    suggestions = await run_in_threadpool(loaded.model.suggest, body.title, body.text, body.k)
    return SuggestOut(tags=_tags_out(suggestions), model=_model_out(loaded.info),
                      took_ms=round((time.perf_counter() - t0) * 1000, 2))


@router.get("/api/documents/{doc_id}/tags/suggest", response_model=DocumentSuggestOut,
            responses={404: {"description": "unknown document"},
                       503: {"description": "no usable tag model: run `communiques train`"}})
def suggest_for_document(
    doc_id: str,
    ctx: Annotated[AppContext, Depends(get_context)],
    viewer: Caller,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 5,
) -> DocumentSuggestOut:
    """Suggest tags for an indexed document (its current tags are listed beside)."""
    record = ctx.search.document(doc_id, drafts=viewer.drafts)
    if record is None:
        raise HTTPException(status_code=404, detail=f"no document with id {doc_id!r}")
    loaded = require_model(ctx)
    t0 = time.perf_counter()
    (suggestions,) = loaded.model.suggest_many([Draft.from_document(record)], k=k)
    return DocumentSuggestOut(
        id=doc_id, title=record.get("title", ""), existing=list(record.get("tags", [])),
        tags=_tags_out(suggestions), model=_model_out(loaded.info),
        took_ms=round((time.perf_counter() - t0) * 1000, 2),
    )


@router.get("/api/tags", response_model=VocabularyOut)
def vocabulary(ctx: Annotated[AppContext, Depends(get_context)],
               viewer: Caller) -> VocabularyOut:
    """Every tag of the indexed documents and of the alias file, most used first."""
    view = _index_view(ctx, viewer.drafts)
    voc = ctx.search.vocabulary_for(viewer.drafts)
    counts = view.counts
    aliases: dict[str, list[str]] = {}
    for label, alias_list in voc.aliases.items():
        aliases.setdefault(voc.key(label), []).extend([label, *alias_list])
    try:
        loaded = current_model(ctx)
    except ModelError:
        loaded = None
    candidates = set(loaded.model.candidates_) if loaded is not None else None
    rows = [
        VocabularyEntry(
            key=str(e["key"]), label=str(e["label"]), count=counts.get(str(e["key"]), 0),
            variants=list(e["variants"]),  # type: ignore[call-overload]
            aliases=sorted(set(aliases.get(str(e["key"]), []))),
            suggestable=None if candidates is None else str(e["key"]) in candidates,
        )
        for e in voc.entries()
    ]
    rows.sort(key=lambda r: (-r.count, r.label.lower()))
    return VocabularyOut(total=len(rows), tags=rows)


@router.get("/api/tags/untagged", response_model=UntaggedOut,
            responses={503: {"description": "no usable tag model: run `communiques train`"}})
def untagged(
    ctx: Annotated[AppContext, Depends(get_context)],
    viewer: Caller,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 5,
) -> UntaggedOut:
    """Indexed documents without tags, newest first, each with suggestions.

    Answers are cached per index generation and model, since the work is one spaCy pass per
    document and the list only changes on ingest or retraining.
    """
    loaded = require_model(ctx)
    view = _index_view(ctx, viewer.drafts)
    cache_key = ("tags.untagged", view.generation, loaded.info.model_id, limit, k, view.drafts)
    cached = ctx.cache.get(cache_key)
    if cached is not None:
        return cached
    ids = view.untagged[:limit]
    records = [r for r in (ctx.search.document(i, drafts=view.drafts) for i in ids)
               if r is not None]
    suggestions = loaded.model.suggest_many([Draft.from_document(r) for r in records], k=k)
    out = UntaggedOut(
        total=len(view.untagged),
        documents=[
            UntaggedDocument(id=r["id"], title=r.get("title", ""), url=r.get("url", ""),
                             date=r.get("date", ""), collection=r.get("collection", ""),
                             tags=_tags_out(s))
            for r, s in zip(records, suggestions, strict=True)
        ],
        model=_model_out(loaded.info),
    )
    for key in [k_ for k_ in list(ctx.cache) if isinstance(k_, tuple) and k_[0] == "tags.untagged"]:
        ctx.cache.pop(key, None)
    ctx.cache[cache_key] = out
    return out


@router.post("/api/tags/feedback", status_code=201, response_model=FeedbackOut,
             openapi_extra=_body_schema(FeedbackIn),
             dependencies=[Depends(require_json)],
             responses={401: {"description": "an editor's key (or session) is needed"},
                        404: {"description": "unknown doc_id and no draft given"},
                        413: {"description": "text over 100,000 characters"},
                        415: {"description": "the body must be application/json"},
                        422: {"description": "invalid feedback; the detail names the field"},
                        507: {"description": "the feedback log is full: train, then rotate it"}})
async def feedback(request: Request, ctx: Annotated[AppContext, Depends(get_context)],
                   editor: Writer) -> FeedbackOut:
    """Record which suggestions an editor accepted or rejected; the next
    ``communiques train --feedback`` learns from it. Editors only: what the model learns
    comes from them."""
    body: FeedbackIn = await _read_json(request, FeedbackIn)
    _check_text(body.text)
    if body.doc_id is None and not (body.title.strip() or body.text.strip()):
        raise RequestValidationError([{
            "loc": ("body", "doc_id"), "type": "value_error",
            "msg": "give the document's id, or the draft's title or text",
        }])
    draft_given = bool(body.title.strip() or body.text.strip())
    if (body.doc_id is not None and not draft_given
            and ctx.search.document(body.doc_id, drafts=True) is None):
        raise HTTPException(status_code=404, detail=f"no document with id {body.doc_id!r}")
    store = FeedbackStore(ctx.settings.feedback_path,
                          max_bytes=int(ctx.settings.feedback_max_mb * 1024 * 1024))
    try:
        record = await run_in_threadpool(
            store.append, body.accepted, body.rejected, body.doc_id, body.title, body.text
        )
    except FeedbackFull:
        raise HTTPException(
            status_code=507, detail="the feedback log is full: an operator must run "
            "`communiques train --feedback` on it and rotate it before it takes more",
        ) from None
    except FeedbackError as exc:
        field, _, message = str(exc).partition(": ")
        raise RequestValidationError([{
            "loc": ("body", field), "type": "value_error", "msg": message or str(exc),
        }]) from None
    return FeedbackOut(**{k: record[k] for k in FeedbackOut.model_fields})
