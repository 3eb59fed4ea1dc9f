"""Tag suggestion over HTTP: suggest for a draft or an indexed document, the vocabulary, the
untagged documents with suggestions, and editors' feedback — thin over
:class:`models.tagging.TaggingService` (one per worker, in ``ctx.cache``), which reloads the
model after a ``communiques train``. With no model file, or one made by an incompatible version,
suggestion endpoints answer 503 saying what to run: search keeps working without a model.
Drafts (``published: false``) are visible to readers and editors only, also as reasons.

Request bodies are read by hand (with a size limit) rather than by FastAPI, so that an oversized
draft is refused with 413 before being parsed, and a text over the limit is a 413, not a 422.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator

from indexer.ids import ID_RE
from models.feedback import MAX_TEXT_CHARS, FeedbackError, FeedbackFull
from models.tagging import MAX_K, TaggingError, TaggingService
from service.auth import Caller, Writer, require_json
from service.context import AppContext, get_context
from service.routes.annif import router as annif_router

router = APIRouter(tags=["tags"])

MAX_TITLE_CHARS = 1_000
MAX_BODY_BYTES = 4 * MAX_TEXT_CHARS + 64 * 1024
"""A 100,000-character text in UTF-8 with JSON escapes, plus the other fields."""
SERVICE_KEY = "tags.service"
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


class ReasonOut(BaseModel):
    signal: str = Field(description="label (the tag's name found), linear (the tag's model's "
                        "weights) or neighbour (a similar document carrying the tag)")
    text: str = Field(description="the draft's words, or « comme le document X »")
    field: str | None = Field(None, description="title or text: where the words are")
    start: int | None = None
    end: int | None = None
    doc_id: str | None = Field(None, description="the similar document (neighbour)")
    title: str | None = None
    url: str | None = Field(None, description="link to the similar document")
    similarity: float | None = None


class TagOut(BaseModel):
    tag: str = Field(description="display label (the spelling editors use most)")
    key: str = Field(description="canonical key, the same for every spelling of the tag")
    uri: str = Field(description="stable URI of the tag")
    score: float = Field(ge=0, le=1, description="calibrated confidence")
    confident: bool = Field(description="the score is above the tag's tuned threshold")
    count: int = Field(description="training documents carrying the tag")
    reasons: list[str] = Field(description="words of the draft that triggered the tag")
    explanations: list[ReasonOut] = Field(description="every reason with its signal")


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


class ExampleOut(BaseModel):
    id: str
    title: str
    url: str


class VocabularyEntry(BaseModel):
    key: str
    label: str
    uri: str
    examples: list[ExampleOut] = Field(description="the two newest documents with this tag")
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
    added: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=50,
        description="tags the editor gave by hand: of the vocabulary, or new")
    rejected: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=50, validate_default=True
    )

    @field_validator("rejected")
    @classmethod
    def _some_tag(cls, rejected: list[str], info: ValidationInfo) -> list[str]:
        given = [*(info.data.get("accepted") or []), *(info.data.get("added") or []), *rejected]
        if not any(t.strip() for t in given):
            raise ValueError("accepted, added and rejected are all empty: give at least one tag")
        return rejected


class FeedbackOut(BaseModel):
    id: str
    at: str
    doc_id: str | None
    draft: str | None = Field(description="hash of the draft's title and text (no doc_id)")
    accepted: list[str]
    rejected: list[str]
    added: list[str] = Field(default_factory=list)


# --- the tagging service, once per worker ----------------------------------------------------


def tagging(ctx: AppContext) -> TaggingService:
    """The worker's :class:`TaggingService` (created on first use, kept in ``ctx.cache``)."""
    service = ctx.cache.get(SERVICE_KEY)
    if service is None:
        service = ctx.cache.setdefault(SERVICE_KEY, TaggingService(
            ctx.search, ctx.settings.model_path, ctx.settings.feedback_path,
            int(ctx.settings.feedback_max_mb * 1024 * 1024)))
    return service


def _call(func: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
    """Run a service call, turning its errors into HTTP answers."""
    try:
        return func(*args, **kwargs)
    except TaggingError as exc:
        raise HTTPException(status_code=exc.status, detail=str(exc)) from None


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
async def suggest(request: Request, ctx: Annotated[AppContext, Depends(get_context)],
                  viewer: Caller) -> dict[str, Any]:
    """The ``k`` best tags for a draft (``{title, text, k}``), ranked, each with its calibrated
    score, ``confident`` (above the tag's threshold) and the reasons behind it."""
    body: SuggestIn = await _read_json(request, SuggestIn)
    _check_text(body.text)
    service = tagging(ctx)
    return await run_in_threadpool(_call, service.suggest, body.title, body.text, body.k,
                                   viewer.drafts)


@router.get("/api/documents/{doc_id}/tags/suggest", response_model=DocumentSuggestOut,
            responses={404: {"description": "unknown document"},
                       503: {"description": "no usable tag model: run `communiques train`"}})
def suggest_for_document(
    doc_id: str,
    ctx: Annotated[AppContext, Depends(get_context)],
    viewer: Caller,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 5,
) -> dict[str, Any]:
    """Suggest tags for an indexed document (its current tags are listed beside)."""
    return _call(tagging(ctx).suggest_document, doc_id, k, viewer.drafts)


@router.get("/api/tags", response_model=VocabularyOut)
def vocabulary(ctx: Annotated[AppContext, Depends(get_context)],
               viewer: Caller) -> dict[str, Any]:
    """Every tag of the indexed documents and of the alias file, most used first, each with
    its usage count and two example documents."""
    return _call(tagging(ctx).vocabulary, viewer.drafts)


@router.get("/api/tags/untagged", response_model=UntaggedOut,
            responses={503: {"description": "no usable tag model: run `communiques train`"}})
def untagged(
    ctx: Annotated[AppContext, Depends(get_context)],
    viewer: Caller,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 5,
) -> dict[str, Any]:
    """Indexed documents without tags, newest first, each with suggestions (cached per index
    generation and model)."""
    return _call(tagging(ctx).untagged, limit, k, viewer.drafts)


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
                   editor: Writer) -> dict[str, Any]:
    """Record which suggestions an editor accepted or rejected and which tags they added by
    hand; the next ``communiques train --feedback`` learns from it. Editors only: what the
    model learns comes from them."""
    body: FeedbackIn = await _read_json(request, FeedbackIn)
    _check_text(body.text)
    if body.doc_id is None and not (body.title.strip() or body.text.strip()):
        raise RequestValidationError([{
            "loc": ("body", "doc_id"), "type": "value_error",
            "msg": "give the document's id, or the draft's title or text",
        }])
    service = tagging(ctx)
    try:
        record = await run_in_threadpool(
            _call, service.feedback, body.accepted, body.rejected, body.added, body.doc_id,
            body.title, body.text, editor.drafts)
    except FeedbackFull:
        raise HTTPException(
            status_code=507, detail="the feedback log is full: an operator must run "
            "`communiques train --feedback` on it and rotate it before it takes more",
        ) from None
    except FeedbackError as exc:
        field, _, message = str(exc).partition(": ")
        raise RequestValidationError([{
            "loc": ("body", field.split(",")[0]), "type": "value_error",
            "msg": message or str(exc),
        }]) from None
    return {k: record.get(k) for k in FeedbackOut.model_fields}


# The Annif-compatible API (``/v1``) answers beside these routes.
router.include_router(annif_router)
