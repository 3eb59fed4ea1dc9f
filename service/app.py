"""FastAPI application factory: opens the index once per worker and mounts the routers."""

from __future__ import annotations

import importlib
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from threading import Lock

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from service.auth import Caller, OriginCheckMiddleware
from service.context import AppContext, Settings
from service.limits import BodySizeLimitMiddleware, RateLimitMiddleware, document_refusals
from service.logging import configure_logging
from service.memory import tune_malloc

log = logging.getLogger("communiques")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


class Metrics:
    """Request counts and latency histograms per route, in Prometheus text format."""

    def __init__(self) -> None:
        self._lock = Lock()
        self.counts: dict[tuple[str, str, int], int] = defaultdict(int)
        self.buckets: dict[tuple[str, str], list[int]] = {}
        self.sums: dict[tuple[str, str], float] = defaultdict(float)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.counts[(method, route, status)] += 1
            b = self.buckets.setdefault((method, route), [0] * (len(LATENCY_BUCKETS) + 1))
            for i, edge in enumerate(LATENCY_BUCKETS):
                if seconds <= edge:
                    b[i] += 1
            b[-1] += 1
            self.sums[(method, route)] += seconds

    def render(self) -> str:
        lines = [
            "# HELP communiques_requests_total HTTP requests by method, route and status.",
            "# TYPE communiques_requests_total counter",
        ]
        with self._lock:
            for (m, r, s), n in sorted(self.counts.items()):
                lines.append(f'communiques_requests_total{{method="{m}",route="{r}",status="{s}"}} {n}')
            lines += [
                "# HELP communiques_request_seconds HTTP request latency.",
                "# TYPE communiques_request_seconds histogram",
            ]
            for (m, r), b in sorted(self.buckets.items()):
                labels = f'method="{m}",route="{r}"'
                for edge, n in zip(LATENCY_BUCKETS, b, strict=False):
                    lines.append(f'communiques_request_seconds_bucket{{{labels},le="{edge}"}} {n}')
                lines.append(f'communiques_request_seconds_bucket{{{labels},le="+Inf"}} {b[-1]}')
                lines.append(f"communiques_request_seconds_sum{{{labels}}} {self.sums[(m, r)]:.6f}")
                lines.append(f"communiques_request_seconds_count{{{labels}}} {b[-1]}")
        return "\n".join(lines) + "\n"


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
        request.app.state.metrics.observe(request.method, name, status, elapsed)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        log.info("request", extra={"fields": {
            "method": request.method, "route": name, "status": status,
            "ms": round(elapsed * 1000, 2),
        }})
        return response


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
        # The arrays and the lexicon are ready before the first visitor; spaCy finishes loading
        # in the background (queries meanwhile use the light analysis, see analyze_query).
        app.state.ctx.search.warm(wait_for_model=False)
        yield

    app = FastAPI(
        lifespan=lifespan,
        title="communiques",
        description="Recherche et suggestion d'étiquettes pour les communiqués de presse.",
        version="0.1.0",
    )
    app.state.ctx = AppContext(settings)
    app.state.metrics = Metrics()
    app.add_exception_handler(RequestValidationError, _validation_error)
    # Innermost first: the body limit, then the rate limits, inside the observability
    # middleware so that refused requests are counted, logged and get the security headers.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RateLimitMiddleware, rates=settings.rates())
    app.add_middleware(OriginCheckMiddleware, settings=settings)
    app.add_middleware(ObservabilityMiddleware)
    if settings.site_origin:
        app.add_middleware(
            CORSMiddleware, allow_origins=[o.strip() for o in settings.site_origin.split(",")],
            allow_methods=["GET"], allow_headers=["*"],
        )

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
            app.openapi_schema = document_refusals(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/health", tags=["ops"])
    def health(viewer: Caller) -> dict[str, object]:
        from indexer.analysis import analysis_ready

        search = app.state.ctx.search
        engine = search.engine()
        return {
            "status": "ok",
            # the documents the caller may see: drafts are not even counted for the public
            "documents": int(search.visible(engine, viewer.drafts).sum()),
            # "light" for the few seconds spaCy takes to load after a start
            "analysis": "full" if analysis_ready() else "light",
            # "loading" while the longest posting lists are read ahead after a start or a commit
            "postings": "ready" if app.state.ctx.search.warmed() else "loading",
        }

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    def metrics() -> str:
        return app.state.metrics.render()

    return app
