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

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from models.feedback import MAX_TEXT_CHARS, FeedbackError, FeedbackFull
from models.tagging import PROJECT_ID, TaggingError, tag_uri
from service.auth import Writer
from service.context import AppContext, get_context

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


PROBLEM_SCHEMA = {"type": "object", "properties": {
    "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
    "detail": {"type": "string"}}, "required": ["title", "detail"]}
PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"description": title,
             "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}}}
    for status, title in TITLES.items()
}

router = APIRouter(prefix="/v1", tags=["annif"], route_class=ProblemRoute, responses=PROBLEMS)


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


@router.get("/")
def api_info() -> dict[str, str]:
    """What ``annif-client``'s ``api_info`` reads."""
    return {"title": "communiques — API compatible Annif", "version": "1.4"}


@router.get("/projects")
def projects(ctx: Ctx) -> dict[str, Any]:
    """The projects offered: one, the tag model."""
    return {"projects": [_service(ctx).project()]}


@router.get("/projects/{project_id}")
def project(project_id: str, ctx: Ctx) -> dict[str, Any]:
    _project(project_id)
    return _service(ctx).project()


@router.post("/projects/{project_id}/suggest",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/x-www-form-urlencoded": {"schema": {
                     "type": "object", "required": ["text"], "properties": {
                         "text": {"type": "string"}, "limit": {"type": "integer", "default": 10},
                         "threshold": {"type": "number", "default": 0}}}}}}})
async def suggest(project_id: str, request: Request, ctx: Ctx) -> dict[str, Any]:
    """Tags for a text (form-encoded ``text``, ``limit`` default 10, ``threshold`` default 0);
    a first line of at most 300 characters followed by more text is read as the title."""
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


@router.post("/projects/{project_id}/suggest-batch")
async def suggest_batch(project_id: str, request: Request, ctx: Ctx,
                        limit: str | None = None, threshold: str | None = None,
                        ) -> list[dict[str, Any]]:
    """Tags for up to 32 documents (JSON ``{"documents": [{"text", "document_id"}]}``)."""
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


@router.post("/projects/{project_id}/learn", status_code=204)
async def learn(project_id: str, request: Request, ctx: Ctx, editor: Writer) -> Response:
    """Texts with their subjects (JSON list of ``{"text", "subjects": [{"uri", "label"}]}``)
    into the feedback log, as tags added by an editor. Editors only."""
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
