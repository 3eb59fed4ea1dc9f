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

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from indexer.ids import ID_RE
from models.feedback import MAX_TEXT_CHARS, FeedbackError, FeedbackFull
from models.tagging import MAX_K, TaggingError, TaggingService
from service.auth import Caller, Writer, require_json
from service.context import AppContext, get_context
from service.openapi import KEY_OPTIONAL, WRITER_KEY, refusal
from service.routes.annif import router as annif_router

router = APIRouter(tags=["tags"])

MAX_TITLE_CHARS = 1_000
MAX_BODY_BYTES = 4 * MAX_TEXT_CHARS + 64 * 1024
"""A 100,000-character text in UTF-8 with JSON escapes, plus the other fields."""
SERVICE_KEY = "tags.service"
ID_PATTERN = f"^{ID_RE.pattern}$"


# --- request and response models ---------------------------------------------------------------


EXAMPLE_TITLE = "Lancement de France transfert"
EXAMPLE_TEXT = ("L’État lance son propre outil en ligne de transfert de fichiers volumineux, "
                "jusqu’à 20 Go, destiné à ses agents.")
EXAMPLE_REASONS = [
    {"signal": "label", "text": "fichiers", "field": "text", "start": 53, "end": 61,
     "doc_id": None, "title": None, "url": None, "similarity": None},
    {"signal": "neighbour",
     "text": "comme le document « La Suite numérique : des outils collaboratifs souverains pour "
             "les agents publics »",
     "field": None, "start": None, "end": None,
     "doc_id": "la-suite-numerique-des-outils-collaboratifs-souverains-pour-les-agents-publics",
     "title": "La Suite numérique : des outils collaboratifs souverains pour les agents publics",
     "url": "/documents/la-suite-numerique-des-outils-collaboratifs-souverains-pour-les-"
            "agents-publics",
     "similarity": 0.166},
]
EXAMPLE_TAG = {
    "tag": "Environnement de travail numérique",
    "key": "environnement de travail numerique",
    "uri": "tag:communiques,2026:environnement-de-travail-numerique",
    "score": 0.8123,
    "confident": True,
    "count": 3,
    "reasons": ["fichiers", "agents"],
    "explanations": EXAMPLE_REASONS,
}
EXAMPLE_MODEL = {"version": 2, "id": "2f2502f0e654", "trained_at": "2026-03-02T09:14:07+00:00",
                 "documents": 1731}


class SuggestIn(BaseModel):
    """A draft: a title and/or a text (chapeau and body), and how many tags to suggest."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"title": EXAMPLE_TITLE, "text": EXAMPLE_TEXT, "k": 5}]})

    title: str = Field("", max_length=MAX_TITLE_CHARS, description="The draft's title (empty "
                       "if there is none yet; title and text may not both be empty).",
                       examples=[EXAMPLE_TITLE])
    text: str = Field("", validate_default=True, description="The draft's chapeau and body, "
                      f"as plain text or markdown; at most {MAX_TEXT_CHARS:,} characters "
                      "(413 beyond).", examples=[EXAMPLE_TEXT])
    k: int = Field(5, ge=1, le=MAX_K, description="How many tags to suggest.", examples=[5])

    @field_validator("text")
    @classmethod
    def _not_both_empty(cls, text: str, info: ValidationInfo) -> str:
        if "title" not in info.data:
            return text  # the title is invalid already: that error is the one to report
        if not text.strip() and not info.data["title"].strip():
            raise ValueError("title and text are both empty: give at least one of them")
        return text


class ReasonOut(BaseModel):
    """One reason a tag was suggested."""

    model_config = ConfigDict(json_schema_extra={"examples": EXAMPLE_REASONS})

    signal: str = Field(description="`label` (the tag's name, or one of its spellings, is in "
                        "the draft), `name_words` (words of the tag's name found apart, when "
                        "the name itself is not there), `linear` (words the tag's model "
                        "weighs) or `neighbour` (a similar document carries the tag).",
                        examples=["label"])
    text: str = Field(description="The draft's words, or « comme le document … » for a "
                      "neighbour.", examples=["fichiers"])
    field: str | None = Field(None, description="Where the words are: `title` or `text` "
                              "(null for a neighbour).", examples=["text"])
    start: int | None = Field(None, description="Where the words start in that field, in "
                              "characters from 0 (null for a neighbour).", examples=[53])
    end: int | None = Field(None, description="Where they end (exclusive).", examples=[61])
    doc_id: str | None = Field(None, description="The similar document (neighbour only).",
                               examples=[EXAMPLE_REASONS[1]["doc_id"]])
    title: str | None = Field(None, description="Its title (neighbour only).",
                              examples=[EXAMPLE_REASONS[1]["title"]])
    url: str | None = Field(None, description="A link to it (neighbour only).",
                            examples=[EXAMPLE_REASONS[1]["url"]])
    similarity: float | None = Field(None, description="How similar it is to the draft, from 0 "
                                     "to 1 (neighbour only).", examples=[0.166])


class TagOut(BaseModel):
    """One suggested tag, with its confidence and reasons."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_TAG]})

    tag: str = Field(description="Display label (the spelling editors use most).",
                     examples=[EXAMPLE_TAG["tag"]])
    key: str = Field(description="Canonical key, the same for every spelling of the tag.",
                     examples=[EXAMPLE_TAG["key"]])
    uri: str = Field(description="Stable URI of the tag (the site's tag page when "
                     "`COMMUNIQUES_SITE_URL` is set).", examples=[EXAMPLE_TAG["uri"]])
    score: float = Field(ge=0, le=1, description="Calibrated confidence, from 0 to 1.",
                         examples=[0.8123])
    confident: bool = Field(description="The score is above the tag's tuned threshold: worth "
                            "proposing as it is.", examples=[True])
    count: int = Field(description="Training documents carrying the tag.", examples=[3])
    reasons: list[str] = Field(description="Words of the draft that triggered the tag.",
                               examples=[["fichiers", "agents"]])
    explanations: list[ReasonOut] = Field(description="Every reason, with its signal and "
                                          "where it is.")


class ModelOut(BaseModel):
    """The tag model that answered."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_MODEL]})

    version: int = Field(description="Model file format version.", examples=[2])
    id: str = Field(description="The model's id (changes with every training).",
                    examples=["2f2502f0e654"])
    trained_at: str = Field(description="When it was trained (ISO 8601, UTC).",
                            examples=["2026-03-02T09:14:07+00:00"])
    documents: int = Field(description="Tagged documents it was trained on.", examples=[1731])


class SuggestOut(BaseModel):
    """The tags suggested for a draft, best first."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"tags": [EXAMPLE_TAG], "model": EXAMPLE_MODEL, "took_ms": 48.7}]})

    tags: list[TagOut] = Field(description="Up to `k` tags, best first.")
    model: ModelOut = Field(description="The model that suggested them.")
    took_ms: float = Field(description="Time spent, in milliseconds.", examples=[48.7])


class DocumentSuggestOut(SuggestOut):
    """The tags suggested for an indexed document, beside the ones it has."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "lancement-de-france-transfert",
        "title": "Lancement de France transfert, l’envoi de fichiers volumineux des agents de "
                 "l’État",
        "existing": ["Sécurité"],
        "tags": [EXAMPLE_TAG], "model": EXAMPLE_MODEL, "took_ms": 52.1,
    }]})

    id: str = Field(description="The document.", examples=["lancement-de-france-transfert"])
    title: str = Field(description="Its title.", examples=["Lancement de France transfert, "
                       "l’envoi de fichiers volumineux des agents de l’État"])
    existing: list[str] = Field(description="The tags the document already has.",
                                examples=[["Sécurité"]])


class ExampleOut(BaseModel):
    """A document that carries a tag."""

    id: str = Field(description="The document's id.", examples=["lancement-de-france-transfert"])
    title: str = Field(description="Its title.", examples=["Lancement de France transfert, "
                       "l’envoi de fichiers volumineux des agents de l’État"])
    url: str = Field(description="A link to its page on this service.",
                     examples=["/documents/lancement-de-france-transfert"])


EXAMPLE_ENTRY = {
    "key": "cybersecurite",
    "label": "Cybersécurité",
    "uri": "tag:communiques,2026:cybersecurite",
    "examples": [{"id": "lancement-de-france-transfert",
                  "title": "Lancement de France transfert, l’envoi de fichiers volumineux des "
                           "agents de l’État",
                  "url": "/documents/lancement-de-france-transfert"}],
    "count": 4,
    "variants": ["Cybersécurité", "Sécurité"],
    "aliases": ["Cybersécurité", "Sécurité", "sécurité numérique"],
    "suggestable": True,
}


class VocabularyEntry(BaseModel):
    """One tag of the vocabulary."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_ENTRY]})

    key: str = Field(description="Canonical key, the same for every spelling.",
                     examples=["cybersecurite"])
    label: str = Field(description="Display label (the spelling editors use most).",
                       examples=["Cybersécurité"])
    uri: str = Field(description="Stable URI of the tag.",
                     examples=["tag:communiques,2026:cybersecurite"])
    examples: list[ExampleOut] = Field(description="The two newest documents with this tag.")
    count: int = Field(description="Indexed documents with this tag (that the caller may "
                       "see).", examples=[4])
    variants: list[str] = Field(description="Spellings used in the indexed documents.",
                                examples=[["Cybersécurité", "Sécurité"]])
    aliases: list[str] = Field(description="Spellings declared in the alias file.",
                               examples=[["Cybersécurité", "Sécurité", "sécurité numérique"]])
    suggestable: bool | None = Field(
        None, description="The current model may suggest it (null: no model).", examples=[True]
    )


class VocabularyOut(BaseModel):
    """Every tag, most used first."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"total": 62, "tags": [EXAMPLE_ENTRY]}]})

    total: int = Field(description="Tags listed.", examples=[62])
    tags: list[VocabularyEntry] = Field(description="Every tag, most used first.")


EXAMPLE_UNTAGGED = {
    "id": "lancement-de-france-transfert",
    "title": "Lancement de France transfert, l’envoi de fichiers volumineux des agents de l’État",
    "url": "/espace-presse/lancement-de-france-transfert/",
    "date": "2022-03-25T16:30:00+01:00",
    "collection": "communiques",
    "tags": [EXAMPLE_TAG],
}


class UntaggedDocument(BaseModel):
    """A document without tags, with the tags suggested for it."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_UNTAGGED]})

    id: str = Field(description="The document's id.", examples=["lancement-de-france-transfert"])
    title: str = Field(description="Its title.", examples=["Lancement de France transfert, "
                       "l’envoi de fichiers volumineux des agents de l’État"])
    url: str = Field(description="Its address on the public site.",
                     examples=["/espace-presse/lancement-de-france-transfert/"])
    date: str = Field(description="Its publication date, ISO 8601 (empty: undated).",
                      examples=["2022-03-25T16:30:00+01:00"])
    collection: str = Field(description="Its collection.", examples=["communiques"])
    tags: list[TagOut] = Field(description="The tags suggested for it, best first.")


class UntaggedOut(BaseModel):
    """Untagged documents, newest first, with suggestions."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "total": 143,
        "documents": [EXAMPLE_UNTAGGED],
        "model": EXAMPLE_MODEL,
    }]})

    total: int = Field(description="Indexed documents without any tag.", examples=[143])
    documents: list[UntaggedDocument] = Field(description="The newest of them, up to `limit`.")
    model: ModelOut = Field(description="The model that suggested the tags.")


class FeedbackIn(BaseModel):
    """Which suggested tags an editor accepted or rejected, for a document or a draft."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"doc_id": "lancement-de-france-transfert", "accepted": ["Cybersécurité"],
         "rejected": ["Cloud"], "added": ["France transfert"]},
        {"title": EXAMPLE_TITLE, "text": EXAMPLE_TEXT,
         "accepted": ["Environnement de travail numérique"], "rejected": [], "added": []},
    ]})

    doc_id: str | None = Field(None, pattern=ID_PATTERN, description="The indexed document the "
                               "tags were suggested for; leave it out for a draft not saved "
                               "yet (then give its title or text).",
                               examples=["lancement-de-france-transfert"])
    title: str = Field("", max_length=MAX_TITLE_CHARS, description="The draft's title, when "
                       "there is no `doc_id`.", examples=[EXAMPLE_TITLE])
    text: str = Field("", description="The draft's text, when there is no `doc_id` (at most "
                      f"{MAX_TEXT_CHARS:,} characters).", examples=[EXAMPLE_TEXT])
    accepted: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=50, description="Suggested tags the editor kept.",
        examples=[["Cybersécurité"]])
    added: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=50,
        description="Tags the editor gave by hand: of the vocabulary, or new.",
        examples=[["France transfert"]])
    rejected: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=50, validate_default=True,
        description="Suggested tags the editor turned down (at least one tag in all three "
        "lists).", examples=[["Cloud"]])

    @field_validator("rejected")
    @classmethod
    def _some_tag(cls, rejected: list[str], info: ValidationInfo) -> list[str]:
        given = [*(info.data.get("accepted") or []), *(info.data.get("added") or []), *rejected]
        if not any(t.strip() for t in given):
            raise ValueError("accepted, added and rejected are all empty: give at least one tag")
        return rejected


class FeedbackOut(BaseModel):
    """The feedback recorded."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "8818978a8310467795e2209e0c360e4e", "at": "2026-03-04T10:21:37+00:00",
        "doc_id": "lancement-de-france-transfert", "draft": None,
        "accepted": ["Cybersécurité"], "rejected": ["Cloud"], "added": ["France transfert"],
    }]})

    id: str = Field(description="The record's id in the feedback log.",
                    examples=["8818978a8310467795e2209e0c360e4e"])
    at: str = Field(description="When it was recorded (ISO 8601, UTC).",
                    examples=["2026-03-04T10:21:37+00:00"])
    # (nullable fields have a default: FastAPI leaves null values out of the OpenAPI examples)
    doc_id: str | None = Field(None, description="The document, or null for a draft.",
                               examples=["lancement-de-france-transfert"])
    draft: str | None = Field(None, description="For a draft (no `doc_id`): the sha256 of its "
                              "title and text; null for a document.",
                              examples=["5f0c2a9e1d7b4c3a8e6f1b2d9c0a7e4f"
                                        "3b8d1c6a2f9e0b7d4c5a1e8f3b6d2c9a"])
    accepted: list[str] = Field(description="The tags accepted.", examples=[["Cybersécurité"]])
    rejected: list[str] = Field(description="The tags rejected.", examples=[["Cloud"]])
    added: list[str] = Field(default_factory=list, description="The tags added by hand.",
                             examples=[["France transfert"]])


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


def _body_schema(model: type[BaseModel], description: str) -> dict[str, Any]:
    """The request body of a route that reads it by hand (see :func:`_read_json`)."""
    return {"requestBody": {"required": True, "description": description, "content": {
        "application/json": {"schema": model.model_json_schema()}}}}


NO_MODEL = refusal("No usable tag model: an operator must run `communiques train` (search "
                   "keeps working meanwhile).", "no tag model (model.pkl): run `communiques "
                   "train --corpus PATH --model FILE`")
TEXT_TOO_LONG = refusal(f"The text is over {MAX_TEXT_CHARS:,} characters, or the body over "
                        f"{MAX_BODY_BYTES:,} bytes.", "text: 123,456 characters, the limit is "
                        "100,000")


# --- endpoints ---------------------------------------------------------------------------------


@router.post("/api/tags/suggest", response_model=SuggestOut, summary="Suggest tags for a draft",
             openapi_extra={**KEY_OPTIONAL, **_body_schema(
                 SuggestIn, "The draft: its title and/or text, and how many tags to suggest.")},
             responses={413: TEXT_TOO_LONG,
                        422: refusal("The body is invalid; the detail names the field.",
                                     "text: Value error, title and text are both empty: give "
                                     "at least one of them"),
                        503: NO_MODEL})
async def suggest(request: Request, ctx: Annotated[AppContext, Depends(get_context)],
                  viewer: Caller) -> dict[str, Any]:
    """The `k` best tags for a draft (`{title, text, k}`), ranked, each with its calibrated
    score, `confident` (above the tag's threshold) and the reasons behind it. For an editor
    writing a communiqué: the draft need not be saved, nor complete. Nothing is recorded;
    `POST /api/tags/feedback` says which tags the editor kept."""
    body: SuggestIn = await _read_json(request, SuggestIn)
    _check_text(body.text)
    service = tagging(ctx)
    return await run_in_threadpool(_call, service.suggest, body.title, body.text, body.k,
                                   viewer.drafts)


K = Query(ge=1, le=MAX_K, description="How many tags to suggest per document.", examples=[5])


@router.get("/api/documents/{doc_id}/tags/suggest", response_model=DocumentSuggestOut,
            summary="Suggest tags for a communiqué", openapi_extra=KEY_OPTIONAL,
            responses={404: refusal("No document with this id (or a draft, for a caller "
                                    "who is neither a reader nor a writer).",
                                    "no document with id 'lancement-de-france-transfert'"),
                       503: NO_MODEL})
def suggest_for_document(
    doc_id: Annotated[str, Path(description="The indexed document's id.", openapi_examples={
        "France transfert": {"value": "lancement-de-france-transfert"}})],
    ctx: Annotated[AppContext, Depends(get_context)],
    viewer: Caller,
    k: Annotated[int, K] = 5,
) -> dict[str, Any]:
    """Suggest tags for an indexed communiqué, its current tags listed beside: for reviewing
    the tags of documents already published."""
    return _call(tagging(ctx).suggest_document, doc_id, k, viewer.drafts)


@router.get("/api/tags", response_model=VocabularyOut, summary="The tag vocabulary",
            openapi_extra=KEY_OPTIONAL)
def vocabulary(ctx: Annotated[AppContext, Depends(get_context)],
               viewer: Caller) -> dict[str, Any]:
    """Every tag of the indexed documents and of the alias file, most used first, each with
    its usage count, its spellings and two example documents: for a tag picker, or to check
    which spelling to use. Works without a tag model (`suggestable` is then null)."""
    return _call(tagging(ctx).vocabulary, viewer.drafts)


@router.get("/api/tags/untagged", response_model=UntaggedOut,
            summary="Untagged communiqués, with suggestions", openapi_extra=KEY_OPTIONAL,
            responses={503: NO_MODEL})
def untagged(
    ctx: Annotated[AppContext, Depends(get_context)],
    viewer: Caller,
    limit: Annotated[int, Query(ge=1, le=100, description="How many documents at most.",
                                examples=[20])] = 20,
    k: Annotated[int, K] = 5,
) -> dict[str, Any]:
    """Indexed documents without tags, newest first, each with suggestions: the editors' list
    of documents to tag. Cached per index generation and model."""
    return _call(tagging(ctx).untagged, limit, k, viewer.drafts)


@router.post("/api/tags/feedback", status_code=201, response_model=FeedbackOut,
             summary="Record an editor's choice of tags",
             openapi_extra={**WRITER_KEY, **_body_schema(
                 FeedbackIn, "The document (or the draft) and the tags accepted, rejected and "
                             "added.")},
             dependencies=[Depends(require_json)],
             responses={201: {"description": "Recorded in the feedback log."},
                        404: refusal("Unknown `doc_id`, and no draft title or text given.",
                                     "no document with id 'lancement-de-france-transfert'"),
                        413: TEXT_TOO_LONG,
                        415: refusal("The body is not declared `application/json`.",
                                     "Content-Type: expected application/json, got "
                                     "'text/plain'"),
                        422: refusal("The feedback is invalid; the detail names the field.",
                                     "rejected: Value error, accepted, added and rejected are "
                                     "all empty: give at least one tag"),
                        507: refusal("The feedback log is full: an operator must train on it "
                                     "and rotate it.", "the feedback log is full: an operator "
                                     "must run `communiques train --feedback` on it and rotate "
                                     "it before it takes more")})
async def feedback(request: Request, ctx: Annotated[AppContext, Depends(get_context)],
                   editor: Writer) -> dict[str, Any]:
    """Record which suggestions an editor accepted or rejected and which tags they added by
    hand, for a document or a draft; the next `communiques train --feedback` learns from it.
    Writers only: what the model learns comes from the editors."""
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
