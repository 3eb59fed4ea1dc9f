"""FastAPI application factory: opens the index once per worker and mounts the routers."""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from service import metrics as request_metrics
from service.apidocs import add_docs
from service.auth import Caller, OriginCheckMiddleware
from service.context import AppContext, Settings
from service.limits import BodySizeLimitMiddleware, RateLimitMiddleware
from service.logging import configure_logging
from service.memory import tune_malloc
from service.middleware import HeadAsGetMiddleware, RelativeRedirectMiddleware
from service.openapi import KEY_OPTIONAL, NO_KEY, finish

log = logging.getLogger("communiques")

HEALTH_RETRY_AFTER = 2
"""Seconds a balancer is told to wait before asking a worker still loading again."""

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


class ObservabilityMiddleware(BaseHTTPMiddleware):
    """Metrics, security headers, and one structured JSON log line per request."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        t0 = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
        except Exception:
            log.exception("unhandled error", extra={"fields": {
                "method": request.method, "path": request.url.path}})
            response = JSONResponse({"detail": "internal error"}, status_code=500)
        elapsed = time.perf_counter() - t0
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        request_metrics.observe(request.method, name, status, elapsed)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        log.info("request", extra={"fields": {
            "method": request.method, "route": name, "status": status,
            "ms": round(elapsed * 1000, 2),
        }})
        return response


DESCRIPTION = """Search and tag suggestion for French government press releases (*communiqués de
presse*), as a JSON API.

* **search**: ranked search with highlights, facets and filters, as-you-type completions, exports
  of every match (CSV, XLSX, JSON lines) and statistics;
* **documents**: one communiqué, the communiqués most like it, and, for editors, writing and
  removing them;
* **tags**: tags suggested for a draft or an indexed communiqué, with their reasons, the tag
  vocabulary, and editors' feedback that the next training learns from;
* **annif**: the same suggestions under `/v1`, for library tools that speak the Annif API;
* **ops**: health and Prometheus metrics.

**Keys.** Anyone may search and read published communiqués. Drafts (`published: false`) are
only seen by readers and writers, who send a key as `Authorization: Bearer <key>` (or sign in on
`/connexion`, which gives a session cookie); writes need the writers' key. Each operation says
who may call it.

**Errors.** A refusal under `/api` is `{"detail": "..."}` naming the parameter at fault (a 422
also lists `errors` per field); under `/v1` it is `application/problem+json`, as Annif's. Messages
are in English; the data (titles, tags, notes on how a query was read) are in French.
"""
TAGS = [
    {"name": "search", "description": "Search, completions, exports and statistics."},
    {"name": "documents", "description": "One communiqué, similar ones, and editors' writes."},
    {"name": "tags", "description": "Tag suggestions, the vocabulary and editors' feedback."},
    {"name": "annif", "description": "The Annif-compatible API (`/v1`): one project, "
                                     "`communiques-fr`, the tag model."},
    {"name": "ops", "description": "Health and metrics, for operators and their monitoring."},
]


class HealthOut(BaseModel):
    """Whether the service is up, and how ready."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "ok", "documents": 1874, "analysis": "full", "postings": "ready"}]})

    status: Literal["ok", "loading"] = Field(
        description="`ok` once the worker has finished loading after its start (then for good: "
        "a commit or a publish does not take it out of a balancer); `loading` before, with "
        "status 503.", examples=["ok"])
    documents: int = Field(description="Documents the caller may see (drafts are counted for "
                           "readers and writers only).", examples=[1874])
    analysis: Literal["full", "light"] = Field(
        description="`full` when queries get their lemmas: at once on an index with the lemma "
        "table; on an index written before it, `light` for the few seconds spaCy takes to load "
        "after a start (queries meanwhile use a lighter analysis).", examples=["full"])
    postings: Literal["ready", "loading"] = Field(
        description="`loading` while the longest posting lists are read ahead after a start or "
        "a commit (searches answer meanwhile, more slowly), then `ready`.", examples=["ready"])


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each field, without echoing huge inputs back."""
    errors = [
        {"field": ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "body")),
         "message": e.get("msg", "")}
        for e in exc.errors()
    ]
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return JSONResponse({"detail": summary, "errors": errors}, status_code=422)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    tune_malloc()
    configure_logging(secrets=[settings.api_key])
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The arrays and the lexicon are ready before the first visitor; spaCy (for writes and
        # tag suggestions) finishes loading in the background. Queries never wait for it: they
        # take their lemmas from the index's table (an index without one: the light analysis
        # until spaCy is loaded, see analyze_query).
        app.state.ctx.search.warm(wait_for_model=False)
        if settings.api_key and settings.write_warm:  # writes possible: their process loads
            app.state.ctx.writes.start()
        try:
            yield
        finally:
            app.state.ctx.writes.close()

    app = FastAPI(
        lifespan=lifespan,
        title="communiques",
        description=DESCRIPTION,
        version="0.1.0",
        openapi_tags=TAGS,
        docs_url=None, redoc_url=None,  # served by service.apidocs, without CDN, under the CSP
    )
    app.state.ctx = AppContext(settings)
    # Set by /health once spaCy and the first generation's longest posting lists are loaded.
    app.state.ready = False
    app.add_exception_handler(RequestValidationError, _validation_error)
    # Innermost first: the body limit, then the rate limits, inside the observability
    # middleware so that refused requests are counted, logged and get the security headers.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RateLimitMiddleware, rates=settings.rates(), storage=settings.rate_storage)
    app.add_middleware(OriginCheckMiddleware, settings=settings)
    app.add_middleware(HeadAsGetMiddleware)
    app.add_middleware(RelativeRedirectMiddleware)
    app.add_middleware(ObservabilityMiddleware)
    if settings.site_origin:
        app.add_middleware(
            CORSMiddleware, allow_origins=[o.strip() for o in settings.site_origin.split(",")],
            allow_methods=["GET"], allow_headers=["*"],
        )
    if settings.proxies():
        # Outermost: the client address (rate limits, logs) and scheme (own origin, Secure
        # cookies) come from X-Forwarded-* only when the connection is from a named proxy.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.proxies())

    from service.routes import documents, search

    app.include_router(search.router)
    app.include_router(documents.router)
    for name in ("service.routes.tags", "service.routes.pages"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        app.include_router(module.router)

    def openapi() -> dict[str, object]:
        if app.openapi_schema is None:
            app.openapi_schema = finish(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/health", tags=["ops"], response_model=HealthOut, summary="Service health",
             openapi_extra=KEY_OPTIONAL,
             responses={503: {"model": HealthOut, "description": (
                 "Still loading after a start (the longest posting lists; spaCy on an index "
                 "written before the lemma table): the same "
                 "fields, `status` `loading`, and `Retry-After`: a balancer sends no traffic "
                 "yet.")}})
    def health(viewer: Caller, response: Response) -> dict[str, object]:
        """Whether the service answers, how many documents it serves, and whether it has
        finished warming up after a start. For load balancers and monitoring: 200 once this
        worker has finished loading after its start (searches are answered at full speed),
        503 with ``Retry-After`` until then."""
        from indexer.analysis import analysis_ready

        search = app.state.ctx.search
        engine = search.engine()
        full = analysis_ready() or not search.needs_spacy(engine)
        warmed = search.warmed() and app.state.ctx.writes.ready
        # Ready once, ready for good: a new generation after a commit or a publish reads its
        # posting lists ahead too, but every replica does so at the same moment, and taking
        # them all out of a balancer then would stop the service.
        app.state.ready = app.state.ready or (full and warmed)
        if not app.state.ready:
            response.status_code = 503
            response.headers["Retry-After"] = str(HEALTH_RETRY_AFTER)
        return {
            "status": "ok" if app.state.ready else "loading",
            # the documents the caller may see: drafts are not even counted for the public
            "documents": int(search.visible(engine, viewer.drafts).sum()),
            # "light" for the few seconds spaCy takes to load after a start, on an index
            # without the lemma table (with it, queries never need spaCy)
            "analysis": "full" if full else "light",
            # "loading" while the longest posting lists are read ahead after a start or a commit
            "postings": "ready" if warmed else "loading",
        }

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse,
             summary="Prometheus metrics", openapi_extra=NO_KEY, responses={200: {
                 "description": "The metrics, in Prometheus' text format.",
                 "content": {"text/plain": {"schema": {"type": "string"}, "example": (
                     "# TYPE communiques_requests_total counter\n"
                     'communiques_requests_total{method="GET",route="/api/search",'
                     'status="200"} 1523.0\n')}}}})
    def metrics() -> Response:
        """Prometheus metrics: requests by route and status and their durations, counted over
        every worker of this service. For the operator's Prometheus scraper."""
        body, content_type = request_metrics.exposition()
        return Response(body, media_type=content_type)

    add_docs(app)

    return app
