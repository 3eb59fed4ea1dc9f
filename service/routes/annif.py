"""The Annif-compatible REST API under ``/v1``: subject suggestion as library tools speak it.

Annif (NatLibFi) is the de-facto standard for automated subject indexing; its clients (the PyPI
``annif-client``, Finto AI's tools, library systems) call ``/v1/projects``,
``/v1/projects/{id}/suggest`` (form-encoded), ``suggest-batch`` (JSON) and ``learn``. This
service offers one project, :data:`~models.tagging.PROJECT_ID`: the tag model, in French. Tags
are identified by stable URIs (:func:`models.tagging.tag_uri`). ``learn`` writes to the editors'
feedback log (so it needs the editor's credential), which ``communiques train --feedback``
learns from. Errors are ``application/problem+json`` with ``title`` and ``detail``, as Annif's.

Thin over :class:`models.tagging.TaggingService`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from models.feedback import MAX_TEXT_CHARS, FeedbackError, FeedbackFull
from models.tagging import PROJECT_ID, TaggingError, tag_uri
from service.auth import Writer
from service.context import AppContext, get_context
from service.openapi import NO_KEY, WRITER_KEY

MAX_BATCH = 32
MAX_LIMIT = 100
MAX_BODY_BYTES = 4 * MAX_TEXT_CHARS * MAX_BATCH // 8 + 64 * 1024
"""A batch of long texts in UTF-8 with JSON escapes; a single text is at most 100,000
characters (413 beyond)."""
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
          413: "Payload Too Large", 415: "Unsupported Media Type", 503: "Service Unavailable",
          507: "Insufficient Storage"}


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An ``application/problem+json`` answer, as Annif gives."""
    return JSONResponse({"type": "about:blank", "title": TITLES.get(status, "Error"),
                         "status": status, "detail": detail},
                        status_code=status, media_type="application/problem+json",
                        headers=headers)


class ProblemRoute(APIRoute):
    """Routes whose errors (raised by the handler or its dependencies) are problem+json."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException as exc:
                return problem(exc.status_code, str(exc.detail), dict(exc.headers or {}))
            except RequestValidationError as exc:
                detail = "; ".join(
                    ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "body"))
                    + f": {e.get('msg', '')}" for e in exc.errors())
                return problem(400, detail)
            except TaggingError as exc:
                return problem(exc.status, str(exc))

        return run


def documented(status: int, description: str, detail: str) -> dict[str, Any]:
    """A refusal in a route's ``responses``, with an example of its problem."""
    return {"description": description, "content": {"application/problem+json": {"example": {
        "type": "about:blank", "title": TITLES[status], "status": status, "detail": detail}}}}


router = APIRouter(prefix="/v1", tags=["annif"], route_class=ProblemRoute)

# --- what the routes answer, and what they read ------------------------------------------------

EXAMPLE_TEXT = ("Lancement de France transfert\nL’État lance son propre outil en ligne de "
                "transfert de fichiers volumineux, jusqu’à 20 Go, destiné à ses agents.")
EXAMPLE_SUBJECTS = [
    {"uri": "tag:communiques,2026:environnement-de-travail-numerique",
     "label": "Environnement de travail numérique", "notation": None, "score": 0.8123},
    {"uri": "tag:communiques,2026:cybersecurite", "label": "Cybersécurité", "notation": None,
     "score": 0.4127},
]
EXAMPLE_PROJECT = {
    "project_id": PROJECT_ID, "name": "Étiquettes des communiqués", "language": "fr",
    "backend": {"backend_id": "communiques"}, "is_trained": True,
    "modification_time": "2026-03-02T09:14:07+00:00",
}


class ApiInfoOut(BaseModel):
    """The API's name and the Annif version whose API it follows."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"title": "communiques — API compatible Annif", "version": "1.4"}]})

    title: str = Field(description="The API's name.",
                       examples=["communiques — API compatible Annif"])
    version: str = Field(description="The Annif version whose REST API this one follows.",
                         examples=["1.4"])


class BackendOut(BaseModel):
    """The backend of a project, in Annif's terms."""

    backend_id: str = Field(description="Always `communiques`: this service's own tag model.",
                            examples=["communiques"])


class ProjectOut(BaseModel):
    """The one project: the tag model, in French."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_PROJECT]})

    project_id: str = Field(description="The project's id, for the other `/v1` routes.",
                            examples=[PROJECT_ID])
    name: str = Field(description="Its name.", examples=["Étiquettes des communiqués"])
    language: str = Field(description="The language of the texts it reads.", examples=["fr"])
    backend: BackendOut = Field(description="Its backend.")
    is_trained: bool = Field(description="A usable tag model is there (false: suggestions "
                             "answer 503 until an operator runs `communiques train`).",
                             examples=[True])
    modification_time: str | None = Field(description="When the model file was written (ISO "
                                          "8601, UTC); null when there is no model.",
                                          examples=["2026-03-02T09:14:07+00:00"])


class ProjectsOut(BaseModel):
    """The projects offered."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"projects": [EXAMPLE_PROJECT]}]})

    projects: list[ProjectOut] = Field(description="One project: the tag model.")


class SubjectOut(BaseModel):
    """One suggested subject (a tag)."""

    model_config = ConfigDict(json_schema_extra={"examples": EXAMPLE_SUBJECTS})

    uri: str = Field(description="The tag's stable URI (the site's tag page when "
                     "`COMMUNIQUES_SITE_URL` is set).",
                     examples=["tag:communiques,2026:cybersecurite"])
    label: str = Field(description="The tag's label.", examples=["Cybersécurité"])
    notation: str | None = Field(None, description="Always null: tags have no notation.",
                                 examples=[None])
    score: float = Field(description="Calibrated confidence, from 0 to 1.", examples=[0.4127])


class SuggestionsOut(BaseModel):
    """The subjects suggested for one text, best first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"results": EXAMPLE_SUBJECTS}]})

    results: list[SubjectOut] = Field(description="Up to `limit` subjects scoring at least "
                                      "`threshold`, best first.")


class BatchSuggestionsOut(SuggestionsOut):
    """The subjects suggested for one document of a batch."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"results": EXAMPLE_SUBJECTS, "document_id": "lancement-de-france-transfert"}]})

    document_id: Any = Field(None, description="The `document_id` sent with the text, as it "
                             "was sent (null when none was).",
                             examples=["lancement-de-france-transfert"])


PROJECT_PATH = Path(description=f"The project: this service has one, `{PROJECT_ID}`.",
                    openapi_examples={"the tag model": {"value": PROJECT_ID}})
NO_PROJECT = documented(404, f"No such project (the only one is `{PROJECT_ID}`).",
                        "Project 'annif-fr' not found")
NO_MODEL = documented(503, "No usable tag model: an operator must run `communiques train`.",
                      "no tag model (model.pkl): run `communiques train --corpus PATH "
                      "--model FILE`")
TOO_LARGE = documented(413, f"A text over {MAX_TEXT_CHARS:,} characters, or a body over "
                       f"{MAX_BODY_BYTES:,} bytes.",
                       "text: 123,456 characters, the limit is 100,000")
LIMIT_DOC = (f"How many subjects at most per text (1 to {MAX_LIMIT}); default 10.")
THRESHOLD_DOC = "The lowest score a subject may have (0 to 1); default 0."


def _service(ctx: AppContext) -> Any:  # noqa: ANN401 - a TaggingService
    from service.routes.tags import tagging

    return tagging(ctx)


def _project(project_id: str) -> None:
    if project_id != PROJECT_ID:
        raise HTTPException(status_code=404, detail=f"Project '{project_id}' not found")


def _limit(value: str | None, default: int = 10) -> int:
    if value is None or value == "":
        return default
    try:
        limit = int(value)
    except ValueError:
        raise HTTPException(400, f"limit: {value[:40]!r} is not a whole number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise HTTPException(400, f"limit: must be between 1 and {MAX_LIMIT}")
    return limit


def _threshold(value: str | None) -> float:
    if value is None or value == "":
        return 0.0
    try:
        threshold = float(value)
    except ValueError:
        raise HTTPException(400, f"threshold: {value[:40]!r} is not a number") from None
    if not 0.0 <= threshold <= 1.0:
        raise HTTPException(400, "threshold: must be between 0 and 1")
    return threshold


async def _body(request: Request, media: str) -> bytes:
    got = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if got != media:
        raise HTTPException(415, f"Content-Type: expected {media}, got {got or 'none'!r}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HTTPException(413, f"body larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _json(raw: bytes) -> Any:  # noqa: ANN401 - any JSON
    try:
        return json.loads(raw or b"null")
    except (UnicodeDecodeError, ValueError) as exc:
        raise HTTPException(400, f"body: not valid JSON ({exc})") from None


def _text(value: Any, name: str) -> str:  # noqa: ANN401
    if not isinstance(value, str):
        raise HTTPException(400, f"{name}: expected text")
    if len(value) > MAX_TEXT_CHARS:
        raise HTTPException(413, f"{name}: {len(value):,} characters, the limit is "
                                 f"{MAX_TEXT_CHARS:,}")
    return value


def _results(suggestions: list[Any]) -> list[dict[str, Any]]:
    return [{"uri": tag_uri(s.key), "label": s.tag, "notation": None,
             "score": round(s.score, 4)} for s in suggestions]


Ctx = Annotated[AppContext, Depends(get_context)]


@router.get("/", response_model=ApiInfoOut, summary="API information", openapi_extra=NO_KEY)
def api_info() -> dict[str, str]:
    """The API's name and the Annif version it follows: what `annif-client`'s `api_info`
    reads to check it talks to an Annif server."""
    return {"title": "communiques — API compatible Annif", "version": "1.4"}


@router.get("/projects", response_model=ProjectsOut, summary="List the projects",
            openapi_extra=NO_KEY)
def projects(ctx: Ctx) -> dict[str, Any]:
    """The projects offered: one, the tag model. Annif clients start here to find the
    project id to send texts to."""
    return {"projects": [_service(ctx).project()]}


@router.get("/projects/{project_id}", response_model=ProjectOut, summary="Describe a project",
            openapi_extra=NO_KEY, responses={404: NO_PROJECT})
def project(project_id: Annotated[str, PROJECT_PATH], ctx: Ctx) -> dict[str, Any]:
    """One project: its language and whether its model is trained."""
    _project(project_id)
    return _service(ctx).project()


@router.post("/projects/{project_id}/suggest", response_model=SuggestionsOut,
             summary="Suggest subjects for a text",
             openapi_extra={**NO_KEY, "requestBody": {
                 "required": True,
                 "description": "The text, form-encoded as Annif takes it.",
                 "content": {"application/x-www-form-urlencoded": {
                     "schema": {
                         "type": "object", "required": ["text"], "properties": {
                             "text": {"type": "string", "description": "The text (UTF-8, at "
                                      f"most {MAX_TEXT_CHARS:,} characters); a first line of "
                                      "at most 300 characters followed by more is its title.",
                                      "examples": [EXAMPLE_TEXT]},
                             "limit": {"type": "integer", "default": 10,
                                       "description": LIMIT_DOC, "examples": [5]},
                             "threshold": {"type": "number", "default": 0,
                                           "description": THRESHOLD_DOC, "examples": [0.1]}},
                     },
                     "example": {"text": EXAMPLE_TEXT, "limit": 5, "threshold": 0.1},
                 }},
             }},
             responses={400: documented(400, "The text is missing or empty, `limit` or "
                                        "`threshold` out of range, or the body not UTF-8.",
                                        "text: required and not empty"),
                        404: NO_PROJECT, 413: TOO_LARGE,
                        415: documented(415, "The body is not form-encoded.",
                                        "Content-Type: expected "
                                        "application/x-www-form-urlencoded, got "
                                        "'application/json'"),
                        503: NO_MODEL})
async def suggest(project_id: Annotated[str, PROJECT_PATH], request: Request,
                  ctx: Ctx) -> dict[str, Any]:
    """Subjects (tags) for one text, best first, as Annif's `suggest`: for library tools and
    `annif-client`. The tags come from the same model as `POST /api/tags/suggest`, without
    the reasons."""
    _project(project_id)
    raw = await _body(request, "application/x-www-form-urlencoded")
    try:
        form = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise HTTPException(400, "body: not UTF-8") from None
    text = _text((form.get("text") or [""])[0], "text")
    if not text.strip():
        raise HTTPException(400, "text: required and not empty")
    limit = _limit((form.get("limit") or [None])[0])
    threshold = _threshold((form.get("threshold") or [None])[0])
    service = _service(ctx)
    (suggestions,) = await run_in_threadpool(service.suggest_texts, [text], limit, threshold)
    return {"results": _results(suggestions)}


@router.post("/projects/{project_id}/suggest-batch", response_model=list[BatchSuggestionsOut],
             summary="Suggest subjects for several texts",
             openapi_extra={**NO_KEY, "requestBody": {
                 "required": True,
                 "description": f"Up to {MAX_BATCH} texts, each with an id of the caller's "
                                "that the answer repeats.",
                 "content": {"application/json": {"schema": {
                     "type": "object", "required": ["documents"],
                     "description": "The texts of one batch.",
                     "properties": {"documents": {
                         "type": "array", "maxItems": MAX_BATCH,
                         "description": f"Up to {MAX_BATCH} documents.",
                         "items": {"type": "object", "properties": {
                             "text": {"type": "string", "maxLength": MAX_TEXT_CHARS,
                                      "description": "The text (an empty one gets no "
                                      "subjects).", "examples": [EXAMPLE_TEXT]},
                             "document_id": {"description": "Any id of the caller's, given "
                                             "back with the results.",
                                             "examples": ["lancement-de-france-transfert"]},
                         }},
                     }},
                     "examples": [{"documents": [
                         {"text": EXAMPLE_TEXT, "document_id": "lancement-de-france-transfert"},
                     ]}],
                 }}},
             }},
             responses={400: documented(400, f"The body is not JSON, `documents` is not a list "
                                        f"of objects or holds more than {MAX_BATCH}, or "
                                        "`limit` or `threshold` is out of range.",
                                        "documents: at most 32 per batch, got 40"),
                        404: NO_PROJECT, 413: TOO_LARGE,
                        415: documented(415, "The body is not declared `application/json`.",
                                        "Content-Type: expected application/json, got "
                                        "'text/plain'"),
                        503: NO_MODEL})
async def suggest_batch(
    project_id: Annotated[str, PROJECT_PATH], request: Request, ctx: Ctx,
    limit: Annotated[str | None, Query(description=LIMIT_DOC, examples=["5"])] = None,
    threshold: Annotated[str | None, Query(description=THRESHOLD_DOC,
                                           examples=["0.1"])] = None,
) -> list[dict[str, Any]]:
    """Subjects for up to 32 texts in one request, in the order sent, as Annif's
    `suggest-batch`: for indexing a backlog."""
    _project(project_id)
    lim, thr = _limit(limit), _threshold(threshold)
    body = _json(await _body(request, "application/json"))
    docs = body.get("documents") if isinstance(body, dict) else None
    if not isinstance(docs, list):
        raise HTTPException(400, "documents: expected a list of {text, document_id}")
    if len(docs) > MAX_BATCH:
        raise HTTPException(400, f"documents: at most {MAX_BATCH} per batch, got {len(docs)}")
    texts, ids = [], []
    for i, d in enumerate(docs):
        if not isinstance(d, dict):
            raise HTTPException(400, f"documents.{i}: expected an object with text")
        texts.append(_text(d.get("text", ""), f"documents.{i}.text"))
        ids.append(d.get("document_id"))
    service = _service(ctx)
    found = await run_in_threadpool(service.suggest_texts, texts, lim, thr) if texts else []
    return [{"results": _results(s) if t.strip() else [], "document_id": i}
            for s, t, i in zip(found, texts, ids, strict=True)]


@router.post("/projects/{project_id}/learn", status_code=204,
             summary="Teach subjects for texts",
             openapi_extra={**WRITER_KEY, "requestBody": {
                 "required": True,
                 "description": f"Up to {MAX_BATCH} texts, each with the subjects it should "
                                "have.",
                 "content": {"application/json": {"schema": {
                     "type": "array", "maxItems": MAX_BATCH,
                     "description": "The texts and their subjects.",
                     "items": {"type": "object", "required": ["text", "subjects"],
                               "properties": {
                         "text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT_CHARS,
                                  "description": "The text; a first line of at most 300 "
                                  "characters followed by more is its title.",
                                  "examples": [EXAMPLE_TEXT]},
                         "subjects": {
                             "type": "array", "minItems": 1,
                             "description": "Its subjects: a known `uri`, or a `label` (a tag "
                                            "of the vocabulary, or a new one).",
                             "items": {"type": "object", "properties": {
                                 "uri": {"type": "string", "description": "A tag's URI.",
                                         "examples": ["tag:communiques,2026:cybersecurite"]},
                                 "label": {"type": "string", "description": "A tag's label.",
                                           "examples": ["Cybersécurité"]},
                             }},
                         },
                     }},
                     "examples": [[{"text": EXAMPLE_TEXT, "subjects": [
                         {"uri": "tag:communiques,2026:cybersecurite",
                          "label": "Cybersécurité"}]}]],
                 }}},
             }},
             responses={204: {"description": "Recorded in the feedback log."},
                        400: documented(400, "The body is not a list of texts with subjects, "
                                        "holds more than 32, or a subject has neither a known "
                                        "URI nor a label.",
                                        "0.subjects.0: unknown uri and no label"),
                        404: NO_PROJECT, 413: TOO_LARGE,
                        415: documented(415, "The body is not declared `application/json`.",
                                        "Content-Type: expected application/json, got "
                                        "'text/plain'"),
                        507: documented(507, "The feedback log is full: an operator must "
                                        "train on it and rotate it.",
                                        "the feedback log is full: train, then rotate it")})
async def learn(project_id: Annotated[str, PROJECT_PATH], request: Request, ctx: Ctx,
                editor: Writer) -> Response:
    """Texts with the subjects they should have, recorded in the feedback log as tags an
    editor added by hand; the next `communiques train --feedback` learns from them. As Annif's
    `learn`, for cataloguing tools. Writers only: what the model learns comes from the
    editors."""
    _project(project_id)
    body = _json(await _body(request, "application/json"))
    if not isinstance(body, list):
        raise HTTPException(400, "body: expected a list of {text, subjects}")
    if len(body) > MAX_BATCH:
        raise HTTPException(400, f"body: at most {MAX_BATCH} documents, got {len(body)}")
    service = _service(ctx)
    by_uri = {e["uri"]: e["label"] for e in service.vocabulary(drafts=True)["tags"]}
    records = []
    for i, doc in enumerate(body):
        if not isinstance(doc, dict):
            raise HTTPException(400, f"{i}: expected an object with text and subjects")
        text = _text(doc.get("text", ""), f"{i}.text")
        subjects = doc.get("subjects")
        if not text.strip() or not isinstance(subjects, list) or not subjects:
            raise HTTPException(400, f"{i}: text and a non-empty subjects list are required")
        labels = []
        for j, sub in enumerate(subjects):
            if not isinstance(sub, dict):
                raise HTTPException(400, f"{i}.subjects.{j}: expected {{uri, label}}")
            uri = sub.get("uri")
            label = (by_uri.get(uri) if isinstance(uri, str) else None) or sub.get("label")
            if not isinstance(label, str) or not label.strip():
                raise HTTPException(400, f"{i}.subjects.{j}: unknown uri and no label")
            labels.append(label)
        first, _, rest = text.strip().partition("\n")
        title, rest = (first, rest) if rest and len(first) <= 300 else ("", text)
        records.append((labels, title[:1000], rest))
    for labels, title, text in records:
        try:
            await run_in_threadpool(service.feedback, [], [], labels, None, title, text,
                                    True, "learn")
        except FeedbackFull:
            raise HTTPException(507, "the feedback log is full: train, then rotate it") from None
        except FeedbackError as exc:
            raise HTTPException(400, str(exc)) from None
    return Response(status_code=204)
